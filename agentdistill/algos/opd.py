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
logged ``reverse_kl_k3`` is the mean of the non-negative k3 estimate e^{−ℓ} − 1 + ℓ over sampled tokens.

Departures from Thinking Machines' recipe: no KL discounting by default (``kl_discount``), one update per
rollout batch, a constant learning rate, the env reward is logged but not used.

Run from Python::

    from agentdistill.algos.opd import OPDConfig, train
    result = train(OPDConfig(model="smollm2-135m-instruct", teacher_model="smollm2-360m-instruct",
                             env_id="agentdistill/Sokoban-v0", steps=100, out_dir="runs/opd-sokoban"))

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from agentdistill.report import plot_metrics
from agentdistill.algos.common import (
    RunResult,
    append_metrics,
    backward_microbatches,
    rollout_seed,
    sampler_logprobs_BT,
    task_seeds,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    microbatches_by_tokens,
    save_checkpoint,
    seed_everything,
    truncate_metrics,
)
from agentdistill.losses import (
    k3,
    pg_reverse_kl,
    ppo_clip,
    reduce_loss,
    reverse_kl,
    reverse_kl_advantage,
    topk_tail_reverse_kl,
)
from agentdistill.models import load_model
from agentdistill.policies.hf import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.runs import write_run_info
from agentdistill.scoring import score
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import TurnSample
from agentdistill.views import ViewSpec

logger = logging.getLogger(__name__)

OPD_LOSSES = ("sampled", "full", "topk")


@dataclass(frozen=True)
class OPDConfig:
    """Everything one OPD run needs (plain values; the hydra schema wraps this later)."""

    model: str = "tiny-random"
    """Student model spec for ``agentdistill.models.load_model``."""
    teacher_model: str = "tiny-random"
    """Teacher model spec (same tokenizer as the student)."""
    teacher_weight_noise: float = 0.0
    """Std of seeded Gaussian noise added to every teacher weight after loading (tests, ablations)."""
    env_id: str = "agentdistill/Sokoban-v0"
    """Env the student acts in."""
    task_seed_start: int = 0
    """First env reset seed of the task pool."""
    num_tasks: int = 1024
    """Tasks in the pool (env seeds ``task_seed_start .. + num_tasks − 1``), visited in seeded shuffles."""
    tasks_per_step: int = 8
    """Tasks rolled out per step."""
    group_size: int = 1
    """Samples per task."""
    max_turns: int | None = None
    """Turn budget of each episode; None uses the env's default."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; None keeps the whole conversation."""
    temperature: float = 1.0
    """Sampling temperature, also the one both models are scored at (> 0)."""
    max_new_tokens: int = 128
    """Token budget of one reply."""
    loss: Literal["sampled", "full", "topk"] = "sampled"
    """Reverse-KL estimator: sampled-token advantage, exact full vocabulary, or teacher top-k + tail."""
    sampled_surrogate: Literal["ppo", "pg"] = "ppo"
    """For ``loss="sampled"``: PPO-clip with A = −sg(ℓ), or the plain ``pg_reverse_kl``."""
    kl_discount: float = 0.0
    """γ of ``reverse_kl_advantage`` (``sampled`` + ``ppo``): 0 gives A_t = −ℓ_t."""
    clip_low: float = 0.2
    """ε_low of the PPO surrogate."""
    clip_high: float = 0.2
    """ε_high of the PPO surrogate."""
    top_k: int = 16
    """Teacher top-k support size of ``loss="topk"``."""
    lr: float = 1e-6
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; None does not clip."""
    steps: int = 100
    """Total rollout-and-update steps of the run (a resumed run continues up to this)."""
    max_tokens_per_microbatch: int | None = 8192
    """Padded tokens (rows × longest row) per forward pass; None puts the whole batch in one pass."""
    rollout_batch: int = 32
    """Prompts per generation call of the sampler."""
    seed: int = 0
    """Seeds python, numpy, torch, the task order, the sampling and the teacher noise."""
    out_dir: str = "runs/opd"
    """Run directory: run_info.json, metrics.jsonl, checkpoints, plots."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    device: str | None = None
    """"cuda", "cpu", ...; None picks CUDA when available."""
    dtype: str | None = None
    """Model dtype; None: float32 on CPU, bfloat16 on CUDA."""


