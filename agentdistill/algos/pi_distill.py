"""π-Distill: joint teacher–student training with privileged information (Penaloza et al., arXiv 2602.04942).

One set of weights θ defines the student π^S_θ(·|s) (normal context) and the teacher π^T_θ(·|s, I) (the same
context plus the PI block). Rollouts are sampled from the **teacher view**; every turn's response ids are scored
under both views, both with gradient (the teacher term deliberately trains the PI-conditioned stream, the one
exception to "teacher under stop-gradient", methods.md §1). Per sampling round:

    KL̂_e   = Σ_turns Σ_t (log π_T(y_t) − log π_S(y_t))     k1 estimate of KL(π_T ‖ π_S) per episode, no grad
    A^T_e  = centre_group(R_e − β·KL̂_e)                    the teacher's advantage (reward form)
    A^env_e = centre_group(R_e)                            env-only advantage
    L_T    = −min(r_T·A^T, clip(r_T)·A^T),                  r_T = π^T_θ(y|s,I) / π^T_old(y|s,I)
    L_S    = −min(ρ_S·A^env, clip(ρ_S)·A^env) [dual clip c] + β·(−log π^S_θ(y|s)),   ρ_S = π^S_θ / sg π^T_old
    L      = α·L_T + (1−α)·L_S                              token mean over the step's response tokens

R_e is the shared episode reward (``algos/rewards.py``: a truncated, unwon episode gets ``truncation_reward``).

**The β term of the student, two forms** (``student_kl``):

- ``"pull"`` (default; the paper's Eq. 3, −β·KL(sg π_T ‖ π_S) in J_S): the student's IS term uses env-only
  advantages, and β pulls the student onto the teacher's samples with −log π_S(y), y ∼ π_T. Its expected
  gradient is β·∇KL(π_T ‖ π_S): it *attracts* the student to the teacher.
- ``"alg1"`` (the paper's Alg. 1 and its released code): the student's IS term reuses A^T. Since
  E_T[ρ_S·A·∇log π_S] = E_S[A·∇log π_S], the KL part of A is a policy gradient on the student's own
  distribution with reward −β·(log π_T − log π_S): in expectation it *ascends* β·KL(π_S ‖ π_T) and pushes
  the student away from the teacher. Kept to reproduce the paper's runs; with zero env reward a toy check
  (tests/algos/test_pi_distill_objective.py) shows the student drifting away under it.

The teacher path descends KL(T‖S) through its reward in both forms. ρ_S is not near 1 by construction (two
different contexts), so the student term is dual-clipped: for a negative advantage it costs at most c·|A|
(``clip_ratio_c``, verl's default 3).

Zero signal: groups whose *env* rewards are all equal are detected before the KL enters any reward and
logged (``zero_adv_fraction``); with ``drop_zero_adv_groups`` (default, the paper's "pop zero-advantage") they
leave the update entirely, KL terms included. Turns whose PI block is empty (teacher view == student view)
get the student term only (weight 1), with no pull (the two views are the same distribution there). α can be
annealed linearly from ``alpha_start`` to ``alpha`` over ``alpha_anneal_epochs`` epochs (one epoch = one pass
over the ``num_tasks`` training tasks, the paper's unit; it anneals 0 → 0.5 over 15 epochs).

Departures: the KL is the sampled-token k1 estimate as in the released code, not the Rao-Blackwellised one
(App. E.1); π^T_old is the sampler's log-probs (Alg. 1; the code uses the current teacher detached — equal with
one pass per round); no cosine length or leakage penalty (the leak rate is logged); ``ppo_epochs`` (default 1,
the paper 2–3) passes per round, later passes off-policy for both terms.

Run from the command line::

    agentdistill train algo=pi_distill env=alfworld model=smollm2-135m-instruct steps=20

or from Python::

    from agentdistill.algos.pi_distill import PiDistillConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(PiDistillConfig(model=ModelConfig("smollm2-135m-instruct"),
                                   env=EnvConfig("agentdistill/Sokoban-v0", teacher_privileged=["expert_plan"]),
                                   steps=100, out_dir="runs/pi-distill-sokoban"))
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
    log_step,
    rollout_round,
    round_metrics,
    start_run,
    task_seeds,
    update,
    usable_episodes,
)
from agentdistill.algos.rewards import episode_kl, episode_rewards, group_advantages, zero_signal_groups
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import TrainConfig
from agentdistill.losses import is_clipped_student, ppo_clip, ppo_clipped, reduce_loss, teacher_sample_pull
from agentdistill.scoring import score
from agentdistill.teachers import make_teacher
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)

STUDENT_KL_FORMS = ("pull", "alg1")


@dataclass
class PiDistillConfig(TrainConfig):
    """π-Distill's own knobs (the paper's settings, methods.md §2); the shared ones come from TrainConfig.

    The PI kinds of the teacher view are ``env.teacher_privileged`` (required).
    """

    alpha: float = 0.5
    """Weight of the teacher term: L = α·L_T + (1−α)·L_S (the final α when annealing)."""
    alpha_start: float | None = None
    """α at step 1 of a linear anneal to ``alpha``; null = no anneal."""
    alpha_anneal_epochs: float = 0.0
    """Epochs (passes over num_tasks, i.e. num_tasks / tasks_per_step steps each) over which α goes linearly
    from ``alpha_start`` to ``alpha`` (the paper: 15)."""
    beta: float = 0.25
    """β: the teacher's reward is R − β·KL̂(T‖S) (summed over an episode); the student's pull weight."""
    student_kl: str = "pull"
    """pull: env-only advantages + β·KL(sg π_T‖π_S) pull (Eq. 3, attracts); alg1: the student reuses the
    teacher's KL-shaped advantage (Alg. 1 and the released code; repels, for reproduction only)."""
    clip_low: float = 0.2
    """Both terms' ratios are clipped below at 1 − clip_low."""
    clip_high: float = 0.2
    """Both terms' ratios are clipped above at 1 + clip_high."""
    clip_ratio_c: float | None = 3.0
    """Dual clip of the student ratio π_S/π_T: a negative-advantage token costs at most c·|A|; null: off."""
    drop_zero_adv_groups: bool = True
    """Drop groups whose env rewards are all equal (no env signal) from the update, KL terms included (the
    paper's "pop zero-advantage"); false keeps them, so they train on the KL terms alone."""
    ppo_epochs: int = 1
    """Gradient steps per sampling round, each over the whole round (the paper takes 2–3)."""
    temperature: float = 0.75
    """Sampling temperature of the teacher-view rollouts (the paper's 0.75); scoring uses the same."""
    lr: float = 5e-6
    """Peak AdamW learning rate."""
    out_dir: str = "runs/pi_distill"
    """Run directory."""


