"""OPSD, reward form: GRPO on R − β·KL(student ‖ teacher view with PI) (Penaloza et al., arXiv 2602.04942, Alg. 2).

Rollouts come from the **student view** (no PI) of the model being trained; the same response ids are scored
under the **teacher view** (the same conversation plus the PI block of ``env.teacher_privileged``) by the
teacher's weights under no_grad (default ``teacher="current"``, the paper's stop-gradient reference)::

    KL̂_e = Σ_turns Σ_t (log π_S(y_t) − log π_T(y_t))       k1, sampled by the student, summed per episode
    A_e  = centre_group(R_e − kl_coef·KL̂_e)                 group-centred, no std scaling
    L    = token_mean_t −min(r_t·A, clip(r_t, 1−ε, 1+ε)·A),  r_t = π_θ(y_t|s) / π_old(y_t|s)

with π_old the sampler's log-probs and R_e the shared episode reward (``algos/rewards.py``: a truncated,
unwon episode gets ``truncation_reward``). The KL is a reward penalty: the student's own samples are
reinforced where the PI view agrees with them. Groups whose *env* rewards are all equal are detected before the
KL enters the reward and logged (``zero_adv_fraction``); ``drop_zero_adv_groups`` (default, "pop
zero-advantage") leaves them out of the update, KL included.

Departures: kl_coef 0.25 (the paper uses 0.5 for OPSD; its β for π-Distill is 0.25 — set it on the command
line to reproduce); the KL is the sampled-token k1 estimate of the released code, not the Rao-Blackwellised
one (App. E.1); the code dump's extra ``distill_coef·mean(sg(lp_T) − lp_S)`` term is not ported (zero expected
gradient). ``ppo_epochs`` passes per round; passes after the first are off-policy.

The per-token variant without any reward (Zhao et al.) is ``algos/opsd_distill.py``.

Run::

    agentdistill train algo=opsd_reward env=sokoban steps=20
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from agentdistill.algos.batch import (
    microbatches_by_tokens,
    padded_BT,
    prompts_of,
    score_temperature,
    trainable_turns,
)
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
from agentdistill.algos.distill import SELF_TEACHERS, copy_teacher, resumed_teacher
from agentdistill.algos.rewards import episode_kl, episode_rewards, group_advantages, zero_signal_groups
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import TrainConfig
from agentdistill.losses import ppo_clip, ppo_clipped, reduce_loss
from agentdistill.scoring import score
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)


@dataclass
class OPSDRewardConfig(TrainConfig):
    """OPSD's reward form; the shared knobs come from TrainConfig. PI kinds: ``env.teacher_privileged``."""

    kl_coef: float = 0.25
    """β of R − β·KL̂(S‖T) (KL summed over the tokens and turns of an episode)."""
    teacher: str = "current"
    """Whose weights score the PI view: current (no grad), frozen, ema, synced or adapter_disabled."""
    ema_decay: float = 0.95
    """Decay of an ema teacher: θ̄ ← decay·θ̄ + (1−decay)·θ after every step."""
    clip_low: float = 0.2
    """PPO ratio clipped below at 1 − clip_low."""
    clip_high: float = 0.2
    """PPO ratio clipped above at 1 + clip_high."""
    drop_zero_adv_groups: bool = True
    """Drop groups whose env rewards are all equal from the update, KL penalty included; false keeps them
    (they then train on the KL penalty alone)."""
    ppo_epochs: int = 1
    """Gradient steps per sampling round, each over the whole round."""
    lr: float = 1e-5
    """Peak AdamW learning rate."""
    out_dir: str = "runs/opsd_reward"
    """Run directory."""


def reward_loss(
    model: torch.nn.Module,
    samples: Sequence[TurnSample],
    advantages: Sequence[float],
    *,
    temperature: float,
    clip_low: float,
    clip_high: float,
    normalizer: int,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """PPO-clip on the student view with the sampler's log-probs as π_old; token_mean over ``normalizer``."""
    scored = score(model, prompts_of(samples, "student"), [s.response_ids for s in samples], temperature=temperature)
    mask_BT = scored.mask_BT
    old_BT = padded_BT([s.sampler_logprobs or () for s in samples], scored.logprobs_BT)
    adv_BT = torch.tensor(list(advantages), dtype=torch.float32, device=mask_BT.device)[:, None].expand(mask_BT.shape)
    clip = {"clip_low": clip_low, "clip_high": clip_high}
    loss_BT = ppo_clip(scored.logprobs_BT, old_BT, adv_BT, mask_BT, **clip)
    if stats is not None:
        clipped = ppo_clipped(scored.logprobs_BT.detach(), old_BT, adv_BT, mask_BT, **clip)
        stats["clipped_tokens"] = stats.get("clipped_tokens", 0.0) + float(clipped.sum())
    return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=normalizer)


