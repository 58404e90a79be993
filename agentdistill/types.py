"""The records every part of agentdistill exchanges: messages, turn samples, episodes, and their JSONL store.

Shape letters used in tensor names across the package (``student_logprobs_BT``, ``logits_BTV``):

    B  sequences in a batch (turn samples, or trajectories)
    T  tokens along a sequence
    V  vocabulary entries
    K  top-k entries
    G  samples per task (a GRPO group)
    N  turns in an episode

A turn is one assistant reply. Its ``TurnSample`` keeps the exact token ids the policy saw and produced, so
that training scores the same ids the sampler emitted (never re-tokenised text). Prompts are rendered per
turn from ``Episode.messages`` (see ``agentdistill.views``), which lets a trainer re-render a teacher view
with new privileged information later.

Episodes are stored as JSON Lines: a header line ``{"schema": "agentdistill/episodes", "version": N}``
followed by one episode per line. Any change to what a line may hold bumps N, so that an older agentdistill
refuses a newer file by name ("upgrade agentdistill") instead of failing on an unknown key. A new field comes
with a default, so files of every older version still load. Versions:

    1  the first format
    2  ``Episode.error_traceback`` (the full traceback of a recorded env error)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

SCHEMA_NAME = "agentdistill/episodes"
SCHEMA_VERSION = 2

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "scripted"]


@dataclass(frozen=True)
class Message:
    """One chat message. ``content`` is plain text; the chat template turns messages into tokens."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"Message role must be system, user or assistant, not {self.role!r}")


@dataclass(frozen=True)
class TurnSample:
    """One assistant turn of one episode: what the policy saw, what it produced, what the env returned.

    Token fields are empty for text-only rollouts (a scripted policy without a tokenizer).
    ``student_prompt_ids ⊕ response_ids`` is exactly the sequence the policy conditioned on and sampled;
    ``teacher_prompt_ids`` is the same turn rendered with the privileged-information block (None when no
    privileged information was requested). The loss mask of a turn is True on ``response_ids`` only.
    """

    episode_id: str
    group_id: str
    task_id: str
    turn: int
    """0-based index of this turn in its episode."""
    message_index: int
    """Index of this turn's assistant message in ``Episode.messages``; the prompt is ``messages[:index]``."""
    response_text: str
    """The decoded reply (for scripted policies: the reply the interface formatted)."""
    action: str | None
    """The env action parsed from the reply; None when the reply could not be parsed (a format error)."""
    reward: float
    terminated: bool
    truncated: bool
    invalid_action: bool
    """True if the reply did not parse or the env reported the action as invalid."""
    student_prompt_ids: tuple[int, ...] = ()
    teacher_prompt_ids: tuple[int, ...] | None = None
    response_ids: tuple[int, ...] = ()
    sampler_logprobs: tuple[float, ...] | None = None
    """log π(response_ids[t] | ...) under the sampling temperature, one per response id; None if not sampled."""
    finish_reason: FinishReason = "stop"
    return_to_go: float = 0.0
    """Undiscounted sum of this and all later rewards of the episode."""
    privileged: dict[str, Any] | None = None
    """The privileged information the teacher view was rendered from this turn (JSON values)."""

    def __post_init__(self) -> None:
        if self.sampler_logprobs is not None and len(self.sampler_logprobs) != len(self.response_ids):
            raise ValueError(
                f"sampler_logprobs has {len(self.sampler_logprobs)} entries but response_ids has "
                f"{len(self.response_ids)}: they must align one to one"
            )