def alpha_at(cfg: PiDistillConfig, step: int) -> float:
    """α of optimiser step ``step`` (1-based): linear from ``alpha_start`` to ``alpha`` over
    ``alpha_anneal_epochs`` epochs of ``num_tasks / tasks_per_step`` steps, then ``alpha``."""
    if cfg.alpha_start is None or cfg.alpha_anneal_epochs <= 0:
        return cfg.alpha
    anneal_steps = cfg.alpha_anneal_epochs * cfg.num_tasks / cfg.tasks_per_step
    frac = min(max(step - 1, 0) / anneal_steps, 1.0)
    return cfg.alpha_start + frac * (cfg.alpha - cfg.alpha_start)


def has_pi(sample: TurnSample) -> bool:
    """True when the turn's teacher view differs from its student view (a non-empty PI block)."""
    teacher_ids = sample.teacher_prompt_ids
    return teacher_ids is not None and tuple(teacher_ids) != tuple(sample.student_prompt_ids)


@dataclass(frozen=True)
class PiDistillTerms:
    """The per-token parts of π-Distill's loss, each [B, T] and 0 where masked."""

    loss_BT: torch.Tensor
    """α_b·teacher + (1−α_b)·(student + β·pull): what is reduced and back-propagated."""
    teacher_BT: torch.Tensor
    """The teacher view's PPO-clip term (unweighted)."""
    student_BT: torch.Tensor
    """The student view's dual-clipped IS term (unweighted)."""
    pull_BT: torch.Tensor
    """−log π_S on teacher samples (unweighted; 0 on turns without PI and in the alg1 form)."""
    w_teacher_B: torch.Tensor
    w_student_B: torch.Tensor


