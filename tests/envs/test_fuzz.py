"""Env fuzzing at a small count: every family survives random and adversarial actions, and refused actions leave
its state unchanged. The fuzzer is ``benchmarks/env_fuzz.py`` (its docstring says what is drawn and how each
family's state is compared); the toy-env tests prove the checker can fail.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from toy_env import ToyEnv

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "env_fuzz.py"
_SPEC = importlib.util.spec_from_file_location("env_fuzz", _PATH)
fz = importlib.util.module_from_spec(_SPEC)
sys.modules["env_fuzz"] = fz  # dataclasses look their module up by name
_SPEC.loader.exec_module(fz)

SEED = 0
COUNTS = {"sokoban": 1500, "alfworld": 1500, "textworld": 400, "appworld": 300}
PLUGINS = {"sokoban": "agentdistill_sokoban", "alfworld": "agentdistill_alfworld",
           "textworld": "agentdistill_textworld", "appworld": "agentdistill_appworld"}


def _family(name: str, tmp_path_factory: pytest.TempPathFactory) -> fz.Family:
    pytest.importorskip(PLUGINS[name], reason=f"pip install -e envs/{name}")
    if name == "textworld":
        pytest.importorskip("textworld", reason="needs textworld")
        cache = tmp_path_factory.mktemp("textworld-fuzz-cache")
        return fz.TextWorldFamily(games=[("cooking", 1, 1)], cache_dir=str(cache))  # one game: ~10 s to generate
    return fz.FAMILY_TYPES[name]()


@pytest.mark.parametrize("name", fz.FAMILIES)
def test_family_survives_fuzz_and_refusals_keep_state(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    tally = fz.fuzz(_family(name, tmp_path_factory), COUNTS[name], SEED)
    failures = {k: v for k, v in tally.examples.items() if k in ("host_crash", "state_change", "contract",
                                                                 "refusal_contract")}
    assert tally.host_crashes == 0, failures
    assert tally.state_changes == 0, failures
    assert tally.contract_violations == 0, failures
    assert tally.actions == COUNTS[name]
    assert tally.checked > 0 and tally.accepted > 0, "the fuzz must both refuse and accept, or it tests nothing"


def test_appworld_fuzz_runs_its_expensive_cells(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The quota of timeouts, API-cap loops and session kills is part of the run, at a seeded position."""
    family = _family("appworld", tmp_path_factory)
    family.prepare(random.Random("appworld:0"), 300)
    assert sorted(family.schedule.values()) == ["api_cap", "child_death", "timeout"]


# ------------------------------------------------------------------------------- the checker can fail


class _ToyFamily(fz.Family):
    """The toy counting env under the fuzzer; ``env_type`` picks a broken variant."""

    name = "toy"
    env_type: ClassVar[type] = ToyEnv
    episode_range = (5, 20)

    def open(self) -> None:
        self.env = self.env_type()

    def draw(self, rng: random.Random, obs: str, info: Any) -> fz.Action:
        return fz.text_action(rng, ["inc", "wait"], ["INC", "inc "])

    def state(self) -> dict[str, Any]:
        return {"count": self.env.count, "target": self.env.target}

    def refusal_problem(self, action: fz.Action, obs: str, reward: float, terminated: bool) -> str | None:
        return None if reward == -0.1 else f"reward {reward}"


class _SneakyToyEnv(ToyEnv):
    """Broken on purpose: an invalid action is refused (flagged, -0.1) yet raises the target."""

    def step(self, action: str) -> tuple[Any, ...]:
        out = super().step(action)
        if out[4]["invalid_action"]:
            self.target += 1
        return out


class _CrashingToyEnv(ToyEnv):
    """Broken on purpose: raises on any action that holds a non-ASCII character."""

    def step(self, action: str) -> tuple[Any, ...]:
        if not action.isascii():
            raise UnicodeError("an env bug")
        return super().step(action)


