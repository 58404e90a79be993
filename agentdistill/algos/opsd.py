"""OPSD: on-policy self-distillation with privileged information, in two documented modes.

Both modes sample rollouts from the **student view** (no PI) of the model being trained and score the same
response ids under the **teacher view** (the same conversation plus the PI block of the kinds in
``env.teacher_privileged``); only the context differs between the two streams, and the teacher side is
always under stop-gradient (methods.md §1).

``mode="reward"`` — the π-Distill paper's OPSD (Penaloza et al., arXiv 2602.04942, Alg. 2, methods.md §2.2):

    KL̂_e = Σ_turns Σ_t (log π_S(y_t) − log π_T(y_t))      (k1, sampled by the student, summed per episode)
    R'_e = R_e − β·KL̂_e,    A_e = R'_e − mean_{group}(R')       (group-centred, no std scaling)
    L    = token_mean_t −min(r_t·A, clip(r_t, 1−ε, 1+ε)·A),   r_t = π_θ(y_t|s) / π_old(y_t|s)

with π_old the sampler's log-probs (the student view at sampling time) and the teacher the *current* weights
under no_grad by default (``teacher="current"``, the paper's stop-gradient student reference). β defaults to
0.25. ``ppo_epochs`` gradient passes are taken per sampling round, each over the whole round; π_old stays the
sampler's log-probs, so passes after the first are off-policy. Departures: the paper uses β=0.5 for OPSD and
mentions a Rao-Blackwellised full-vocabulary KL (App. E.1); here the KL is the sampled-token k1 estimate as in
the released code (methods.md §2.5), and the reward penalty reading of Alg. 2 is used (not "back-propagate
through the estimate"). The code dump's extra ``distill_coef·mean(sg(lp_T) − lp_S)`` term is *not* ported
(zero expected gradient, §2.5). Groups whose advantages are all zero are dropped (``drop_zero_adv_groups``,
"pop zero-advantage (always)", Table 2).

``mode="distill"`` — the Self-Distilled Reasoner's pure on-policy self-distillation (Zhao et al., arXiv
2601.18734, methods.md §3.3–3.5): no environment reward is used;

    L = token_mean_n Σ_v min(ℓ_{n,v}, τ),   ℓ = pointwise terms of D(p_T(·|x, I, ŷ<n) ‖ p_S(·|x, ŷ<n))

with D = ``forward_kl`` (default, OPSD v3), ``reverse_kl`` or ``generalized_jsd`` (β, TRL convention), both
logits divided by ``temperature`` (the sampling temperature), per-entry cap ``clip_tau`` (None = no cap), and
the teacher the frozen initial weights (``make_teacher("frozen")``; the paper disables the LoRA adapter,
``teacher="adapter_disabled"`` does the same for a peft model). One optimiser step per sampling round.
Departures: multi-turn agent episodes instead of single-turn math (every assistant turn is a sample, scored
with its whole history as prompt); ``group_size`` samples per task (OPSD uses 1); full-vocabulary logits are
materialised (fine for small models; the chunked divergences in ``agentdistill.losses`` are not wired in
here); the optional top-k loss is not implemented.

Tasks are env reset seeds ``env_seed_start + i`` for i in a seeded stream over ``range(num_tasks)``
(``common.batch_indices``); the cursor is saved in checkpoints, and sampling seeds depend only on (seed,
step), so a resumed run reproduces a straight one exactly, whatever the teacher: a frozen teacher is copied
from the initial weights (``model``, or ``init_from``) before the student resumes, a synced one is re-synced
to the resumed weights, and an ema teacher's weights are saved in every checkpoint (``teacher.pt``).
Held-out success is evaluated before training, every ``eval.every`` steps and at the end (``eval.jsonl``,
``plots/eval.png``).

Run from the command line::

    agentdistill train algo=opsd env=sokoban model=tiny-random steps=2

or from Python::

    from agentdistill.algos.opsd import OPSDConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(OPSDConfig(model=ModelConfig("smollm2-135m-instruct"),
                              env=EnvConfig("agentdistill/Sokoban-v0", teacher_privileged=["expert_plan"]),
                              mode="distill", steps=100, out_dir="runs/opsd-sokoban"))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from tqdm.auto import tqdm

from agentdistill.algos.common import (
    RunResult,
    backward_microbatches,
    clip_gradients,
    end_step,
    finish_run,
    load_module_state,
    load_weights,
    microbatches_by_tokens,
    padded_BT,
    rollout_metrics,
    rollout_round,
    sampling_policy,
    start_run,
    start_step,
    task_seeds,
)
from agentdistill.config import TrainConfig
from agentdistill.losses import (
    forward_kl,
    generalized_jsd,
    grpo_advantages,
    kl_in_reward,
    ppo_clip,
    ppo_clipped,
    reduce_loss,
    reverse_kl,
    sequence_kl,
)
from agentdistill.models import load_model
from agentdistill.scoring import score
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import Episode, TurnSample

logger = logging.getLogger(__name__)

MODES = ("reward", "distill")
DIVERGENCES = {"forward_kl": forward_kl, "reverse_kl": reverse_kl, "generalized_jsd": generalized_jsd}
SELF_TEACHERS = ("current", "frozen", "ema", "synced", "adapter_disabled")
"""Teacher kinds built from the student's own weights ("separate" is OPD's)."""
COPY_TEACHERS = ("frozen", "ema", "synced")
"""Teachers holding their own copy of the weights (built before a resume restores the student)."""
ZERO_ADV_EPS = 1e-8


@dataclass
class OPSDConfig(TrainConfig):
    """OPSD's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig.

    The PI kinds of the teacher view are ``env.teacher_privileged`` (required).
    """

    mode: str = "reward"
    """reward: π-Distill's OPSD (R − β·KL(S‖T), PPO clip); distill: Zhao et al.'s per-token divergence."""
    teacher: Optional[str] = None
    """current, frozen, ema, synced or adapter_disabled; null: current in reward mode, frozen in distill."""
    ema_decay: float = 0.95
    """Decay of an ema teacher: θ̄ ← decay·θ̄ + (1−decay)·θ after every step."""
    beta: float = 0.25
    """Reward mode: β of R − β·KL̂ (sequence-summed KL). Distill mode with generalized_jsd: the JSD β."""
    clip_low: float = 0.2
    """Reward mode: PPO ratio clipped below at 1 − clip_low."""
    clip_high: float = 0.2
    """Reward mode: PPO ratio clipped above at 1 + clip_high."""
    drop_zero_adv_groups: bool = True
    """Reward mode: drop groups whose advantages are all zero before the update."""
    ppo_epochs: int = 1
    """Reward mode: gradient steps per sampling round, each over the whole round (distill mode: 1)."""
    divergence: str = "forward_kl"
    """Distill mode: per-token full-vocabulary D(p_T ‖ p_S): forward_kl, reverse_kl or generalized_jsd."""
    clip_tau: Optional[float] = None
    """Distill mode: per-vocab-entry cap τ of the divergence terms (OPSD v3 later repo: 0.05); null = none."""
    lr: float = 1e-5
    """Peak AdamW learning rate."""
    out_dir: str = "runs/opsd"
    """Run directory."""


# ---------------------------------------------------------------- helpers shared with pi_distill


def score_temperature(temperature: float) -> float:
    """The temperature the sampler's log-probs were computed at (greedy sampling reports untempered ones)."""
    return temperature if temperature > 0 else 1.0


