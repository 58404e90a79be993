"""SFT on expert action traces ("SFT without chain of thought").

The student is fine-tuned by maximum likelihood on the replies of successful expert episodes: for each
assistant turn, the loss is the mean negative log-probability of the reply tokens given the student's
own view of the conversation so far,

    L = −(1/N) Σ_turns Σ_t log π_θ(y_t | x_student, y_<t),   N = response tokens in the optimiser step.

Only the student view (``student_prompt_ids``) is trained on — never the teacher view, never privileged
information — and only response tokens carry loss (prompt, env and tool tokens are masked). Scripted expert
replies are the action text plus the end-of-turn token, so the model also learns to stop.

Simplifications: a constant learning rate (no warm-up or decay), one AdamW group, and no evaluation
inside the loop (roll the trained checkpoint out with ``agentdistill.rollout`` to evaluate it).

Run from Python::

    from agentdistill.algos.sft import SFTConfig, train
    result = train(SFTConfig(model="smollm2-135m-instruct", env_id="agentdistill/Sokoban-v0",
                             num_expert_episodes=256, steps=200, out_dir="runs/sft-sokoban"))
    print(result.final_step, result.metrics["loss"])

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from agentdistill.report import plot_metrics
from agentdistill.algos.common import (
    RunResult,
    append_metrics,
    backward_microbatches,
    batch_indices,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    microbatches_by_tokens,
    save_checkpoint,
    seed_everything,
    truncate_metrics,
)
from agentdistill.losses import reduce_loss
from agentdistill.models import load_model
from agentdistill.runs import write_run_info
from agentdistill.scoring import score
from agentdistill.types import Episode, TurnSample, load_episodes, save_episodes
from agentdistill.views import ViewSpec, encode, end_of_turn_ids, render_turn

logger = logging.getLogger(__name__)

EXPERT_EPISODES_FILE = "expert_episodes.jsonl"


@dataclass(frozen=True)
class SFTConfig:
    """Everything one SFT run needs (plain values; the hydra schema wraps this later)."""

    model: str = "tiny-random"
    """Student model spec for ``agentdistill.models.load_model``."""
    episodes_path: str | None = None
    """JSONL of episodes written by ``save_episodes``; None collects expert episodes from ``env_id``."""
    env_id: str = "agentdistill/Sokoban-v0"
    """Env to collect expert episodes on when ``episodes_path`` is None."""
    num_expert_episodes: int = 64
    """Expert episodes to collect (env seeds ``env_seed_start ..``); only the won ones are kept."""
    env_seed_start: int = 0
    """First env reset seed of the collected expert episodes."""
    max_turns: int | None = None
    """Turn budget of collected episodes; None uses the env's default."""
    history_window: int | None = None
    """Past exchanges kept in each student prompt; None keeps the whole conversation."""
    lr: float = 1e-5
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; None does not clip."""
    steps: int = 100
    """Total optimiser steps of the run (a resumed run continues up to this)."""
    batch_turns: int = 32
    """Turn samples per optimiser step."""
    max_tokens_per_microbatch: int | None = 8192
    """Padded tokens (rows × longest row) per forward pass; None puts the whole batch in one pass."""
    seed: int = 0
    """Seeds python, numpy, torch and the data order."""
    out_dir: str = "runs/sft"
    """Run directory: run_info.json, metrics.jsonl, checkpoints, plots."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    device: str | None = None
    """"cuda", "cpu", ...; None picks CUDA when available."""
    dtype: str | None = None
    """Model dtype; None: float32 on CPU, bfloat16 on CUDA."""


def train(cfg: SFTConfig) -> RunResult:
    """Run (or resume) SFT as ``cfg`` says; returns the final step, the last metrics and the run directory."""
    # ---- set-up: seed, model, data, optimiser
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
    model.train()
    turns = expert_turns(cfg, tokenizer, run_dir)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    logger.info("SFT on %d expert turns, %d steps, out_dir=%s", len(turns), cfg.steps, run_dir)

    # ---- resume: the checkpoint fixes weights, optimiser, RNG and data cursor; later metric lines go
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
        batch = [turns[i] for i in batch_indices(len(turns), cfg.batch_turns, cursor, cfg.seed)]
        cursor += len(batch)

        # ---- loss: −mean log-prob of response tokens over the whole step, accumulated per micro-batch
        micro = microbatches_by_tokens(batch, cfg.max_tokens_per_microbatch)
        optimizer.zero_grad(set_to_none=True)
        loss = backward_microbatches(
            micro, lambda mb, n: nll_loss(model, mb, normalizer=n), mode="token_mean")
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf"))
        optimizer.step()
        step += 1

        # ---- log, then checkpoint (a crash between the two is undone by truncate_metrics on resume)
        elapsed = time.perf_counter() - start
        tokens = sum(len(s.student_prompt_ids) + len(s.response_ids) for s in batch)
        metrics = {
            "step": step,
            "loss": loss,
            "grad_norm": float(grad_norm),
            "lr": optimizer.param_groups[0]["lr"],
            "tokens": tokens,
            "response_tokens": sum(len(s.response_ids) for s in batch),
            "microbatches": len(micro),
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        }
        append_metrics(run_dir, metrics)
        logger.info("step %d loss %.4f", step, loss)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run_dir, step, model, optimizer, {"cursor": cursor})

    plot_metrics(run_dir / "metrics.jsonl", run_dir / "plots" / "learning_curves.png", ["loss", "grad_norm"])
    return RunResult(final_step=step, metrics=metrics, run_dir=run_dir)


def nll_loss(model: torch.nn.Module, samples: Sequence[TurnSample], *, normalizer: int) -> torch.Tensor:
    """Σ −log π(response tokens | student prompt) / ``normalizer`` over one micro-batch (student view)."""
    scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples])
    return reduce_loss(-scored.logprobs_BT, scored.mask_BT, mode="token_mean", normalizer=normalizer)


def expert_turns(cfg: SFTConfig, tokenizer, run_dir: Path) -> list[TurnSample]:
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
                         "the episodes file or raise num_expert_episodes / max_turns")
    return turns


def collect_expert_episodes(cfg: SFTConfig, tokenizer) -> list[Episode]:
    """Roll out the env's scripted expert on seeds ``env_seed_start ..``, with student-view token ids."""
    from agentdistill.envs import default_interface
    from agentdistill.policies import ExpertPolicy
    from agentdistill.rollout import rollout

    seeds = range(cfg.env_seed_start, cfg.env_seed_start + cfg.num_expert_episodes)
    expert = ExpertPolicy(default_interface(cfg.env_id))
    result = rollout(cfg.env_id, expert, seeds=seeds, tokenizer=tokenizer,
                     view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.max_turns,
                     run_seed=cfg.seed, progress=False)
    logger.info("expert: %d episodes, success rate %.2f", len(result.episodes), result.metrics.success_rate)
    return result.episodes


def with_token_ids(turn: TurnSample, episode: Episode, tokenizer, history_window: int | None) -> TurnSample:
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
