"""GRPO on the env reward: group-relative advantages and a PPO-clipped token-mean surrogate.

Each step rolls out ``tasks_per_step`` tasks × ``group_size`` samples from the student (``HFPolicy`` at
``temperature``, student view). An episode's reward is the sum of its env rewards, except that an episode
cut by the turn budget (truncated, not won) gets ``truncation_reward`` (0 by default, as π-Distill and
verl-agent do). Advantages are centred per task group (optionally divided by the group std), and every
response token of every turn of an episode gets its episode's advantage Â_i:

    L(θ) = −(1/N) Σ_i Σ_turns Σ_t min(r_t Â_i, clip(r_t, 1−ε_low, 1+ε_high) Â_i),
    r_t = π_θ(y_t | x_student, y_<t) / π_old(y_t | ·),   N = response tokens of the step,

with π_old the sampler's own log-probs (stored in each ``TurnSample``, same temperature). Groups whose
advantages are all zero carry no signal and are dropped before the update (``drop_zero_advantage``); their
fraction is logged.

Departures from the papers: no KL penalty to a reference model, no entropy bonus, a constant learning rate,
one AdamW group; ``ppo_epochs`` re-uses the whole step's rollouts for that many optimiser steps (no
mini-batch shuffling). Each turn is one sample (the env and earlier turns live in its prompt), as in
π-Distill.

Run from Python::

    from agentdistill.algos.grpo import GRPOConfig, train
    result = train(GRPOConfig(model="smollm2-135m-instruct", env_id="agentdistill/Sokoban-v0",
                              tasks_per_step=8, group_size=8, steps=100, out_dir="runs/grpo-sokoban"))

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from agentdistill.losses import grpo_advantages, ppo_clip, reduce_loss
from agentdistill.losses.pg import ppo_clipped
from agentdistill.models import load_model
from agentdistill.policies.hf import HFPolicy
from agentdistill.rollout import RolloutResult, rollout
from agentdistill.runs import write_run_info
from agentdistill.scoring import score
from agentdistill.types import Episode, TurnSample
from agentdistill.views import ViewSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRPOConfig:
    """Everything one GRPO run needs (plain values; the hydra schema wraps this later)."""

    model: str = "tiny-random"
    """Student model spec for ``agentdistill.models.load_model``."""
    env_id: str = "agentdistill/Sokoban-v0"
    """Env the student is trained on."""
    task_seed_start: int = 0
    """First env reset seed of the task pool."""
    num_tasks: int = 1024
    """Tasks in the pool (env seeds ``task_seed_start .. + num_tasks − 1``), visited in seeded shuffles."""
    tasks_per_step: int = 8
    """Tasks (groups) rolled out per step (B)."""
    group_size: int = 8
    """Samples per task (G)."""
    max_turns: int | None = None
    """Turn budget of each episode; None uses the env's default."""
    history_window: int | None = None
    """Past exchanges kept in each student prompt; None keeps the whole conversation."""
    temperature: float = 1.0
    """Sampling temperature, also the one the ratios are computed at (> 0)."""
    max_new_tokens: int = 128
    """Token budget of one reply."""
    truncation_reward: float | None = 0.0
    """Reward of an episode cut by the turn budget without a win; None keeps its summed env reward."""
    scale_by_std: bool = False
    """Divide the group-centred advantages by the group's reward std."""
    drop_zero_advantage: bool = True
    """Drop groups whose advantages are all zero (equal rewards) before the update."""
    clip_low: float = 0.2
    """ε_low: the ratio is clipped below at 1 − ε_low."""
    clip_high: float = 0.2
    """ε_high: the ratio is clipped above at 1 + ε_high (DAPO/Skill-SD raise it)."""
    ppo_epochs: int = 1
    """Optimiser steps taken on each step's rollouts."""
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
    log_entropy: bool = True
    """Log the student's mean token entropy (one softmax over the vocabulary per scored token)."""
    seed: int = 0
    """Seeds python, numpy, torch, the task order and the sampling."""
    out_dir: str = "runs/grpo"
    """Run directory: run_info.json, metrics.jsonl, checkpoints, plots."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    device: str | None = None
    """"cuda", "cpu", ...; None picks CUDA when available."""
    dtype: str | None = None
    """Model dtype; None: float32 on CPU, bfloat16 on CUDA."""


def train(cfg: GRPOConfig) -> RunResult:
    """Run (or resume) GRPO as ``cfg`` says; returns the final step, the last metrics and the run directory."""
    # ---- set-up: checks, seed, model, sampler, optimiser
    if not cfg.temperature > 0:
        raise ValueError(f"GRPO samples and computes ratios at temperature > 0, got {cfg.temperature}")
    if cfg.ppo_epochs < 1:
        raise ValueError(f"ppo_epochs must be >= 1, got {cfg.ppo_epochs}")
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    model.train()
    policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                      batch_size=cfg.rollout_batch, name="student")
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    logger.info("GRPO on %s: %d tasks × %d samples per step, %d steps, out_dir=%s", cfg.env_id,
                cfg.tasks_per_step, cfg.group_size, cfg.steps, run_dir)

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
        # ---- rollout: B tasks × G samples from the student (student view); sampling seeded by the step
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.task_seed_start)
        cursor += len(seeds)
        result = student_rollout(cfg, policy, tokenizer, seeds, step)

        # ---- advantages: episode reward → group-centred advantage, shared by every turn of the episode
        rewards = [episode_reward(ep, cfg.truncation_reward) for ep in result.episodes]
        advantages = episode_advantages(result.episodes, rewards, scale_by_std=cfg.scale_by_std)
        kept, zero_fraction = select_groups(result.episodes, advantages, drop_zero=cfg.drop_zero_advantage)
        samples = [t for ep in kept for t in ep.turns if t.response_ids]
        sample_adv = [advantages[ep.episode_id] for ep in kept for t in ep.turns if t.response_ids]

        # ---- loss and update: PPO-clip token mean over the step, accumulated per micro-batch
        stats = _Stats()
        losses, grad_norms = [], []
        for _ in range(cfg.ppo_epochs if samples else 0):
            micro = _microbatches(samples, sample_adv, cfg.max_tokens_per_microbatch)
            optimizer.zero_grad(set_to_none=True)
            loss = backward_microbatches(
                [mb for mb, _ in micro],
                _loss_fn(model, micro, cfg, stats),
                mode="token_mean")
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf"))
            optimizer.step()
            losses.append(loss)
            grad_norms.append(float(grad_norm))
        step += 1

        # ---- log, then checkpoint (a crash between the two is undone by truncate_metrics on resume)
        elapsed = time.perf_counter() - start
        m = result.metrics
        tokens = sum(len(t.student_prompt_ids) + len(t.response_ids) for ep in result.episodes for t in ep.turns)
        metrics = {
            "step": step,
            "loss": sum(losses) / len(losses) if losses else 0.0,
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "success_rate": m.success_rate,
            "mean_return": m.mean_return,
            "mean_reward": sum(rewards) / max(len(rewards), 1),
            "truncation_rate": m.truncation_rate,
            "invalid_action_rate": m.invalid_action_rate,
            "mean_turns": m.mean_turns,
            "zero_adv_fraction": zero_fraction,
            "clip_fraction": stats.clipped / stats.tokens if stats.tokens else 0.0,
            "trained_turns": len(samples),
            "response_tokens": sum(len(s.response_ids) for s in samples),
            "lr": optimizer.param_groups[0]["lr"],
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            "rollout_tokens_per_s": m.tokens_per_s,
        }
        if cfg.log_entropy:
            metrics["entropy"] = stats.entropy / stats.tokens if stats.tokens else 0.0
        append_metrics(run_dir, metrics)
        logger.info("step %d loss %.4f success %.2f zero-adv %.2f", step, metrics["loss"], m.success_rate,
                    zero_fraction)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run_dir, step, model, optimizer, {"cursor": cursor})

    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots" / "learning_curves.png",
                 ["loss", "success_rate", "mean_return", "zero_adv_fraction"])
    return RunResult(final_step=step, metrics=metrics, run_dir=run_dir)


def student_rollout(cfg, policy: HFPolicy, tokenizer, seeds: Sequence[int], step: int) -> RolloutResult:
    """``len(seeds) × group_size`` student-view episodes; the sampling seed mixes ``cfg.seed`` and ``step``,
    so a task met again later is sampled afresh, and a resumed run samples what a straight run would."""
    return rollout(cfg.env_id, policy, seeds=seeds, group_size=cfg.group_size, tokenizer=tokenizer,
                   view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.max_turns,
                   run_seed=rollout_seed(cfg.seed, step), progress=False)


def episode_reward(episode: Episode, truncation_reward: float | None) -> float:
    """The episode's summed env reward, or ``truncation_reward`` when the turn budget cut it without a win."""
    if truncation_reward is not None and episode.truncated and not episode.won:
        return float(truncation_reward)
    return float(episode.total_reward)


