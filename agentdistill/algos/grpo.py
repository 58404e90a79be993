"""GRPO on the env reward: group-relative advantages and a PPO-clipped token-mean surrogate.

Each step rolls out ``tasks_per_step`` tasks × ``group_size`` samples from the student (``HFPolicy`` at
``temperature``, student view). An episode's reward is the sum of its env rewards, except that an episode
cut by the turn budget (truncated, not won) gets ``truncation_reward`` (0 by default, as π-Distill and
verl-agent do; ``algos/rewards.py`` is the one definition every RL loop uses). Advantages are centred per task
group (optionally divided by the group std), and every response token of every turn of an episode gets its
episode's advantage Â_i:

    L(θ) = −(1/N) Σ_i Σ_turns Σ_t min(r_t Â_i, clip(r_t, 1−ε_low, 1+ε_high) Â_i),
    r_t = π_θ(y_t | x_student, y_<t) / π_old(y_t | ·),   N = response tokens of the step,

with π_old the sampler's own log-probs (stored in each ``TurnSample``, same temperature). Groups whose
rewards are all equal carry no signal and are dropped before the update (``drop_zero_adv_groups``); their
fraction is logged. Episodes that hit an env error leave the update and the group statistics (counted in
``error_rate``; the run stops past ``max_error_rate``).

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

import torch
from tqdm.auto import tqdm

from agentdistill.algos.batch import microbatches_by_tokens, sampler_logprobs_BT
from agentdistill.algos.common import (
    RunResult,
    begin_step,
    checkpoint_due,
    eval_due,
    evaluate,
    finish_run,
    log_step,
    rollout_round,
    round_metrics,
    start_run,
    task_seeds,
    update,
    usable_episodes,
)
from agentdistill.algos.rewards import episode_rewards, group_advantages, zero_signal_groups
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import TrainConfig
from agentdistill.losses import ppo_clip, ppo_clipped, reduce_loss
from agentdistill.scoring import score
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)


@dataclass
class GRPOConfig(TrainConfig):
    """GRPO's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig."""

    scale_by_std: bool = False
    """Divide the group-centred advantages by the group's reward std (the original GRPO: true)."""
    drop_zero_adv_groups: bool = True
    """Drop groups whose rewards are all equal (zero advantages) before the update."""
    clip_low: float = 0.2
    """ε_low: the ratio is clipped below at 1 − ε_low."""
    clip_high: float = 0.2
    """ε_high: the ratio is clipped above at 1 + ε_high (DAPO/Skill-SD raise it)."""
    ppo_epochs: int = 1
    """Optimiser steps taken on each step's rollouts."""
    log_entropy: bool = True
    """Log the student's mean token entropy (one softmax over the vocabulary per scored token)."""
    lr: float = 1e-6
    """Peak AdamW learning rate."""
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
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    policy = sampling_policy(run, "student")
    logger.info("GRPO on %s: %d tasks × %d samples per step, %d steps, out_dir=%s", cfg.env.id,
                cfg.tasks_per_step, cfg.group_size, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="GRPO",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        # ---- rollout: B tasks × G samples from the student (student view); sampling seeded by the step
        result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step)
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)
        sampled = round_metrics(run, result)  # before the update: gap vs the sampling weights

        # ---- advantages: episode reward → group-centred advantage, shared by every turn of the episode
        rewards_E = episode_rewards(episodes, cfg.truncation_reward)
        adv_E = group_advantages(episodes, rewards_E, scale_by_std=cfg.scale_by_std)
        zero = zero_signal_groups(episodes, rewards_E)
        kept = [e for e, ep in enumerate(episodes) if not (cfg.drop_zero_adv_groups and ep.group_id in zero)]
        samples = [t for e in kept for t in episodes[e].turns if t.response_ids]
        adv_of = {id(t): float(adv_E[e]) for e in kept for t in episodes[e].turns}

        # ---- loss and update: PPO-clip token mean over the step, per micro-batch; ppo_epochs passes
        stats = _Stats()
        micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)

        def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
            return grpo_loss(model, mb, [adv_of[id(t)] for t in mb], normalizer=n, temperature=cfg.temperature,
                             clip_low=cfg.clip_low, clip_high=cfg.clip_high, entropy=cfg.log_entropy, stats=stats)

        passes = [update(run, micro, loss_fn) for _ in range(cfg.ppo_epochs)] if micro else [(0.0, 0.0)]
        cursor += cfg.tasks_per_step

        # ---- sync the sampler, log, evaluate, checkpoint
        sync_sampler(policy, model)
        metrics = log_step(run, step, {
            **sampled,
            "mean_reward": float(rewards_E.mean()) if len(episodes) else 0.0,
            "zero_adv_fraction": len(zero) / max(len({ep.group_id for ep in episodes}), 1),
            "clip_fraction": stats.clipped / stats.tokens if stats.tokens else 0.0,
            **({"entropy": stats.entropy / max(stats.tokens, 1)} if cfg.log_entropy else {}),
            "loss": sum(loss for loss, _ in passes) / len(passes),
            "grad_norm": sum(norm for _, norm in passes) / len(passes),
            "trained_turns": len(samples),
            "response_tokens": sum(len(s.response_ids) for s in samples),
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor})
    return finish_run(run, step, metrics)


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
