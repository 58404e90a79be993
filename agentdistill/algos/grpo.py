"""GRPO on the env reward: group-relative advantages and a PPO-clipped token-mean surrogate.

Each step rolls out ``tasks_per_step`` tasks × ``group_size`` samples from the student (``HFPolicy`` at
``temperature``, student view). An episode's reward is the sum of its env rewards, except that an episode
cut by the turn budget (truncated, not won) gets ``truncation_reward`` (0 by default, as π-Distill and
verl-agent do). Advantages are centred per task group (optionally divided by the group std), and every
response token of every turn of an episode gets its episode's advantage Â_i:

    L(θ) = −(1/N) Σ_i Σ_turns Σ_t min(r_t Â_i, clip(r_t, 1−ε_low, 1+ε_high) Â_i),
    r_t = π_θ(y_t | x_student, y_<t) / π_old(y_t | ·),   N = response tokens of the step,

with π_old the sampler's own log-probs (stored in each ``TurnSample``, same temperature). Groups whose
advantages are all zero carry no signal and are dropped before the update (``drop_zero_adv_groups``); their
fraction is logged.

Departures from the papers: no KL penalty to a reference model, no entropy bonus, one AdamW group;
``ppo_epochs`` re-uses the whole step's rollouts for that many optimiser steps (no mini-batch shuffling).
Each turn is one sample (the env and earlier turns live in its prompt), as in π-Distill.

Resume is exact: the task cursor is checkpointed and sampling seeds depend only on (seed, step). Held-out
success is evaluated before training, every ``eval.every`` steps and at the end (``eval.jsonl``).

Run from the command line (``configs/algo/grpo.yaml``)::

    agentdistill train algo=grpo env=sokoban model=tiny-random steps=2

or from Python::

    from agentdistill.algos.grpo import GRPOConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(GRPOConfig(model=ModelConfig("smollm2-135m-instruct"),
                              env=EnvConfig("agentdistill/Sokoban-v0"), tasks_per_step=8, group_size=8,
                              steps=100, out_dir="runs/grpo-sokoban"))

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

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
from agentdistill.config import TrainConfig
from agentdistill.losses import grpo_advantages, ppo_clip, ppo_clipped, reduce_loss
from agentdistill.scoring import score
from agentdistill.types import Episode, TurnSample

logger = logging.getLogger(__name__)


@dataclass
class GRPOConfig(TrainConfig):
    """GRPO's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig."""

    truncation_reward: Optional[float] = 0.0
    """Reward of an episode cut by the turn budget without a win; null keeps its summed env reward."""
    scale_by_std: bool = False
    """Divide the group-centred advantages by the group's reward std."""
    drop_zero_adv_groups: bool = True
    """Drop groups whose advantages are all zero (equal rewards) before the update."""
    clip_low: float = 0.2
    """ε_low: the ratio is clipped below at 1 − ε_low."""
    clip_high: float = 0.2
    """ε_high: the ratio is clipped above at 1 + ε_high (DAPO/Skill-SD raise it)."""
    ppo_epochs: int = 1
    """Optimiser steps taken on each step's rollouts."""
    log_entropy: bool = True
    """Log the student's mean token entropy (one softmax over the vocabulary per scored token)."""
    out_dir: str = "runs/grpo"
    """Run directory."""


def train(cfg: GRPOConfig) -> RunResult:
    """Run (or resume) GRPO as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    if not cfg.temperature > 0:
        raise ValueError(f"GRPO samples and computes ratios at temperature > 0, got {cfg.temperature}")
    if cfg.ppo_epochs < 1:
        raise ValueError(f"ppo_epochs must be >= 1, got {cfg.ppo_epochs}")
    # ---- set-up: seed, model, optimiser, resume, evaluation before training; the sampler is the student
    run = start_run(cfg, state={"cursor": 0})
    model = run.model
    policy = sampling_policy(run, "student")
    logger.info("GRPO on %s: %d tasks × %d samples per step, %d steps, out_dir=%s", cfg.env.id,
                cfg.tasks_per_step, cfg.group_size, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for _ in tqdm(range(run.step, cfg.steps), initial=run.step, total=cfg.steps, desc="GRPO",
                  disable=not cfg.progress):
        start_step(run)
        # ---- rollout: B tasks × G samples from the student (student view); sampling seeded by the step
        cursor = run.state["cursor"]
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        result = rollout_round(run, policy, seeds)

        # ---- advantages: episode reward → group-centred advantage, shared by every turn of the episode
        rewards = [episode_reward(ep, cfg.truncation_reward) for ep in result.episodes]
        advantages = episode_advantages(result.episodes, rewards, scale_by_std=cfg.scale_by_std)
        kept, zero_fraction = select_groups(result.episodes, advantages, drop_zero=cfg.drop_zero_adv_groups)
        samples = [t for ep in kept for t in ep.turns if t.response_ids]
        adv_of = {id(t): advantages[ep.episode_id] for ep in kept for t in ep.turns}

        # ---- loss and update: PPO-clip token mean over the step, per micro-batch; ppo_epochs passes
        stats = _Stats()
        losses, grad_norms = [], []
        micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)
        for _ in range(cfg.ppo_epochs if samples else 0):
            run.optimizer.zero_grad(set_to_none=True)
            losses.append(backward_microbatches(
                micro,
                lambda mb, n: grpo_loss(model, mb, [adv_of[id(t)] for t in mb], normalizer=n,
                                        temperature=cfg.temperature, clip_low=cfg.clip_low,
                                        clip_high=cfg.clip_high, entropy=cfg.log_entropy, stats=stats),
                mode="token_mean"))
            grad_norms.append(float(clip_gradients(model, cfg.max_grad_norm)))
            run.optimizer.step()
        run.step += 1
        run.state = {"cursor": cursor + cfg.tasks_per_step}

        # ---- log, evaluate, checkpoint
        metrics = end_step(run, {
            **rollout_metrics(run, result),
            "mean_reward": sum(rewards) / max(len(rewards), 1),
            "zero_adv_fraction": zero_fraction,
            "clip_fraction": stats.clipped / stats.tokens if stats.tokens else 0.0,
            **({"entropy": stats.entropy / max(stats.tokens, 1)} if cfg.log_entropy else {}),
            "loss": sum(losses) / len(losses) if losses else 0.0,
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "trained_turns": len(samples),
            "response_tokens": sum(len(s.response_ids) for s in samples),
            "microbatches": len(micro),
        }, run.state)
    return finish_run(run, metrics)


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
