"""Skill-SD: GRPO plus importance-weighted reverse KL to a teacher view that reads skills (arXiv 2604.10674).

The student always acts under the plain prompt x. Finished episodes are summarised (off the training thread)
into skills kept in a ``SkillBank``; for each task a skill S(x) is picked among the skills of its family (the
env's task type where it has one, else the env) whose source task is most similar to this task's text, by UCB,
and rendered into the *teacher* view only, x ⊕ S(x). The student's own tokens are re-scored there by the teacher θ̄
(a copy synced from the student at the start of every iteration), and the loss is

    L = L_GRPO + λ · L_SDL,    λ = 0.001 (the paper's best)
    L_GRPO = −(1/N) Σ_i Σ_t min(r_t Â_i, clip(r_t, 1−ε_low, 1+ε_high) Â_i),  r_t = π_θ(y_t|x)/π_old(y_t|x)
    L_SDL  =  (1/N) Σ_i Σ_t ρ_t (e^{−ℓ_t} − 1 + ℓ_t),   ρ_t = π_θ(y_t|x)/sg π_old(y_t|x),
              ℓ_t = log π_θ(y_t|x) − log π_θ̄(y_t|x ⊕ S(x))

with N the step's response tokens (token-mean), Â_i the group-normalised episode reward (GRPO: centred and
divided by the group std, the paper's normalisation — without it λ's weight against the GRPO term depends on
the env's reward scale), and π_old the sampler's log-probs. Rewards are the shared definition
(``algos/rewards.py``); episodes with an env error leave the update and the group statistics. ρ makes the k3
estimator's gradient the reverse-KL one (without it, k3 on samples has the forward-KL gradient; methods §9.5).
Turns of a task with no skill yet (cold start: the bank begins empty) get the GRPO term only. Zero-advantage
groups are kept by default: the KL term still teaches on them.

Usefulness, the bandit's reward (our definition; the paper gives none): for a task whose G episodes have
unequal rewards, u = the fraction of (better, worse) episode pairs where the teacher view's log-likelihood
gain g_i = mean_t[log π_θ̄(y_t|x ⊕ S) − log π_old(y_t|x)] is larger for the better episode (ties count ½).
A skill that makes the teacher prefer what worked scores near 1, an irrelevant one near ½.

Teacher: ``synced`` (θ̄ ← θ at the start of every iteration; the paper's), ``frozen`` (the initial weights) or
``ema`` (θ̄ ← d·θ̄ + (1−d)·θ after every step) for ablations. The bank is saved in every checkpoint (the loop
state) and in ``skills.json``, so a resumed run continues with the same skills. With ``async_summaries`` the
skills of step k reach the bank when they are ready (at the start of a later step), which makes runs depend
on timing, and summaries still pending at a kill are lost; set it false for bit-reproducible runs (the
summaries of step k then join the bank at the end of step k, before its checkpoint).

Run from the command line (``configs/algo/skill_sd.yaml``)::

    agentdistill train algo=skill_sd env=sokoban model=tiny-random steps=2

Summarisers: ``summariser=template`` (deterministic, no model), ``summariser=llm endpoint.base_url=...
endpoint.model=...`` (any OpenAI-compatible server), ``summariser=model`` (the training model itself).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from agentdistill.algos.batch import microbatches_by_tokens, padded_BT, sampler_logprobs_BT
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
from agentdistill.algos.distill import copy_teacher, resumed_teacher
from agentdistill.algos.rewards import episode_rewards, group_advantages, zero_signal_groups
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import EndpointConfig, TrainConfig
from agentdistill.losses import iw_k3, ppo_clip, ppo_clipped, reduce_loss
from agentdistill.scoring import score
from agentdistill.skills import LLMSummariser, ModelSummariser, SkillBank, SkillWorker, TemplateSummariser
from agentdistill.skills.summarise import Summariser
from agentdistill.types import Episode, TurnSample
from agentdistill.views import ViewSpec, render_turn

logger = logging.getLogger(__name__)

TEACHERS = ("synced", "frozen", "ema")
SUMMARISERS = ("template", "llm", "model")


@dataclass
class SkillSDConfig(TrainConfig):
    """Skill-SD's own knobs; the shared ones come from TrainConfig."""

    lam: float = 0.001
    """λ, the weight of the importance-weighted k3 reverse KL (token-mean, like the GRPO term)."""
    clip_low: float = 0.2
    """ε_low of the PPO ratio clip."""
    clip_high: float = 0.28
    """ε_high (asymmetric, DAPO-style; the paper's value is not published)."""
    scale_by_std: bool = True
    """Divide group-centred advantages by the group's reward std (the paper's GRPO normalisation)."""
    drop_zero_adv_groups: bool = False
    """Drop all-equal-reward groups (they still carry the KL term, so kept by default)."""
    teacher: str = "synced"
    """synced (θ̄ ← θ every iteration; the paper's), frozen (initial weights) or ema."""
    ema_decay: float = 0.95
    """Decay of an ema teacher."""
    summariser: str = "template"
    """template (deterministic), llm (endpoint), or model (the training model itself, between updates)."""
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    """The summariser's OpenAI-compatible endpoint (summariser=llm)."""
    async_summaries: bool = True
    """Summarise off the training thread (skills land when ready); false: inline, bit-reproducible."""
    summary_attempts: int = 3
    """Tries per summary before it is dropped (failures are counted, never raised)."""
    skills_per_prompt: int = 1
    """Skills rendered into each teacher view (the UCB top-k among the task's most similar skills)."""
    similar_skills: int = 4
    """Candidates per selection: the skills of the family whose source tasks are most similar to this one."""
    ucb_exploration: float = 1.0
    """c in UCB1's  ū + c·sqrt(2 ln N / n)."""
    temperature: float = 1.0
    """Sampling temperature of the student's rollouts."""
    lr: float = 1e-6
    """Peak AdamW learning rate."""
    max_skills_per_family: int = 32
    """Bank capacity per task family (the least useful skill is evicted)."""
    initial_skills: str | None = None
    """A skills.json to start the bank from (e.g. another run's); null: empty bank (cold start)."""
    out_dir: str = "runs/skill_sd"
    """Run directory."""