def train(cfg: OPDConfig) -> RunResult:
    """Run (or resume) OPD as ``cfg`` says; returns the final step, the last metrics and the run directory."""
    # ---- set-up: checks, seed, student, teacher, sampler, optimiser
    if cfg.loss not in OPD_LOSSES:
        raise ValueError(f"unknown OPD loss {cfg.loss!r}; choose one of {', '.join(OPD_LOSSES)}")
    if cfg.sampled_surrogate not in ("ppo", "pg"):
        raise ValueError(f"sampled_surrogate must be 'ppo' or 'pg', got {cfg.sampled_surrogate!r}")
    if not cfg.temperature > 0:
        raise ValueError(f"OPD samples and scores at temperature > 0, got {cfg.temperature}")
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    model.train()
    teacher = make_teacher("separate", model, teacher_model=load_teacher(cfg))
    policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                      batch_size=cfg.rollout_batch, name="student")
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    logger.info("OPD (%s) on %s from teacher %s, %d steps, out_dir=%s", cfg.loss, cfg.env_id, cfg.teacher_model,
                cfg.steps, run_dir)

    # ---- resume: the checkpoint fixes weights, optimiser, RNG and the task cursor; later metric lines go
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
        # ---- rollout: student view, sampling seeded by the step (a resumed run samples the same)
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.task_seed_start)
        cursor += len(seeds)
        result = rollout(cfg.env_id, policy, seeds=seeds, group_size=cfg.group_size, tokenizer=tokenizer,
                         view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.max_turns,
                         run_seed=rollout_seed(cfg.seed, step), progress=False)
        samples = [t for ep in result.episodes for t in ep.turns if t.response_ids]

        # ---- loss and update: teacher scores the student's prompts under no_grad, token mean over the step
        stats = _Stats()
        loss, grad_norm = 0.0, 0.0
        if samples:
            micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)
            optimizer.zero_grad(set_to_none=True)
            loss = backward_microbatches(
                micro, lambda mb, n: opd_loss(model, teacher, mb, cfg, normalizer=n, stats=stats),
                mode="token_mean")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf")))
            optimizer.step()
            teacher.refresh(model)
        step += 1

        # ---- log, then checkpoint (a crash between the two is undone by truncate_metrics on resume)
        elapsed = time.perf_counter() - start
        m = result.metrics
        tokens = sum(len(s.student_prompt_ids) + len(s.response_ids) for s in samples)
        metrics = {
            "step": step,
            "loss": loss,
            "reverse_kl_k3": stats.k3 / stats.tokens if stats.tokens else 0.0,
            "grad_norm": grad_norm,
            "success_rate": m.success_rate,
            "mean_return": m.mean_return,
            "invalid_action_rate": m.invalid_action_rate,
            "mean_turns": m.mean_turns,
            "trained_turns": len(samples),
            "response_tokens": stats.tokens,
            "lr": optimizer.param_groups[0]["lr"],
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            "rollout_tokens_per_s": m.tokens_per_s,
        }
        append_metrics(run_dir, metrics)
        logger.info("step %d loss %.4f kl %.4f success %.2f", step, loss, metrics["reverse_kl_k3"], m.success_rate)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run_dir, step, model, optimizer, {"cursor": cursor})

    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots" / "learning_curves.png",
                 ["loss", "reverse_kl_k3", "success_rate"])
    return RunResult(final_step=step, metrics=metrics, run_dir=run_dir)


def load_teacher(cfg: OPDConfig) -> torch.nn.Module:
    """The teacher LM in eval mode without grad, plus ``teacher_weight_noise`` (seeded by ``cfg.seed``)."""
    teacher_model, _ = load_model(cfg.teacher_model, device=cfg.device, dtype=cfg.dtype)
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
        loss_BT = ppo_clip(lp_BT, old_BT, adv_BT, mask_BT, clip_low=cfg.clip_low, clip_high=cfg.clip_high)
    if stats is not None:
        with torch.no_grad():
            stats.tokens += int(mask_BT.sum())
            stats.k3 += float(k3(lp_BT.detach(), tea.logprobs_BT, mask_BT).sum())
    return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=normalizer)