def trainable_turns(episodes: Sequence[Episode]) -> list[tuple[int, TurnSample]]:
    """(episode index, turn) for every turn with token ids and sampler log-probs (errored episodes: none)."""
    out = []
    for e, ep in enumerate(episodes):
        if ep.error is not None:
            continue
        for t in ep.turns:
            if t.response_ids and t.student_prompt_ids and t.teacher_prompt_ids is not None:
                if t.sampler_logprobs is None or len(t.sampler_logprobs) != len(t.response_ids):
                    raise ValueError(
                        f"turn {t.turn} of {t.episode_id!r} has no sampler log-probs for its ids")
                out.append((e, t))
    return out


@torch.no_grad()
def sampler_and_other_logprobs(
    scorer: Teacher,
    samples: Sequence[TurnSample],
    *,
    other_view: Literal["student", "teacher"],
    temperature: float,
    max_tokens_per_microbatch: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sampler log-probs, other view's log-probs, mask), each [B, T], without gradient.

    The sampling view's log-probs are the ``sampler_logprobs`` the policy recorded (the current weights at
    sampling time, so no second forward pass is spent on them); the other view (``other_view`` prompts) is
    scored with ``scorer``'s weights.
    """
    prompts = [s.teacher_prompt_ids if other_view == "teacher" else s.student_prompt_ids for s in samples]
    with scorer.model_for_scoring() as model:
        other = score(model, prompts, [s.response_ids for s in samples], temperature=temperature,
                      max_tokens_per_microbatch=max_tokens_per_microbatch)
    sampler_BT = padded_BT([s.sampler_logprobs for s in samples], other.logprobs_BT)
    return sampler_BT, other.logprobs_BT, other.mask_BT


def episode_advantages(
    episodes: Sequence[Episode],
    turns: Sequence[tuple[int, TurnSample]],
    student_lp_BT: torch.Tensor,
    teacher_lp_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    beta: float,
    sampled_by: Literal["student", "teacher"],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-episode (KL̂_e, shaped reward R_e − β·KL̂_e, group-centred advantage), each [E].

    KL̂_e sums the k1 estimate of :func:`sequence_kl` over all turns of episode e (direction KL(sampler ‖
    other)); episodes without trainable turns get KL̂ = 0. Advantages centre the shaped rewards within each
    task group (no std scaling), so every episode counts once whatever its number of turns.
    """
    kl_turn_B = sequence_kl(student_lp_BT, teacher_lp_BT, mask_BT, sampled_by=sampled_by)
    kl_E = torch.zeros(len(episodes), dtype=torch.float32)
    for (e, _), kl in zip(turns, kl_turn_B.cpu().tolist()):
        kl_E[e] += kl
    rewards_E = torch.tensor([ep.total_reward for ep in episodes], dtype=torch.float32)
    shaped_E = kl_in_reward(rewards_E, kl_E, beta=beta)
    groups = {g: i for i, g in enumerate(dict.fromkeys(ep.group_id for ep in episodes))}
    group_ids_E = torch.tensor([groups[ep.group_id] for ep in episodes], dtype=torch.long)
    return kl_E, shaped_E, grpo_advantages(shaped_E, group_ids_E)


