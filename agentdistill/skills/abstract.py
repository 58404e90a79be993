"""Actions rewritten without one instance's names, for skills that transfer to other tasks of the same kind.

A word of an action is *instance-specific* when the instance showed it (it occurs in the task text or in an
observation) and it is not part of the env's general language: the words of the system prompt with the task
text taken out, a few function words ("to", "from", "with", ...), and the first word of any action in the
sequence abstracted (its kind: "go", "take", "left"; in code, the names the agent assigns). Words with a
digit ("1", "2024-05-17", "07:30") count as specific whenever the instance showed them, even if the
instructions use them ("cabinet 3" as an example). Runs of specific words
separated by spaces (or by " of ") form one name ("yellow bell pepper", "bathtubbasin 1", "block of
cheese") and become a role placeholder:

- ``<task-k>``: a name holding a word of the task text; k orders them as the task names them (in "clean some
  soapbar and put it in garbagecan" the soapbar is <task-1>, the garbagecan <task-2>);
- ``<seen-k>``: another name the observations showed, k in order of first use in the actions abstracted;
- ``<n>``: a number alone ("cabinet 1" becomes "cabinet <n>" when "cabinet" is general vocabulary).

Words the instance never showed are kept: they are the agent's own vocabulary (a code variable, a move).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agentdistill.types import Episode

_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:[-:.][A-Za-z0-9_]+)*")
FUNCTION_WORDS = frozenset({"a", "an", "the", "some", "any", "it", "its", "to", "from", "into", "onto", "in",
                            "on", "of", "at", "for", "by", "with", "and", "or", "then"})


def words(text: str) -> list[str]:
    """Lower-cased word tokens; dates, times and dotted names stay whole ("2024-05-17", "07:30")."""
    return [m.group().lower() for m in _TOKEN.finditer(text)]


def _has_digit(word: str) -> bool:
    return any(c.isdigit() for c in word)


@dataclass(frozen=True)
class Vocabulary:
    """What one instance showed, against the env's general language."""

    general: frozenset[str]
    """Words of the instructions (the system prompt without the task text)."""
    seen: frozenset[str]
    """Words of the task text and of every observation."""
    task_order: dict[str, int]
    """Each word of the task text -> its first position there."""

    @classmethod
    def of(cls, episode: Episode) -> Vocabulary:
        system = [m.content for m in episode.messages if m.role == "system"]
        instructions = " ".join(text.replace(episode.task, " ") for text in system) if episode.task else \
            " ".join(system)
        observations = [m.content for m in episode.messages if m.role == "user"] + [episode.final_observation]
        task_words = words(episode.task)
        order: dict[str, int] = {}
        for i, word in enumerate(task_words):
            order.setdefault(word, i)
        seen = set(task_words).union(*(words(text) for text in observations))
        return cls(general=frozenset(words(instructions)), seen=frozenset(seen), task_order=order)

    def is_specific(self, word: str, kinds: frozenset[str] = frozenset()) -> bool:
        """Whether ``word`` (lower-cased) names something of this instance; ``kinds``: the actions' kinds."""
        if word in FUNCTION_WORDS or word not in self.seen:
            return False
        return _has_digit(word) or not (word in self.general or word in kinds)


@dataclass(frozen=True)
class _Name:
    start: int
    end: int
    key: str
    """Its placeholder's identity: "task:<word>", "seen:<text>" or "n"."""
    task_position: int


def _names(action: str, vocab: Vocabulary, kinds: frozenset[str]) -> list[_Name]:
    """The instance-specific names in ``action``, left to right (``kinds``: words never taken for a name)."""
    tokens = list(_TOKEN.finditer(action))
    lowered = [m.group().lower() for m in tokens]
    flags = [vocab.is_specific(w, kinds) for w in lowered]

    def joined(a: int, b: int) -> bool:
        return action[tokens[a].end() : tokens[b].start()].isspace()

    names, i = [], 0
    while i < len(tokens):
        if not flags[i]:
            i += 1
            continue
        j = i
        while True:
            if j + 1 < len(tokens) and flags[j + 1] and joined(j, j + 1):
                j += 1
            elif j + 2 < len(tokens) and lowered[j + 1] == "of" and flags[j + 2] and joined(j, j + 1) \
                    and joined(j + 1, j + 2):
                j += 2  # "block of cheese" is one name
            else:
                break
        found = [w for w, flag in zip(lowered[i : j + 1], flags[i : j + 1], strict=False) if flag]
        in_task = sorted((vocab.task_order[w], w) for w in found if w in vocab.task_order)
        if in_task:
            key, position = f"task:{in_task[0][1]}", in_task[0][0]
        elif all(_has_digit(w) and not any(c.isalpha() for c in w) for w in found):
            key, position = "n", -1
        else:
            key, position = "seen:" + " ".join(found), -1
        names.append(_Name(tokens[i].start(), tokens[j].end(), key, position))
        i = j + 1
    return names


def _placeholders(names: Iterable[_Name]) -> dict[str, str]:
    """Each key's placeholder: task names numbered in task order, seen names in order of first use."""
    task_keys: dict[str, int] = {}
    seen_keys: list[str] = []
    for name in names:
        if name.key.startswith("task:"):
            task_keys.setdefault(name.key, name.task_position)
        elif name.key.startswith("seen:") and name.key not in seen_keys:
            seen_keys.append(name.key)
    ordered = sorted(task_keys, key=lambda k: (task_keys[k], k))
    table = {key: f"<task-{i}>" for i, key in enumerate(ordered, 1)}
    table.update({key: f"<seen-{i}>" for i, key in enumerate(seen_keys, 1)})
    table["n"] = "<n>"
    return table


def first_line(action: str, max_chars: int = 100) -> str:
    """An action's first non-empty line, cut to ``max_chars`` (code actions can run for many lines)."""
    lines = [line.strip() for line in action.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    more = len(lines) > 1 or len(line) > max_chars
    return line[:max_chars] + (" …" if more else "")


def abstract_actions(actions: Sequence[str], vocab: Vocabulary) -> list[str]:
    """``actions`` (one episode's, in order) with every instance-specific name replaced by its placeholder."""
    lines = [first_line(a) for a in actions]
    kinds = frozenset(w[0] for w in map(words, lines) if w and not _has_digit(w[0]))
    found = [_names(line, vocab, kinds) for line in lines]
    table = _placeholders(name for names in found for name in names)
    out = []
    for line, names in zip(lines, found, strict=False):
        for name in reversed(names):
            line = line[: name.start] + table[name.key] + line[name.end :]
        out.append(line)
    return out


def collapse_repeats(steps: Sequence[str]) -> list[str]:
    """Runs of the same step as one counted step: ["up", "up", "up", "left"] -> ["up ×3", "left"]."""
    out: list[str] = []
    counts: list[int] = []
    for step in steps:
        if out and out[-1] == step:
            counts[-1] += 1
        else:
            out.append(step)
            counts.append(1)
    return [step if n == 1 else f"{step} ×{n}" for step, n in zip(out, counts, strict=False)]


def legend(steps: Iterable[str]) -> str:
    """What the placeholders in ``steps`` stand for ("" when there are none)."""
    text = " ".join(steps)
    parts = []
    if "<task-" in text:
        parts.append("<task-k> is the k-th thing the task names")
    if "<seen-" in text:
        parts.append("<seen-k> another thing the observations show (k in order of first use)")
    if "<n>" in text:
        parts.append("<n> a number that differs between tasks")
    return ("In the workflow, " + "; ".join(parts) + ".") if parts else ""