def pi_distill_terms(
    teacher_lp_BT: torch.Tensor,
    student_lp_BT: torch.Tensor,
    sampler_lp_BT: torch.Tensor,
    teacher_adv_BT: torch.Tensor,
    student_adv_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    has_pi_B: torch.Tensor,
    *,
    alpha: float,
    pull: float,
    clip_low: float,
    clip_high: float,
    clip_ratio_c: float | None,
) -> PiDistillTerms:
    """π-Distill's per-token loss from log-probs (a pure function: the loop and the toy checks share it).

    ``teacher_lp_BT``/``student_lp_BT`` are the two views' log-probs of the teacher-sampled ids (with grad),
    ``sampler_lp_BT`` π^T_old, ``*_adv_BT`` each term's advantages (see the module docstring), ``pull`` the
    weight β of the student's pull (0 for the alg1 form). Turns without PI (``has_pi_B`` False) get the
    student term at weight 1 and no pull.
    """
    clip = {"clip_low": clip_low, "clip_high": clip_high}
    w_teacher_B = torch.where(has_pi_B, alpha, 0.0).to(torch.float32)
    w_student_B = torch.where(has_pi_B, 1.0 - alpha, 1.0).to(torch.float32)
    teacher_BT = ppo_clip(teacher_lp_BT, sampler_lp_BT, teacher_adv_BT, mask_BT, **clip)
    student_BT = is_clipped_student(student_lp_BT, sampler_lp_BT, student_adv_BT, mask_BT, **clip,
                                    clip_ratio_c=clip_ratio_c)
    pull_BT = teacher_sample_pull(student_lp_BT, mask_BT & has_pi_B[:, None]) if pull > 0 \
        else torch.zeros_like(student_BT)
    loss_BT = w_teacher_B[:, None] * teacher_BT + w_student_B[:, None] * (student_BT + pull * pull_BT)
    return PiDistillTerms(loss_BT, teacher_BT, student_BT, pull_BT, w_teacher_B, w_student_B)


