"""``agentdistill probe``: before training, measure what predicts which PI method will work.

The π-Distill paper (methods.md §2.7) finds two quantities, measured on the starting model, that predict
whether distilling privileged information helps and which α to use:

- **PI utility** Δ = success(teacher view) − success(student view) on held-out tasks: how much the PI block
  helps the model act. With Δ ≤ 0 there is nothing to transfer and α = 0 fails.
- **Initial teacher–student divergence** on the student's own rollouts: per response token,
  log π_S(y) − log π_T(y) with y ~ π_S (the k1 estimate of KL(π_S ‖ π_T)) and the k3 estimate
  r − 1 − log r, r = π_T(y)/π_S(y) (non-negative per token, lower variance). We also report the fraction of
  tokens whose ratio π_S/π_T lies outside π-Distill's clip range [1 − ε, 1 + ε]: the student-only objective
  (α = 0) learns through that ratio, so where most tokens are clipped it gets little gradient. The paper gives
  no KL threshold; calling the divergence "low" when fewer than half the tokens are clipped is our reading.

The probe takes the same overrides as ``agentdistill train`` and measures the weights that run would start
from (``init_from``, else the warm start, built or read from its cache, else the model's own), on the same
held-out tasks (``eval.*``) and one training step's worth of student rollouts (``tasks_per_step`` ×
``group_size`` episodes at the training temperature). It prints the figures with the paper's reading and
writes ``probe.json`` into the run directory::

    agentdistill probe env=sokoban warm_start.steps=12 eval.num_tasks=32
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from agentdistill.config import TrainConfig

logger = logging.getLogger(__name__)

PROBE_FILE = "probe.json"


def probe(cfg: TrainConfig, *, clip_eps: float = 0.2) -> dict[str, Any]:
    """Measure PI utility and the initial teacher–student divergence of ``cfg``'s starting weights; write
    ``probe.json`` under ``cfg.out_dir`` and return its contents."""
    from agentdistill import envs
    from agentdistill.algos.common import check_train_config, seed_everything, view_spec
    from agentdistill.checkpoints import load_weights
    from agentdistill.models import load_model
    from agentdistill.warmstart import initial_weights

    if not cfg.env.teacher_privileged:
        raise ValueError(f"{cfg.env.id} has no privileged information to probe: set env.teacher_privileged=[...] "
                         "(the PI kinds the teacher view reads, e.g. [expert_plan] for Sokoban)")
    if cfg.eval.num_tasks < 1:
        raise ValueError("the probe measures PI utility on held-out tasks: set eval.num_tasks >= 1")
    check_train_config(cfg)
    seed_everything(cfg.seed)
    weights = initial_weights(cfg)
    model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    if weights:
        load_weights(model, weights)
    model.eval()
    interface = envs.default_interface(cfg.env.id, **cfg.env.interface)
    spec = view_spec(cfg)
    engine = _engine(cfg, model) if cfg.rollout_engine == "vllm" else None
    utility = pi_utility(cfg, model, tokenizer, interface, spec, engine)
    divergence = initial_divergence(cfg, model, tokenizer, interface, spec, engine, clip_eps=clip_eps)
    result = {"weights": weights or cfg.model.name, "env": cfg.env.id, "pi": list(cfg.env.teacher_privileged),
              **utility, **divergence, "clip_eps": clip_eps}
    result["reading"] = reading(result)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PROBE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def pi_utility(cfg: TrainConfig, model: Any, tokenizer: Any, interface: Any, spec: Any, engine: Any) -> dict:
    """Held-out success of both views, Δ, and Δ's standard error (independent binomials over the tasks)."""
    from agentdistill.eval import evaluate

    policy = engine.variant(temperature=cfg.eval.temperature, max_new_tokens=cfg.max_new_tokens, name="probe") \
        if engine is not None else None
    results = {r.view: r.metrics for r in evaluate(
        model, tokenizer, cfg.env, cfg.eval, views=["student", "teacher"], max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed, interface=interface, batch_size=cfg.rollout_batch, view_spec=spec, policy=policy)}
    s, t = results["student"]["success_rate"], results["teacher"]["success_rate"]
    n = cfg.eval.num_tasks * cfg.eval.group_size
    return {"student_success": s, "teacher_success": t, "pi_utility": t - s,
            "pi_utility_se": math.sqrt((s * (1 - s) + t * (1 - t)) / n), "eval_episodes": n,
            "student_format_error_rate": results["student"].get("format_error_rate"),
            "teacher_pi_leak_rate": results["teacher"].get("pi_leak_rate")}


