"""The skill bank: UCB1 selection on a synthetic bank, eviction, JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from agentdistill.skills import SkillBank, SkillDraft

DRAFT = SkillDraft("worked", "failed", ("a", "b"))


def bank_with(n: int, family: str = "f", **kwargs) -> SkillBank:
    bank = SkillBank(**kwargs)
    for step in range(n):
        bank.add(DRAFT, family=family, source_episodes=[f"e{step}"], step=step, summariser="test")
    return bank


def test_untried_skills_come_first_newest_first():
    bank = bank_with(3)
    picked = [bank.select("f")[0].skill_id for _ in range(3)]
    assert picked == ["s00002", "s00002", "s00002"]  # no observation yet: still untried, newest wins
    for sid in ("s00002", "s00001"):
        bank.observe(sid, 0.5, reward=0.0)
    assert bank.select("f")[0].skill_id == "s00000"  # the only untried one


def test_ucb1_scores_match_the_documented_formula():
    bank = bank_with(2, exploration=1.0)
    for u in (1.0, 0.0, 1.0):  # s0: mean 2/3 over 3
        bank.observe("s00000", u, reward=1.0)
    bank.observe("s00001", 0.25, reward=0.0)  # s1: mean 0.25 over 1
    total = 4
    assert bank.ucb(bank.skills["s00000"]) == pytest.approx(2 / 3 + math.sqrt(2 * math.log(total) / 3))
    assert bank.ucb(bank.skills["s00001"]) == pytest.approx(0.25 + math.sqrt(2 * math.log(total) / 1))
    assert bank.select("f")[0].skill_id == "s00001"  # exploration bonus wins at these counts
    greedy = bank_with(2, exploration=0.0)
    greedy.observe("s00000", 0.9, reward=0.0)
    greedy.observe("s00001", 0.3, reward=0.0)
    assert [s.skill_id for s in greedy.select("f", k=2)] == ["s00000", "s00001"]


def test_the_bandit_finds_the_useful_skill():
    bank = bank_with(4, exploration=0.5)
    truth = {"s00000": 0.2, "s00001": 0.9, "s00002": 0.4, "s00003": 0.5}
    picks = []
    for _ in range(200):
        skill = bank.select("f")[0]
        picks.append(skill.skill_id)
        bank.observe(skill.skill_id, truth[skill.skill_id], reward=0.0)
    assert picks[-50:].count("s00001") >= 45
    assert bank.skills["s00001"].selections == picks.count("s00001")


def test_families_are_separate_and_empty_ones_select_nothing():
    bank = bank_with(2, family="pick")
    bank.add(DRAFT, family="heat", source_episodes=[], step=5, summariser="t")
    assert [s.task_family for s in bank.select("heat", k=3)] == ["heat"]
    assert bank.select("cool") == []


def test_eviction_keeps_the_most_useful():
    bank = bank_with(3, max_per_family=3)
    bank.observe("s00000", 0.9, reward=0.0)
    bank.observe("s00001", 0.1, reward=0.0)
    bank.add(DRAFT, family="f", source_episodes=[], step=9, summariser="t")
    assert sorted(bank.skills) == ["s00000", "s00002", "s00003"]


def test_round_trip_through_json_is_exact():
    bank = bank_with(3)
    bank.observe("s00001", 0.7, reward=1.5)
    bank.select("f", k=2, step=4)
    again = SkillBank.from_dict(json.loads(json.dumps(bank.to_dict())))
    assert again.to_dict() == bank.to_dict()
    assert [s.skill_id for s in again.select("f", k=3)] == [s.skill_id for s in bank.select("f", k=3)]
    with pytest.raises(ValueError, match="does not match the Skill schema"):
        SkillBank.from_dict({"skills": [{"skill_id": "x"}]})
    with pytest.raises(ValueError, match=r"usefulness must be in \[0, 1\]"):
        bank.observe("s00000", 1.5, reward=0.0)