def pi_distill_loss(
    model: torch.nn.Module,
    samples: Sequence[TurnSample],
    teacher_advantages: Sequence[float],
    student_advantages: Sequence[float],
    *,
    alpha: float,
    pull: float,
    temperature: float,
    clip_low: float,
    clip_high: float,
    clip_ratio_c: float | None,
    normalizer: int,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """One micro-batch: score both views with gradient, then :func:`pi_distill_terms`, token mean over
    ``normalizer``. ``stats`` (optional) accumulates ``loss_teacher``/``loss_student`` (weighted; they sum to
    the loss), the unweighted ``teacher_term``/``student_term``/``pull_term`` and clipped-token counts."""
    responses = [s.response_ids for s in samples]
    teacher = score(model, prompts_of(samples, "teacher"), responses, temperature=temperature)
    student = score(model, prompts_of(samples, "student"), responses, temperature=temperature)
    mask_BT = student.mask_BT
    device = mask_BT.device
    sampler_BT = padded_BT([s.sampler_logprobs or () for s in samples], student.logprobs_BT)
    teacher_adv_BT = torch.tensor(list(teacher_advantages), dtype=torch.float32, device=device)[:, None].expand(
        mask_BT.shape)
    student_adv_BT = torch.tensor(list(student_advantages), dtype=torch.float32, device=device)[:, None].expand(
        mask_BT.shape)
    has_pi_B = torch.tensor([has_pi(s) for s in samples], device=device)
    terms = pi_distill_terms(teacher.logprobs_BT, student.logprobs_BT, sampler_BT, teacher_adv_BT, student_adv_BT,
                             mask_BT, has_pi_B, alpha=alpha, pull=pull, clip_low=clip_low, clip_high=clip_high,
                             clip_ratio_c=clip_ratio_c)
    reduce = {"mode": "token_mean", "normalizer": normalizer}
    loss = reduce_loss(terms.loss_BT, mask_BT, **reduce)  # type: ignore[arg-type]
    if stats is not None:
        with torch.no_grad():
            w_t, w_s = terms.w_teacher_B[:, None], terms.w_student_B[:, None]
            clip = {"clip_low": clip_low, "clip_high": clip_high}
            add = {
                "loss_teacher": reduce_loss(w_t * terms.teacher_BT, mask_BT, **reduce),  # type: ignore[arg-type]
                "loss_student": reduce_loss(w_s * (terms.student_BT + pull * terms.pull_BT), mask_BT,
                                            **reduce),  # type: ignore[arg-type]
                "teacher_term": reduce_loss(terms.teacher_BT, mask_BT, **reduce),  # type: ignore[arg-type]
                "student_term": reduce_loss(terms.student_BT, mask_BT, **reduce),  # type: ignore[arg-type]
                "pull_term": reduce_loss(terms.pull_BT, mask_BT, **reduce),  # type: ignore[arg-type]
                "teacher_clipped": ppo_clipped(teacher.logprobs_BT, sampler_BT, teacher_adv_BT, mask_BT, **clip).sum(),
                "student_clipped": ppo_clipped(student.logprobs_BT, sampler_BT, student_adv_BT, mask_BT, **clip).sum(),
            }
        for k, v in add.items():
            stats[k] = stats.get(k, 0.0) + float(v)
    return loss


def train(cfg: PiDistillConfig) -> RunResult:
    """Run (or resume) π-Distill as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    privileged = list(cfg.env.teacher_privileged)
    _check(cfg)
    # ---- set-up: seed, model, optimiser, resume, evaluation before training; the sampler is the teacher view
    run = start_run(cfg, state={"cursor": 0})
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    policy = sampling_policy(run, "pi-distill-teacher-view")
    current = make_teacher("current", model)  # the student view's no-grad log-probs for KL̂
    temperature = score_temperature(cfg.temperature)
    pull = cfg.beta if cfg.student_kl == "pull" else 0.0
    logger.info("π-Distill (α=%s, β=%s, student %s form) on %s, %d steps, out_dir=%s", cfg.alpha, cfg.beta,
                cfg.student_kl, cfg.env.id, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="π-Distill",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        alpha = alpha_at(cfg, step)
        # ---- sample from the teacher view (with PI); both views' ids are kept
        result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step, privileged=privileged,
                               act_on="teacher")
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)
        sampled = round_metrics(run, result, act_on="teacher")  # before the update: gap vs the sampling weights
        turns = trainable_turns(episodes)

        # ---- KL̂(T‖S) per episode (student view scored without grad; the teacher's are the sampler's)
        rewards_E = episode_rewards(episodes, cfg.truncation_reward)
        kl_E = torch.zeros(len(episodes), dtype=torch.float64)
        if turns:
            samples = [t for _, t in turns]
            with current.model_for_scoring() as scorer:  # eval mode, no grad
                student = score(scorer, prompts_of(samples, "student"), [t.response_ids for t in samples],
                                temperature=temperature, max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
            sampler_BT = padded_BT([t.sampler_logprobs or () for t in samples], student.logprobs_BT)
            kl_E = episode_kl(len(episodes), turns, student.logprobs_BT, sampler_BT, student.mask_BT,
                              sampled_by="teacher")
        teacher_adv_E = group_advantages(episodes, rewards_E - cfg.beta * kl_E, scale_by_std=False)
        env_adv_E = group_advantages(episodes, rewards_E, scale_by_std=False)
        student_adv_E = env_adv_E if cfg.student_kl == "pull" else teacher_adv_E

        # ---- groups without env signal: detected on env rewards, dropped when configured
        zero = zero_signal_groups(episodes, rewards_E)
        kept = [(e, t) for e, t in turns if not (cfg.drop_zero_adv_groups and episodes[e].group_id in zero)]
        teacher_adv = {id(t): float(teacher_adv_E[e]) for e, t in kept}
        student_adv = {id(t): float(student_adv_E[e]) for e, t in kept}
        batch = [t for _, t in kept]

        # ---- loss: α·teacher PPO + (1−α)·(student IS-PPO + β·pull), per micro-batch; ppo_epochs passes
        stats: dict[str, float] = {}
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)

        def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
            return pi_distill_loss(model, mb, [teacher_adv[id(t)] for t in mb], [student_adv[id(t)] for t in mb],
                                   alpha=alpha, pull=pull, temperature=temperature, clip_low=cfg.clip_low,
                                   clip_high=cfg.clip_high, clip_ratio_c=cfg.clip_ratio_c, normalizer=n,
                                   stats=stats)

        passes = [update(run, micro, loss_fn) for _ in range(cfg.ppo_epochs)] if micro else [(0.0, 0.0)]
        cursor += cfg.tasks_per_step

        # ---- sync the sampler, log, evaluate, checkpoint
        n_passes = len(passes)
        n_tokens = sum(len(t.response_ids) for t in batch) * n_passes
        sync_sampler(policy, model)
        metrics = log_step(run, step, {
            **sampled,
            "alpha": alpha,
            "mean_reward": float(rewards_E.mean()) if len(episodes) else 0.0,
            "mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
            "zero_adv_fraction": len(zero) / max(len({ep.group_id for ep in episodes}), 1),
            "mean_abs_adv": float(teacher_adv_E.abs().mean()) if len(episodes) else 0.0,
            "mean_abs_env_adv": float(env_adv_E.abs().mean()) if len(episodes) else 0.0,
            "no_pi_turn_frac": sum(not has_pi(t) for t in batch) / max(len(batch), 1),
            "loss": sum(loss for loss, _ in passes) / n_passes,
            **{key: stats.get(key, 0.0) / n_passes
               for key in ("loss_teacher", "loss_student", "teacher_term", "student_term", "pull_term")},
            "teacher_clip_frac": stats.get("teacher_clipped", 0.0) / max(n_tokens, 1),
            "student_clip_frac": stats.get("student_clipped", 0.0) / max(n_tokens, 1),
            "grad_norm": sum(norm for _, norm in passes) / n_passes,
            "trained_turns": len(batch),
            "response_tokens": sum(len(t.response_ids) for t in batch),
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor})
    return finish_run(run, step, metrics)


def _check(cfg: PiDistillConfig) -> None:
    if not cfg.env.teacher_privileged:
        raise ValueError("π-Distill needs env.teacher_privileged=[...] PI kinds: its rollouts come from the "
                         "teacher view")
    for name in ("alpha", "alpha_start"):
        value = getattr(cfg, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if cfg.student_kl not in STUDENT_KL_FORMS:
        raise ValueError(f"student_kl must be one of {list(STUDENT_KL_FORMS)}, got {cfg.student_kl!r}")
    if cfg.beta < 0:
        raise ValueError(f"beta must be >= 0, got {cfg.beta}")
    if cfg.ppo_epochs < 1:
        raise ValueError(f"ppo_epochs must be >= 1, got {cfg.ppo_epochs}")
