"""The skill bank: relevance then UCB1 selection on a synthetic bank, eviction, JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from agentdistill.skills import SkillBank, SkillDraft
from agentdistill.skills.bank import task_similarity

DRAFT = SkillDraft("worked", "failed", ("a", "b"))
TASK = "push every box onto a target"


def bank_with(n: int, family: str = "f", task: str = TASK, **kwargs) -> SkillBank:
    """``n`` skills of one family, all from the same task text (selection is then plain UCB)."""
    bank = SkillBank(**kwargs)
    for step in range(n):
        bank.add(DRAFT, family=family, task=task, source_episodes=[f"e{step}"], step=step, summariser="test")
    return bank


def bank_of_tasks(tasks: list[str], family: str = "clean", **kwargs) -> SkillBank:
    """One skill per task text, in order (s00000 from tasks[0], ...)."""
    bank = SkillBank(**kwargs)
    for step, task in enumerate(tasks):
        bank.add(DRAFT, family=family, task=task, source_episodes=[f"e{step}"], step=step, summariser="test")
    return bank


def test_untried_skills_come_first_newest_first():
    bank = bank_with(3)
    picked = [bank.select("f", task=TASK)[0].skill_id for _ in range(3)]
    assert picked == ["s00002", "s00002", "s00002"]  # no observation yet: still untried, newest wins
    for sid in ("s00002", "s00001"):
        bank.observe(sid, 0.5, reward=0.0)
    assert bank.select("f", task=TASK)[0].skill_id == "s00000"  # the only untried one


def test_ucb1_scores_match_the_documented_formula():
    bank = bank_with(2, exploration=1.0)
    for u in (1.0, 0.0, 1.0):  # s0: mean 2/3 over 3
        bank.observe("s00000", u, reward=1.0)
    bank.observe("s00001", 0.25, reward=0.0)  # s1: mean 0.25 over 1
    total = 4
    assert bank.ucb(bank.skills["s00000"]) == pytest.approx(2 / 3 + math.sqrt(2 * math.log(total) / 3))
    assert bank.ucb(bank.skills["s00001"]) == pytest.approx(0.25 + math.sqrt(2 * math.log(total) / 1))
    assert bank.select("f", task=TASK)[0].skill_id == "s00001"  # exploration bonus wins at these counts
    greedy = bank_with(2, exploration=0.0)
    greedy.observe("s00000", 0.9, reward=0.0)
    greedy.observe("s00001", 0.3, reward=0.0)
    assert [s.skill_id for s in greedy.select("f", k=2, task=TASK)] == ["s00000", "s00001"]


def test_the_bandit_finds_the_useful_skill():
    bank = bank_with(4, exploration=0.5)
    truth = {"s00000": 0.2, "s00001": 0.9, "s00002": 0.4, "s00003": 0.5}
    picks = []
    for _ in range(200):
        skill = bank.select("f", task=TASK)[0]
        picks.append(skill.skill_id)
        bank.observe(skill.skill_id, truth[skill.skill_id], reward=0.0)
    assert picks[-50:].count("s00001") >= 45
    assert bank.skills["s00001"].selections == picks.count("s00001")


def test_families_are_separate_and_empty_ones_select_nothing():
    bank = bank_with(2, family="pick")
    bank.add(DRAFT, family="heat", task=TASK, source_episodes=[], step=5, summariser="t")
    assert [s.task_family for s in bank.select("heat", k=3, task=TASK)] == ["heat"]
    assert bank.select("cool", task=TASK) == []


def test_eviction_keeps_the_most_useful():
    bank = bank_with(3, max_per_family=3)
    bank.observe("s00000", 0.9, reward=0.0)
    bank.observe("s00001", 0.1, reward=0.0)
    bank.add(DRAFT, family="f", task=TASK, source_episodes=[], step=9, summariser="t")
    assert sorted(bank.skills) == ["s00000", "s00002", "s00003"]


def test_round_trip_through_json_is_exact():
    bank = bank_with(3, candidates=2)
    bank.observe("s00001", 0.7, reward=1.5)
    bank.select("f", k=2, task=TASK, step=4)
    again = SkillBank.from_dict(json.loads(json.dumps(bank.to_dict())))
    assert again.to_dict() == bank.to_dict() and again.candidates == 2 and again.skills["s00000"].task == TASK
    assert [s.skill_id for s in again.select("f", k=3, task="a box")] == \
        [s.skill_id for s in bank.select("f", k=3, task="a box")]
    with pytest.raises(ValueError, match="does not match the Skill schema"):
        SkillBank.from_dict({"skills": [{"skill_id": "x"}]})
    with pytest.raises(ValueError, match=r"usefulness must be in \[0, 1\]"):
        bank.observe("s00000", 1.5, reward=0.0)


CLEAN_TASKS = [
    "clean some mug and put it in coffeemachine",
    "clean some soapbar and put it in garbagecan",  # s00001: the one like the query below
    "clean some lettuce and put it in countertop",
    "clean some apple and put it in fridge",
    "clean some spatula and put it in diningtable",
]
QUERY = "clean some soapbar and put it in cabinet"


def test_task_similarity_is_a_symmetric_bounded_lexical_cosine():
    a, b = CLEAN_TASKS[0], CLEAN_TASKS[1]
    assert task_similarity(a, a) == 1.0 and task_similarity(a, "") == 0.0 and task_similarity("", "") == 0.0
    assert task_similarity(a, b) == task_similarity(b, a) and 0.0 < task_similarity(a, b) < 1.0
    assert task_similarity("soapbar", "soapbars") > 0.0 == task_similarity("soapbar", "mug")  # char trigrams
    assert task_similarity(QUERY, CLEAN_TASKS[1]) > max(task_similarity(QUERY, t) for t in CLEAN_TASKS[2:])


def test_select_prefers_the_skill_of_a_similar_task():
    bank = bank_of_tasks(CLEAN_TASKS)
    # every skill is untried (UCB +inf): without the relevance tie-break the newest, s00004, would win
    assert bank.select("clean", task=QUERY)[0].skill_id == "s00001"
    assert [s for s, _ in bank.nearest("clean", QUERY, 1)] == [bank.skills["s00001"]]
    assert bank.select("clean", task=CLEAN_TASKS[3])[0].skill_id == "s00003"
    assert bank.select("heat", task=QUERY) == []  # relevance never crosses families


def test_ucb_explores_among_the_most_similar_candidates_only():
    tasks = ["clean some soapbar and put it in drawer", "clean some soapbar and put it in shelf",
             "heat some potato and put it in sinkbasin", "cool some lettuce and put it in microwave",
             "examine the alarmclock with the desklamp"]
    bank = bank_of_tasks(tasks, candidates=2, exploration=1.0)
    truth = {"s00000": 0.2, "s00001": 0.6, "s00002": 1.0, "s00003": 1.0, "s00004": 1.0}
    picks = []
    for _ in range(30):
        skill = bank.select("clean", task="clean some soapbar and put it in cabinet")[0]
        picks.append(skill.skill_id)
        bank.observe(skill.skill_id, truth[skill.skill_id], reward=0.0)
    assert sorted(picks[:2]) == ["s00000", "s00001"]  # both candidates are tried first...
    assert set(picks) == {"s00000", "s00001"}  # ...and the untried, useful but dissimilar skills never are
    assert picks[-10:].count("s00001") >= 7  # UCB settles on the better candidate


def test_equal_task_texts_fall_back_to_plain_ucb_over_the_family():
    bank = bank_with(4, candidates=2, exploration=0.0)
    for sid, u in (("s00000", 0.9), ("s00001", 0.1), ("s00002", 0.2), ("s00003", 0.3)):
        bank.observe(sid, u, reward=0.0)
    # the candidate cut breaks similarity ties by UCB, so the oldest (and best) skill stays reachable
    assert [s.skill_id for s in bank.select("f", k=2, task=TASK)] == ["s00000", "s00003"]


def test_bank_loads_skills_saved_without_task_text():
    bank = bank_with(2)
    saved = bank.to_dict()
    del saved["candidates"]
    for record in saved["skills"]:
        del record["task"]
    old = SkillBank.from_dict(json.loads(json.dumps(saved)))
    assert [s.task for s in old.skills.values()] == ["", ""] and old.candidates == 4
    assert old.select("f", task=TASK)[0].skill_id == "s00001"  # all similarity 0: plain UCB, newest first
    old.add(DRAFT, family="f", task="a different task", source_episodes=[], step=7, summariser="t")
    assert old.select("f", task="a different task")[0].skill_id == "s00002"
    assert SkillBank.from_dict(old.to_dict()).to_dict() == old.to_dict()


def test_candidates_must_be_at_least_one():
    with pytest.raises(ValueError, match="candidates >= 1"):
        SkillBank(candidates=0)
