"""Collected action traces: the PI dataset ``agentdistill collect`` writes and the trainers read.

A trace file is JSON lines: a header naming the env, its kwargs and the teacher, then one ``Trace`` per task
the teacher solved — the actions it took, in order, without the replies' reasoning (π-Distill's
"action-only" PI). Lines are appended one at a time with a flush and fsync; a process killed mid-line
leaves at most one partial last line, which ``JsonlLog.open`` cuts off before appending.

``TracePI`` serves a trace file as the ``expert_trace`` PI kind, in place of the env's own solver: set
``env.pi_traces`` in a training config and keep ``expert_trace`` in ``env.teacher_privileged``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

FORMAT = "agentdistill.traces"
VERSION = 1
PI_KIND = "expert_trace"


@dataclass(frozen=True)
class Trace:
    """One solved task: the valid actions the teacher took, in order (turns the env rejected are left out)."""

    task_id: str
    seed: int
    task: str
    actions: tuple[str, ...]
    total_reward: float
    turns: int
    """Turns the teacher used, rejected ones included."""
    cost_usd: float = 0.0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "actions": list(self.actions)}, ensure_ascii=False)


class TraceFileError(ValueError):
    """A trace file is missing its header, belongs to another job, or has a corrupt line."""


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines of ``path`` and the byte length they span (a partial last line is not counted).

    A line that does not parse and is not the last one is corruption, reported with its line number.
    """
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a write cut short by a kill
    records = []
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise TraceFileError(f"{path}:{lineno} is not JSON: remove or repair that line") from None
    return records, end


def append_line(path: Path, line: str) -> None:
    """Append one line durably (flush + fsync), so a kill afterwards cannot lose it."""
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass(frozen=True)
class JsonlLog:
    """An append-only JSON-lines file whose first line, ``header``, identifies the job that writes it."""

    path: Path
    header: Mapping[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike, header: Mapping[str, Any]) -> JsonlLog:
        """Create the file with ``header``, or check an existing one has the same header and cut off a
        partial last line (left by a kill) so appends start on a fresh line."""
        path = Path(path)
        header = {"format": FORMAT, "version": VERSION, **header}
        if not path.exists() or path.stat().st_size == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            append_line(path, json.dumps(header, ensure_ascii=False))
            return cls(path, header)
        records, end = read_jsonl(path)
        if not records or records[0] != json.loads(json.dumps(header)):
            found = records[0] if records else None
            raise TraceFileError(
                f"{path} was written by another job ({found}), not of this one ({header}): choose another "
                "out_dir, or delete the file to start over"
            )
        if end < path.stat().st_size:
            with path.open("r+b") as f:
                f.truncate(end)
        return cls(path, header)

    def records(self) -> list[dict[str, Any]]:
        """Every complete line after the header."""
        return read_jsonl(self.path)[0][1:]

    def append(self, record: Mapping[str, Any] | Trace) -> None:
        append_line(self.path, record.to_json() if isinstance(record, Trace) else json.dumps(record))


def load_traces(path: str | os.PathLike, env_id: str | None = None) -> dict[str, Trace]:
    """The traces of a file written by ``agentdistill collect``, by task id (a partial last line is ignored).

    With ``env_id``, a file collected on another env is an error.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no trace file at {path}: run `agentdistill collect` first, or fix env.pi_traces")
    records, _ = read_jsonl(path)
    if not records or records[0].get("format") != FORMAT:
        raise TraceFileError(f"{path} is not an agentdistill trace file (no '{FORMAT}' header line)")
    if records[0].get("version", 0) > VERSION:
        raise TraceFileError(f"{path} has trace format version {records[0]['version']}: upgrade agentdistill")
    if env_id is not None and records[0].get("env_id") != env_id:
        raise TraceFileError(f"{path} holds traces of {records[0].get('env_id')}, not {env_id}: collect them "
                             f"on {env_id} or fix env.pi_traces")
    traces = {}
    for record in records[1:]:
        trace = Trace(**{**record, "actions": tuple(record["actions"])})
        traces[trace.task_id] = trace
    return traces


class TracePI(gym.Wrapper):
    """Puts a collected trace into ``info["privileged"]["expert_trace"]`` on reset and every step.

    Tasks the teacher did not solve get None, which the families' interfaces render as "no solution". The
    env itself is not asked for ``expert_trace`` (make it without that kind).
    """

    def __init__(self, env: gym.Env, traces: Mapping[str, Trace]):
        super().__init__(env)
        self.traces = traces
        self._actions: list[str] | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        trace = self.traces.get(info["task_id"])
        self._actions = list(trace.actions) if trace is not None else None
        return obs, self._with_trace(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_trace(info)

    def _with_trace(self, info: dict[str, Any]) -> dict[str, Any]:
        privileged = dict(info.get("privileged", {}))
        privileged[PI_KIND] = None if self._actions is None else list(self._actions)
        return {**info, "privileged": privileged}