def train(cfg: SkillSDConfig) -> RunResult:
    """Run (or resume) Skill-SD as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    _check(cfg)
    # ---- set-up: a frozen/ema/synced teacher copy from the initial weights, then start_run resumes
    initial, tokenizer = load_initial_model(cfg)
    teacher = copy_teacher(cfg.teacher, initial, ema_decay=cfg.ema_decay)
    bank = _initial_bank(cfg)
    run = start_run(cfg, state={"cursor": 0, "bank": bank.to_dict()}, model=initial, tokenizer=tokenizer)
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    bank = _bank_from_state(cfg, run.state["bank"])
    teacher, modules = resumed_teacher(cfg.teacher, teacher, model, run.resumed_from)
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    worker = SkillWorker(_summariser(cfg, model, tokenizer), asynchronous=cfg.async_summaries,
                         max_attempts=cfg.summary_attempts)
    policy = sampling_policy(run, "skill-sd-student")
    logger.info("Skill-SD (λ=%g, teacher %s, summariser %s) on %s, %d steps, out_dir=%s", cfg.lam, cfg.teacher,
                worker.summariser.name, cfg.env.id, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    created = 0
    try:
        for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="Skill-SD",
                         disable=not cfg.progress):
            started = begin_step(run, step)
            if cfg.teacher == "synced":
                teacher.refresh(model)  # θ̄ ← θ at the start of the iteration
            created += _absorb(worker, bank, step - 1)  # async summaries that finished since the last step

            # ---- rollout: the student under the plain prompt; normalised GRPO advantages per task group
            result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step)
            episodes = usable_episodes(result.episodes, cfg.max_error_rate)
            sampled = round_metrics(run, result)  # before the update: gap vs the sampling weights
            rewards_E = episode_rewards(episodes, cfg.truncation_reward)
            adv_E = group_advantages(episodes, rewards_E, scale_by_std=cfg.scale_by_std)
            groups = _groups(episodes)

            # ---- skills: a similar task's skill per task (UCB), teacher view x ⊕ S(x) on the student's tokens
            with teacher.model_for_scoring() as teacher_model:
                teacher_lp, used = score_with_skills(
                    teacher_model, tokenizer, bank, groups,
                    {ep.episode_id: float(r) for ep, r in zip(episodes, rewards_E, strict=True)}, run.view, cfg,
                    step=step - 1)

            # ---- loss and update: GRPO + λ·IW-k3, token mean over the step's response tokens
            zero = zero_signal_groups(episodes, rewards_E)
            adv_of = {id(t): float(adv_E[e]) for e, ep in enumerate(episodes) for t in ep.turns
                      if t.response_ids and not (cfg.drop_zero_adv_groups and ep.group_id in zero)}
            samples = [t for ep in episodes for t in ep.turns if id(t) in adv_of]
            stats: dict[str, float] = {}
            micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)

            def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
                return skill_sd_loss(model, mb, [adv_of[id(t)] for t in mb], [teacher_lp.get(id(t)) for t in mb],
                                     normalizer=n, lam=cfg.lam, temperature=cfg.temperature, clip_low=cfg.clip_low,
                                     clip_high=cfg.clip_high, stats=stats)

            loss, grad_norm = update(run, micro, loss_fn)
            if cfg.teacher == "ema":
                teacher.refresh(model)

            # ---- the step's episodes go to the summariser, one job per task; the bank is written out
            created += _summarise(worker, bank, groups, step - 1, run.run_dir)
            cursor += cfg.tasks_per_step

            # ---- sync the sampler, log, evaluate, checkpoint (the bank rides in the loop state)
            sync_sampler(policy, model)
            metrics = log_step(run, step, {
                **sampled,
                "mean_reward": float(rewards_E.mean()) if len(episodes) else 0.0,
                "zero_adv_fraction": len(zero) / max(len(groups), 1),
                "loss": loss,
                "loss_grpo": stats.get("grpo", 0.0) / (tokens := max(stats.get("tokens", 0.0), 1.0)),
                "loss_sdl": stats.get("sdl", 0.0) / max(stats.get("kl_tokens", 0.0), 1.0),
                "clip_fraction": stats.get("clipped", 0.0) / tokens,
                "skill_coverage": used / max(len(groups), 1),
                "skill_tokens_fraction": stats.get("kl_tokens", 0.0) / tokens,
                "skills_created": float(created),
                "summaries_failed": float(worker.stats.failed_attempts),
                "summaries_dropped": float(worker.stats.dropped),
                "summaries_pending": float(worker.pending),
                **bank.stats(),
                "grad_norm": grad_norm,
                "trained_turns": len(samples),
                "response_tokens": sum(len(s.response_ids) for s in samples),
            }, started)
            if eval_due(cfg, step):
                evaluate(run, step)
            if checkpoint_due(cfg, step):
                save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor, "bank": bank.to_dict()},
                                modules)
    finally:
        worker.close()
    return finish_run(run, step, metrics)


def _check(cfg: SkillSDConfig) -> None:
    if cfg.teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {list(TEACHERS)}, got {cfg.teacher!r}")
    if cfg.summariser not in SUMMARISERS:
        raise ValueError(f"summariser must be one of {list(SUMMARISERS)}, got {cfg.summariser!r}")
    if cfg.summariser == "llm" and not cfg.endpoint.model:
        raise ValueError("summariser=llm needs endpoint.model=<served model> (and endpoint.base_url=...)")
    if not cfg.temperature > 0:
        raise ValueError(f"Skill-SD samples and computes ratios at temperature > 0, got {cfg.temperature}")
    if cfg.lam < 0 or cfg.skills_per_prompt < 1 or cfg.similar_skills < 1:
        raise ValueError("lam must be >= 0, skills_per_prompt and similar_skills >= 1")
    if cfg.lora.rank > 0:
        raise ValueError("Skill-SD's teacher is a copy of the full weights: LoRA runs are not supported yet "
                         "(set lora.rank=0)")


def _initial_bank(cfg: SkillSDConfig) -> SkillBank:
    if cfg.initial_skills is None:
        return _bank_from_state(cfg, SkillBank().to_dict())
    path = Path(cfg.initial_skills)
    if not path.exists():
        raise FileNotFoundError(f"initial_skills={path} does not exist: give a skills.json of an earlier run")
    return _bank_from_state(cfg, json.loads(path.read_text()))


def _bank_from_state(cfg: SkillSDConfig, state: dict) -> SkillBank:
    """The bank of a saved state with this run's selection settings (a config change applies on resume)."""
    bank = SkillBank.from_dict(state)
    bank.exploration, bank.max_per_family = cfg.ucb_exploration, cfg.max_skills_per_family
    bank.candidates = cfg.similar_skills
    return bank