def episode_advantages(
    episodes: Sequence[Episode], rewards: Sequence[float], *, scale_by_std: bool = False
) -> dict[str, float]:
    """``episode_id → Â``: rewards centred within each task group (``group_id``), optionally std-scaled."""
    if not episodes:
        return {}
    group_index = {g: i for i, g in enumerate(dict.fromkeys(ep.group_id for ep in episodes))}
    groups_B = torch.tensor([group_index[ep.group_id] for ep in episodes])
    adv_B = grpo_advantages(torch.tensor(rewards, dtype=torch.float64), groups_B, scale_by_std=scale_by_std)
    return {ep.episode_id: float(a) for ep, a in zip(episodes, adv_B)}


def select_groups(
    episodes: Sequence[Episode], advantages: dict[str, float], *, drop_zero: bool
) -> tuple[list[Episode], float]:
    """(episodes kept for the update, fraction of groups whose advantages are all zero).

    With ``drop_zero`` the all-zero groups are left out (they carry no gradient, only normaliser weight).
    """
    groups: dict[str, list[Episode]] = {}
    for ep in episodes:
        groups.setdefault(ep.group_id, []).append(ep)
    zero = {g for g, eps in groups.items() if all(advantages[ep.episode_id] == 0.0 for ep in eps)}
    kept = [ep for ep in episodes if not (drop_zero and ep.group_id in zero)]
    return kept, len(zero) / len(groups) if groups else 0.0


