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
- ``ppo_epochs`` gradient passes per sampling round (default 1; the paper takes 2–3); with more than one,
  π^T_old stays the sampler's log-probs, as in the paper, so later passes are off-policy for both terms.

Resume is exact: the task cursor is checkpointed and sampling seeds depend only on (seed, step). Held-out
success of the student view (and of the teacher view) is evaluated before training, every ``eval.every``
steps and at the end (``eval.jsonl``, ``plots/eval.png``).

Run from the command line (``configs/algo/pi_distill.yaml``)::

    agentdistill train algo=pi_distill env=alfworld model=smollm2-135m-instruct steps=20

or from Python::

    from agentdistill.algos.pi_distill import PiDistillConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(PiDistillConfig(model=ModelConfig("smollm2-135m-instruct"),
                                   env=EnvConfig("agentdistill/Sokoban-v0", teacher_privileged=["expert_plan"]),
                                   alpha=0.5, steps=100, out_dir="runs/pi-distill-sokoban"))
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
    padded_BT,
    rollout_metrics,
    rollout_round,
    sampling_policy,
    start_run,
    start_step,
    task_seeds,
)
from agentdistill.algos.opsd import (
    episode_advantages,
    score_temperature,
    sampler_and_other_logprobs,
    trainable_turns,
    zero_advantage_groups,
)
from agentdistill.config import TrainConfig
from agentdistill.losses import is_clipped_student, ppo_clip, ppo_clipped, reduce_loss
from agentdistill.scoring import score
from agentdistill.teachers import make_teacher
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)


@dataclass
class PiDistillConfig(TrainConfig):
    """π-Distill's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig.

    The PI kinds of the teacher view are ``env.teacher_privileged`` (required).
    """

    alpha: float = 0.5
    """Weight of the teacher term: L = α·L_T + (1−α)·L_S (the final α when annealing)."""
    alpha_start: Optional[float] = None
    """α at step 1 of a linear anneal to ``alpha``; null = no anneal."""
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
    ppo_epochs: int = 1
    """Gradient steps per sampling round, each over the whole round (the paper takes 2–3)."""
    lr: float = 5e-6
    """Peak AdamW learning rate."""
    out_dir: str = "runs/pi_distill"
    """Run directory."""


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
    privileged = list(cfg.env.teacher_privileged)
    if not privileged:
        raise ValueError("π-Distill needs env.teacher_privileged=[...] PI kinds: its rollouts come from the "
                         "teacher view")
    for name in ("alpha", "alpha_start"):
        value = getattr(cfg, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if cfg.ppo_epochs < 1:
        raise ValueError(f"ppo_epochs must be >= 1, got {cfg.ppo_epochs}")
    # ---- set-up: seed, model, optimiser, resume, evaluation before training; the sampler is the teacher view
    run = start_run(cfg, state={"cursor": 0})
    model = run.model
    current = make_teacher("current", model)  # no-grad scoring of the student view for the KL estimate
    policy = sampling_policy(run, "pi-distill-teacher-view")
    temperature = score_temperature(cfg.temperature)
    logger.info("π-Distill (α=%s, β=%s) on %s, %d steps, out_dir=%s", cfg.alpha, cfg.beta, cfg.env.id,
                cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for _ in tqdm(range(run.step, cfg.steps), initial=run.step, total=cfg.steps, desc="π-Distill",
                  disable=not cfg.progress):
        start_step(run)
        alpha = alpha_at(cfg, run.step + 1)
        # ---- sample from the teacher view (with PI); both views' ids are kept
        cursor = run.state["cursor"]
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        result = rollout_round(run, policy, seeds, privileged=privileged, act_on="teacher")
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

        # ---- loss: α·teacher PPO + (1−α)·student IS-PPO, accumulated per micro-batch; ppo_epochs passes
        stats: dict[str, float] = {}
        losses, grad_norms = [], []
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
        for _ in range(cfg.ppo_epochs if batch else 0):
            run.optimizer.zero_grad(set_to_none=True)
            losses.append(backward_microbatches(
                micro,
                lambda mb, n: pi_distill_loss(model, mb, [adv_of[id(t)] for t in mb], alpha=alpha,
                                              temperature=temperature, clip_low=cfg.clip_low,
                                              clip_high=cfg.clip_high, normalizer=n, stats=stats),
                mode="token_mean"))
            grad_norms.append(float(clip_gradients(model, cfg.max_grad_norm)))
            run.optimizer.step()
        run.step += 1
        run.state = {"cursor": cursor + cfg.tasks_per_step}

        # ---- log, evaluate, checkpoint
        n_tokens = sum(len(t.response_ids) for t in batch) * max(len(losses), 1)
        passes = max(len(losses), 1)
        metrics = end_step(run, {
            **rollout_metrics(run, result),
            "alpha": alpha,
            "mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
            "zero_adv_fraction": len(dropped) / max(n_groups, 1),
            "mean_abs_adv": float(adv_E.abs().mean()) if len(episodes) else 0.0,
            "no_pi_turn_frac": sum(not has_pi(t) for t in batch) / max(len(batch), 1),
            "loss": sum(losses) / passes,
            "loss_teacher": stats.get("loss_teacher", 0.0) / passes,
            "loss_student": stats.get("loss_student", 0.0) / passes,
            "teacher_term": stats.get("teacher_term", 0.0) / passes,
            "student_term": stats.get("student_term", 0.0) / passes,
            "teacher_clip_frac": stats.get("teacher_clipped", 0.0) / max(n_tokens, 1),
            "student_clip_frac": stats.get("student_clipped", 0.0) / max(n_tokens, 1),
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "trained_turns": len(batch),
            "response_tokens": sum(len(t.response_ids) for t in batch),
            "microbatches": len(micro),
        }, run.state)
    return finish_run(run, metrics)
