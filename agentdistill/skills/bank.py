"""The skill bank: skills summarised from the agent's own episodes, picked for a task by relevance, then UCB.

A ``Skill`` is a structured record (success analysis, mistake analysis, golden workflow, the task text and
episodes it came from, its task family, when it was made, and how often it was used and how useful it
proved). Only the teacher view ever reads one (Skill-SD: the teacher conditions on x ⊕ S(x), the student on x
alone).

Selection for a task with text x, within its family (the env's task type where it has one, else the env):

1. Relevance. Every skill of the family is scored by ``task_similarity(skill.task, x)``: a deterministic
   lexical cosine, the mean of a cosine over lower-cased words and one over the words' character trigrams
   (so "soapbar" is near "soapbars", "2024-05-17" near "2024-05-18"). A skill saved without its task text
   scores 0. The ``candidates`` most similar skills (default 4; ``max(candidates, k)`` when more are asked
   for) go on to step 2; ties in similarity go to the higher UCB score, then the newest skill, then the
   smaller id, so in a family whose tasks all read alike (Sokoban's one task sentence) the candidates are
   the family's top UCB scorers and selection is plain UCB over the family.
2. UCB1 among the candidates, on observed usefulness u ∈ [0, 1]:

    score(s) = ū(s) + c · sqrt(2 · ln N / n(s))          (n(s) > 0)
    score(s) = +∞                                         (n(s) = 0: every candidate is tried before any is
                                                           re-used)

   with n(s) the usefulness observations of s, ū(s) their mean, N = Σ n over the whole family (N ≥ 1) and c
   the exploration constant (``exploration``, default 1.0: plain UCB1). Ties go to the more similar skill,
   then the newest, then the smaller id. The ``k`` top scorers are returned.

The paper says only "UCB top-scoring selection" and gives no constants; the relevance cut is ours (a family
is a whole env for Sokoban, TextWorld and AppWorld, and a skill of an unrelated task is a weak signal). What
a usefulness observation is belongs to the trainer (``algos/skill_sd.py``). When a family holds more than
``max_per_family`` skills the one with the lowest mean usefulness (never-observed skills count as 0.5) goes,
the oldest on ties.

The bank is plain JSON (``to_dict``/``from_dict``), saved with every checkpoint, so a resumed run picks the
same skills a straight one would. Banks saved before skills kept their task text load with ``task=""``.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SkillDraft:
    """What a summariser writes; the bank adds identity and statistics."""

    success_analysis: str
    mistake_analysis: str
    golden_workflow: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.success_analysis, str) or not isinstance(self.mistake_analysis, str):
            raise TypeError("success_analysis and mistake_analysis must be strings")
        if not all(isinstance(step, str) for step in self.golden_workflow):
            raise TypeError("golden_workflow must be a sequence of strings")


@dataclass
class Skill:
    """One skill in the bank, with its provenance and usage statistics."""

    skill_id: str
    task_family: str
    task: str
    """The task text the skill was summarised from (its relevance key; "" in banks saved without it)."""
    success_analysis: str
    mistake_analysis: str
    golden_workflow: list[str]
    source_episodes: list[str]
    summariser: str
    created_step: int
    created_at: float
    """Unix time of creation (informational; selection never reads it)."""
    selections: int = 0
    """Times the skill was put into a teacher prompt."""
    observations: int = 0
    """Usefulness observations (a use whose group gave a signal)."""
    usefulness_sum: float = 0.0
    reward_sum: float = 0.0
    """Σ mean group reward of the tasks it was used on (one term per selection)."""
    last_used_step: int | None = None

    @property
    def mean_usefulness(self) -> float | None:
        return self.usefulness_sum / self.observations if self.observations else None

    def render(self) -> str:
        """The text block the teacher view reads."""
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(self.golden_workflow, 1)) or "(none yet)"
        return (f"Skill for {self.task_family} tasks\nWhat works: {self.success_analysis}\n"
                f"Mistakes to avoid: {self.mistake_analysis}\nWorkflow:\n{steps}")


@dataclass
class SkillBank:
    """Skills by id; ``select`` keeps a family's skills most similar to the task, then picks by UCB."""

    exploration: float = 1.0
    max_per_family: int = 32
    candidates: int = 4
    """How many of the family's skills most similar to the task the UCB pick chooses among."""
    skills: dict[str, Skill] = field(default_factory=dict)
    next_id: int = 0

    def __post_init__(self) -> None:
        if self.exploration < 0 or self.max_per_family < 1 or self.candidates < 1:
            raise ValueError("exploration must be >= 0, max_per_family >= 1 and candidates >= 1")

    def add(self, draft: SkillDraft, *, family: str, task: str, source_episodes: Sequence[str], step: int,
            summariser: str) -> Skill:
        skill = Skill(skill_id=f"s{self.next_id:05d}", task_family=family, task=task,
                      success_analysis=draft.success_analysis, mistake_analysis=draft.mistake_analysis,
                      golden_workflow=list(draft.golden_workflow), source_episodes=list(source_episodes),
                      summariser=summariser, created_step=step, created_at=time.time())
        self.next_id += 1
        self.skills[skill.skill_id] = skill
        self._evict(family)
        return skill

    def family(self, family: str) -> list[Skill]:
        return [s for s in self.skills.values() if s.task_family == family]

    def ucb(self, skill: Skill) -> float:
        """The skill's UCB1 score within its family (see the module docstring)."""
        if skill.observations == 0:
            return math.inf
        total = max(sum(s.observations for s in self.family(skill.task_family)), 1)
        bonus = self.exploration * math.sqrt(2.0 * math.log(total) / skill.observations)
        return skill.usefulness_sum / skill.observations + bonus

    def nearest(self, family: str, task: str, n: int) -> list[tuple[Skill, float]]:
        """The ``n`` skills of ``family`` most like ``task``, with their similarity, most similar first."""
        query = _TaskVector.of(task)
        scored = [(s, query.similarity(_TaskVector.of(s.task))) for s in self.family(family)]
        scored.sort(key=lambda p: (-p[1], -self.ucb(p[0]), -p[0].created_step, p[0].skill_id))
        return scored[:n]

    def select(self, family: str, k: int = 1, *, task: str, step: int | None = None) -> list[Skill]:
        """The ``k`` top UCB scorers among the skills of ``family`` most similar to ``task`` (fewer if it has
        fewer); counts them as selected."""
        near = self.nearest(family, task, max(self.candidates, k))
        ranked = sorted(near, key=lambda p: (-self.ucb(p[0]), -p[1], -p[0].created_step, p[0].skill_id))
        chosen = [skill for skill, _ in ranked[:k]]
        for skill in chosen:
            skill.selections += 1
            skill.last_used_step = step
        return chosen

    def observe(self, skill_id: str, usefulness: float | None, *, reward: float) -> None:
        """Record one use: the group's mean ``reward`` and, when the group gave a signal, ``usefulness``."""
        skill = self.skills[skill_id]
        skill.reward_sum += reward
        if usefulness is not None:
            if not 0.0 <= usefulness <= 1.0:
                raise ValueError(f"usefulness must be in [0, 1], got {usefulness}")
            skill.observations += 1
            skill.usefulness_sum += usefulness

    def stats(self) -> dict[str, float]:
        observed = [s.usefulness_sum / s.observations for s in self.skills.values() if s.observations]
        return {
            "bank_size": float(len(self.skills)),
            "bank_families": float(len({s.task_family for s in self.skills.values()})),
            "bank_selections": float(sum(s.selections for s in self.skills.values())),
            "bank_mean_usefulness": sum(observed) / len(observed) if observed else 0.5,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"exploration": self.exploration, "max_per_family": self.max_per_family,
                "candidates": self.candidates, "next_id": self.next_id,
                "skills": [asdict(s) for s in self.skills.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkillBank:
        skills = _skills(data.get("skills", []))
        return cls(exploration=data.get("exploration", 1.0), max_per_family=data.get("max_per_family", 32),
                   candidates=data.get("candidates", 4), skills={s.skill_id: s for s in skills},
                   next_id=data.get("next_id", len(skills)))

    def _evict(self, family: str) -> None:
        members = self.family(family)
        while len(members) > self.max_per_family:
            worst = min(members, key=lambda s: (s.mean_usefulness if s.observations else 0.5, s.created_step,
                                                s.skill_id))
            del self.skills[worst.skill_id]
            members.remove(worst)


def _skills(records: Iterable[Mapping[str, Any]]) -> list[Skill]:
    try:
        return [Skill(**{"task": "", **r}) for r in records]
    except TypeError as e:
        raise ValueError(f"a skill record does not match the Skill schema ({e}): was the bank written by "
                         "another version of agentdistill?") from None


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _TaskVector:
    """A task text as bags of lower-cased words and of their character trigrams (ends marked)."""

    words: Counter[str]
    trigrams: Counter[str]

    @classmethod
    def of(cls, text: str) -> _TaskVector:
        words = Counter(_WORD.findall(text.lower()))
        trigrams: Counter[str] = Counter()
        for word, n in words.items():
            padded = f"^{word}$"
            for i in range(len(padded) - 2):
                trigrams[padded[i : i + 3]] += n
        return cls(words, trigrams)

    def similarity(self, other: _TaskVector) -> float:
        """Mean of the word and trigram cosines, in [0, 1]; 0 when either text has no words."""
        value = (_cosine(self.words, other.words) + _cosine(self.trigrams, other.trigrams)) / 2
        return round(value, 9)  # equal texts tie exactly, whatever the summation order


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(n * b[key] for key, n in a.items() if key in b)
    norm = math.sqrt(sum(n * n for n in a.values())) * math.sqrt(sum(n * n for n in b.values()))
    return dot / norm


def task_similarity(a: str, b: str) -> float:
    """The bank's relevance measure of two task texts (see the module docstring); symmetric, in [0, 1]."""
    return _TaskVector.of(a).similarity(_TaskVector.of(b))
