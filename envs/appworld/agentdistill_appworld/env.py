"""``agentdistill/AppWorld-v0``: an agent writes Python against app APIs; judged by what changed in the apps.

One episode is one task (a scenario's variant) of a split. ``reset(seed=i)`` plays task ``i mod n`` of the
split in a fixed order (or ``options={"task_id": ...}``): it builds the task's seeded world, writes the task
into the supervisor app, snapshots the database and starts a fresh sandboxed REPL (``executor.Sandbox``).
The first observation is the supervisor's details and the instruction.

``step(code)`` runs the code in the REPL and returns what it printed (``Execution successful.`` when nothing,
``Execution failed. ...`` on an error). An empty action is refused without running (``invalid_action``). The
episode ends (``terminated``) when the code has called ``apis.supervisor.complete_task``; the task's tests
then compare the end state with the start state, and the reward is 1 if every test passed, else 0 (no
shaping). The env never truncates: the interaction budget is the ``TurnLimit`` wrapper's (50 turns).

Privileged information (``privileged=[...]``; only in ``info["privileged"]``):

- ``api_calls``: the reference solution's API calls with their arguments, in order (recorded by running it
  on a copy of the task's world),
- ``api_names``: the same calls as ``app.api`` names only, without repeats,
- ``plan``: a natural-language plan derived from those calls,
- ``expert_plan``: the reference solution's remaining top-level statements, one per turn (None once the
  episode has left the reference path) — what the scripted expert replays.

``info`` carries ``task`` (the instruction), ``task_id``, ``task_type`` (the scenario), ``difficulty``,
``split``, ``won``/``success`` and, after the end, ``evaluation`` (each requirement and whether it passed).
There are no ``admissible_actions``: the action space is open.

The env pickles mid-episode: its state is the task and the code cells run so far; unpickling rebuilds the
world and replays the cells (API effects included) into a fresh sandbox, then checks the database matches.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.utils import seeding

from agentdistill_appworld.executor import ExecutorLimits, Sandbox
from agentdistill_appworld.scenarios import SPLITS, scenarios_in
from agentdistill_appworld.tasks import Scenario, Variant, difficulty, evaluate, handler_for, start_task
from agentdistill_appworld.world import world_digest

ENV_ID = "agentdistill/AppWorld-v0"
CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n\t"
EMPTY_ACTION = "Execution failed. No code was given: reply with one ```python``` block."


def tasks_of(split: str) -> list[tuple[Scenario, int]]:
    """The split's tasks in their fixed order: each scenario's variants 1, 2, 3."""
    return [(s, k) for s in sorted(scenarios_in(split), key=lambda s: s.name) for k in (1, 2, 3)]


def statements(code: str) -> list[str]:
    """The top-level statements of a program, as source text (one turn each for the scripted expert)."""
    tree = ast.parse(code)
    return [ast.get_source_segment(code, node) for node in tree.body]


class AppWorldEnv(gym.Env):
    """The AppWorld-style env; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    privileged_kinds: ClassVar[tuple[str, ...]] = ("api_calls", "api_names", "plan", "expert_plan")
    default_max_turns: ClassVar[int] = 50

    def __init__(self, split: str = "train", task_ids: Sequence[str] | None = None, privileged: Sequence[str] = (),
                 exec_timeout_s: float = 10.0, memory_mb: int = 512):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
        if isinstance(privileged, str):
            raise ValueError(f"privileged must be a list of kinds such as [{privileged!r}], not a string")
        unknown = sorted(set(privileged) - set(self.privileged_kinds))
        if unknown:
            raise ValueError(f"unknown privileged kinds {unknown}; this env provides {list(self.privileged_kinds)}")
        self.split, self.privileged = split, tuple(dict.fromkeys(privileged))
        self.exec_timeout_s, self.memory_mb = exec_timeout_s, memory_mb
        self.tasks = tasks_of(split)
        if task_ids is not None:
            wanted = set(task_ids)
            self.tasks = [(s, k) for s, k in self.tasks if s.variant_id(k) in wanted]
            missing = sorted(wanted - {s.variant_id(k) for s, k in self.tasks})
            if missing:
                raise ValueError(f"task ids {missing} are not in split {split!r}")
        if not self.tasks:
            raise ValueError(f"split {split!r} has no tasks")
        self.observation_space = gym.spaces.Text(max_length=200_000, charset=CHARSET)
        self.action_space = gym.spaces.Text(max_length=20_000, min_length=0, charset=CHARSET)
        self._sandbox: Sandbox | None = None
        self._cells: list[str] = []
        self._task: tuple[Scenario, Variant] | None = None
        self._seed: int | None = None

    # ------------------------------------------------------------------------------------------ episode

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self.action_space.seed(seed)  # the checker samples actions: keep them a function of the seed
        self._seed = seed
        options = dict(options or {})
        unknown = set(options) - {"task_id"}
        if unknown:
            raise ValueError(f"reset options take 'task_id' only, got {sorted(unknown)}")
        if "task_id" in options:
            matches = [(s, k) for s, k in self.tasks if s.variant_id(k) == options["task_id"]]
            if not matches:
                raise ValueError(f"task {options['task_id']!r} is not in this env's tasks (split {self.split!r})")
            scenario, k = matches[0]
        else:
            index = int(self.np_random.integers(0, len(self.tasks))) if seed is None else seed % len(self.tasks)
            scenario, k = self.tasks[index]
        self._start(scenario, k)
        return self._first_observation(), self._info()

    def _start(self, scenario: Scenario, k: int) -> None:
        self.close()
        variant = scenario.variant(k)
        self._task = (scenario, variant)
        self._ctx, self._start_state = start_task(scenario, variant)
        self._cells, self._done, self._checker = [], False, None
        self._reference = statements(scenario.solution(variant.params))
        self._trace = _reference_trace(scenario, variant) if self.privileged else None
        limits = ExecutorLimits(timeout_s=self.exec_timeout_s, memory_mb=self.memory_mb)
        self._sandbox = Sandbox(handler_for(self._ctx), limits=limits, now=variant.world.now)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended: call reset()")
        if not isinstance(action, str) or not action.strip():
            return EMPTY_ACTION, 0.0, False, False, self._info(invalid=True)
        self._cells.append(action)
        observation = self._sandbox.execute(action)
        completed = self._ctx.db.execute("SELECT completed FROM supervisor_task").fetchone()[0]
        reward = 0.0
        if completed:
            scenario, variant = self._task
            self._checker = evaluate(scenario, variant, self._ctx, self._start_state)
            self._done, reward = True, float(self._checker.passed)
        return observation, reward, self._done, False, self._info(invalid=observation.startswith("Execution failed"))

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    # --------------------------------------------------------------------------------------------- info

    def _first_observation(self) -> str:
        me = self._ctx.apps["supervisor"].call("show_profile", {})
        scenario, variant = self._task
        return (f"I am {me['first_name']} {me['last_name']}; my email is {me['email']} and my phone number is "
                f"{me['phone']}.\nTask: {scenario.instruction(variant.params)}")

    def _info(self, invalid: bool = False) -> dict[str, Any]:
        scenario, variant = self._task
        won = bool(self._checker and self._checker.passed)
        info: dict[str, Any] = {
            "task": scenario.instruction(variant.params), "task_id": variant.task_id, "task_type": scenario.name,
            "difficulty": difficulty(self._trace_calls()), "split": self.split, "won": won, "success": won,
            "invalid_action": invalid,
        }
        if self._checker is not None:
            info["evaluation"] = [{"requirement": r, "passed": ok} for r, ok in self._checker.results]
        if self.privileged:
            info["privileged"] = {kind: self._pi(kind) for kind in self.privileged}
        return info

    def _trace_calls(self) -> int:
        scenario, variant = self._task
        return len(_reference_trace(scenario, variant))

    def _pi(self, kind: str) -> Any:
        if kind == "expert_plan":
            on_path = self._cells == self._reference[: len(self._cells)]
            return list(self._reference[len(self._cells):]) if on_path else None
        calls = self._trace
        if kind == "api_calls":
            return [f"apis.{app}.{api}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
                    for app, api, kwargs in calls]
        if kind == "api_names":
            return list(dict.fromkeys(f"{app}.{api}" for app, api, _ in calls))
        return _plan(calls)

    # ------------------------------------------------------------------------------------------- pickle

    def __getstate__(self) -> dict[str, Any]:
        scenario, variant = self._task if self._task else (None, None)
        return {"init": {"split": self.split, "privileged": self.privileged, "exec_timeout_s": self.exec_timeout_s,
                         "memory_mb": self.memory_mb},
                "task_names": [(s.name, k) for s, k in self.tasks],
                "task": None if scenario is None else (scenario.name, variant.k), "cells": list(self._cells),
                "digest": None if scenario is None else world_digest(self._ctx), "rng": self._np_random_seed,
                "rng_state": self.np_random.bit_generator.state if self._np_random is not None else None,
                "action_rng": self.action_space.np_random.bit_generator.state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init"])
        by_name = {s.name: s for s, _ in tasks_of(self.split)}
        self.tasks = [(by_name[name], k) for name, k in state["task_names"]]
        if state["rng_state"] is not None:  # the generator exactly as it was, without a throwaway reset
            self._np_random, _ = seeding.np_random(0)
            self._np_random.bit_generator.state = state["rng_state"]
            self._np_random_seed = state["rng"]
        self.action_space.np_random.bit_generator.state = state["action_rng"]
        if state["task"] is None:
            return
        name, k = state["task"]
        self._start(by_name[name], k)
        for cell in state["cells"]:
            self.step(cell)
        if world_digest(self._ctx) != state["digest"]:
            raise RuntimeError("replaying the episode's code cells did not reproduce its database")


_TRACES: dict[str, list[tuple[str, str, dict]]] = {}


def _reference_trace(scenario: Scenario, variant: Variant) -> list[tuple[str, str, dict]]:
    """The API calls the reference solution makes, recorded once per task on a throwaway copy of its world."""
    if variant.task_id not in _TRACES:
        ctx, _ = start_task(scenario, variant)
        calls: list[tuple[str, str, dict]] = []
        handle = handler_for(ctx)

        def recording(app: str, api: str, kwargs: dict) -> Any:
            calls.append((app, api, dict(kwargs)))
            return handle(app, api, kwargs)

        with Sandbox(recording, now=variant.world.now) as sandbox:
            sandbox.execute(scenario.solution(variant.params))
        _TRACES[variant.task_id] = calls
    return _TRACES[variant.task_id]


def _plan(calls: Sequence[tuple[str, str, dict]]) -> list[str]:
    """Numbered plan steps from the reference calls: consecutive calls of one API are one step."""
    steps: list[str] = []
    for app, api, kwargs in calls:
        words = api.replace("_", " ")
        if api == "complete_task":
            text = "Finish with supervisor.complete_task" + (" and the answer." if "answer" in kwargs else ".")
        elif api == "login":
            text = f"Log in to {app} with the password from supervisor.show_account_passwords."
        else:
            text = f"In {app}, {words}" + (f" ({', '.join(sorted(kwargs))})" if kwargs else "") + "."
        if not steps or steps[-1] != text:
            steps.append(text)
    return [f"{i}. {s}" for i, s in enumerate(steps, 1)]
