"""Where a rollout's envs live, as a small interface (``EnvHost``), and the default host: this process.

A host ``make``s an env and returns a handle, ``reset``s a batch of handles, starts a batch of steps with
``step_async`` and hands their outcomes back from ``gather``, and ``release``s handles when their episodes end.
An outcome is either what Gymnasium returns or an ``EnvError`` — the env's exception as text and traceback, in
exactly the form ``Episode.error``/``Episode.error_traceback`` store — so an env bug is a recorded value
wherever its env lived. Every host builds envs with ``make_env``, the one call rollouts use, so a seeded episode
is byte for byte the same in any host. ``InProcessEnvs`` (here) steps envs one after another in this process;
``agentdistill.envpool.EnvPool`` hosts them in worker processes.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, SupportsFloat

import gymnasium as gym

from agentdistill import envs
from agentdistill.traces import Trace, TracePI

StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]
"""What ``gymnasium.Env.step`` returns: (observation, reward, terminated, truncated, info)."""
ResetResult = tuple[Any, dict[str, Any]]
"""What ``gymnasium.Env.reset`` returns: (observation, info)."""


class _RemoteTraceback(Exception):
    """Carries a worker's traceback text as the ``__cause__`` of an exception re-raised in the parent."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class EnvError:
    """An env call that raised instead of returning, as a value.

    ``error`` is ``f"{type(err).__name__}: {err}"`` and ``traceback`` the full ``traceback.format_exception``
    text: the forms ``Episode.error`` and ``Episode.error_traceback`` store, identical whether the env ran in
    this process or in a worker.
    """

    error: str
    traceback: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    """The exception itself, when it could travel from a worker process (None if it does not pickle)."""
    worker_died: bool = False
    """True when the env was lost with its worker process (``EnvPool``) rather than raising by itself."""

    @classmethod
    def of(cls, err: BaseException, *, extra: str = "", worker_died: bool = False) -> EnvError:
        return cls(f"{type(err).__name__}: {err}", "".join(traceback.format_exception(err)) + extra, err, worker_died)

    def reraise(self) -> NoReturn:
        """Raise the original exception; one that came from a worker carries the worker's traceback text as its
        cause (its frames stayed behind), and one that could not travel becomes a RuntimeError with its text."""
        if self.exception is None:
            raise RuntimeError(self.error) from _RemoteTraceback(self.traceback)
        if self.exception.__traceback__ is None and not self.worker_died:
            raise self.exception from _RemoteTraceback(self.traceback)
        raise self.exception


StepOutcome = StepResult | EnvError
ResetOutcome = ResetResult | EnvError


@dataclass(frozen=True)
class EnvHandle:
    """An env that lives in an ``EnvHost``; only that host can step it."""

    key: int


@dataclass(frozen=True)
class StepTicket:
    """A batch of steps handed to ``EnvHost.step_async``; ``gather`` it once for the outcomes."""

    key: int


def make_env(
    env_id: str,
    *,
    privileged: Sequence[str] = (),
    max_turns: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    pi_traces: Mapping[str, Trace] | None = None,
) -> gym.Env:
    """The env a rollout plays: ``envs.make`` (with its ``TurnLimit``), under ``TracePI`` when collected traces
    serve the ``expert_trace`` PI kind.

    The only way rollouts build envs, in this process and in pool workers alike, so that where an env lives
    never changes its episode.
    """
    env = envs.make(env_id, privileged=privileged, max_turns=max_turns, **dict(env_kwargs or {}))
    return env if pi_traces is None else TracePI(env, pi_traces)


def step_env(env: gym.Env, action: str) -> StepOutcome:
    """``env.step(action)``, with an exception returned as an ``EnvError`` instead of raised."""
    try:
        return env.step(action)
    except Exception as err:  # the rollout boundary: an env bug becomes a recorded value, not a lost run
        return EnvError.of(err)


def reset_env(env: gym.Env, seed: int | None) -> ResetOutcome:
    """``env.reset(seed=seed)``, with an exception returned as an ``EnvError`` instead of raised."""
    try:
        return env.reset(seed=seed)
    except Exception as err:  # as in step_env
        return EnvError.of(err)


def close_env(env: gym.Env) -> None:
    """``env.close()``; an exception there is a warning, since the episode it served is already recorded."""
    try:
        env.close()
    except Exception as err:  # must not take down the other envs of a worker, or mask the rollout's own error
        warnings.warn(f"closing {env} raised {type(err).__name__}: {err}", RuntimeWarning, stacklevel=2)


class EnvHost(Protocol):
    """Where a rollout's envs live and how they are driven, in batches. Outcomes come back in input order."""

    def make(self, env_id: str, *, privileged: Sequence[str] = (), max_turns: int | None = None,
             env_kwargs: Mapping[str, Any] | None = None,
             pi_traces: Mapping[str, Trace] | None = None) -> EnvHandle:
        """Make an env with ``make_env``. A bad request (unknown id, kwargs or PI kind) raises here or, in a
        pool, comes back as the first ``reset`` outcome of its handle."""
        ...

    def reset(self, handles: Sequence[EnvHandle], seeds: Sequence[int | None]) -> list[ResetOutcome]:
        """Reset every env of ``handles`` with its seed, and wait for all of them."""
        ...

    def step_async(self, steps: Sequence[tuple[EnvHandle, str]]) -> StepTicket:
        """Start one step of each env in ``steps`` (at most one per env); ``gather`` waits for them."""
        ...

    def gather(self, ticket: StepTicket) -> list[StepOutcome]:
        """The outcomes of the steps ``ticket`` started, in their order."""
        ...

    def release(self, handles: Sequence[EnvHandle]) -> None:
        """Close and forget these envs (a rollout releases its envs when it ends)."""
        ...


class InProcessEnvs:
    """Envs made and stepped in this process, one after another (``step_async`` steps before it returns):
    ``rollout``'s default, with nothing to start or close."""

    def __init__(self) -> None:
        self._envs: dict[EnvHandle, gym.Env] = {}
        self._stepped: dict[StepTicket, list[StepOutcome]] = {}
        self._count = 0

    def make(self, env_id: str, *, privileged: Sequence[str] = (), max_turns: int | None = None,
             env_kwargs: Mapping[str, Any] | None = None,
             pi_traces: Mapping[str, Trace] | None = None) -> EnvHandle:
        env = make_env(env_id, privileged=privileged, max_turns=max_turns, env_kwargs=env_kwargs, pi_traces=pi_traces)
        handle = EnvHandle(self._next())
        self._envs[handle] = env
        return handle

    def reset(self, handles: Sequence[EnvHandle], seeds: Sequence[int | None]) -> list[ResetOutcome]:
        return [reset_env(self._envs[h], seed) for h, seed in zip(handles, seeds, strict=True)]

    def step_async(self, steps: Sequence[tuple[EnvHandle, str]]) -> StepTicket:
        ticket = StepTicket(self._next())
        self._stepped[ticket] = [step_env(self._envs[h], action) for h, action in steps]
        return ticket

    def gather(self, ticket: StepTicket) -> list[StepOutcome]:
        return self._stepped.pop(ticket)

    def release(self, handles: Sequence[EnvHandle]) -> None:
        for handle in handles:
            close_env(self._envs.pop(handle))

    def _next(self) -> int:
        self._count += 1
        return self._count
