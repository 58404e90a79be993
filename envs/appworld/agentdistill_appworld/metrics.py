"""TGC and SGC: the AppWorld-style task and scenario goal completion rates, overall and per difficulty.

TGC = the share of tasks whose tests all passed. SGC = the share of scenarios all of whose variants passed
(a scenario counts at the difficulty of its hardest variant). Inputs are (task_id, won) pairs, e.g. from
rollout episodes (``episode.task_id``, ``episode.won``); a task attempted several times counts as passed
only if every attempt passed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from agentdistill_appworld.env import tasks_of
from agentdistill_appworld.scenarios import SPLITS
from agentdistill_appworld.tasks import difficulty


def task_difficulties() -> dict[str, tuple[str, int]]:
    """task id → (scenario name, difficulty), over every split."""
    from agentdistill_appworld.env import _reference_trace

    out = {}
    for split in SPLITS:
        for scenario, k in tasks_of(split):
            variant = scenario.variant(k)
            out[variant.task_id] = (scenario.name, difficulty(len(_reference_trace(scenario, variant))))
    return out


def scores(results: Iterable[tuple[str, bool]]) -> dict[str, float]:
    """``tgc``, ``sgc``, ``tgc_d1..3``, ``sgc_d1..3`` (NaN where a difficulty has no task) and counts."""
    known = task_difficulties()
    passed: dict[str, bool] = {}
    for task_id, won in results:
        if task_id not in known:
            raise ValueError(f"unknown task id {task_id!r}: not an AppWorld-style task")
        passed[task_id] = passed.get(task_id, True) and bool(won)
    if not passed:
        raise ValueError("no results to score")
    scenario_ok: dict[str, bool] = defaultdict(lambda: True)
    scenario_level: dict[str, int] = defaultdict(int)
    for task_id, ok in passed.items():
        name, level = known[task_id]
        scenario_ok[name] &= ok
        scenario_level[name] = max(scenario_level[name], level)
    out = {"tasks": float(len(passed)), "scenarios": float(len(scenario_ok)),
           "tgc": sum(passed.values()) / len(passed), "sgc": sum(scenario_ok.values()) / len(scenario_ok)}
    for level in (1, 2, 3):
        tasks = [ok for t, ok in passed.items() if known[t][1] == level]
        scen = [ok for s, ok in scenario_ok.items() if scenario_level[s] == level]
        out[f"tgc_d{level}"] = sum(tasks) / len(tasks) if tasks else float("nan")
        out[f"sgc_d{level}"] = sum(scen) / len(scen) if scen else float("nan")
    return out
