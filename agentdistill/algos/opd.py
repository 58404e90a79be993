"""On-policy distillation (OPD) from a separate teacher model that shares the student's tokenizer.

Each step rolls out ``tasks_per_step`` tasks × ``group_size`` samples from the student (student view, no
privileged information). The teacher scores the very same ids under the very same prompt — OPD's teacher
sees what the student sees — and the student descends the per-token reverse KL(π_θ ‖ π_T) on its own
samples. ``loss`` picks the estimator:

- ``"sampled"``: Tinker-style per-token advantage A_t = −sg(ℓ_t), ℓ_t = log π_θ(y_t) − log π_T(y_t), fed to
  the PPO-clipped surrogate with the sampler's log-probs as π_old (``sampled_surrogate="ppo"``), or the
  plain policy-gradient loss sg(ℓ_t)·log π_θ(y_t) (``"pg"``, ``pg_reverse_kl``). Both have expected
  gradient ∇KL(π_θ ‖ π_T) on-policy.
- ``"full"``: the exact full-vocabulary reverse KL Σ_v p_S(v) log(p_S(v)/p_T(v)) from both models' logits.
- ``"topk"``: reverse KL on the teacher's top-k ids plus one tail bucket (``topk_tail_reverse_kl``).

All three are token means over the step's response tokens (global normaliser across micro-batches). The
logged ``mean_kl`` is the mean of the non-negative k3 estimate e^{−ℓ} − 1 + ℓ over sampled tokens.

Departures from Thinking Machines' recipe: no KL discounting by default (``kl_discount``), one update per
rollout batch, the env reward is logged but not used.

Resume is exact: the task cursor is checkpointed and sampling seeds depend only on (seed, step). Held-out
success is evaluated before training, every ``eval.every`` steps and at the end (``eval.jsonl``).

Run from the command line (``configs/algo/opd.yaml``)::

    agentdistill train algo=opd env=sokoban model=tiny-random teacher_model.name=tiny-random steps=2

or from Python::

    from agentdistill.algos.opd import OPDConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(OPDConfig(model=ModelConfig("smollm2-135m-instruct"),
                             teacher_model=ModelConfig("smollm2-360m-instruct"),
                             env=EnvConfig("agentdistill/Sokoban-v0"), steps=100, out_dir="runs/opd-sokoban"))

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from agentdistill.algos.common import (
    RunResult,
    backward_microbatches,
    clip_gradients,
    end_step,
    finish_run,
    microbatches_by_tokens,
    rollout_metrics,
    rollout_round,
    sampler_logprobs_BT,
    sampling_policy,
    start_run,
    start_step,
    task_seeds,
)
from agentdistill.config import ModelConfig, TrainConfig
from agentdistill.losses import (
    k3,
    pg_reverse_kl,
    ppo_clip,
    ppo_clipped,
    reduce_loss,
    reverse_kl,
    reverse_kl_advantage,
    topk_tail_reverse_kl,
)
from agentdistill.models import load_model
from agentdistill.scoring import score
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)

OPD_LOSSES = ("sampled", "full", "topk")
SAMPLED_SURROGATES = ("ppo", "pg")


@dataclass
class OPDConfig(TrainConfig):
    """OPD's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig."""

    teacher_model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m-instruct"))
    """Teacher weights (same tokenizer as the student); a null device/dtype follows the student's."""
    teacher_weight_noise: float = 0.0
    """Std of seeded Gaussian noise added to every teacher weight after loading (tests, ablations)."""
    loss: str = "sampled"
    """Reverse-KL estimator: sampled (sampled-token advantage), full (whole vocabulary), topk (top-k + tail)."""
    sampled_surrogate: str = "ppo"
    """For loss=sampled: ppo (PPO-clip with A = −sg(ℓ)) or pg (the plain ``pg_reverse_kl``)."""
    kl_discount: float = 0.0
    """γ of ``reverse_kl_advantage`` (sampled + ppo): 0 gives A_t = −ℓ_t."""
    clip_low: float = 0.2
    """ε_low of the PPO surrogate."""
    clip_high: float = 0.2
    """ε_high of the PPO surrogate."""
    top_k: int = 16
    """Teacher top-k support size of loss=topk."""
    group_size: int = 1
    """Samples per task (OPD's per-token signal needs no group baseline)."""
    out_dir: str = "runs/opd"
    """Run directory."""


