"""The Policy protocol: ``act(prompts) -> completions``, batched, with per-prompt sampling seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agentdistill.types import FinishReason, Message


@dataclass(frozen=True)
class Prompt:
    """What a policy sees for one turn.

    ``messages`` and ``token_ids`` are the student view (never privileged information). ``privileged`` is
    filled only for policies that declare ``sees_privileged = True`` (scripted experts), never for a model
    being trained or evaluated.
    """

    messages: tuple[Message, ...]
    token_ids: tuple[int, ...] | None
    """The rendered student prompt, when the rollout has a tokenizer; token-level policies must use it."""
    sample_seed: int
    """Seed for this prompt's sampling, derived from (run seed, task, sample, turn): batching never changes it."""
    admissible_actions: tuple[str, ...] | None = None
    privileged: Mapping[str, Any] | None = None
    task_id: str | None = None
    """The env's task id (public): agents that retrieve demonstrations use it to leave out the task itself."""
    episode_id: str | None = None
    """The rollout's episode id: agents that keep per-episode accounts (the ICD cascade) key them by it."""
    goal: str | None = None
    """The task text (``info["task"]``)."""


@dataclass(frozen=True)
class Completion:
    """One reply: its text and, for sampled replies, the exact ids and their sampler log-probs."""

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    finish_reason: FinishReason = "stop"
    cost_usd: float = 0.0
    """What producing this reply was billed (HTTP policies); 0 for local models and scripts."""
    prompt_tokens: int | None = None
    """Prompt tokens the provider billed for this reply's request (HTTP policies); None when not reported."""
    completion_tokens: int | None = None
    """Completion tokens the provider billed (HTTP policies); None when not reported."""


@runtime_checkable
class Policy(Protocol):
    """Anything that answers a batch of prompts.

    Attributes:
        name: shown in logs and stored with episodes.
        sees_privileged: True only for scripted policies that read ``Prompt.privileged``.
        needs_privileged: PI kinds the rollout must request from the env for this policy.
    """

    name: str
    sees_privileged: bool
    needs_privileged: tuple[str, ...]

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        """One completion per prompt, in order."""
        ...


def sample_seed(run_seed: int, task_seed: int, sample: int, turn: int) -> int:
    """A well-mixed 63-bit seed for one (task, sample, turn), independent of batch layout and ordering."""
    state = np.random.SeedSequence([run_seed & 0xFFFFFFFF, task_seed & 0xFFFFFFFF, sample, turn])
    return int(state.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))
