"""The skill bank: skills summarised from the agent's own episodes, picked for a task by UCB.

A ``Skill`` is a structured record (success analysis, mistake analysis, golden workflow, the episodes it came
from, its task family, when it was made, and how often it was used and how useful it proved). Only the
teacher view ever reads one (Skill-SD: the teacher conditions on x ⊕ S(x), the student on x alone).

Selection is a bandit over each task family's skills, UCB1 on observed usefulness u ∈ [0, 1]:

    score(s) = ū(s) + c · sqrt(2 · ln N / n(s))          (n(s) > 0)
    score(s) = +∞                                         (n(s) = 0: every skill is tried before any is re-used)

with n(s) the usefulness observations of s, ū(s) their mean, N = Σ n over the family (N ≥ 1) and c the
exploration constant (``exploration``, default 1.0: plain UCB1). Ties go to the newest skill, then the smaller
id. The paper says only "UCB top-scoring selection" and gives no constants; what a usefulness observation is
belongs to the trainer (``algos/skill_sd.py``). When a family holds more than ``max_per_family`` skills the
one with the lowest mean usefulness (never-observed skills count as 0.5) goes, the oldest on ties.

The bank is plain JSON (``to_dict``/``from_dict``), saved with every checkpoint, so a resumed run picks the
same skills a straight one would.
"""

from __future__ import annotations

import math
import time
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
    """Skills by id; ``select`` picks by UCB within a task family."""

    exploration: float = 1.0
    max_per_family: int = 32
    skills: dict[str, Skill] = field(default_factory=dict)
    next_id: int = 0

    def __post_init__(self) -> None:
        if self.exploration < 0 or self.max_per_family < 1:
            raise ValueError("exploration must be >= 0 and max_per_family >= 1")

    def add(self, draft: SkillDraft, *, family: str, source_episodes: Sequence[str], step: int,
            summariser: str) -> Skill:
        skill = Skill(skill_id=f"s{self.next_id:05d}", task_family=family,
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

    def select(self, family: str, k: int = 1, *, step: int | None = None) -> list[Skill]:
        """The ``k`` top-scoring skills of ``family`` (fewer if it has fewer); counts them as selected."""
        ranked = sorted(self.family(family), key=lambda s: (-self.ucb(s), -s.created_step, s.skill_id))
        chosen = ranked[:k]
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
        observed = [s.mean_usefulness for s in self.skills.values() if s.observations]
        return {
            "bank_size": float(len(self.skills)),
            "bank_families": float(len({s.task_family for s in self.skills.values()})),
            "bank_selections": float(sum(s.selections for s in self.skills.values())),
            "bank_mean_usefulness": sum(observed) / len(observed) if observed else 0.5,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"exploration": self.exploration, "max_per_family": self.max_per_family, "next_id": self.next_id,
                "skills": [asdict(s) for s in self.skills.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkillBank:
        skills = _skills(data.get("skills", []))
        return cls(exploration=data.get("exploration", 1.0), max_per_family=data.get("max_per_family", 32),
                   skills={s.skill_id: s for s in skills}, next_id=data.get("next_id", len(skills)))

    def _evict(self, family: str) -> None:
        members = self.family(family)
        while len(members) > self.max_per_family:
            worst = min(members, key=lambda s: (s.mean_usefulness if s.observations else 0.5, s.created_step,
                                                s.skill_id))
            del self.skills[worst.skill_id]
            members.remove(worst)


def _skills(records: Iterable[Mapping[str, Any]]) -> list[Skill]:
    try:
        return [Skill(**r) for r in records]
    except TypeError as e:
        raise ValueError(f"a skill record does not match the Skill schema ({e}): was the bank written by "
                         "another version of agentdistill?") from None
