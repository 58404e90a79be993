"""``EnvPool``: an ``EnvHost`` (``agentdistill.envhost``) whose envs live in N worker processes, so that slow
engines step in parallel and off the generation's critical path.

Each env lives in exactly one worker. A batch of steps is sent to every involved worker before anything is read
back, so the workers step at once while the caller goes on (``rollout`` generates its next chunk). Envs are
built in the worker by ``make_env``, the call the in-process host uses, so their episodes are the same.

The pool adds one failure of its own: a worker process that dies (killed, segfault, ``os._exit`` in env code).
Every env it held is lost; each of their pending and later calls yields an ``EnvError`` carrying
``EnvWorkerDied`` (with the worker's exit code, what it was doing, and the Python stack ``faulthandler`` wrote
if it crashed), and the next env placed on that worker gets a fresh process. Death is seen through the pipe's
end-of-file and the process sentinel (``multiprocessing.connection.wait``), so a dead worker can never leave a
call waiting. An env's exception inside a live worker is an ordinary ``EnvError`` and costs nothing else.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import pickle
import signal
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym

from agentdistill.envhost import (
    EnvError,
    EnvHandle,
    ResetOutcome,
    StepOutcome,
    StepTicket,
)
from agentdistill.envworker import EnvPoolError, _Make, _Release, _Reset, _serve, _Step
from agentdistill.traces import Trace

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext  # ForkServerContext: not on Windows


class EnvWorkerDied(RuntimeError):
    """An env worker process ended while it held envs; their state went with it."""


# ------------------------------------------------------------------------------------------ the parent side


@dataclass
class _Worker:
    """One worker slot: its current process, the envs placed on it, and the requests it has not answered."""

    index: int
    process: BaseProcess
    conn: Connection
    pid: int
    crash_log: Path
    keys: set[int] = field(default_factory=set)
    sent_traces: set[int] = field(default_factory=set)
    alive: bool = True


@dataclass(frozen=True)
class _Request:
    """A request that will be answered: which worker, what it does (for death messages), for which envs, and
    whether to keep the reply (a make's empty reply, or one for released envs, only marks progress)."""

    worker: int
    doing: str
    keys: tuple[int, ...]
    kept: bool


class EnvPool:
    """``num_workers`` worker processes that host envs; each env lives in exactly one of them.

    An env's state cannot move, so it stays where it was made: ``make`` places it on the worker holding the
    fewest envs (ties: the lowest index — on a fresh pool the k-th env lands on worker ``k % num_workers``).
    ``step_async`` sends each involved worker its share of the batch in one message before anything is read
    back, so the workers step in parallel while the caller goes on (``rollout`` generates the next chunk);
    ``gather`` collects. Use it as a context manager (or ``close()`` it): workers are always ended, also when
    the pool is garbage-collected or the interpreter exits. Reuse one pool across rollouts: workers start once.
    One caller at a time: a pool is not thread-safe. A ``pi_traces`` mapping is sent to each worker once, the
    first time it is used, and kept there: pass a new mapping, not a mutated one, to serve other traces.

    Processes, not Ray: a pipe per worker is the whole control plane — no cluster, object store or scheduler to
    start or to fail, start-up in a fraction of a second, and the same code on a laptop and on one node of a
    cluster (the trainer's own processes are the unit that scales across nodes, DESIGN §8c).

    Start method "forkserver" (the default; Python 3.14 makes it the default on Linux too): each worker is forked
    from a small server process that never held the trainer's state, so a worker copies no model memory and
    none of the threads torch/CUDA/vLLM start (plain ``fork`` with those can deadlock), and a worker restarted
    after a death costs a fork of that server rather than a new interpreter importing gymnasium and the env
    plugins again ("spawn", kept for platforms without forkserver). With either, a script that makes a pool
    needs an ``if __name__ == "__main__":`` guard, and env ids must be registered in the workers: plugins are
    found through their entry points as usual; an env registered by hand needs ``initializer``.

    Args:
        num_workers: worker processes (≥ 1).
        start_method: "forkserver" or "spawn".
        initializer: called in every worker (and every restarted one) before it serves: e.g. a module-level
            function that registers test or local env ids. It must be importable by name (pickled by reference).
    """

    def __init__(self, num_workers: int, *, start_method: Literal["forkserver", "spawn"] = "forkserver",
                 initializer: Callable[[], None] | None = None) -> None:
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {start_method!r} (fork is unsafe "
                             "once torch or a sampler has started threads)")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"start method {start_method!r} is not available on this platform: use 'spawn'")
        self._ctx: ForkServerContext | SpawnContext
        if start_method == "forkserver":
            self._ctx = multiprocessing.get_context("forkserver")
            # The fork server (one per process, started on first use) imports this module besides __main__ (the
            # default), so a worker forks with gymnasium and the env contract loaded: ~15 ms a start, not ~0.3 s.
            self._ctx.set_forkserver_preload(["__main__", __name__])
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self._initializer = initializer
        self._dir = tempfile.TemporaryDirectory(prefix="agentdistill-envpool-")
        self._workers: list[_Worker] = []
        self._requests: dict[int, _Request] = {}
        self._replies: dict[int, list[Any]] = {}
        self._tickets: dict[StepTicket, list[tuple[int, int] | EnvError]] = {}
        self._home: dict[int, int] = {}  # env key -> worker index, for envs on a live worker
        self._lost: dict[int, EnvError] = {}  # env key -> why it is gone (its worker died)
        self._env_ids: dict[int, str] = {}
        self._traces: dict[int, tuple[int, Mapping[str, Trace]]] = {}  # id(mapping) -> (key, mapping kept alive)
        self._count = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _shut_down, self._workers, self._dir)
        atexit.register(self._finalizer)  # before multiprocessing's own exit handler would wait for the workers
        try:
            self._workers.extend(self._start(i) for i in range(num_workers))
            for worker in self._workers:
                self._await_ready(worker)
        except BaseException:
            self.close()
            raise

    # -- the EnvHost interface

    def make(self, env_id: str, *, privileged: Sequence[str] = (), max_turns: int | None = None,
             env_kwargs: Mapping[str, Any] | None = None,
             pi_traces: Mapping[str, Trace] | None = None) -> EnvHandle:
        """Place a new env (built with ``make_env``) on the least-loaded worker; returns at once. A bad request
        comes back as the first ``reset`` outcome of the handle, as an ``EnvError`` with the exception."""
        self._check_open()
        index = min(range(len(self._workers)), key=lambda i: (len(self._workers[i].keys), i))
        if not self._workers[index].alive:
            self._workers[index] = worker = self._start(index)
            self._await_ready(worker)
        worker = self._workers[index]
        key = self._next()
        traces_key, traces = None, None
        if pi_traces is not None:
            if id(pi_traces) not in self._traces:
                self._traces[id(pi_traces)] = (self._next(), pi_traces)
            traces_key = self._traces[id(pi_traces)][0]
            if traces_key not in worker.sent_traces:
                traces = pi_traces
                worker.sent_traces.add(traces_key)
        worker.keys.add(key)
        self._home[key] = index
        self._env_ids[key] = env_id
        rid = self._next()
        self._send(worker, _Make(rid, key, env_id, tuple(privileged), max_turns, dict(env_kwargs or {}), traces_key,
                                 traces), doing="making an env", keys=(key,), kept=False)
        return EnvHandle(key)

    def reset(self, handles: Sequence[EnvHandle], seeds: Sequence[int | None]) -> list[ResetOutcome]:
        """Reset the envs (each worker its own, in parallel) and wait for all of them."""
        items = list(zip((h.key for h in handles), seeds, strict=True))
        plan = self._dispatch(items, _Reset, "resetting")
        outcomes = self._collect(plan)
        return [self._explain(handle.key, outcome) for handle, outcome in zip(handles, outcomes, strict=True)]

    def step_async(self, steps: Sequence[tuple[EnvHandle, str]]) -> StepTicket:
        """Send every involved worker its share of ``steps`` and return without waiting."""
        keys = [handle.key for handle, _ in steps]
        if len(set(keys)) != len(keys):
            raise ValueError("step_async: an env appears twice in one batch; step it again after gather")
        plan = self._dispatch([(h.key, action) for h, action in steps], _Step, "stepping")
        ticket = StepTicket(self._next())
        self._tickets[ticket] = plan
        return ticket

    def gather(self, ticket: StepTicket) -> list[StepOutcome]:
        """Wait for the steps ``ticket`` started; a worker that dies meanwhile makes its envs' outcomes
        ``EnvWorkerDied`` errors (never a hang)."""
        try:
            plan = self._tickets.pop(ticket)
        except KeyError:
            raise ValueError(f"{ticket} was already gathered, or comes from another host") from None
        return self._collect(plan)

    def release(self, handles: Sequence[EnvHandle]) -> None:
        """Close these envs in their workers (without waiting) and forget them, with any steps of theirs not
        gathered yet (a rollout that stops early leaves nothing behind)."""
        released = {handle.key for handle in handles}
        for ticket, plan in list(self._tickets.items()):
            rids = {entry[0] for entry in plan if not isinstance(entry, EnvError)}
            if any(released.intersection(self._requests[rid].keys) for rid in rids):
                del self._tickets[ticket]
                for rid in rids:
                    self._cancel(rid)
        by_worker: dict[int, list[int]] = {}
        for handle in handles:
            self._env_ids.pop(handle.key, None)
            self._lost.pop(handle.key, None)
            index = self._home.pop(handle.key, None)
            if index is not None:
                self._workers[index].keys.discard(handle.key)
                by_worker.setdefault(index, []).append(handle.key)
        if self._closed:
            return
        for index, keys in by_worker.items():
            worker = self._workers[index]
            if worker.alive:
                with contextlib.suppress(OSError):  # it died: seen, and reported, at its next read
                    worker.conn.send(_Release(tuple(keys)))

    # -- the rest of the public surface

    @property
    def num_workers(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int | None]:
        """The process id of each worker slot (None for a slot whose worker died and is not restarted yet)."""
        return [w.pid if w.alive else None for w in self._workers]

    def worker_of(self, handle: EnvHandle) -> int:
        """The index of the worker that holds ``handle``'s env (KeyError once it is released or lost)."""
        return self._home[handle.key]

    def close(self) -> None:
        """End every worker (close its pipe, then terminate, then kill) and remove the pool's files. Idempotent."""
        self._closed = True
        self._finalizer()
        atexit.unregister(self._finalizer)

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals

    def _next(self) -> int:
        self._count += 1
        return self._count

    def _check_open(self) -> None:
        if self._closed:
            raise EnvPoolError("this EnvPool is closed: make a new one")

    def _start(self, index: int) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe()
        crash_log = Path(self._dir.name) / f"worker{index}-{self._next()}.crash"
        process = self._ctx.Process(target=_serve, args=(child_conn, self._initializer, str(crash_log)),
                                    name=f"agentdistill-env-worker-{index}")
        process.start()
        child_conn.close()  # only the worker may hold its end, or its death would not end the pipe here
        return _Worker(index, process, parent_conn, pid=process.pid or -1, crash_log=crash_log)

    def _await_ready(self, worker: _Worker) -> None:
        wait([worker.conn, worker.process.sentinel])
        try:
            ready = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            worker.alive = False
            raise EnvPoolError(f"env worker {worker.index} exited with code {worker.process.exitcode} while "
                               f"starting{_crash_text(worker.crash_log)}") from None
        if ready.init_error is not None:
            worker.process.join(timeout=5)
            worker.alive = False
            raise EnvPoolError(f"the initializer failed in env worker {worker.index}: {ready.init_error.error}\n"
                               f"{ready.init_error.traceback}")

    def _send(self, worker: _Worker, request: _Make | _Reset | _Step, *, doing: str, keys: tuple[int, ...],
              kept: bool) -> None:
        self._requests[request.rid] = _Request(worker.index, doing, keys, kept)
        try:
            worker.conn.send(request)
        except OSError:  # a broken pipe: the worker is gone; this request is answered by its death
            self._lose(worker)

    def _dispatch(self, items: Sequence[tuple[int, Any]], request: type[_Reset] | type[_Step],
                  doing: str) -> list[tuple[int, int] | EnvError]:
        """Send each worker its items as one request; per item, where its outcome will be (request id, position
        in that request) or, for an env already lost, its error."""
        self._check_open()
        plan: list[tuple[int, int] | EnvError] = []
        batches: dict[int, list[tuple[int, Any]]] = {}
        slots: list[tuple[int, int]] = []
        for key, arg in items:
            if key in self._lost:
                plan.append(self._lost[key])
                slots.append((-1, -1))
                continue
            if key not in self._home:
                raise ValueError(f"env {key} is not in this pool (released, or made by another host)")
            batch = batches.setdefault(self._home[key], [])
            slots.append((self._home[key], len(batch)))
            batch.append((key, arg))
            plan.append((-1, -1))
        rids = {index: self._next() for index in batches}
        for index, batch in batches.items():
            self._send(self._workers[index], request(rids[index], tuple(batch)), doing=f"{doing} {len(batch)} env(s)",
                       keys=tuple(key for key, _ in batch), kept=True)
        return [entry if isinstance(entry, EnvError) else (rids[index], pos)
                for entry, (index, pos) in zip(plan, slots, strict=True)]

    def _collect(self, plan: Sequence[tuple[int, int] | EnvError]) -> list[Any]:
        rids = {entry[0] for entry in plan if not isinstance(entry, EnvError)}
        for rid in rids:
            while rid not in self._replies:
                self._read(self._workers[self._requests[rid].worker])
        outcomes = [entry if isinstance(entry, EnvError) else self._replies[entry[0]][entry[1]] for entry in plan]
        for rid in rids:
            del self._replies[rid], self._requests[rid]
        return outcomes

    def _read(self, worker: _Worker) -> None:
        """Read one reply from ``worker``, or register its death: either way progress, so no wait is endless."""
        wait([worker.conn, worker.process.sentinel])
        if not self._take(worker):  # the pipe ended, or the process did with nothing more to read
            self._lose(worker)

    def _take(self, worker: _Worker) -> bool:
        """Take one reply from ``worker``'s pipe if one is there to read; False if none is or the pipe ended."""
        try:
            if not worker.conn.poll():
                return False
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        try:
            reply = pickle.loads(data)
        except Exception as err:  # a reply we cannot read: that worker's envs can no longer be trusted
            self._lose(worker, because=f"sent a reply that cannot be unpickled here ({type(err).__name__}: {err})")
            return False
        request = self._requests.get(reply.rid)
        if request is not None and request.kept:
            self._replies[reply.rid] = reply.outcomes
        elif request is not None:
            del self._requests[reply.rid]
        return True

    def _cancel(self, rid: int) -> None:
        """Nobody will gather request ``rid``: drop its reply, now or when it arrives."""
        if self._replies.pop(rid, None) is not None:
            del self._requests[rid]
        else:
            self._requests[rid] = replace(self._requests[rid], kept=False)

    def _lose(self, worker: _Worker, because: str | None = None) -> None:
        """The worker is gone: end its process, and answer its pending requests and its envs with its death."""
        if not worker.alive:
            return
        worker.alive = False
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        while self._take(worker):  # replies it sent before it died still count (its death may be seen at a send)
            pass
        worker.conn.close()
        pending = sorted(rid for rid, r in self._requests.items() if r.worker == worker.index and rid not in
                         self._replies)
        doing = self._requests[pending[0]].doing if pending else "idle"
        code = worker.process.exitcode
        why = because or f"exited with code {code}" + (f" ({signal.Signals(-code).name})" if code and code < 0 else "")
        err = EnvWorkerDied(f"worker {worker.index} (pid {worker.pid}) {why} while {doing}; the {len(worker.keys)} "
                            "env(s) it held are lost and their episodes end here")
        lost = EnvError.of(err, extra=_crash_text(worker.crash_log), worker_died=True)
        for key in worker.keys:
            self._lost[key] = lost
            self._home.pop(key, None)
        worker.keys.clear()
        for rid in pending:
            if self._requests[rid].kept:
                self._replies[rid] = [lost] * len(self._requests[rid].keys)
            else:
                del self._requests[rid]

    def _explain(self, key: int, outcome: ResetOutcome) -> ResetOutcome:
        """An env id registered here by hand but unknown in the workers gets an error that names the fix."""
        if not (isinstance(outcome, EnvError) and outcome.error.startswith("UnregisteredEnv")):
            return outcome
        env_id = self._env_ids.get(key, "")
        if env_id not in gym.registry:
            return outcome
        err = EnvPoolError(f"{env_id} is registered in this process but not in the env workers: register it in a "
                           "module-level function and pass it as EnvPool(initializer=...), or ship it as a plugin")
        return EnvError.of(err, extra=f"\nThe worker's error:\n{outcome.traceback}")


def _crash_text(crash_log: Path) -> str:
    """What ``faulthandler`` wrote when the worker crashed (the Python stack at a segfault), or ""."""
    try:
        text = crash_log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f"\nThe worker's Python stack when it crashed (faulthandler):\n{text}\n" if text else ""


def _shut_down(workers: list[_Worker], folder: tempfile.TemporaryDirectory[str]) -> None:
    """End every worker: closing its pipe asks it to stop; one still running after a grace period is
    terminated, then killed."""
    for worker in workers:
        worker.conn.close()
    for worker in workers:
        worker.process.join(timeout=2)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(timeout=2)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.alive = False
    folder.cleanup()
