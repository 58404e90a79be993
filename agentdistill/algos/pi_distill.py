"""π-Distill: joint teacher–student training with privileged information (Penaloza et al., arXiv 2602.04942).

One set of weights θ defines the student π^S_θ(·|s) (normal context) and the teacher π^T_θ(·|s, I) (the same
context plus the PI block). Rollouts are sampled from the **teacher view**
(``rollout(..., teacher_privileged=privileged, act_on="teacher")``); every turn's response ids are scored
under both views, both with gradient (the teacher term deliberately trains the PI-conditioned stream, the one
exception to "teacher under stop-gradient", methods.md §1). Per sampling round (methods.md §2.2–2.3):

    KL̂_e   = Σ_turns Σ_t (log π_T(y_t) − log π_S(y_t))       k1 estimate of KL(π_T ‖ π_S), summed per episode
    R'_e   = R_e − β·KL̂_e,   A_e = R'_e − mean_group(R')     group-centred, no std scaling
    L_T    = token_mean −min(r_T·A, clip(r_T, 1−ε, 1+ε)·A),  r_T = π^T_θ(y|s,I) / π^T_old(y|s,I)
    L_S    = token_mean −min(ρ_S·A, clip(ρ_S, 1−ε, 1+ε)·A),  ρ_S = π^S_θ(y|s)   / sg(π^T_old(y|s,I))
    L      = α·L_T + (1−α)·L_S                               (both over the same global token normaliser)

π^T_old is the sampler's log-probs (the teacher view at sampling time). Groups whose advantages are all zero
are dropped (``drop_zero_adv_groups``, "pop zero-advantage (always)", paper Table 2) and their fraction is
logged. Turns whose PI block is empty (teacher view == student view) get the student term only (weight 1),
as the paper runs plain RL on tasks without PI (§4.3). α can be annealed linearly from ``alpha_start`` to
``alpha`` over ``alpha_anneal_steps`` optimiser steps (the paper anneals 0 → 0.5 over 15 epochs; default here:
no anneal, α = 0.5). β = 0.25, clip [0.8, 1.2].

Paper vs released code (``Emilianopp/Privileged-Information-Distillation@6d60bfa``, methods.md §2.5):

- Student IS denominator: we follow the paper's Alg. 1 (and the ART reimplementation, §2.8) and use π^T_old
  (the sampler's log-probs); the code uses the *current* teacher log-prob detached in the same micro-batch.
  With one optimiser step per sampling round (as here) both agree up to float rounding.
- Advantages: we follow the paper (per-group centring, no std); the code standardises over the whole batch.
- KL estimator: we follow the code (sampled-token k1, summed over tokens and turns, subtracted from every turn
  of the episode), not the paper's Rao-Blackwellised full-vocabulary estimator (App. E.1).
- The code's extra OPSD-style ``distill_coef·mean(sg(lp_T) − lp_S)`` loss term is not ported (zero expected
  gradient). α annealing and zero-advantage filtering are written from the paper's description (the code's
  keys for them are unused).
- Rewards are the episode's total env reward (no cosine length penalty or leakage penalty, App. D.1/E.2).
- One optimiser step per sampling round (the paper takes 2–3 PPO epochs), constant learning rate.

Resume is exact: the task cursor is checkpointed and sampling seeds depend only on (seed, step).

Run from Python::

    from agentdistill.algos.pi_distill import PiDistillConfig, train
    result = train(PiDistillConfig(model="smollm2-135m-instruct", privileged=("expert_plan",), alpha=0.5,
                                   steps=100, out_dir="runs/pi-distill-sokoban"))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from agentdistill.algos.common import (
    padded_BT,
    rollout_seed,
    task_seeds,
    RunResult,
    append_metrics,
    backward_microbatches,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    microbatches_by_tokens,
    plot_metrics,
    save_checkpoint,
    seed_everything,
    truncate_metrics,
)
from agentdistill.algos.opsd import (
    episode_advantages,
    rollout_metrics,
    score_temperature,
    sampler_and_other_logprobs,
    trainable_turns,
    zero_advantage_groups,
)
from agentdistill.losses import is_clipped_student, ppo_clip, ppo_clipped, reduce_loss
from agentdistill.models import load_model
from agentdistill.policies.hf import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.runs import write_run_info
from agentdistill.scoring import score
from agentdistill.teachers import make_teacher
from agentdistill.types import TurnSample
from agentdistill.views import ViewSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PiDistillConfig:
    """Everything one π-Distill run needs (plain values; the hydra schema wraps this later)."""

    model: str = "tiny-random"
    """Model spec for ``agentdistill.models.load_model`` (one set of weights for both views)."""
    env_id: str = "agentdistill/Sokoban-v0"
    """Env to roll out on."""
    privileged: tuple[str, ...] = ("expert_plan",)
    """PI kinds rendered into the teacher view (env ``info["privileged"]`` keys)."""
    alpha: float = 0.5
    """Weight of the teacher term: L = α·L_T + (1−α)·L_S (the final α when annealing)."""
    alpha_start: float | None = None
    """α at step 1 of a linear anneal to ``alpha``; None = no anneal."""
    alpha_anneal_steps: int = 0
    """Optimiser steps over which α goes linearly from ``alpha_start`` to ``alpha``."""
    beta: float = 0.25
    """β of R − β·KL̂(T‖S) (KL summed over the tokens and turns of an episode)."""
    clip_low: float = 0.2
    """Both terms' ratios are clipped below at 1 − clip_low."""
    clip_high: float = 0.2
    """Both terms' ratios are clipped above at 1 + clip_high."""
    drop_zero_adv_groups: bool = True
    """Drop groups whose advantages are all zero before the update."""
    num_tasks: int = 64
    """Task pool: env seeds ``env_seed_start .. env_seed_start + num_tasks − 1``."""
    env_seed_start: int = 0
    """First env reset seed of the task pool."""
    tasks_per_step: int = 8
    """Tasks sampled per step (each rolled out ``group_size`` times)."""
    group_size: int = 4
    """Rollouts per task (the GRPO group)."""
    max_turns: int | None = None
    """Turn budget per episode; None uses the env's default."""
    max_new_tokens: int = 128
    """Token budget of each sampled reply."""
    temperature: float = 1.0
    """Sampling temperature (paper 0.75); log-probs are scored at the same temperature."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; None keeps the whole conversation."""
    lr: float = 5e-6
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; None does not clip."""
    steps: int = 100
    """Total optimiser steps (one per sampling round); a resumed run continues up to this."""
    max_tokens_per_microbatch: int | None = 8192
    """Padded student-view tokens (rows × longest row) per micro-batch; None: the whole batch in one."""
    seed: int = 0
    """Seeds python, numpy, torch, the task order and the sampling."""
    out_dir: str = "runs/pi_distill"
    """Run directory: run_info.json, metrics.jsonl, checkpoints, plots."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    device: str | None = None
    """"cuda", "cpu", ...; None picks CUDA when available."""
    dtype: str | None = None
    """Model dtype; None: float32 on CPU, bfloat16 on CUDA."""