def train(cfg: OPSDRewardConfig) -> RunResult:
    """Run (or resume) OPSD's reward form as ``cfg`` says; returns the final step, last metrics and run dir."""
    privileged = list(cfg.env.teacher_privileged)
    _check(cfg)
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
    temperature = score_temperature(cfg.temperature)
    logger.info("OPSD reward form (kl_coef %s, teacher %s) on %s, %d steps, out_dir=%s", cfg.kl_coef, cfg.teacher,
                cfg.env.id, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="OPSD reward",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        # ---- sample from the student view (no PI); both views' ids are kept
        result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step, privileged=privileged)
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)
        sampled = round_metrics(run, result)  # before the update: gap vs the sampling weights
        turns = trainable_turns(episodes)

        # ---- KL̂(S‖T) per episode: the PI view scored by the teacher's weights (the student's are the sampler's)
        rewards_E = episode_rewards(episodes, cfg.truncation_reward)
        kl_E = torch.zeros(len(episodes), dtype=torch.float64)
        if turns:
            samples = [t for _, t in turns]
            with teacher.model_for_scoring() as teacher_model:
                pi_view = score(teacher_model, prompts_of(samples, "teacher"), [t.response_ids for t in samples],
                                temperature=temperature, max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
            sampler_BT = padded_BT([t.sampler_logprobs or () for t in samples], pi_view.logprobs_BT)
            kl_E = episode_kl(len(episodes), turns, sampler_BT, pi_view.logprobs_BT, pi_view.mask_BT,
                              sampled_by="student")
        adv_E = group_advantages(episodes, rewards_E - cfg.kl_coef * kl_E, scale_by_std=False)

        # ---- groups without env signal: detected on env rewards, dropped when configured
        zero = zero_signal_groups(episodes, rewards_E)
        kept = [(e, t) for e, t in turns if not (cfg.drop_zero_adv_groups and episodes[e].group_id in zero)]
        adv_of = {id(t): float(adv_E[e]) for e, t in kept}
        batch = [t for _, t in kept]

        # ---- PPO-clip on the shaped advantages; ppo_epochs passes, each accumulated per micro-batch
        stats: dict[str, float] = {}
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)

        def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
            return reward_loss(model, mb, [adv_of[id(t)] for t in mb], temperature=temperature,
                               clip_low=cfg.clip_low, clip_high=cfg.clip_high, normalizer=n, stats=stats)

        passes = [update(run, micro, loss_fn) for _ in range(cfg.ppo_epochs)] if micro else [(0.0, 0.0)]
        teacher.refresh(model)
        cursor += cfg.tasks_per_step

        # ---- sync the sampler, log, evaluate, checkpoint (with an EMA teacher's weights)
        n_tokens = sum(len(t.response_ids) for t in batch)
        sync_sampler(policy, model)
        metrics = log_step(run, step, {
            **sampled,
            "mean_reward": float(rewards_E.mean()) if len(episodes) else 0.0,
            "mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
            "zero_adv_fraction": len(zero) / max(len({ep.group_id for ep in episodes}), 1),
            "mean_abs_adv": float(adv_E.abs().mean()) if len(episodes) else 0.0,
            "clip_fraction": stats.get("clipped_tokens", 0.0) / max(n_tokens * len(passes), 1),
            "loss": sum(loss for loss, _ in passes) / len(passes),
            "grad_norm": sum(norm for _, norm in passes) / len(passes),
            "trained_turns": len(batch),
            "response_tokens": n_tokens,
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor}, modules)
    return finish_run(run, step, metrics)


def _check(cfg: OPSDRewardConfig) -> None:
    if not cfg.env.teacher_privileged:
        raise ValueError("OPSD needs env.teacher_privileged=[...] PI kinds: the teacher view scores the student's "
                         "samples with them")
    if cfg.teacher not in SELF_TEACHERS:
        raise ValueError(f"teacher must be one of {list(SELF_TEACHERS)}, got {cfg.teacher!r}")
    if cfg.lora.rank > 0 and cfg.teacher in ("frozen", "ema", "synced"):
        raise ValueError(f"teacher={cfg.teacher!r} keeps a copy of the full weights, which LoRA runs do not train: "
                         "use teacher=adapter_disabled (the frozen base, no copy) or teacher=current")
    if cfg.kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {cfg.kl_coef}")
    if cfg.ppo_epochs < 1:
        raise ValueError(f"ppo_epochs must be >= 1, got {cfg.ppo_epochs}")
