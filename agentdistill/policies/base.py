"""The Policy protocol: ``act(prompts) -> completions``, batched, with per-prompt sampling seeds."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

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


_S = TypeVar("_S", bound="TokenIdSampler")


class TokenIdSampler:
    """What the engines fed prompt token ids share (``VLLMPolicy``, ``ServerPolicy``): ``act`` passes each
    prompt's rendered ids and sampling seed to ``generate``, and ``variant`` is the same engine at another
    temperature, token budget and name. Subclasses set ``temperature``, ``max_new_tokens`` and ``name``."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()
    temperature: float
    max_new_tokens: int
    name: str

    def variant(self: _S, *, temperature: float, max_new_tokens: int, name: str) -> _S:
        """The same engine (its weights, cache, connections) sampling at another temperature and budget."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        other = copy.copy(self)
        other.temperature, other.max_new_tokens, other.name = temperature, max_new_tokens, name
        return other

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        if any(p.token_ids is None for p in prompts):
            raise ValueError(f"{type(self).__name__} needs token ids: pass the tokenizer to rollout()")
        return self.generate([list(p.token_ids) for p in prompts if p.token_ids is not None],
                             [p.sample_seed for p in prompts])

    def generate(self, prompt_ids: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Completion]:
        raise NotImplementedError