def alpha_at(cfg: PiDistillConfig, step: int) -> float:
    """α of optimiser step ``step`` (1-based): linear from ``alpha_start`` to ``alpha``, then ``alpha``."""
    if cfg.alpha_start is None or cfg.alpha_anneal_steps <= 0:
        return cfg.alpha
    frac = min(max(step - 1, 0) / cfg.alpha_anneal_steps, 1.0)
    return cfg.alpha_start + frac * (cfg.alpha - cfg.alpha_start)


def has_pi(sample: TurnSample) -> bool:
    """True when the turn's teacher view differs from its student view (a non-empty PI block)."""
    teacher_ids = sample.teacher_prompt_ids
    return teacher_ids is not None and tuple(teacher_ids) != tuple(sample.student_prompt_ids)


def pi_distill_loss(
    model: torch.nn.Module,
    samples: Sequence[TurnSample],
    advantages: Sequence[float],
    *,
    alpha: float,
    temperature: float,
    clip_low: float,
    clip_high: float,
    normalizer: int,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """α·L_T + (1−α)·L_S over one micro-batch (turns without PI: L_S only), token_mean over ``normalizer``.

    Both views are scored with gradient; π^T_old is each turn's ``sampler_logprobs``. ``stats`` (optional)
    accumulates the weighted parts ``loss_teacher``/``loss_student`` (they sum to the returned loss), the
    unweighted terms ``teacher_term``/``student_term``, and clipped-token counts.
    """
    responses = [s.response_ids for s in samples]
    teacher = score(model, [s.teacher_prompt_ids for s in samples], responses, temperature=temperature)
    student = score(model, [s.student_prompt_ids for s in samples], responses, temperature=temperature)
    mask_BT = student.mask_BT
    device = mask_BT.device
    old_BT = padded_BT([s.sampler_logprobs for s in samples], student.logprobs_BT)
    adv_BT = torch.tensor(list(advantages), dtype=torch.float32, device=device)[:, None].expand(mask_BT.shape)
    pi_B = torch.tensor([has_pi(s) for s in samples], device=device)
    w_teacher_B = torch.where(pi_B, alpha, 0.0).to(torch.float32)
    w_student_B = torch.where(pi_B, 1.0 - alpha, 1.0).to(torch.float32)
    clip = {"clip_low": clip_low, "clip_high": clip_high}
    teacher_BT = ppo_clip(teacher.logprobs_BT, old_BT, adv_BT, mask_BT, **clip)
    student_BT = is_clipped_student(student.logprobs_BT, old_BT, adv_BT, mask_BT, **clip)
    reduce = {"mode": "token_mean", "normalizer": normalizer}
    teacher_part = reduce_loss(w_teacher_B[:, None] * teacher_BT, mask_BT, **reduce)
    student_part = reduce_loss(w_student_B[:, None] * student_BT, mask_BT, **reduce)
    if stats is not None:
        with torch.no_grad():
            add = {
                "loss_teacher": float(teacher_part),
                "loss_student": float(student_part),
                "teacher_term": float(reduce_loss(teacher_BT, mask_BT, **reduce)),
                "student_term": float(reduce_loss(student_BT, mask_BT, **reduce)),
                "teacher_clipped": float(ppo_clipped(teacher.logprobs_BT, old_BT, adv_BT, mask_BT,
                                                     **clip).sum()),
                "student_clipped": float(ppo_clipped(student.logprobs_BT, old_BT, adv_BT, mask_BT,
                                                     **clip).sum()),
            }
        for k, v in add.items():
            stats[k] = stats.get(k, 0.0) + v
    return teacher_part + student_part


def train(cfg: PiDistillConfig) -> RunResult:
    """Run (or resume) π-Distill as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    if not cfg.privileged:
        raise ValueError("π-Distill needs privileged=(...) PI kinds: its rollouts come from the teacher view")
    for name in ("alpha", "alpha_start"):
        value = getattr(cfg, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    # ---- set-up: seed, model, optimiser, sampler (the teacher view of the same model)
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    model.train()
    current = make_teacher("current", model)  # no-grad scoring of the student view for the KL estimate
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                      name="pi-distill-teacher")
    temperature = score_temperature(cfg.temperature)
    logger.info("π-Distill (α=%s, β=%s), %d steps, out_dir=%s", cfg.alpha, cfg.beta, cfg.steps, run_dir)

    # ---- resume: weights, optimiser, RNG and task cursor; later metric lines go
    step, cursor = 0, 0
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:
        step, extra = load_checkpoint(checkpoint, model, optimizer)
        cursor = extra["cursor"]
        logger.info("resumed from %s (step %d)", checkpoint, step)
    truncate_metrics(run_dir, step)

    metrics: dict[str, float] = {}
    while step < cfg.steps:
        start = time.perf_counter()
        alpha = alpha_at(cfg, step + 1)
        # ---- sample from the teacher view (with PI); both views' ids are kept
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        cursor += cfg.tasks_per_step
        model.eval()
        result = rollout(cfg.env_id, policy, seeds=seeds, group_size=cfg.group_size, tokenizer=tokenizer,
                         teacher_privileged=cfg.privileged, view=ViewSpec(history_window=cfg.history_window),
                         max_turns=cfg.max_turns, run_seed=rollout_seed(cfg.seed, step), progress=False,
                         act_on="teacher")
        model.train()
        episodes = result.episodes
        turns = trainable_turns(episodes)

        # ---- KL(T‖S) per episode into the reward, group-centred advantages, drop zero-advantage groups
        kl_E = torch.zeros(len(episodes))
        adv_E = torch.zeros(len(episodes))
        if turns:
            t_BT, s_BT, mask_BT = sampler_and_other_logprobs(
                current, [t for _, t in turns], other_view="student", temperature=temperature,
                max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
            kl_E, _, adv_E = episode_advantages(episodes, turns, s_BT, t_BT, mask_BT, beta=cfg.beta,
                                                sampled_by="teacher")
        n_groups = len({ep.group_id for ep in episodes})
        dropped = zero_advantage_groups(episodes, adv_E) if cfg.drop_zero_adv_groups else set()
        kept = [(e, t) for e, t in turns if episodes[e].group_id not in dropped]
        adv_of = {id(t): float(adv_E[e]) for e, t in kept}
        batch = [t for _, t in kept]

        # ---- loss: α·teacher PPO + (1−α)·student IS-PPO, accumulated per micro-batch
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
        optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        loss = backward_microbatches(
            micro,
            lambda mb, n: pi_distill_loss(model, mb, [adv_of[id(t)] for t in mb], alpha=alpha,
                                          temperature=temperature, clip_low=cfg.clip_low,
                                          clip_high=cfg.clip_high, normalizer=n, stats=stats),
            mode="token_mean")
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf"))
        if batch:
            optimizer.step()
        step += 1

        # ---- log, then checkpoint (a crash between the two is undone by truncate_metrics on resume)
        elapsed = time.perf_counter() - start
        n_tokens = sum(len(t.response_ids) for t in batch)
        tokens = sum(len(t.teacher_prompt_ids) + len(t.student_prompt_ids) + len(t.response_ids)
                     for t in batch)
        metrics = {
            "step": step,
            **rollout_metrics(result, episodes),
            "alpha": alpha,
            "mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
            "zero_adv_frac": len(dropped) / max(n_groups, 1),
            "mean_abs_adv": float(adv_E.abs().mean()) if len(episodes) else 0.0,
            "no_pi_turn_frac": sum(not has_pi(t) for t in batch) / max(len(batch), 1),
            "loss": loss,
            "loss_teacher": stats.get("loss_teacher", 0.0),
            "loss_student": stats.get("loss_student", 0.0),
            "teacher_term": stats.get("teacher_term", 0.0),
            "student_term": stats.get("student_term", 0.0),
            "teacher_clip_frac": stats.get("teacher_clipped", 0.0) / max(n_tokens, 1),
            "student_clip_frac": stats.get("student_clipped", 0.0) / max(n_tokens, 1),
            "grad_norm": float(grad_norm),
            "lr": optimizer.param_groups[0]["lr"],
            "turns": len(batch),
            "response_tokens": n_tokens,
            "microbatches": len(micro),
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        }
        append_metrics(run_dir, metrics)
        logger.info("step %d loss %.4f (teacher %.4f, student %.4f) α %.2f success %.2f", step, loss,
                    metrics["loss_teacher"], metrics["loss_student"], alpha, metrics["success_rate"])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run_dir, step, model, optimizer, {"cursor": cursor})

    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots" / "learning_curves.png",
                 ["loss", "mean_kl", "success_rate", "alpha"])
    return RunResult(final_step=step, metrics=metrics, run_dir=run_dir)