def _summariser(cfg: SkillSDConfig, model: torch.nn.Module, tokenizer: Any) -> Summariser:
    if cfg.summariser == "template":
        return TemplateSummariser()
    if cfg.summariser == "model":
        return ModelSummariser(model, tokenizer)
    from agentdistill.policies.openai import OpenAIClient

    return LLMSummariser(OpenAIClient.from_config(cfg.endpoint))


def _absorb(worker: SkillWorker, bank: SkillBank, step: int) -> int:
    """Add the worker's finished summaries to the bank; returns how many."""
    done = worker.drain()
    for summary in done:
        bank.add(summary.draft, family=summary.job.family, task=task_text(summary.job.episodes[0]), step=step,
                 summariser=worker.summariser.name, source_episodes=[ep.episode_id for ep in summary.job.episodes])
    return len(done)


def score_with_skills(teacher_model: torch.nn.Module, tokenizer: Any, bank: SkillBank,
                      groups: Sequence[Sequence[Episode]], reward_of: dict[str, float], spec: ViewSpec,
                      cfg: SkillSDConfig, *, step: int) -> tuple[dict[int, tuple[float, ...]], int]:
    """(id(turn) → teacher log-probs under x ⊕ S(x), number of tasks that had a skill).

    Per task: the bank's UCB pick among the skills of the most similar tasks, the teacher's log-probs of the
    group's own tokens with it, and the skill's usefulness observation (pairwise reward/gain agreement).
    """
    teacher_lp: dict[int, tuple[float, ...]] = {}
    used = 0
    for group in groups:
        skills = bank.select(group[0].metadata["task_family"], cfg.skills_per_prompt, task=task_text(group[0]),
                             step=step)
        if not skills:
            continue
        used += 1
        lps = _teacher_logprobs(teacher_model, tokenizer, group, "\n\n".join(s.render() for s in skills), spec, cfg)
        teacher_lp.update(lps)
        group_rewards = [reward_of[ep.episode_id] for ep in group]
        u = usefulness(group, group_rewards, lps)
        for s in skills:
            bank.observe(s.skill_id, u, reward=sum(group_rewards) / len(group))
    return teacher_lp, used


