"""OPSD: on-policy self-distillation with privileged information, in two documented modes.

Both modes sample rollouts from the **student view** (no PI) of the model being trained and score the same
response ids under the **teacher view** (the same conversation plus the PI block); only the context differs
between the two streams, and the teacher side is always under stop-gradient (methods.md §1).

``mode="reward"`` — the π-Distill paper's OPSD (Penaloza et al., arXiv 2602.04942, Alg. 2, methods.md §2.2):

    KL̂_e = Σ_turns Σ_t (log π_S(y_t) − log π_T(y_t))      (k1, sampled by the student, summed per episode)
    R'_e = R_e − β·KL̂_e,    A_e = R'_e − mean_{group}(R')       (group-centred, no std scaling)
    L    = token_mean_t −min(r_t·A, clip(r_t, 1−ε, 1+ε)·A),   r_t = π_θ(y_t|s) / π_old(y_t|s)

with π_old the sampler's log-probs (the student view at sampling time) and the teacher the *current* weights
under no_grad by default (``teacher="current"``, the paper's stop-gradient student reference). β defaults to
0.25. Departures: the paper uses β=0.5 for OPSD and mentions a Rao-Blackwellised full-vocabulary KL (App.
E.1); here the KL is the sampled-token k1 estimate as in the released code (methods.md §2.5), and the reward
penalty reading of Alg. 2 is used (not "back-propagate through the estimate"). The code dump's extra
``distill_coef·mean(sg(lp_T) − lp_S)`` term is *not* ported (zero expected gradient, §2.5). Groups whose
advantages are all zero are dropped (``drop_zero_adv_groups``, "pop zero-advantage (always)", Table 2).

``mode="distill"`` — the Self-Distilled Reasoner's pure on-policy self-distillation (Zhao et al., arXiv
2601.18734, methods.md §3.3–3.5): no environment reward is used;

    L = token_mean_n Σ_v min(ℓ_{n,v}, τ),   ℓ = pointwise terms of D(p_T(·|x, I, ŷ<n) ‖ p_S(·|x, ŷ<n))

with D = ``forward_kl`` (default, OPSD v3), ``reverse_kl`` or ``generalized_jsd`` (β, TRL convention), both
logits divided by ``temperature`` (the sampling temperature), per-entry cap ``clip_tau`` (None = no cap), and
the teacher the frozen initial weights (``make_teacher("frozen")``; the paper disables the LoRA adapter,
``teacher="adapter_disabled"`` does the same for a peft model). Departures: multi-turn agent episodes instead
of single-turn math (every assistant turn is a sample, scored with its whole history as prompt);
``group_size`` samples per task (OPSD uses 1); full-vocabulary logits are materialised (fine for small
models; the chunked divergences in ``agentdistill.losses`` are not wired in here); the optional top-k loss is
not implemented.

One optimiser step per sampling round (no PPO epochs), constant learning rate. Tasks are env reset seeds
``env_seed_start + i`` for i in a seeded stream over ``range(num_tasks)`` (``common.batch_indices``); the
cursor is saved in checkpoints, and sampling seeds depend only on (seed, step), so a resumed run reproduces a
straight one exactly. Teachers ``frozen``/``current``/``synced``/``adapter_disabled`` resume exactly; an
``ema`` teacher restarts from the resumed weights (its state is not checkpointed).

Run from Python::

    from agentdistill.algos.opsd import OPSDConfig, train
    result = train(OPSDConfig(model="smollm2-135m-instruct", mode="distill", privileged=("expert_plan",),
                              steps=100, out_dir="runs/opsd-sokoban"))
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
    padded_BT,
    rollout_seed,
    task_seeds,
    RunResult,
    append_metrics,
    backward_microbatches,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    microbatches_by_tokens,
    save_checkpoint,
    seed_everything,
    truncate_metrics,
)
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
from agentdistill.policies.hf import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.runs import write_run_info
from agentdistill.scoring import score
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import Episode, TurnSample
from agentdistill.views import ViewSpec

logger = logging.getLogger(__name__)

DIVERGENCES = {"forward_kl": forward_kl, "reverse_kl": reverse_kl, "generalized_jsd": generalized_jsd}
ZERO_ADV_EPS = 1e-8


@dataclass(frozen=True)
class OPSDConfig:
    """Everything one OPSD run needs (plain values; the hydra schema wraps this later)."""

    mode: Literal["reward", "distill"] = "reward"
    """"reward": π-Distill's OPSD (R − β·KL(S‖T), GRPO/PPO); "distill": Zhao et al.'s per-token divergence."""
    model: str = "tiny-random"
    """Model spec for ``agentdistill.models.load_model`` (student and, by default, teacher weights)."""
    env_id: str = "agentdistill/Sokoban-v0"
    """Env to roll out on."""
    privileged: tuple[str, ...] = ("expert_plan",)
    """PI kinds rendered into the teacher view (env ``info["privileged"]`` keys)."""
    teacher: str | None = None
    """Teacher kind for ``make_teacher``; None: "current" in reward mode, "frozen" in distill mode."""
    ema_decay: float = 0.95
    """Decay of an "ema" teacher."""
    num_tasks: int = 64
    """Task pool: env seeds ``env_seed_start .. env_seed_start + num_tasks − 1``."""
    env_seed_start: int = 0
    """First env reset seed of the task pool."""
    tasks_per_step: int = 8
    """Tasks sampled per step (each rolled out ``group_size`` times)."""
    group_size: int = 4
    """Rollouts per task (the GRPO group); distill mode works with 1."""
    max_turns: int | None = None
    """Turn budget per episode; None uses the env's default."""
    max_new_tokens: int = 128
    """Token budget of each sampled reply."""
    temperature: float = 1.0
    """Sampling temperature; log-probs and divergences are computed at the same temperature."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; None keeps the whole conversation."""
    beta: float = 0.25
    """Reward mode: β of R − β·KL̂ (sequence-summed KL). Distill mode with generalized_jsd: the JSD β."""
    clip_low: float = 0.2
    """Reward mode: PPO ratio clipped below at 1 − clip_low."""
    clip_high: float = 0.2
    """Reward mode: PPO ratio clipped above at 1 + clip_high."""
    drop_zero_adv_groups: bool = True
    """Reward mode: drop groups whose advantages are all zero before the update."""
    divergence: Literal["forward_kl", "reverse_kl", "generalized_jsd"] = "forward_kl"
    """Distill mode: per-token full-vocabulary divergence D(p_T ‖ p_S)."""
    clip_tau: float | None = None
    """Distill mode: per-vocab-entry cap τ of the divergence terms (OPSD v3 later repo: 0.05); None = none."""
    lr: float = 1e-5
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; None does not clip."""
    steps: int = 100
    """Total optimiser steps (one per sampling round); a resumed run continues up to this."""
    max_tokens_per_microbatch: int | None = 8192
    """Padded tokens (rows × longest row) per forward pass; None puts the whole batch in one pass."""
    seed: int = 0
    """Seeds python, numpy, torch, the task order and the sampling."""
    out_dir: str = "runs/opsd"
    """Run directory: run_info.json, metrics.jsonl, checkpoints, plots."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    device: str | None = None
    """"cuda", "cpu", ...; None picks CUDA when available."""
    dtype: str | None = None
    """Model dtype; None: float32 on CPU, bfloat16 on CUDA."""


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


