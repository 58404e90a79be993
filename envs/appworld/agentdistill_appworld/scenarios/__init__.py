"""Every task scenario, and the splits.

Scenario modules each export ``SCENARIOS``; this package collects them in a fixed order. Splits are decided
per scenario (all three variants of a scenario share a split): scenarios that use an app listed in
``CHALLENGE_APPS`` go to ``test_challenge`` (apps never seen in ``train``); the others are spread over
``train`` / ``dev`` / ``test_normal`` by their name's hash (60 / 20 / 20).
"""

from __future__ import annotations

import hashlib

from agentdistill_appworld.scenarios import basic, comms_money, errands, media_notes
from agentdistill_appworld.tasks import Scenario

SPLITS = ("train", "dev", "test_normal", "test_challenge")
CHALLENGE_APPS = frozenset({"music", "notes"})

SCENARIOS: tuple[Scenario, ...] = (*basic.SCENARIOS, *comms_money.SCENARIOS, *errands.SCENARIOS,
                                   *media_notes.SCENARIOS)
if len({s.name for s in SCENARIOS}) != len(SCENARIOS):
    raise RuntimeError("two scenarios share a name: task ids would collide")


def split_of(scenario: Scenario) -> str:
    if CHALLENGE_APPS & set(scenario.apps):
        return "test_challenge"
    bucket = int(hashlib.sha256(scenario.name.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 6 else "dev" if bucket < 8 else "test_normal"


def scenarios_in(split: str) -> list[Scenario]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    return [s for s in SCENARIOS if split_of(s) == split]
