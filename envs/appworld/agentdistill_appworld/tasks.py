"""Tasks: scenarios × variants, each with a reference solution and state-based tests.

A ``Scenario`` is a template: ``variant(world, k)`` picks the parameters of variant k (1–3) from a seeded world
(whose seed differs per variant, so start states differ too), ``instruction`` words the job from the
supervisor's point of view ("my roommates"), ``solution`` is a reference program in the agent's own action
language (Python calling ``apis.*``), and ``check`` tests the end state against the start state:

- question tasks check the answer given to ``supervisor.complete_task(answer=...)``;
- action tasks check the required rows changed, and every scenario checks that **nothing else changed**
  (collateral damage): ``Checker.only_changed`` fails on any table the task had no business touching, and
  scenarios pin the exact rows they expect where it matters.

Difficulty comes from the reference solution's API-call count (1–3 → 1, 4–7 → 2, 8+ → 3), counted by
running it. ``run_solution`` executes a program in the real ``Sandbox`` against a world, so every reference
solution is checked by the same code path an agent's code takes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from agentdistill_appworld.executor import APICallError, ExecutorLimits, Sandbox
from agentdistill_appworld.framework import APIError, Context, TableDiff, diff, snapshot
from agentdistill_appworld.world import WorldSpec, build_world

DIFFICULTY_CALLS = ((1, 3), (4, 7), (8, 10**9))  # API calls of the reference solution → difficulty 1, 2, 3


def difficulty(api_calls: int) -> int:
    for level, (low, high) in enumerate(DIFFICULTY_CALLS, start=1):
        if low <= api_calls <= high:
            return level
    raise ValueError(f"a reference solution must call at least one API, got {api_calls}")


# ------------------------------------------------------------------------------------------------- checks


@dataclass
class Checker:
    """Collects pass/fail per requirement over one task's start and end states."""

    start: Mapping[str, list[tuple]]
    end: Mapping[str, list[tuple]]
    answer: Any
    completed: bool
    columns: Mapping[str, list[str]] = field(default_factory=dict)
    """Each table's column names, for reading snapshot rows as dicts."""
    results: list[tuple[str, bool]] = field(default_factory=list)

    def as_dicts(self, table: str, rows: tuple[tuple, ...] | list[tuple]) -> list[dict[str, Any]]:
        return [dict(zip(self.columns[table], row, strict=True)) for row in rows]

    @cached_property
    def changes(self) -> dict[str, TableDiff]:
        """Per changed table, the rows added and removed (computed once: checks read it many times)."""
        return diff(self.start, self.end)

    def require(self, ok: bool, requirement: str) -> bool:
        self.results.append((requirement, bool(ok)))
        return bool(ok)

    def answer_is(self, expected: Any) -> bool:
        return self.require(_normalise(self.answer) == _normalise(expected),
                            f"the answer is {expected!r} (got {self.answer!r})")

    def only_changed(self, *tables: str) -> bool:
        """No table outside ``tables`` changed (``supervisor_task`` is always allowed)."""
        extra = sorted(set(self.changes) - set(tables) - {"supervisor_task"})
        return self.require(not extra, f"nothing outside {sorted(tables)} changed (changed: {extra})")

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for _, ok in self.results)


def _normalise(value: Any) -> Any:
    """Answers compare case- and space-insensitively for strings; numbers as numbers."""
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return float(text)
        except ValueError:
            return text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return sorted(_normalise(v) for v in value)
    return value


# ------------------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Variant:
    """One task: a scenario's parameters for variant k and the world it starts in."""

    scenario: str
    k: int
    world: WorldSpec
    params: Mapping[str, Any]

    @property
    def task_id(self) -> str:
        return f"{scenario_hash(self.scenario)}_{self.k}"


def scenario_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


@dataclass(frozen=True)
class Scenario:
    """A task template. ``pick(ctx, k)`` chooses variant k's parameters from its start world."""

    name: str
    kind: str
    """'question' (answer checked) or 'action' (state checked)."""
    apps: tuple[str, ...]
    pick: Callable[[Context, int], dict[str, Any]]
    instruction: Callable[[Mapping[str, Any]], str]
    solution: Callable[[Mapping[str, Any]], str]
    check: Callable[[Checker, Mapping[str, Any]], None]

    def variant_id(self, k: int) -> str:
        """The task id of variant k, e.g. ``3f2a9c1_2`` (without building its world)."""
        return f"{scenario_hash(self.name)}_{k}"

    def variant(self, k: int, *, now: str = "2024-05-15T10:00:00") -> Variant:
        if k not in (1, 2, 3):
            raise ValueError(f"variants are 1, 2 and 3, got {k}")
        key = (self.name, k, now)
        if key not in _VARIANTS:  # picking builds a world: do it once per process
            spec = WorldSpec(seed=int(scenario_hash(self.name), 16) % 10_000 * 10 + k, now=now)
            _VARIANTS[key] = Variant(scenario=self.name, k=k, world=spec, params=self.pick(build_world(spec), k))
        return _VARIANTS[key]


_VARIANTS: dict[tuple[str, int, str], Variant] = {}


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    observations: tuple[str, ...]
    api_calls: int
    passed: bool
    results: tuple[tuple[str, bool], ...]


def handler_for(ctx: Context) -> Callable[[str, str, dict], Any]:
    """The sandbox's API handler for a world: an APIError becomes an error the agent sees."""

    def handle(app: str, api: str, kwargs: dict) -> Any:
        if app not in ctx.apps:
            raise APICallError(f"no app named {app!r}; see apis.api_docs.show_app_descriptions()", 404)
        try:
            return ctx.apps[app].call(api, kwargs)
        except APIError as e:
            raise APICallError(e.message, e.status) from None

    return handle


def start_task(scenario: Scenario, variant: Variant) -> tuple[Context, dict[str, list[tuple]]]:
    """A fresh world for the task, with the task written into the supervisor app, and its start snapshot."""
    ctx = build_world(variant.world)
    ctx.db.execute("UPDATE supervisor_task SET task_id = ?, instruction = ?", (variant.task_id,
                                                                                scenario.instruction(variant.params)))
    return ctx, snapshot(ctx.db)


def evaluate(scenario: Scenario, variant: Variant, ctx: Context, start: Mapping[str, list[tuple]]) -> Checker:
    completed, answer = ctx.db.execute("SELECT completed, answer FROM supervisor_task").fetchone()
    end = snapshot(ctx.db)
    columns = {t: [c[1] for c in ctx.db.execute(f"PRAGMA table_info({t})")] for t in end}
    checker = Checker(start=start, end=end, answer=None if answer is None else json.loads(answer),
                      completed=bool(completed), columns=columns)
    checker.require(checker.completed, "the task was marked complete with supervisor.complete_task")
    scenario.check(checker, variant.params)
    return checker


def run_solution(scenario: Scenario, variant: Variant, code: str | None = None, *,
                 limits: ExecutorLimits = ExecutorLimits(timeout_s=20.0)) -> Outcome:
    """Run ``code`` (default: the reference solution) in a real Sandbox on the task's world and evaluate it."""
    ctx, start = start_task(scenario, variant)
    before = ctx.api_calls
    with Sandbox(handler_for(ctx), limits=limits, now=variant.world.now) as sandbox:
        observation = sandbox.execute(scenario.solution(variant.params) if code is None else code)
    checker = evaluate(scenario, variant, ctx, start)
    return Outcome(observations=(observation,), api_calls=ctx.api_calls - before, passed=checker.passed,
                   results=tuple(checker.results))
