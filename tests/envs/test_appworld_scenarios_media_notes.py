"""The music and notes scenarios: every reference solution passes in the real sandbox, while a no-op, a wrong
answer and a solution with collateral damage fail; variants differ; the difficulty mix holds."""

from __future__ import annotations

from functools import cache

import pytest

from agentdistill_appworld.scenarios.media_notes import SCENARIOS
from agentdistill_appworld.tasks import Outcome, Scenario, Variant, difficulty, run_solution

BY_NAME = {s.name: s for s in SCENARIOS}
VARIANTS = [(s.name, k) for s in SCENARIOS for k in (1, 2, 3)]
QUESTIONS = [s.name for s in SCENARIOS if s.kind == "question"]
ACTIONS = [s.name for s in SCENARIOS if s.kind == "action"]

#: One unrelated change per app, made with the token the reference solution already holds.
DAMAGE = {
    "music": "apis.music.play_song(access_token=music_token, song_id=1)\n",
    "notes": 'apis.notes.create_note(access_token=notes_token, title="Unrelated")\n',
}
COMPLETE = "apis.supervisor.complete_task("


@cache
def _variant(name: str, k: int) -> Variant:
    return BY_NAME[name].variant(k)


@cache
def _reference(name: str, k: int) -> Outcome:
    return run_solution(BY_NAME[name], _variant(name, k))


def _wrong(expected):
    if isinstance(expected, list):
        return expected[:-1] + ["Not A Real Song"]
    if isinstance(expected, str):
        return expected + " Jr."
    return expected + 1


def _damage_app(scenario: Scenario) -> str:
    return "music" if "music" in scenario.apps else "notes"


def test_the_module_has_twelve_distinctly_named_scenarios():
    assert len(SCENARIOS) == 12 and len(BY_NAME) == 12
    assert all("music" in s.apps or "notes" in s.apps for s in SCENARIOS)
    assert len(QUESTIONS) == 6 and len(ACTIONS) == 6
    assert sum(len(s.apps) > 1 for s in SCENARIOS) >= 4


@pytest.mark.parametrize("name, k", VARIANTS, ids=[f"{n}-{k}" for n, k in VARIANTS])
def test_reference_solution_passes(name, k):
    outcome = _reference(name, k)
    assert outcome.passed, (outcome.observations, [r for r in outcome.results if not r[1]])


@pytest.mark.parametrize("name", BY_NAME)
def test_a_no_op_fails(name):
    outcome = run_solution(BY_NAME[name], _variant(name, 1), COMPLETE + ")")
    assert not outcome.passed


@pytest.mark.parametrize("name", QUESTIONS)
def test_a_wrong_answer_fails(name):
    variant = _variant(name, 2)
    wrong = _wrong(variant.params["expected"])
    assert wrong != variant.params["expected"]
    assert not run_solution(BY_NAME[name], variant, f"{COMPLETE}answer={wrong!r})").passed


@pytest.mark.parametrize("name", ACTIONS)
def test_collateral_damage_fails(name):
    scenario = BY_NAME[name]
    variant = _variant(name, 3)
    code = scenario.solution(variant.params)
    assert code.count(COMPLETE) == 1
    outcome = run_solution(scenario, variant, code.replace(COMPLETE, DAMAGE[_damage_app(scenario)] + COMPLETE))
    assert not outcome.passed, outcome.results


@pytest.mark.parametrize("name", BY_NAME)
def test_variants_differ(name):
    scenario = BY_NAME[name]
    variants = [_variant(name, k) for k in (1, 2, 3)]
    params = [dict(v.params) for v in variants]
    assert params[0] != params[1] != params[2] != params[0]
    assert len({scenario.instruction(p) for p in params}) == 3
    assert len({v.world.seed for v in variants}) == 3


def test_api_calls_and_difficulty_mix(capsys):
    levels = {}
    with capsys.disabled():
        print(f"\n{'scenario':32} {'kind':9} {'apps':14} calls difficulty")
        for scenario in SCENARIOS:
            calls = _reference(scenario.name, 1).api_calls
            levels[scenario.name] = difficulty(calls)
            print(f"{scenario.name:32} {scenario.kind:9} {'+'.join(scenario.apps):14} {calls:5} "
                  f"{levels[scenario.name]:10}")
    assert sum(level == 3 for level in levels.values()) >= 4
    assert set(levels.values()) >= {2, 3}