@dataclass(frozen=True)
class Episode:
    """A whole multi-turn episode: the student-view transcript and one TurnSample per assistant turn."""

    episode_id: str
    group_id: str
    """Episodes of the same task (same env seed) share a group id; GRPO centres rewards within it."""
    env_id: str
    task_id: str
    task: str
    seed: int
    """The env reset seed: resetting ``env_id`` with it reproduces the task."""
    messages: tuple[Message, ...]
    """System prompt, then alternating user/assistant messages, as the student saw them (never any PI)."""
    turns: tuple[TurnSample, ...]
    final_observation: str
    won: bool
    terminated: bool
    truncated: bool
    policy: str = ""
    error: str | None = None
    """A rollout error recorded as a value (the episode stopped there); None for a clean episode.
    ``"<ExceptionType>: <message>"``; an errored episode counts in ``RolloutMetrics.errors`` and never trains."""
    error_traceback: str | None = None
    """The full traceback of ``error`` (None when there is none, and in files of schema version 1), so a
    run that stops on env errors can show where the env broke."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def total_reward(self) -> float:
        return sum(t.reward for t in self.turns)

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Episode:
        _check_keys(cls, data)
        _check_keys(Message, *data["messages"])
        _check_keys(TurnSample, *data["turns"])
        turns = tuple(_turn_from_dict(t) for t in data["turns"])
        messages = tuple(Message(**m) for m in data["messages"])
        return cls(**{**data, "messages": messages, "turns": turns})


def _turn_from_dict(data: Mapping[str, Any]) -> TurnSample:
    out = dict(data)
    for key in ("student_prompt_ids", "response_ids"):
        out[key] = tuple(out[key])
    for key in ("teacher_prompt_ids", "sampler_logprobs"):
        if out.get(key) is not None:
            out[key] = tuple(out[key])
    return TurnSample(**out)


def _check_keys(cls: type, *records: Mapping[str, Any]) -> None:
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is f.default_factory is MISSING}
    for record in records:
        if not isinstance(record, Mapping):
            raise TypeError(f"a {cls.__name__} record must be a JSON object, got {type(record).__name__}")
        unknown, missing = set(record) - names, required - set(record)
        if unknown or missing:
            raise KeyError(f"{cls.__name__} record has unknown keys {sorted(unknown)} / misses {sorted(missing)}")


class TrajectoryFileError(ValueError):
    """An episode file is corrupt, truncated, or written by a newer schema."""


def save_episodes(path: str | os.PathLike, episodes: Iterable[Episode], *, append: bool = False) -> Path:
    """Write episodes as JSONL with a schema header.

    A new file is written to a temporary sibling and renamed, so a crash never leaves half a file. With
    ``append=True`` an existing file's header is checked first (a file of an older schema version is
    refused) and episodes are added after a flush and fsync per call, so episodes written earlier are never
    rewritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(ep.to_dict(), ensure_ascii=False) + "\n" for ep in episodes]
    if append and path.exists() and path.stat().st_size > 0:
        _check_appendable(path, _read_header(path))
        with path.open("a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        return path
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"schema": SCHEMA_NAME, "version": SCHEMA_VERSION}) + "\n")
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_episodes(path: str | os.PathLike, *, drop_partial_last_line: bool = False) -> list[Episode]:
    """Read an episode file written by ``save_episodes``.

    Raises ``TrajectoryFileError`` naming the line and the fix when the header is missing, the schema version
    is newer than this agentdistill understands, or a line is not a valid episode. A process killed while
    appending can leave a partial last line; ``drop_partial_last_line=True`` skips it (and only it).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no episode file at {path}")
    _read_header(path)
    with path.open(encoding="utf-8") as f:
        raw = f.read().split("\n")[1:]
    episodes = []
    for lineno, line in enumerate(raw, start=2):
        if not line.strip():
            continue
        is_last = all(not rest.strip() for rest in raw[lineno - 1 :])
        try:
            episodes.append(Episode.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            if is_last and drop_partial_last_line and not line.endswith("}"):
                break
            raise TrajectoryFileError(
                f"{path}:{lineno} is not a valid episode ({type(err).__name__}: {err}). The {len(episodes)} "
                "episodes before it are intact; if the writer was killed mid-line, load with "
                "drop_partial_last_line=True, otherwise remove or repair that line."
            ) from err
    return episodes


def _read_header(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA_NAME:
        raise TrajectoryFileError(
            f"{path} is not an agentdistill episode file: its first line must be the header "
            f'{{"schema": "{SCHEMA_NAME}", "version": {SCHEMA_VERSION}}}. Write it with save_episodes().'
        )
    version = header.get("version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise TrajectoryFileError(
            f"{path} has episode schema version {version!r}, newer than this agentdistill understands "
            f"({SCHEMA_VERSION}): upgrade agentdistill to read it."
        )
    return header


def _check_appendable(path: Path, header: Mapping[str, Any]) -> None:
    """Refuse to append to a file of an older schema version.

    Its header would then misstate the lines after it (an older reader fails on their new keys), and
    rewriting the header would rewrite what is already saved.
    """
    if header["version"] != SCHEMA_VERSION:
        raise TrajectoryFileError(
            f"{path} has episode schema version {header['version']}; this agentdistill writes version "
            f"{SCHEMA_VERSION} and will not mix the two in one file. Save the new episodes to another file "
            "(load_episodes reads both versions)."
        )


def return_to_go(rewards: Sequence[float]) -> list[float]:
    """Undiscounted suffix sums: out[i] = Σ_{j ≥ i} rewards[j]."""
    out, acc = [0.0] * len(rewards), 0.0
    for i in range(len(rewards) - 1, -1, -1):
        acc += rewards[i]
        out[i] = acc
    return out