def zero_advantage_groups(episodes: Sequence[Episode], adv_E: torch.Tensor) -> set[str]:
    """Group ids whose episodes' advantages are all (numerically) zero."""
    nonzero: dict[str, bool] = {}
    for ep, a in zip(episodes, adv_E.tolist()):
        nonzero[ep.group_id] = nonzero.get(ep.group_id, False) or abs(a) > ZERO_ADV_EPS
    return {g for g, nz in nonzero.items() if not nz}


# ---------------------------------------------------------------- losses


def reward_mode_loss(
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
    scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples],
                   temperature=temperature)
    mask_BT = scored.mask_BT
    old_BT = padded_BT([s.sampler_logprobs for s in samples], scored.logprobs_BT)
    adv_B = torch.tensor(list(advantages), dtype=torch.float32, device=mask_BT.device)
    adv_BT = adv_B[:, None].expand(mask_BT.shape)
    loss_BT = ppo_clip(scored.logprobs_BT, old_BT, adv_BT, mask_BT, clip_low=clip_low, clip_high=clip_high)
    if stats is not None:
        clipped = ppo_clipped(scored.logprobs_BT.detach(), old_BT, adv_BT, mask_BT, clip_low=clip_low,
                              clip_high=clip_high)
        stats["clipped_tokens"] = stats.get("clipped_tokens", 0.0) + float(clipped.sum())
    return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=normalizer)