def initial_divergence(cfg: TrainConfig, model: Any, tokenizer: Any, interface: Any, spec: Any, engine: Any, *,
                       clip_eps: float) -> dict:
    """KL(π_S ‖ π_T) per response token on one training step's worth of student-view rollouts (k1, k3) and
    the fraction of tokens whose ratio π_S/π_T leaves [1 − ε, 1 + ε]."""
    from agentdistill.algos.batch import prompts_of, score_temperature
    from agentdistill.algos.common import rollout_seed, task_seeds
    from agentdistill.config import env_kwargs
    from agentdistill.policies.hf import HFPolicy
    from agentdistill.rollout import clean_episodes, rollout
    from agentdistill.scoring import score

    policy = engine.variant(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, name="probe") \
        if engine is not None else HFPolicy(model, tokenizer, temperature=cfg.temperature,
                                            max_new_tokens=cfg.max_new_tokens, batch_size=cfg.rollout_batch)
    pi_traces = None
    if cfg.env.pi_traces:
        from agentdistill.traces import load_traces

        pi_traces = load_traces(cfg.env.pi_traces, env_id=cfg.env.id)
    out = rollout(cfg.env.id, policy, seeds=task_seeds(cfg, 0), group_size=cfg.group_size, interface=interface,
                  tokenizer=tokenizer, teacher_privileged=list(cfg.env.teacher_privileged), view=spec,
                  max_turns=cfg.env.max_turns, env_kwargs=env_kwargs(cfg.env.kwargs),
                  run_seed=rollout_seed(cfg.seed, 0), progress=False, pi_traces=pi_traces)
    turns = [t for ep in clean_episodes(out.episodes) for t in ep.turns
             if t.response_ids and t.teacher_prompt_ids is not None]
    if not turns:
        raise RuntimeError("the student's rollouts produced no scorable turns (every episode errored?)")
    responses = [t.response_ids for t in turns]
    common: dict[str, Any] = dict(temperature=score_temperature(cfg.temperature),
                                  max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
    with torch.no_grad():
        student = score(model, prompts_of(turns, "student"), responses, **common)
        teacher = score(model, prompts_of(turns, "teacher"), responses, **common)
    mask = student.mask_BT
    log_ratio = (student.logprobs_BT - teacher.logprobs_BT)[mask]  # log π_S − log π_T, y ~ π_S
    k3 = torch.expm1(-log_ratio) + log_ratio  # r − 1 − log r with r = π_T/π_S
    clipped = (log_ratio.exp() - 1).abs() > clip_eps
    with_pi = sum(t.teacher_prompt_ids != t.student_prompt_ids for t in turns)
    return {"kl_k1_per_token": log_ratio.mean().item(), "kl_k3_per_token": k3.mean().item(),
            "clip_fraction": clipped.float().mean().item(), "kl_turns": len(turns), "kl_tokens": int(mask.sum()),
            "turns_with_pi": with_pi, "rollout_success": out.metrics.success_rate}


def reading(r: dict[str, Any]) -> str:
    """What the paper's findings (methods.md §2.7) say about these figures; the KL threshold is ours."""
    delta, se = r["pi_utility"], r["pi_utility_se"]
    if delta <= 0:
        return (f"PI utility Δ = {delta:+.3f} ≤ 0: the PI does not help this model act, so there is nothing to "
                "distil. The paper finds α = 0 fails here and OPSD's signal is the PI's information, which this "
                "model does not use. Make the PI usable first: a warm start that trains the teacher view "
                "(warm_start.views=[student,teacher]), another PI kind or rendering (pi_template, pi_placement).")
    weak = delta < 2 * se
    low_kl = r["clip_fraction"] < 0.5
    text = f"PI utility Δ = {delta:+.3f} (± {se:.3f} s.e.)" + (", within two standard errors of 0: measure on "
                                                                "more held-out tasks before trusting it. " if weak
                                                                else ": the PI helps. ")
    if low_kl:
        text += (f"Initial divergence is low ({r['clip_fraction']:.0%} of tokens outside the clip range): the "
                 "paper finds α = 0 (student only) works when KL is low and Δ > 0, and α = 0.5 is the most "
                 "robust choice overall; OPSD should help if the PI carries action-level information.")
    else:
        text += (f"Initial divergence is high ({r['clip_fraction']:.0%} of tokens outside the clip range): α = 0 "
                 "learns through a mostly clipped ratio; train the teacher too — α = 0.5 (the paper's most "
                 "robust setting) or α = 1 (watch for the teacher collapsing onto the student, KL → 0) — and "
                 "expect OPSD's per-token signal to be noisy.")
    return text


def _engine(cfg: TrainConfig, model: Any) -> Any:
    from agentdistill.models import model_folder
    from agentdistill.policies.vllm import VLLMPolicy

    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    engine = VLLMPolicy(model_folder(cfg.model.name), temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                        dtype=dtype, seed=cfg.seed, name="vllm")
    engine.load_weights(model)
    return engine


def print_probe(r: dict[str, Any]) -> None:
    print(f"probe of {r['weights']} on {r['env']} (PI: {', '.join(r['pi'])})")
    print(f"  held-out success: student view {r['student_success']:.3f}, teacher view {r['teacher_success']:.3f} "
          f"({r['eval_episodes']} episodes each)")
    print(f"  initial KL(student ‖ teacher) per token on {r['kl_tokens']} tokens of the student's rollouts: "
          f"k1 {r['kl_k1_per_token']:.4f}, k3 {r['kl_k3_per_token']:.4f}; "
          f"{r['clip_fraction']:.1%} of tokens outside the clip range ±{r['clip_eps']}")
    print(f"  reading: {r['reading']}")
    print(f"pi_utility: {r['pi_utility']:.3f}")
    print(f"initial_kl: {r['kl_k3_per_token']:.4f}")
