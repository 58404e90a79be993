"""The worker side of ``agentdistill.envpool.EnvPool``: the requests a worker process serves and its loop.

A worker builds envs with ``make_env`` (the call the in-process host uses), answers every request but a release
with one ``_Reply`` carrying the request's ``rid``, and sends only what pickles: an env's exception that would
not survive the trip goes as text, an unpicklable observation as an ``EnvPoolError`` outcome.
"""

from __future__ import annotations

import faulthandler
import pickle
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym

from agentdistill.envhost import EnvError, close_env, make_env, reset_env, step_env
from agentdistill.traces import Trace


class EnvPoolError(RuntimeError):
    """The pool cannot do what was asked (closed, a worker failed to start, an env id unknown to the workers)."""

# Requests a worker serves, in the order they arrive. Every request but a release is answered by one _Reply
# with the same ``rid`` (a make by an empty one), so the parent can tell the worker's progress by its replies.


@dataclass(frozen=True)
class _Make:
    rid: int
    key: int
    env_id: str
    privileged: tuple[str, ...]
    max_turns: int | None
    env_kwargs: Mapping[str, Any]
    traces_key: int | None
    traces: Mapping[str, Trace] | None
    """Sent once per worker for each traces mapping (``traces_key`` names it afterwards): trace files are big."""


@dataclass(frozen=True)
class _Reset:
    rid: int
    items: tuple[tuple[int, int | None], ...]


@dataclass(frozen=True)
class _Step:
    rid: int
    items: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class _Release:
    keys: tuple[int, ...]


@dataclass(frozen=True)
class _Reply:
    rid: int
    outcomes: list[Any]


@dataclass(frozen=True)
class _Ready:
    init_error: EnvError | None = None


def _serve(conn: Connection, initializer: Callable[[], None] | None, crash_log: str) -> None:
    """A worker's whole life: run ``initializer``, then serve requests until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes the pool
    # Open for the process's whole life: faulthandler writes the Python stack into it if the process crashes.
    log = open(crash_log, "w")  # noqa: SIM115
    faulthandler.enable(log, all_threads=True)
    try:
        if initializer is not None:
            initializer()
    except Exception as err:  # reported to the parent, which raises it where the pool was asked to start
        conn.send(_Ready(_portable(EnvError.of(err))))
        return
    conn.send(_Ready())
    made: dict[int, gym.Env | EnvError] = {}
    traces: dict[int, Mapping[str, Trace]] = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent closed the pool or died: nothing is left to serve
            break
        outcomes = _answer(request, made, traces)
        if outcomes is not None:
            _send_reply(conn, _Reply(request.rid, outcomes))
    for env in made.values():
        if isinstance(env, gym.Env):
            close_env(env)


def _answer(request: Any, made: dict[int, gym.Env | EnvError],
            traces: dict[int, Mapping[str, Trace]]) -> list[Any] | None:
    """Serve one request; the reply's outcomes, or None for a release (which is not answered)."""
    if isinstance(request, _Release):
        for key in request.keys:
            env = made.pop(key, None)
            if isinstance(env, gym.Env):
                close_env(env)
        return None
    if isinstance(request, _Make):
        made[request.key] = _make_in_worker(request, traces)
        return []
    if isinstance(request, _Reset):
        return [_portable_outcome(env if isinstance(env := made[key], EnvError) else reset_env(env, seed))
                for key, seed in request.items]
    if isinstance(request, _Step):
        return [_portable_outcome(env if isinstance(env := made[key], EnvError) else step_env(env, action))
                for key, action in request.items]
    raise TypeError(f"env worker got an unknown request {request!r}")


def _make_in_worker(request: _Make, traces: dict[int, Mapping[str, Trace]]) -> gym.Env | EnvError:
    if request.traces_key is not None and request.traces is not None:
        traces[request.traces_key] = request.traces
    pi_traces = None if request.traces_key is None else traces[request.traces_key]
    try:
        return make_env(request.env_id, privileged=request.privileged, max_turns=request.max_turns,
                        env_kwargs=request.env_kwargs, pi_traces=pi_traces)
    except Exception as err:  # a bad request is answered at the handle's first reset, where rollout raises it
        return EnvError.of(err)


def _portable_outcome(outcome: Any) -> Any:
    return _portable(outcome) if isinstance(outcome, EnvError) else outcome


def _portable(err: EnvError) -> EnvError:
    """``err`` without its exception object when that would not survive the trip to the parent (an exception
    class whose constructor does not take its own ``args`` pickles but fails to unpickle)."""
    try:
        pickle.loads(pickle.dumps(err.exception))
    except Exception:  # any failure means: send the text only
        return replace(err, exception=None)
    return err


def _send_reply(conn: Connection, reply: _Reply) -> None:
    try:
        conn.send(reply)
    except (pickle.PicklingError, TypeError, AttributeError):  # raised before a byte is written: resend
        conn.send(_Reply(reply.rid, [_picklable(outcome) for outcome in reply.outcomes]))


def _picklable(outcome: Any) -> Any:
    try:
        pickle.dumps(outcome)
    except Exception as err:  # the env returned something that cannot cross a process boundary
        return EnvError.of(EnvPoolError(
            f"the env's result cannot be sent from its worker ({type(err).__name__}: {err}): observations and "
            "info must pickle (the env contract), or run this env in-process"))
    return outcome
