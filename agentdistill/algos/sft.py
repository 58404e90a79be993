"""SFT on expert action traces ("SFT without chain of thought").

The student is fine-tuned by maximum likelihood on the replies of successful expert episodes: for each
assistant turn, the loss is the mean negative log-probability of the reply tokens given the student's
own view of the conversation so far,

    L = −(1/N) Σ_turns Σ_t log π_θ(y_t | x_student, y_<t),   N = response tokens in the optimiser step.

By default only the student view (``student_prompt_ids``) is trained on; ``views=[student, teacher]`` also
trains each reply under the teacher view (the prompt with the env's PI block), which is how the PI methods'
warm start teaches the model to read its PI. Only response tokens carry loss (prompt, env and tool tokens
are masked). Scripted expert replies are the action text plus the end-of-turn token, so the model also learns to stop.

The episodes are collected once with the env's ``ExpertPolicy`` on the ``num_tasks`` training tasks (env
seeds ``env_seed_start ..``) and saved in the run directory, or loaded from ``episodes_path``. Each optimiser
step takes ``batch_turns`` turns from a seeded stream of shuffles (the cursor is checkpointed, so a resumed
run reproduces a straight one). The learning-rate schedule, optimiser and held-out evaluation of the student
(before training, every ``eval.every`` steps and at the end) are the shared ones of ``TrainConfig``.

Run from the command line::

    agentdistill train algo=sft env=sokoban model=tiny-random steps=2

or from Python::

    from agentdistill.algos.sft import SFTConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(SFTConfig(model=ModelConfig("smollm2-135m-instruct"),
                             env=EnvConfig("agentdistill/Sokoban-v0"), num_tasks=256, steps=200,
                             out_dir="runs/sft-sokoban"))
    print(result.final_step, result.metrics["loss"])

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from agentdistill.algos.batch import microbatches_by_tokens
from agentdistill.algos.common import (
    RunResult,
    batch_indices,
    begin_step,
    checkpoint_due,
    eval_due,
    evaluate,
    finish_run,
    log_step,
    start_run,
    update,
    view_spec,
)
from agentdistill.checkpoints import save_checkpoint
from agentdistill.config import TrainConfig, env_kwargs
from agentdistill.losses import reduce_loss
from agentdistill.scoring import score
from agentdistill.types import Episode, TurnSample, load_episodes, save_episodes
from agentdistill.views import ViewSpec, encode, end_of_turn_ids, render_turn

logger = logging.getLogger(__name__)

EXPERT_EPISODES_FILE = "expert_episodes.jsonl"


@dataclass
class SFTConfig(TrainConfig):
    """SFT's own knobs; the shared ones (model, env, optimiser, eval, run) come from TrainConfig.

    ``num_tasks`` is the number of expert episodes collected (env seeds ``env_seed_start ..``). SFT does not
    sample: ``group_size``, ``temperature`` and ``tasks_per_step`` are unused (``max_new_tokens`` and
    ``rollout_batch`` only bound held-out evaluation).
    """

    episodes_path: str | None = None
    """JSONL of episodes written by ``save_episodes``; null collects expert episodes on ``env``."""
    batch_turns: int = 32
    """Expert turns per optimiser step."""
    views: list[str] = field(default_factory=lambda: ["student"])
    """Views each expert reply is trained under: student (no PI; the deployment prompt) and/or teacher (with
    ``env.teacher_privileged``, so the teacher view learns to read its PI block: the warm start of the PI
    methods). With both, a step has 2 × batch_turns samples."""
    lr: float = 1e-5
    """Peak AdamW learning rate."""
    out_dir: str = "runs/sft"
    """Run directory."""


def train(cfg: SFTConfig) -> RunResult:
    """Run (or resume) SFT as ``cfg`` says; returns the final step, the last metrics and the run directory."""
    if cfg.batch_turns < 1:
        raise ValueError(f"batch_turns must be >= 1, got {cfg.batch_turns}")
    if not cfg.views or set(cfg.views) - {"student", "teacher"}:
        raise ValueError(f"views must be a non-empty subset of [student, teacher], got {cfg.views}")
    if "teacher" in cfg.views and not cfg.env.teacher_privileged:
        raise ValueError("views has teacher but env.teacher_privileged is empty: name the PI kinds the teacher "
                         "view reads (env.teacher_privileged=[expert_plan]) or train views=[student]")
    # ---- set-up: seed, model, optimiser, resume, evaluation before training; then the expert turns
    run = start_run(cfg, state={"cursor": 0})
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    turns = expert_turns(cfg, run.tokenizer, run.run_dir)
    logger.info("SFT on %d expert turns, %d steps, out_dir=%s", len(turns), cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="SFT",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        picked = [turns[i] for i in batch_indices(len(turns), cfg.batch_turns, cursor, cfg.seed)]
        batch = view_samples(picked, cfg.views)

        # ---- loss: −mean log-prob of response tokens over the whole step, accumulated per micro-batch
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
        loss, grad_norm = update(run, micro, lambda mb, n: nll_loss(model, mb, normalizer=n))
        cursor += len(picked)

        # ---- log, evaluate, checkpoint
        metrics = log_step(run, step, {
            "loss": loss,
            "grad_norm": grad_norm,
            "tokens": sum(len(s.student_prompt_ids) + len(s.response_ids) for s in batch),
            "response_tokens": sum(len(s.response_ids) for s in batch),
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor})
    return finish_run(run, step, metrics)


def nll_loss(model: torch.nn.Module, samples: Sequence[TurnSample], *, normalizer: int) -> torch.Tensor:
    """Σ −log π(response tokens | student prompt) / ``normalizer`` over one micro-batch (student view)."""
    scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples])
    return reduce_loss(-scored.logprobs_BT, scored.mask_BT, mode="token_mean", normalizer=normalizer)


def view_samples(turns: Sequence[TurnSample], views: Sequence[str]) -> list[TurnSample]:
    """One sample per turn and view; a teacher-view sample is the turn with its teacher prompt in the student
    slot (the loss reads ``student_prompt_ids``)."""
    out = []
    for t in turns:
        if "student" in views:
            out.append(t)
        if "teacher" in views:
            if t.teacher_prompt_ids is None:
                raise ValueError(f"turn {t.turn} of episode {t.episode_id!r} has no teacher view: collect the "
                                 "expert episodes with env.teacher_privileged set (or train views=[student])")
            out.append(replace(t, student_prompt_ids=t.teacher_prompt_ids))
    return out


def expert_turns(cfg: SFTConfig, tokenizer: Any, run_dir: Path) -> list[TurnSample]:
    """The training turns: every turn of every won, error-free episode, with student-view token ids.

    Episodes come from ``cfg.episodes_path``, or are collected once with ``ExpertPolicy`` and saved in the
    run directory (a resumed run reloads that file rather than collecting again).
    """
    if cfg.episodes_path is not None:
        episodes = load_episodes(cfg.episodes_path)
    elif (run_dir / EXPERT_EPISODES_FILE).exists():
        episodes = load_episodes(run_dir / EXPERT_EPISODES_FILE)
    else:
        episodes = collect_expert_episodes(cfg, tokenizer)
        save_episodes(run_dir / EXPERT_EPISODES_FILE, episodes)
    kept = [ep for ep in episodes if ep.won and ep.error is None]
    turns = [with_token_ids(t, ep, tokenizer, cfg.history_window) for ep in kept for t in ep.turns]
    if not turns:
        raise ValueError(f"no successful expert episode among {len(episodes)}: SFT needs won episodes; check "
                         "the episodes file or raise num_tasks / env.max_turns")
    return turns


def collect_expert_episodes(cfg: SFTConfig, tokenizer: Any) -> list[Episode]:
    """Roll out the env's scripted expert on seeds ``env_seed_start ..`` (``num_tasks`` of them), with
    student-view token ids."""
    from agentdistill.envs import default_interface
    from agentdistill.policies import ExpertPolicy
    from agentdistill.rollout import rollout

    seeds = range(cfg.env_seed_start, cfg.env_seed_start + cfg.num_tasks)
    interface = default_interface(cfg.env.id, **cfg.env.interface)
    privileged = list(cfg.env.teacher_privileged) if "teacher" in cfg.views else []
    result = rollout(cfg.env.id, ExpertPolicy(interface), seeds=seeds, interface=interface, tokenizer=tokenizer,
                     teacher_privileged=privileged, view=view_spec(cfg), max_turns=cfg.env.max_turns,
                     env_kwargs=env_kwargs(cfg.env.kwargs),
                     run_seed=cfg.seed, progress=False)
    logger.info("expert: %d episodes, success rate %.2f", len(result.episodes), result.metrics.success_rate)
    return result.episodes


def with_token_ids(turn: TurnSample, episode: Episode, tokenizer: Any, history_window: int | None) -> TurnSample:
    """``turn`` with student-view ids: kept when stored, else rendered from the episode's messages.

    A text-only turn gets ``render_turn`` of ``messages[:message_index]`` (student view, no PI) and the reply
    text's ids plus the end-of-turn token, as ``rollout`` stores scripted replies.
    """
    if turn.student_prompt_ids and turn.response_ids:
        return turn
    views = render_turn(tokenizer, episode.messages[: turn.message_index], pi_text=None,
                        spec=ViewSpec(history_window=history_window))
    response_ids = encode(tokenizer, turn.response_text) + end_of_turn_ids(tokenizer)[:1]
    return replace(turn, student_prompt_ids=views.student_ids, response_ids=response_ids)
