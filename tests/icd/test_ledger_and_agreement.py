"""ICD cost ledger arithmetic (checked by hand) and the agreement normalisers."""

from __future__ import annotations

import math

import pytest

from agentdistill.icd.agreement import agree, api_call_signature, normalise_code, normalise_command
from agentdistill.icd.ledger import BillingModel, Call, Ledger, break_even_episodes, call_cost, savings_after
from agentdistill.policies.openai import Price

MINI = Price(input=0.40, output=1.60, cached_input=0.10)


def test_break_even_matches_the_papers_alfworld_numbers():
    # envs_and_icd.md §1.6: teacher $0.059/episode, ICD+cascade $0.024, C_demo ≈ $29.5 → n* ≈ 843
    n_star = break_even_episodes(29.5, 0.059, 0.024)
    assert n_star == pytest.approx(29.5 / 0.035) and math.ceil(n_star) == 843
    assert savings_after(1e6, 29.5, 0.059, 0.024) == pytest.approx(34_970.5)
    assert savings_after(n_star, 29.5, 0.059, 0.024) == pytest.approx(0.0, abs=1e-9)
    assert break_even_episodes(10.0, 0.02, 0.03) == math.inf


def test_billing_models_by_hand():
    call = Call(episode="e", role="student", model="mini", prompt_tokens=2000, completion_tokens=90, samples=3,
                cached_tokens=1500)
    # one call with n=3: prompt once (2000 × 0.40) + 90 × 1.60, per million tokens
    assert call_cost(call, MINI, BillingModel("one_call")) == pytest.approx((2000 * 0.40 + 90 * 1.60) / 1e6)
    # three calls: prompt three times
    assert call_cost(call, MINI, BillingModel("separate_calls")) == pytest.approx((3 * 2000 * 0.40 + 90 * 1.60) / 1e6)
    # caching: the first request has 1500 of its 2000 prompt tokens cached (0.10), the two repeats all 2000
    assert call_cost(call, MINI, BillingModel("separate_calls", prompt_caching=True)) == pytest.approx(
        ((500 * 0.40 + 1500 * 0.10) + 2 * 2000 * 0.10 + 90 * 1.60) / 1e6)
    assert call_cost(call, MINI, BillingModel("one_call", prompt_caching=True)) == pytest.approx(
        (500 * 0.40 + 1500 * 0.10 + 90 * 1.60) / 1e6)
    with pytest.raises(ValueError, match="samples must be one of"):
        BillingModel("batched")


def test_ledger_totals_per_episode_and_role():
    ledger = Ledger(prices={"mini": MINI, "big": Price(3.0, 15.0)})
    ledger.add(Call("e1", "student", "mini", 1000, 30, samples=3))
    ledger.add(Call("e1", "teacher", "big", 1200, 20))
    ledger.add(Call("e2", "student", "mini", 800, 30, samples=3))
    per = ledger.by_episode()
    assert per["e1"]["teacher"] == pytest.approx((1200 * 3.0 + 20 * 15.0) / 1e6)
    assert per["e1"]["total"] == pytest.approx(per["e1"]["student"] + per["e1"]["teacher"])
    assert ledger.total() == pytest.approx(sum(v["total"] for v in per.values()))
    assert ledger.to_dict()["billing"] == {"samples": "one_call", "prompt_caching": False}
    with pytest.raises(ValueError, match="no price for model 'gpt-x'"):
        ledger.add(Call("e3", "teacher", "gpt-x", 1, 1))


def test_command_agreement():
    assert normalise_command("  Go to  Cabinet 1. ") == "go to cabinet 1"
    assert agree(["go to cabinet 1", "Go to cabinet 1.", "'go to cabinet 1'"]).accepted
    result = agree(["go to cabinet 1", "go to cabinet 2", "go to cabinet 1"])
    assert not result.accepted and result.share == pytest.approx(2 / 3)
    assert agree(["go to cabinet 1", "go to cabinet 2", "go to cabinet 1"], min_agree=0.6).action == "go to cabinet 1"
    assert not agree(["look", None, "look"]).accepted  # an unparsed sample never agrees


def test_code_agreement_ignores_formatting_but_not_meaning():
    a = "x = apis.phone.login(username='a', password=p)  # log in"
    b = 'x = apis.phone.login(username="a",\n    password=p)'
    c = "x = apis.phone.login(username='b', password=p)"
    assert normalise_code(a) == normalise_code(b) != normalise_code(c)
    assert agree([a, b], "code_ast").accepted and not agree([a, c], "code_ast").accepted
    assert api_call_signature(a) == api_call_signature(c) == "phone.login(password,username)"
    assert agree([a, c], "api_calls").accepted
    assert api_call_signature("t = apis.wallet.show_balance(access_token=t)\nprint(apis.supervisor.show_profile())") \
        == "wallet.show_balance(access_token);supervisor.show_profile()"
    assert normalise_code("def (") == "def ("  # unparsable code compares as text