def distill_token_losses(
    model: torch.nn.Module,
    teacher: Teacher,
    samples: Sequence[TurnSample],
    *,
    divergence: str = "forward_kl",
    temperature: float = 1.0,
    clip_tau: float | None = None,
    beta: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_BT, mask_BT): per-token D(p_T(·|teacher view) ‖ p_S(·|student view)) over the response ids.

    The student side carries the gradient; the teacher's full-vocabulary logits are computed under no_grad
    with ``teacher``'s weights. Identical prompts and identical weights give exactly 0 everywhere.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {', '.join(DIVERGENCES)}")
    responses = [s.response_ids for s in samples]
    student = score(model, [s.student_prompt_ids for s in samples], responses, temperature=temperature,
                    full_vocab=True)
    with teacher.model_for_scoring() as teacher_model:
        t_scored = score(teacher_model, [s.teacher_prompt_ids for s in samples], responses,
                         temperature=temperature, full_vocab=True)
    t_logits = t_scored.logits_BTV.to(student.logits_BTV.device)
    kwargs = {"temperature": temperature, "clip": clip_tau}
    if divergence == "generalized_jsd":
        kwargs["beta"] = beta
    loss_BT = DIVERGENCES[divergence](student.logits_BTV, t_logits, student.mask_BT, **kwargs)
    return loss_BT, student.mask_BT


# ---------------------------------------------------------------- training loop


