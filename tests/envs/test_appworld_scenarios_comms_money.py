"""Comms-and-money scenarios (phone, wallet, splitbill): every reference solution passes in the real sandbox
on all three variants; a no-op fails everywhere; a wrong answer fails every question; the reference plus one
unrelated change fails every action; variants differ; and the difficulty mix holds."""

from __future__ import annotations

import re
from functools import cache
from itertools import combinations

import pytest

from agentdistill_appworld.scenarios import basic
from agentdistill_appworld.scenarios.comms_money import SCENARIOS
from agentdistill_appworld.tasks import Outcome, Variant, difficulty, run_solution

BY_NAME = {s.name: s for s in SCENARIOS}
NAMES = sorted(BY_NAME)
QUESTIONS = sorted(s.name for s in SCENARIOS if s.kind == "question")
ACTIONS = sorted(s.name for s in SCENARIOS if s.kind == "action")
COMPLETE = "apis.supervisor.complete_task()\n"

#: One unrelated change per action scenario, run after the reference solution's own work (its tokens are
#: still in the namespace): in the table the task changes, or in another one.
DAMAGE = {
    "square_up_pending_requests":  # an extra payment: same table
        'apis.wallet.send_money(access_token=wallet_token, amount=1.0, note="oops",\n'
        '    receiver_email=apis.wallet.show_friends(access_token=wallet_token)[0]["email"])\n',
    "request_equal_split_on_wallet":  # an extra request: same table
        'apis.wallet.request_money(access_token=wallet_token, amount=5.0, note="extra",\n'
        '    payer_email=apis.wallet.show_friends(access_token=wallet_token)[0]["email"])\n',
    "add_group_expense_split_equally":  # a comment on an old expense: another table
        'apis.splitbill.add_expense_comment(access_token=splitbill_token, comment="Noted",\n'
        '    expense_id=apis.splitbill.show_expenses(access_token=splitbill_token)[-1]["expense_id"])\n',
    "settle_group_debt_via_wallet":  # a comment on a payment: another table
        'apis.wallet.add_transaction_comment(access_token=wallet_token, comment="Thanks!", transaction_id=\n'
        '    apis.wallet.show_transactions(access_token=wallet_token)[-1]["transaction_id"])\n',
    "text_everyone_with_relationship":  # one text too many: same table
        'apis.phone.send_text_message(access_token=phone_token, phone_number="5550000000", message="hi")\n',
    "forward_last_text":  # an alarm deleted: another table
        'apis.phone.delete_alarm(access_token=phone_token,\n'
        '    alarm_id=apis.phone.show_alarms(access_token=phone_token)[0]["alarm_id"])\n',
}


@cache
def variant(name: str, k: int) -> Variant:
    return BY_NAME[name].variant(k)


@cache
def reference(name: str, k: int) -> Outcome:
    return run_solution(BY_NAME[name], variant(name, k))


def _wrong(expected):
    if isinstance(expected, list):
        return expected[:-1] if len(expected) > 1 else [*expected, "Nobody Else"]
    if isinstance(expected, str):
        return "5550000000" if expected != "5550000000" else "5550000001"
    return expected + 1


@pytest.mark.parametrize("name, k", [(n, k) for n in NAMES for k in (1, 2, 3)])
def test_reference_solution_passes(name, k):
    outcome = reference(name, k)
    assert outcome.passed, (outcome.observations, [r for r, ok in outcome.results if not ok])
    assert outcome.observations[0].startswith("Execution successful")


@pytest.mark.parametrize("name", NAMES)
def test_a_no_op_fails(name):
    outcome = run_solution(BY_NAME[name], variant(name, 1), COMPLETE)
    assert not outcome.passed


@pytest.mark.parametrize("name", QUESTIONS)
def test_a_wrong_answer_fails(name):
    v = variant(name, 2)
    wrong = _wrong(v.params["expected"])
    assert wrong != v.params["expected"]
    outcome = run_solution(BY_NAME[name], v, f"apis.supervisor.complete_task(answer={wrong!r})")
    assert not outcome.passed
    assert any(r.startswith("the answer is") and not ok for r, ok in outcome.results)


@pytest.mark.parametrize("name", ACTIONS)
def test_collateral_damage_fails(name):
    assert set(DAMAGE) == set(ACTIONS)
    v = variant(name, 1)
    code = BY_NAME[name].solution(v.params)
    assert code.endswith(COMPLETE)
    outcome = run_solution(BY_NAME[name], v, code[:-len(COMPLETE)] + DAMAGE[name] + COMPLETE)
    assert outcome.observations[0].startswith("Execution successful"), outcome.observations
    assert not outcome.passed
    assert reference(name, 1).passed


@pytest.mark.parametrize("name", NAMES)
def test_variants_differ(name):
    variants = [variant(name, k) for k in (1, 2, 3)]
    assert len({v.world.seed for v in variants}) == 3
    for a, b in combinations(variants, 2):
        assert dict(a.params) != dict(b.params)
        assert BY_NAME[name].instruction(a.params) != BY_NAME[name].instruction(b.params)


def test_scenario_mix_and_difficulty(capsys):
    rows = []
    for s in SCENARIOS:
        calls = reference(s.name, 1).api_calls
        rows.append((s.name, s.kind, ",".join(s.apps), calls, difficulty(calls)))
    with capsys.disabled():
        print("\nscenario | kind | apps | API calls (v1) | difficulty")
        for row in rows:
            print(" | ".join(map(str, row)))
    assert len(SCENARIOS) == 12 and len(set(BY_NAME)) == 12
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", s.name) for s in SCENARIOS)
    assert not set(BY_NAME) & {s.name for s in basic.SCENARIOS}
    assert {s.kind for s in SCENARIOS} == {"question", "action"} and 5 <= len(QUESTIONS) <= 7
    assert all(set(s.apps) <= {"phone", "wallet", "splitbill", "supervisor"} for s in SCENARIOS)
    assert sum(len(s.apps) > 1 for s in SCENARIOS) >= 4
    levels = [level for *_, level in rows]
    assert levels.count(3) >= 4 and levels.count(2) >= 2, rows