@dataclass
class _Stats:
    """Token-level sums accumulated over the micro-batches of one step (for logging)."""

    tokens: int = 0
    clipped: int = 0
    entropy: float = 0.0


def _microbatches(samples: Sequence[TurnSample], advantages: Sequence[float], max_tokens: int | None):
    """Token-budgeted micro-batches of samples, each paired with its per-sample advantages."""
    index = {id(s): a for s, a in zip(samples, advantages)}
    return [(mb, [index[id(s)] for s in mb]) for mb in microbatches_by_tokens(samples, max_tokens)]


def _loss_fn(model: torch.nn.Module, micro, cfg: GRPOConfig, stats: _Stats):
    """The ``loss_fn(microbatch, N)`` for ``backward_microbatches``, looking each micro-batch's advantages up."""
    adv_of = {id(mb): adv for mb, adv in micro}

    def loss_fn(mb: Sequence[TurnSample], normalizer: int) -> torch.Tensor:
        return grpo_loss(model, mb, adv_of[id(mb)], normalizer=normalizer, temperature=cfg.temperature,
                         clip_low=cfg.clip_low, clip_high=cfg.clip_high, entropy=cfg.log_entropy, stats=stats)

    return loss_fn


def grpo_loss(
    model: torch.nn.Module,
    samples: Sequence[TurnSample],
    advantages: Sequence[float],
    *,
    normalizer: int,
    temperature: float,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    entropy: bool = False,
    stats: _Stats | None = None,
) -> torch.Tensor:
    """Σ PPO-clip(lp_θ, lp_old, Â) / ``normalizer`` over one micro-batch (student view).

    ``lp_old`` is each sample's ``sampler_logprobs`` (the current log-probs, detached, where a sample has
    none); ``advantages[i]`` is broadcast over every response token of ``samples[i]``.
    """
    scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples],
                   temperature=temperature, entropy=entropy)
    lp_BT, mask_BT = scored.logprobs_BT, scored.mask_BT
    old_BT = sampler_logprobs_BT(samples, lp_BT)
    adv_BT = torch.tensor(advantages, dtype=lp_BT.dtype, device=lp_BT.device)[:, None].expand_as(lp_BT)
    loss_BT = ppo_clip(lp_BT, old_BT, adv_BT, mask_BT, clip_low=clip_low, clip_high=clip_high)
    if stats is not None:
        with torch.no_grad():
            stats.tokens += int(mask_BT.sum())
            stats.clipped += int(ppo_clipped(lp_BT, old_BT, adv_BT, mask_BT, clip_low=clip_low,
                                             clip_high=clip_high).sum())
            if scored.entropy_BT is not None:
                stats.entropy += float(scored.entropy_BT.sum())
    return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=normalizer)