def task_text(episode: Episode) -> str:
    """What makes a task this task, for skill retrieval: the goal and the first observation (Sokoban's and
    TextWorld's goals are one sentence for every level; the first observation is the level itself)."""
    first = next((m.content for m in episode.messages if m.role == "user"), "")
    return f"{episode.task}\n{first}"


def _summarise(worker: SkillWorker, bank: SkillBank, groups: Sequence[Sequence[Episode]], step: int,
               run_dir: Path) -> int:
    """Submit one summary job per task, add what is done (inline summaries already are) to the bank and
    write ``skills.json``; returns the number of skills added."""
    for group in groups:
        worker.submit(group[0].metadata["task_family"], group, step)
    created = _absorb(worker, bank, step)
    _write_bank(run_dir, bank)
    return created


def _write_bank(run_dir: Path, bank: SkillBank) -> None:
    path = run_dir / "skills.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(bank.to_dict(), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _groups(episodes: Sequence[Episode]) -> list[list[Episode]]:
    groups: dict[str, list[Episode]] = {}
    for ep in episodes:
        groups.setdefault(ep.group_id, []).append(ep)
    return list(groups.values())


def teacher_view_ids(tokenizer: Any, episode: Episode, turn: TurnSample, skill_text: str,
                     spec: ViewSpec) -> tuple[int, ...]:
    """The turn's teacher prompt x ⊕ S(x), rendered from the episode's messages like the rollout rendered x.

    Raises if re-rendering the student view does not give the ids the student sampled from (the two views
    must come from the same messages).
    """
    views = render_turn(tokenizer, episode.messages[: turn.message_index], pi_text=skill_text, spec=spec)
    if views.student_ids != turn.student_prompt_ids:
        raise RuntimeError(f"{episode.episode_id} turn {turn.turn}: re-rendered student ids differ from the "
                           "sampled prompt; the history window must match the rollout's")
    if views.teacher_ids is None:
        raise RuntimeError(f"{episode.episode_id} turn {turn.turn}: no teacher view was rendered for the skill")
    return views.teacher_ids