def train(cfg: OPDConfig) -> RunResult:
    """Run (or resume) OPD as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    if cfg.loss not in OPD_LOSSES:
        raise ValueError(f"unknown OPD loss {cfg.loss!r}; choose one of {', '.join(OPD_LOSSES)}")
    if cfg.sampled_surrogate not in SAMPLED_SURROGATES:
        raise ValueError(f"sampled_surrogate must be 'ppo' or 'pg', got {cfg.sampled_surrogate!r}")
    if not cfg.temperature > 0:
        raise ValueError(f"OPD samples and scores at temperature > 0, got {cfg.temperature}")
    if cfg.loss == "topk" and cfg.top_k < 1:
        raise ValueError(f"loss=topk needs top_k >= 1, got {cfg.top_k}")
    if cfg.teacher_weight_noise < 0:
        raise ValueError(f"teacher_weight_noise must be >= 0, got {cfg.teacher_weight_noise}")
    # ---- set-up: seed, student, optimiser, resume, evaluation before training; then the frozen teacher
    run = start_run(cfg, state={"cursor": 0})
    model = run.model
    teacher = make_teacher("separate", model, teacher_model=load_teacher(cfg))
    policy = sampling_policy(run, "student")
    logger.info("OPD (%s) on %s from teacher %s, %d steps, out_dir=%s", cfg.loss, cfg.env.id,
                cfg.teacher_model.name, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for _ in tqdm(range(run.step, cfg.steps), initial=run.step, total=cfg.steps, desc="OPD",
                  disable=not cfg.progress):
        start_step(run)
        # ---- rollout: student view, sampling seeded by the step (a resumed run samples the same)
        cursor = run.state["cursor"]
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        result = rollout_round(run, policy, seeds)
        samples = [t for ep in result.episodes for t in ep.turns if t.response_ids]

        # ---- loss and update: teacher scores the student's prompts under no_grad, token mean over the step
        stats = _Stats()
        loss, grad_norm = 0.0, 0.0
        micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)
        if samples:
            run.optimizer.zero_grad(set_to_none=True)
            loss = backward_microbatches(
                micro, lambda mb, n: opd_loss(model, teacher, mb, cfg, normalizer=n, stats=stats),
                mode="token_mean")
            grad_norm = float(clip_gradients(model, cfg.max_grad_norm))
            run.optimizer.step()
            teacher.refresh(model)
        run.step += 1
        run.state = {"cursor": cursor + cfg.tasks_per_step}

        # ---- log, evaluate, checkpoint
        metrics = end_step(run, {
            **rollout_metrics(run, result),
            "mean_kl": stats.k3 / stats.tokens if stats.tokens else 0.0,
            "clip_fraction": stats.clipped / stats.tokens if stats.tokens else 0.0,
            "loss": loss,
            "grad_norm": grad_norm,
            "trained_turns": len(samples),
            "response_tokens": sum(len(s.response_ids) for s in samples),
            "microbatches": len(micro),
        }, run.state)
    return finish_run(run, metrics)


def load_teacher(cfg: OPDConfig) -> torch.nn.Module:
    """The teacher LM in eval mode without grad, plus ``teacher_weight_noise`` (seeded by ``cfg.seed``).

    A null ``teacher_model.device``/``dtype`` takes the student's, so both score on the same device.
    """
    spec = cfg.teacher_model
    teacher_model, _ = load_model(spec.name, device=spec.device or cfg.model.device,
                                  dtype=spec.dtype or cfg.model.dtype)
    teacher_model.eval()
    generator = torch.Generator().manual_seed(cfg.seed + 12345)
    with torch.no_grad():
        for p in teacher_model.parameters():
            p.requires_grad_(False)
            if cfg.teacher_weight_noise > 0 and p.is_floating_point():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float32) * cfg.teacher_weight_noise
                p.add_(noise.to(device=p.device, dtype=p.dtype))
    return teacher_model


@dataclass
class _Stats:
    """Token-level sums accumulated over the micro-batches of one step (for logging)."""

    tokens: int = 0
    k3: float = 0.0
    clipped: int = 0


def opd_loss(
    model: torch.nn.Module,
    teacher: Teacher,
    samples: Sequence[TurnSample],
    cfg: OPDConfig,
    *,
    normalizer: int,
    stats: _Stats | None = None,
) -> torch.Tensor:
    """Σ per-token reverse-KL loss / ``normalizer`` over one micro-batch; both models see the student prompt.

    The teacher's side is ``score(teacher_model, student_prompt_ids, response_ids)`` under no_grad: OPD has
    no privileged information, so the teacher prompt is the student prompt.
    """
    prompts = [s.student_prompt_ids for s in samples]
    responses = [s.response_ids for s in samples]
    full = cfg.loss in ("full", "topk")
    student = score(model, prompts, responses, temperature=cfg.temperature, full_vocab=full)
    with teacher.model_for_scoring() as teacher_model:
        tea = score(teacher_model, prompts, responses, temperature=cfg.temperature,
                    full_vocab=cfg.loss == "full", top_k=cfg.top_k if cfg.loss == "topk" else None)
    tea = tea.to(student.logprobs_BT.device)
    lp_BT, mask_BT = student.logprobs_BT, student.mask_BT
    if cfg.loss == "full":
        loss_BT = reverse_kl(student.logits_BTV, tea.logits_BTV, mask_BT, temperature=cfg.temperature)
    elif cfg.loss == "topk":
        loss_BT = topk_tail_reverse_kl(student.logits_BTV, tea.topk_ids_BTK, tea.topk_logprobs_BTK, mask_BT,
                                       temperature=cfg.temperature)
    elif cfg.sampled_surrogate == "pg":
        loss_BT = pg_reverse_kl(lp_BT, tea.logprobs_BT, mask_BT)
    else:
        adv_BT = reverse_kl_advantage(lp_BT.detach(), tea.logprobs_BT, mask_BT, discount=cfg.kl_discount)
        old_BT = sampler_logprobs_BT(samples, lp_BT)
        clip = {"clip_low": cfg.clip_low, "clip_high": cfg.clip_high}
        loss_BT = ppo_clip(lp_BT, old_BT, adv_BT, mask_BT, **clip)
        if stats is not None:
            with torch.no_grad():
                stats.clipped += int(ppo_clipped(lp_BT, old_BT, adv_BT, mask_BT, **clip).sum())
    if stats is not None:
        with torch.no_grad():
            stats.tokens += int(mask_BT.sum())
            stats.k3 += float(k3(lp_BT.detach(), tea.logprobs_BT, mask_BT).sum())
    return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=normalizer)
