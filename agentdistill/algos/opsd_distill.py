"""OPSD, distillation form: per-token divergence to a frozen PI view, no reward (Zhao et al., arXiv 2601.18734).

Rollouts come from the **student view** (no PI) of the model being trained; the same response ids are scored
under the **teacher view** (the same conversation plus the PI block of ``env.teacher_privileged``) by the
teacher's weights (default ``teacher="frozen"``, the initial policy; ``adapter_disabled`` does the same for a
LoRA run without a copy) under no_grad, and the student descends::

    L = token_mean_n Σ_v min(ℓ_{n,v}, τ),   ℓ = pointwise terms of D(p_T(·|x, I, ŷ<n) ‖ p_S(·|x, ŷ<n))

with D a registered divergence (``divergence``): ``forward_kl`` (default, OPSD v3), ``reverse_kl``,
``generalized_jsd`` (β = ``jsd_beta``, TRL convention), their ``*_chunked`` forms (the same values and
gradients from hidden states, O(chunk·V) memory instead of B·T·V logits), or a top-k form
(``topk_tail_reverse_kl``, ...). Both logits are divided by ``temperature`` (the sampling temperature);
``clip_tau`` caps each vocabulary entry (None = no cap). ``skip_dead_ends`` leaves out the turns whose PI says
the task is lost from there (nothing privileged to teach). One optimiser step per sampling round. The PI block
can sit in the user message with OPSD's transition sentence: ``pi_placement=user`` and ``pi_template``.

Departures: multi-turn agent episodes instead of single-turn math (every assistant turn is a sample, scored
with its whole history as prompt); ``group_size`` samples per task (OPSD uses 1).

The reward form (the π-Distill paper's OPSD, GRPO on R − β·KL) is ``algos/opsd_reward.py``.

Run::

    agentdistill train algo=opsd_distill env=sokoban steps=20 divergence=forward_kl_chunked
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from agentdistill.algos.batch import microbatches_by_tokens, score_temperature, trainable_turns
from agentdistill.algos.common import (
    RunResult,
    begin_step,
    checkpoint_due,
    eval_due,
    evaluate,
    finish_run,
    load_initial_model,
    log_step,
    rollout_round,
    round_metrics,
    start_run,
    task_seeds,
    update,
    usable_episodes,
)
from agentdistill.algos.distill import (
    SELF_TEACHERS,
    DivergenceSpec,
    check_divergence,
    copy_teacher,
    dead_end,
    distill_token_loss,
    resumed_teacher,
)
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import TrainConfig
from agentdistill.losses import reduce_loss
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)

DISTILL_DIVERGENCE_FAMILIES = ("full", "chunked", "topk")


@dataclass
class OPSDDistillConfig(TrainConfig):
    """OPSD's distillation form; the shared knobs come from TrainConfig. PI kinds: ``env.teacher_privileged``."""

    divergence: str = "forward_kl"
    """Per-token D(p_T ‖ p_S): forward_kl, reverse_kl, generalized_jsd, their *_chunked forms, or a top-k form."""
    jsd_beta: float = 0.5
    """β of generalized_jsd (0.5: the symmetric JSD)."""
    clip_tau: float | None = None
    """Per-vocab-entry cap τ of the divergence terms (OPSD v3's later repo: 0.05); null = none."""
    top_k: int = 16
    """Teacher support size of the top-k divergences."""
    teacher: str = "frozen"
    """Whose weights score the PI view: frozen (initial weights), adapter_disabled, ema, synced or current."""
    ema_decay: float = 0.999
    """Decay of an ema teacher (OPSD's 0.999; SDPO uses 0.95)."""
    temperature: float = 1.1
    """Sampling temperature (OPSD v3's 1.1); both logits are divided by it."""
    skip_dead_ends: bool = False
    """Leave out of the loss the turns whose PI says the task can no longer be completed (``distill.dead_end``):
    there the teacher view has nothing privileged to teach. Their count is logged (``dead_end_turns``) either
    way."""
    lr: float = 1e-5
    """Peak AdamW learning rate."""
    out_dir: str = "runs/opsd_distill"
    """Run directory."""


def train(cfg: OPSDDistillConfig) -> RunResult:
    """Run (or resume) OPSD's distillation form as ``cfg`` says; returns the final step, last metrics, run dir."""
    privileged = list(cfg.env.teacher_privileged)
    _check(cfg)
    spec = DivergenceSpec(cfg.divergence, temperature=score_temperature(cfg.temperature), clip_tau=cfg.clip_tau,
                          jsd_beta=cfg.jsd_beta, top_k=cfg.top_k)
    # ---- set-up: a copy-teacher from the initial weights, then start_run resumes the student
    initial, tokenizer = load_initial_model(cfg)
    teacher = copy_teacher(cfg.teacher, initial, ema_decay=cfg.ema_decay)
    run = start_run(cfg, state={"cursor": 0}, model=initial, tokenizer=tokenizer)
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    teacher, modules = resumed_teacher(cfg.teacher, teacher, model, run.resumed_from)
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    policy = sampling_policy(run, "opsd-student")
    logger.info("OPSD distill form (%s, teacher %s) on %s, %d steps, out_dir=%s", cfg.divergence, cfg.teacher,
                cfg.env.id, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="OPSD distill",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        # ---- sample from the student view (no PI); both views' ids are kept
        result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step, privileged=privileged)
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)
        sampled = round_metrics(run, result)  # before the update: gap vs the sampling weights
        turns = [t for _, t in trainable_turns(episodes)]
        dead_turns = sum(map(dead_end, turns))
        batch = [t for t in turns if not dead_end(t)] if cfg.skip_dead_ends else turns

        # ---- per-token divergence to the PI view over the student's own samples (no reward); one step
        stats: dict[str, float] = {}
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)

        def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
            loss_BT, mask_BT = distill_token_loss(model, teacher, mb, spec, teacher_view="teacher", stats=stats)
            return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=n)

        loss, grad_norm = update(run, micro, loss_fn)
        teacher.refresh(model)
        cursor += cfg.tasks_per_step

        # ---- sync the sampler, log, evaluate, checkpoint (with an EMA teacher's weights)
        tokens = stats.get("tokens", 0.0)
        sync_sampler(policy, model)
        metrics = log_step(run, step, {
            **sampled,
            "mean_kl": stats.get("k3", 0.0) / tokens if tokens else 0.0,
            "loss": loss,
            "grad_norm": grad_norm,
            "trained_turns": len(batch),
            "dead_end_turns": dead_turns,
            "response_tokens": sum(len(t.response_ids) for t in batch),
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor}, modules)
    return finish_run(run, step, metrics)


def _check(cfg: OPSDDistillConfig) -> None:
    if not cfg.env.teacher_privileged:
        raise ValueError("OPSD needs env.teacher_privileged=[...] PI kinds: the teacher view scores the student's "
                         "samples with them")
    check_divergence(cfg.divergence, allowed=DISTILL_DIVERGENCE_FAMILIES)
    if cfg.teacher not in SELF_TEACHERS:
        raise ValueError(f"teacher must be one of {list(SELF_TEACHERS)}, got {cfg.teacher!r}")
    if cfg.lora.rank > 0 and cfg.teacher in ("frozen", "ema", "synced"):
        raise ValueError(f"teacher={cfg.teacher!r} keeps a copy of the full weights, which LoRA runs do not train: "
                         "use teacher=adapter_disabled (the frozen base, no copy) or teacher=current")
    if not 0.0 <= cfg.jsd_beta <= 1.0:
        raise ValueError(f"jsd_beta must be in [0, 1], got {cfg.jsd_beta}")