@torch.no_grad()
def _teacher_logprobs(teacher_model: torch.nn.Module, tokenizer: Any, group: Sequence[Episode], skill_text: str,
                      spec: ViewSpec,
                      cfg: SkillSDConfig) -> dict[int, tuple[float, ...]]:
    """id(turn) → log π_θ̄(response ids | teacher view with the skill), for every turn of the group."""
    pairs = [(ep, t) for ep in group for t in ep.turns if t.response_ids]
    if not pairs:
        return {}
    prompts = [teacher_view_ids(tokenizer, ep, t, skill_text, spec) for ep, t in pairs]
    scored = score(teacher_model, prompts, [t.response_ids for _, t in pairs], temperature=cfg.temperature,
                   max_tokens_per_microbatch=cfg.max_tokens_per_microbatch)
    lp_BT = scored.logprobs_BT.float().cpu()
    return {id(t): tuple(lp_BT[b, : len(t.response_ids)].tolist()) for b, (_, t) in enumerate(pairs)}


def usefulness(group: Sequence[Episode], rewards: Sequence[float],
               teacher_lp: dict[int, tuple[float, ...]]) -> float | None:
    """Pairwise agreement in [0, 1] between rewards and the teacher view's log-likelihood gain (None: no
    signal, i.e. equal rewards or no scored tokens); see the module docstring."""
    gains: list[float | None] = []
    for ep in group:
        deltas = [tl - sl for t in ep.turns if id(t) in teacher_lp and t.sampler_logprobs
                  for tl, sl in zip(teacher_lp[id(t)], t.sampler_logprobs, strict=False)]
        gains.append(sum(deltas) / len(deltas) if deltas else None)
    known = {i: g for i, g in enumerate(gains) if g is not None}
    pairs = [(i, j) for i in known for j in known if rewards[i] > rewards[j]]
    if not pairs:
        return None
    agree = sum(1.0 if known[i] > known[j] else 0.5 if known[i] == known[j] else 0.0 for i, j in pairs)
    return agree / len(pairs)


def skill_sd_loss(
    model: torch.nn.Module,
    samples: Sequence[TurnSample],
    advantages: Sequence[float],
    teacher_logprobs: Sequence[tuple[float, ...] | None],
    *,
    normalizer: int,
    lam: float,
    temperature: float,
    clip_low: float,
    clip_high: float,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """Σ [PPO-clip(lp_θ, lp_old, Â) + λ·IW-k3(lp_θ, lp_θ̄, lp_old)] / ``normalizer`` over one micro-batch.

    ``teacher_logprobs[i]`` is None for a turn without a skill: its tokens get the GRPO term only.
    """
    scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples],
                   temperature=temperature)
    lp_BT, mask_BT = scored.logprobs_BT, scored.mask_BT
    old_BT = sampler_logprobs_BT(samples, lp_BT)
    adv_BT = torch.tensor(advantages, dtype=lp_BT.dtype, device=lp_BT.device)[:, None].expand_as(lp_BT)
    pg_BT = ppo_clip(lp_BT, old_BT, adv_BT, mask_BT, clip_low=clip_low, clip_high=clip_high)
    has_teacher_B = torch.tensor([t is not None for t in teacher_logprobs], device=lp_BT.device)
    kl_mask_BT = mask_BT & has_teacher_B[:, None]
    teacher_BT = padded_BT([t or () for t in teacher_logprobs], lp_BT)
    sdl_BT = iw_k3(lp_BT, teacher_BT, old_BT, kl_mask_BT)
    if stats is not None:
        with torch.no_grad():
            for key, value in (("grpo", float(pg_BT[mask_BT].sum())), ("sdl", float(sdl_BT[kl_mask_BT].sum())),
                               ("tokens", float(mask_BT.sum())), ("kl_tokens", float(kl_mask_BT.sum())),
                               ("clipped", float(ppo_clipped(lp_BT, old_BT, adv_BT, mask_BT, clip_low=clip_low,
                                                             clip_high=clip_high).sum()))):
                stats[key] = stats.get(key, 0.0) + value
    return reduce_loss(pg_BT + lam * sdl_BT, mask_BT, mode="token_mean", normalizer=normalizer)