def rollout_metrics(result, episodes: Sequence[Episode]) -> dict[str, float]:
    """Success rate, mean return and turn counts of one sampling round."""
    m = result.metrics
    return {"success_rate": m.success_rate, "mean_return": m.mean_return, "mean_turns": m.mean_turns,
            "invalid_action_rate": m.invalid_action_rate, "episodes": len(episodes),
            "rollout_tokens_per_s": m.tokens_per_s}


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
    if cfg.mode not in ("reward", "distill"):
        raise ValueError(f"mode must be 'reward' or 'distill', got {cfg.mode!r}")
    if not cfg.privileged:
        raise ValueError("OPSD needs privileged=(...) PI kinds for the teacher view")
    # ---- set-up: seed, model, teacher (built from the initial weights, before any resume), optimiser
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    model.train()
    kind = cfg.teacher or ("current" if cfg.mode == "reward" else "frozen")
    teacher = make_teacher(kind, model, **({"decay": cfg.ema_decay} if kind == "ema" else {}))
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                      name="opsd-student")
    temperature = score_temperature(cfg.temperature)
    logger.info("OPSD (%s mode, teacher %s), %d steps, out_dir=%s", cfg.mode, kind, cfg.steps, run_dir)

    # ---- resume: weights, optimiser, RNG and task cursor; later metric lines go
    step, cursor = 0, 0
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:
        step, extra = load_checkpoint(checkpoint, model, optimizer)
        cursor = extra["cursor"]
        if kind in ("synced", "ema"):
            teacher.refresh(model)
        logger.info("resumed from %s (step %d)", checkpoint, step)
    truncate_metrics(run_dir, step)

    metrics: dict[str, float] = {}
    while step < cfg.steps:
        start = time.perf_counter()
        # ---- sample: student view acts; both views' ids are kept
        seeds = task_seeds(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed, cfg.env_seed_start)
        cursor += cfg.tasks_per_step
        model.eval()
        result = rollout(cfg.env_id, policy, seeds=seeds, group_size=cfg.group_size, tokenizer=tokenizer,
                         teacher_privileged=cfg.privileged, view=ViewSpec(history_window=cfg.history_window),
                         max_turns=cfg.max_turns, run_seed=rollout_seed(cfg.seed, step), progress=False,
                         act_on="student")
        model.train()
        episodes = result.episodes
        turns = trainable_turns(episodes)
        metrics = {"step": step + 1, **rollout_metrics(result, episodes)}
        optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}

        if cfg.mode == "reward":
            # ---- KL(S‖T) per episode into the reward, group-centred advantages, drop zero groups
            samples = [t for _, t in turns]
            kl_E = torch.zeros(len(episodes))
            adv_E = torch.zeros(len(episodes))
            if samples:
                s_BT, t_BT, mask_BT = sampler_and_other_logprobs(
                    teacher, samples, other_view="teacher", temperature=temperature,
                    max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
                kl_E, _, adv_E = episode_advantages(episodes, turns, s_BT, t_BT, mask_BT, beta=cfg.beta,
                                                    sampled_by="student")
            n_groups = len({ep.group_id for ep in episodes})
            dropped = zero_advantage_groups(episodes, adv_E) if cfg.drop_zero_adv_groups else set()
            kept = [(e, t) for e, t in turns if episodes[e].group_id not in dropped]
            adv_of = {id(t): float(adv_E[e]) for e, t in kept}
            batch = [t for _, t in kept]
            micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
            loss = backward_microbatches(
                micro,
                lambda mb, n: reward_mode_loss(model, mb, [adv_of[id(t)] for t in mb],
                                               temperature=temperature, clip_low=cfg.clip_low,
                                               clip_high=cfg.clip_high, normalizer=n,
                                               stats=stats),
                mode="token_mean")
            n_tokens = sum(len(t.response_ids) for t in batch)
            metrics |= {"mean_kl": float(kl_E.mean()) if len(episodes) else 0.0,
                        "zero_adv_frac": len(dropped) / max(n_groups, 1),
                        "clip_frac": stats.get("clipped_tokens", 0.0) / max(n_tokens, 1),
                        "mean_abs_adv": float(adv_E.abs().mean()) if len(episodes) else 0.0,
                        "loss_pg": loss}
        else:
            # ---- per-token divergence to the (frozen) teacher over the student's own samples
            batch = [t for _, t in turns]
            micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)

            def distill_loss(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
                loss_BT, mask_BT = distill_token_losses(model, teacher, mb, divergence=cfg.divergence,
                                                        temperature=temperature, clip_tau=cfg.clip_tau,
                                                        beta=cfg.beta)
                return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=n)

            loss = backward_microbatches(micro, distill_loss, mode="token_mean")
            n_tokens = sum(len(t.response_ids) for t in batch)
            kl_E = torch.zeros(len(episodes))
            if batch:
                s_BT, t_BT, mask_BT = sampler_and_other_logprobs(
                    teacher, batch, other_view="teacher", temperature=temperature,
                    max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
                kl_E, _, _ = episode_advantages(episodes, turns, s_BT, t_BT, mask_BT, beta=0.0,
                                                sampled_by="student")
            metrics |= {"mean_kl": float(kl_E.mean()) if len(episodes) else 0.0, "loss_divergence": loss}

        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf"))
        if batch:
            optimizer.step()
        teacher.refresh(model)
        step += 1

        # ---- log, then checkpoint (a crash between the two is undone by truncate_metrics on resume)
        elapsed = time.perf_counter() - start
        tokens = sum(len(t.student_prompt_ids) + len(t.response_ids) for t in batch)
        metrics |= {"loss": loss, "grad_norm": float(grad_norm), "lr": optimizer.param_groups[0]["lr"],
                    "turns": len(batch), "response_tokens": n_tokens, "microbatches": len(micro),
                    "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0}
        append_metrics(run_dir, metrics)
        logger.info("step %d loss %.4f success %.2f", step, loss, metrics["success_rate"])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run_dir, step, model, optimizer, {"cursor": cursor})

    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots" / "learning_curves.png",
                 ["loss", "mean_kl", "success_rate"])
    return RunResult(final_step=step, metrics=metrics, run_dir=run_dir)