def train(cfg: OPSDConfig) -> RunResult:
    """Run (or resume) OPSD as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    privileged = list(cfg.env.teacher_privileged)
    kind = cfg.teacher or ("current" if cfg.mode == "reward" else "frozen")
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {cfg.mode!r}")
    if not privileged:
        raise ValueError("OPSD needs env.teacher_privileged=[...] PI kinds: the teacher view scores the "
                         "student's samples with them")
    if cfg.divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {list(DIVERGENCES)}, got {cfg.divergence!r}")
    if kind not in SELF_TEACHERS:
        raise ValueError(f"teacher must be one of {list(SELF_TEACHERS)} (or null), got {kind!r}")
    if cfg.ppo_epochs < 1 or (cfg.mode == "distill" and cfg.ppo_epochs != 1):
        raise ValueError(f"ppo_epochs must be >= 1 in reward mode and 1 in distill mode (one on-policy step "
                         f"per round), got {cfg.ppo_epochs} in {cfg.mode} mode")
    # ---- set-up: the teacher is built from the initial weights (init_from's, if set) before start_run
    # resumes the student, so a frozen teacher stays the initial policy in a resumed run too; then seed,
    # optimiser, resume, evaluation before training (a fresh run loads init_from again: the same weights)
    if cfg.lora.rank > 0 and kind in COPY_TEACHERS:
        raise ValueError(f"teacher={kind!r} keeps a copy of the full weights, which LoRA runs do not train: "
                         "use teacher=adapter_disabled (the frozen base, no copy) or teacher=current")
    model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    if cfg.init_from:
        load_weights(model, cfg.init_from)
    teacher = (make_teacher(kind, model, **({"decay": cfg.ema_decay} if kind == "ema" else {}))
               if kind in COPY_TEACHERS else None)
    run = start_run(cfg, state={"cursor": 0}, model=model, tokenizer=tokenizer)
    model = run.model  # with LoRA, the PEFT wrapper of the same weights
    if teacher is None:  # current or adapter_disabled: views of the (possibly LoRA-wrapped) student
        teacher = make_teacher(kind, model)
    if kind == "synced" and run.resumed_from is not None:
        teacher.refresh(model)  # it was synced to the weights the checkpoint holds
    modules = {"teacher": teacher.model} if kind == "ema" else None
    if kind == "ema" and run.resumed_from is not None and not load_module_state(
            run.resumed_from, "teacher", teacher.model):
        logger.warning("%s has no teacher.pt: the EMA teacher restarts from the resumed weights",
                       run.resumed_from)
        teacher.model.load_state_dict(model.state_dict())
    policy = sampling_policy(run, "opsd-student")
    temperature = score_temperature(cfg.temperature)
    logger.info("OPSD (%s mode, teacher %s) on %s, %d steps, out_dir=%s", cfg.mode, kind, cfg.env.id,
                cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for _ in tqdm(range(run.step, cfg.steps), initial=run.step, total=cfg.steps, desc="OPSD",
                  disable=not cfg.progress):
        start_step(run)
        # ---- sample from the student view (no PI); both views' ids are kept
        cursor = run.state["cursor"]
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        result = rollout_round(run, policy, seeds, privileged=privileged, act_on="student")
        episodes = result.episodes
        turns = trainable_turns(episodes)
        kl_E = torch.zeros(len(episodes))
        adv_E = torch.zeros(len(episodes))
        if turns:  # KL̂(S‖T) per episode, the teacher view scored by the teacher's weights
            s_BT, t_BT, mask_BT = sampler_and_other_logprobs(
                teacher, [t for _, t in turns], other_view="teacher", temperature=temperature,
                max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
            kl_E, _, adv_E = episode_advantages(episodes, turns, s_BT, t_BT, mask_BT, beta=cfg.beta,
                                                sampled_by="student")
        stats: dict[str, float] = {}
        mode_metrics: dict[str, float] = {}

        if cfg.mode == "reward":
            # ---- R − β·KL̂, group-centred advantages, drop zero-advantage groups; PPO-clip loss
            n_groups = len({ep.group_id for ep in episodes})
            dropped = zero_advantage_groups(episodes, adv_E) if cfg.drop_zero_adv_groups else set()
            kept = [(e, t) for e, t in turns if episodes[e].group_id not in dropped]
            adv_of = {id(t): float(adv_E[e]) for e, t in kept}
            batch = [t for _, t in kept]

            def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
                return reward_mode_loss(model, mb, [adv_of[id(t)] for t in mb], temperature=temperature,
                                        clip_low=cfg.clip_low, clip_high=cfg.clip_high, normalizer=n,
                                        stats=stats)

            mode_metrics = {"zero_adv_fraction": len(dropped) / max(n_groups, 1),
                            "mean_abs_adv": float(adv_E.abs().mean()) if len(episodes) else 0.0}
        else:
            # ---- per-token divergence to the teacher over the student's own samples (no reward)
            batch = [t for _, t in turns]

            def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
                loss_BT, mask_BT = distill_token_losses(model, teacher, mb, divergence=cfg.divergence,
                                                        temperature=temperature, clip_tau=cfg.clip_tau,
                                                        beta=cfg.beta)
                return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=n)

        # ---- ppo_epochs passes over the round (distill: one), each accumulated per micro-batch
        losses, grad_norms = [], []
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
        for _ in range(cfg.ppo_epochs if batch else 0):
            run.optimizer.zero_grad(set_to_none=True)
            losses.append(backward_microbatches(micro, loss_fn, mode="token_mean"))
            grad_norms.append(float(clip_gradients(model, cfg.max_grad_norm)))
            run.optimizer.step()
        teacher.refresh(model)
        run.step += 1
        run.state = {"cursor": cursor + cfg.tasks_per_step}

        # ---- log, evaluate, checkpoint (with the EMA teacher's weights)
        passes = max(len(losses), 1)
        n_tokens = sum(len(t.response_ids) for t in batch)
        if cfg.mode == "reward":
            mode_metrics["clip_fraction"] = stats.get("clipped_tokens", 0.0) / max(n_tokens * passes, 1)
        metrics = end_step(run, {
            **rollout_metrics(run, result),
            "mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
            **mode_metrics,
            "loss": sum(losses) / passes,
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "trained_turns": len(batch),
            "response_tokens": n_tokens,
            "microbatches": len(micro),
        }, run.state, modules)
    return finish_run(run, metrics)