class _MisrewardingToyEnv(ToyEnv):
    """Broken on purpose: refusals cost 0 instead of the documented -0.1."""

    def step(self, action: str) -> tuple[Any, ...]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, 0.0 if info["invalid_action"] else reward, terminated, truncated, info


def _toy(env_type: type) -> type[_ToyFamily]:
    return type(f"Toy{env_type.__name__}", (_ToyFamily,), {"env_type": env_type})


def test_checker_passes_a_correct_toy_env() -> None:
    tally = fz.fuzz(_toy(ToyEnv)(), 300, SEED)
    assert (tally.host_crashes, tally.state_changes, tally.contract_violations) == (0, 0, 0)
    assert tally.checked > 100


def test_checker_notices_a_refusal_that_changes_state() -> None:
    tally = fz.fuzz(_toy(_SneakyToyEnv)(), 300, SEED)
    assert tally.state_changes == tally.checked > 100
    assert "['target']" in tally.examples["state_change"][0]["detail"]


def test_checker_counts_crashes_and_keeps_going() -> None:
    tally = fz.fuzz(_toy(_CrashingToyEnv)(), 300, SEED)
    assert tally.host_crashes > 5 and tally.actions == 300
    assert "UnicodeError" in tally.examples["host_crash"][0]["detail"]


def test_checker_notices_an_undocumented_refusal_reward() -> None:
    tally = fz.fuzz(_toy(_MisrewardingToyEnv)(), 300, SEED)
    assert tally.contract_violations == tally.refused > 100


def test_textworld_checker_notices_a_meta_command_answer() -> None:
    family = fz.TextWorldFamily()
    assert family.step_problem(fz.Action("family", "restart"), "Are you sure you want to restart?")
    assert family.step_problem(fz.Action("valid", "look"), "-= Kitchen =-") is None


# ------------------------------------------------------------------------------------ the generator


def test_fuzz_is_seeded_and_deterministic() -> None:
    pytest.importorskip("agentdistill_sokoban", reason="pip install -e envs/sokoban")
    first, again, other = (fz.fuzz(fz.SokobanFamily(), 400, seed) for seed in (SEED, SEED, SEED + 1))
    strip = lambda tally: {k: v for k, v in vars(tally).items() if k not in ("wall_s", "kind_s")}  # noqa: E731
    assert strip(first) == strip(again)
    assert strip(first) != strip(other)


def test_text_actions_cover_every_kind_and_the_adversarial_pools() -> None:
    rng = random.Random(SEED)
    actions = [fz.text_action(rng, ["go to cabinet 1", "take apple 2 from fridge 1"], ["xyzzy"]) for _ in range(3000)]
    assert {a.kind for a in actions} == set(fz.TEXT_WEIGHTS)
    huge = [a.text for a in actions if a.kind == "huge"]
    assert huge and all(fz.HUGE_MIN <= len(t) <= fz.HUGE_MAX for t in huge)
    texts = "".join(a.text for a in actions if a.kind != "huge")
    for needle in ("\x00", "\x1b[2J", "\r", "\b", "\u202e", "\u0301", "😀"):
        assert needle in texts, ascii(needle)
    assert any("\ud800" <= c <= "\udfff" for c in texts), "lone surrogates"
    assert "" in {a.text for a in actions}


@pytest.mark.parametrize(("mutation", "base", "expected"), [
    ("swap_args", "take apple 1 from fridge 1", "take fridge 1 from apple 1"),
    ("swap_args", "go to cabinet 3", "cabinet 3 to go"),
    ("swap_args", "look", "look"),
])
def test_swapped_arguments(mutation: str, base: str, expected: str) -> None:
    assert fz.MUTATIONS[mutation](random.Random(0), base) == expected


def test_renumber_puts_numbers_out_of_range() -> None:
    rng = random.Random(SEED)
    outs = {fz._renumber(rng, "go to cabinet 3") for _ in range(200)}
    assert outs <= {f"go to cabinet {n}" for n in fz.NUMBERS}
    assert len(outs) > 5
