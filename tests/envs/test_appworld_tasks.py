"""AppWorld-style tasks: every reference solution passes its tests in the real sandbox; a no-op, a wrong
solution and one with collateral damage fail."""

from __future__ import annotations

import pytest

from agentdistill_appworld.scenarios.basic import ADD_TODO, COUNT_CONTACTS, PAY_CONTACT, SCENARIOS
from agentdistill_appworld.scenarios.common import login
from agentdistill_appworld.tasks import difficulty, run_solution

VARIANTS = [(s, k) for s in SCENARIOS for k in (1, 2, 3)]


@pytest.mark.parametrize("scenario, k", VARIANTS, ids=[f"{s.name}-{k}" for s, k in VARIANTS])
def test_reference_solution_passes(scenario, k):
    variant = scenario.variant(k)
    outcome = run_solution(scenario, variant)
    assert outcome.passed, (outcome.observations, outcome.results)
    assert 1 <= difficulty(outcome.api_calls) <= 3


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_no_op_fails(scenario):
    outcome = run_solution(scenario, scenario.variant(1), "apis.supervisor.complete_task()")
    assert not outcome.passed


def test_variants_differ_in_parameters_and_start_state():
    variants = [PAY_CONTACT.variant(k) for k in (1, 2, 3)]
    assert len({v.world.seed for v in variants}) == 3 and len({v.params["email"] for v in variants}) == 3
    assert len({v.task_id for v in variants}) == 3 and variants[0].task_id.endswith("_1")


def test_wrong_answers_and_wrong_payments_fail():
    variant = COUNT_CONTACTS.variant(1)
    assert not run_solution(COUNT_CONTACTS, variant,
                            f"apis.supervisor.complete_task(answer={variant.params['expected'] + 1})").passed
    pay = PAY_CONTACT.variant(1)
    wrong_amount = PAY_CONTACT.solution(pay.params).replace(f"amount={pay.params['amount']}",
                                                            f"amount={pay.params['amount'] + 1}")
    assert not run_solution(PAY_CONTACT, pay, wrong_amount).passed


def test_collateral_damage_fails():
    variant = COUNT_CONTACTS.variant(2)
    right = f"apis.supervisor.complete_task(answer={variant.params['expected']})"
    assert run_solution(COUNT_CONTACTS, variant, right).passed
    damage = login("phone") + "apis.phone.delete_contact(access_token=phone_token, contact_id=1)\n" + right
    outcome = run_solution(COUNT_CONTACTS, variant, damage)
    assert not outcome.passed and any("nothing outside" in r and not ok for r, ok in outcome.results)
    todo = ADD_TODO.variant(1)
    extra = ADD_TODO.solution(todo.params).replace(
        "apis.supervisor.complete_task()",
        'apis.todo.create_task(access_token=todo_token, title="Unrelated")\napis.supervisor.complete_task()')
    assert not run_solution(ADD_TODO, todo, extra).passed


def test_the_registry_has_every_difficulty_and_split():
    from collections import Counter

    from agentdistill_appworld.metrics import task_difficulties
    from agentdistill_appworld.scenarios import SCENARIOS as ALL
    from agentdistill_appworld.scenarios import SPLITS, split_of

    assert len(ALL) >= 40 and {s.kind for s in ALL} == {"question", "action"}
    assert set(Counter(level for _, level in task_difficulties().values())) == {1, 2, 3}
    assert set(Counter(split_of(s) for s in ALL)) == set(SPLITS)
    train_apps = set().union(*(s.apps for s in ALL if split_of(s) == "train"))
    assert not train_apps & {"music", "notes"}  # test_challenge's apps are never seen in train
