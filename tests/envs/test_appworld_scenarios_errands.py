"""Errand scenarios (todo with splitbill, wallet, phone, supervisor): every reference solution passes in the real
sandbox; a no-op, a wrong answer and a reference solution with collateral damage fail; variants differ; the mix
of kinds, apps and difficulties is as intended."""

from __future__ import annotations

from functools import cache

import pytest

from agentdistill_appworld.scenarios import SCENARIOS as REGISTERED
from agentdistill_appworld.scenarios.common import login
from agentdistill_appworld.scenarios.errands import SCENARIOS
from agentdistill_appworld.tasks import Outcome, Scenario, Variant, difficulty, run_solution

BY_NAME = {s.name: s for s in SCENARIOS}
VARIANTS = [(s.name, k) for s in SCENARIOS for k in (1, 2, 3)]
ACTIONS = [s.name for s in SCENARIOS if s.kind == "action"]
QUESTIONS = [s.name for s in SCENARIOS if s.kind == "question"]
DONE = "apis.supervisor.complete_task()"


@cache
def variant(name: str, k: int) -> Variant:
    return BY_NAME[name].variant(k)


@cache
def reference(name: str, k: int) -> Outcome:
    return run_solution(BY_NAME[name], variant(name, k))


def with_damage(scenario: Scenario, v: Variant, damage: str) -> str:
    """The reference solution with ``damage`` done right before the task is marked complete."""
    code = scenario.solution(v.params)
    assert code.count(DONE) == 1
    return code.replace(DONE, damage + DONE)


EXTRA_TASK = login("todo") + 'apis.todo.create_task(access_token=todo_token, title="Sort the recycling")\n'
EXTRA_ALARM = login("phone") + 'apis.phone.create_alarm(access_token=phone_token, time="05:55", label="Stretch")\n'
EXTRA_TEXT = login("phone") + ('apis.phone.send_text_message(access_token=phone_token, phone_number="5550001234", '
                               'message="See you soon")\n')


@pytest.mark.parametrize("name, k", VARIANTS, ids=[f"{n}-{k}" for n, k in VARIANTS])
def test_reference_solution_passes(name, k):
    outcome = reference(name, k)
    assert outcome.passed, (outcome.observations, [r for r in outcome.results if not r[1]])
    assert "Error" not in outcome.observations[0], outcome.observations


@pytest.mark.parametrize("name", list(BY_NAME))
def test_a_no_op_fails(name):
    scenario = BY_NAME[name]
    outcome = run_solution(scenario, variant(name, 1), DONE)
    assert not outcome.passed


@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize("damage", [EXTRA_TASK, EXTRA_ALARM], ids=["extra-todo-task", "extra-phone-alarm"])
def test_collateral_damage_fails(name, damage):
    scenario = BY_NAME[name]
    v = variant(name, 1)
    outcome = run_solution(scenario, v, with_damage(scenario, v, damage))
    assert not outcome.passed, outcome.results


def test_an_extra_text_fails_the_texting_task():
    scenario = BY_NAME["text_open_todo_tasks"]
    v = variant(scenario.name, 2)
    outcome = run_solution(scenario, v, with_damage(scenario, v, EXTRA_TEXT))
    assert not outcome.passed and any("exactly one text" in r and not ok for r, ok in outcome.results)


@pytest.mark.parametrize("name", QUESTIONS)
def test_a_wrong_answer_or_a_side_effect_fails(name):
    scenario = BY_NAME[name]
    v = variant(name, 1)
    expected = v.params["expected"]
    wrong = expected + 1 if isinstance(expected, (int, float)) else f"{expected} and more"
    assert not run_solution(scenario, v, f"apis.supervisor.complete_task(answer={wrong!r})").passed
    right = f"apis.supervisor.complete_task(answer={expected!r})"
    assert run_solution(scenario, v, right).passed
    outcome = run_solution(scenario, v, EXTRA_TASK + right)
    assert not outcome.passed and any("nothing outside" in r and not ok for r, ok in outcome.results)


def test_partial_work_fails():
    """Doing only the first item of a loop is not enough."""
    scenario = BY_NAME["todo_tasks_for_birthdays"]
    v = variant(scenario.name, 3)
    assert len(v.params["expected"]) >= 2
    first = v.params["expected"][0]
    code = login("todo") + (f'apis.todo.create_task(access_token=todo_token, title={first["title"]!r}, '
                            f'due_date={first["due_date"]!r}, priority=3, labels=["birthday"])\n') + DONE
    assert not run_solution(scenario, v, code).passed


def test_variants_differ_and_are_deterministic():
    for scenario in SCENARIOS:
        variants = [variant(scenario.name, k) for k in (1, 2, 3)]
        params = [v.params for v in variants]
        assert all(params[i] != params[j] for i in range(3) for j in range(i + 1, 3)), scenario.name
        assert len({scenario.instruction(p) for p in params}) == 3, scenario.name
        assert len({v.world.seed for v in variants}) == 3 and len({v.task_id for v in variants}) == 3
        assert scenario.variant(1).params == params[0], f"{scenario.name}: pick is not deterministic"


def test_names_are_unique_and_the_mix_is_as_intended(capsys):
    names = [s.name for s in SCENARIOS]
    assert len(names) == 13 and len(set(names)) == 13
    assert not set(names) & {s.name for s in REGISTERED if s not in SCENARIOS}
    assert all(s.kind in ("question", "action") for s in SCENARIOS)
    assert len(QUESTIONS) == 5 and len(ACTIONS) == 8
    assert not any({"music", "notes"} & set(s.apps) for s in SCENARIOS)
    multi_app = [s for s in SCENARIOS if len(set(s.apps) - {"supervisor"}) >= 2]
    assert len(multi_app) >= 7
    levels = {}
    with capsys.disabled():
        print(f"\n{'scenario':36} {'kind':8} {'apps':22} calls(k=1,2,3)  difficulty")
        for s in SCENARIOS:
            calls = [reference(s.name, k).api_calls for k in (1, 2, 3)]
            levels[s.name] = difficulty(calls[0])
            print(f"{s.name:36} {s.kind:8} {'+'.join(s.apps):22} {str(calls):15} {levels[s.name]}")
    assert sum(level == 3 for level in levels.values()) >= 5
    assert set(levels.values()) >= {2, 3}
