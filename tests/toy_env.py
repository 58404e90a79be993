"""A tiny counting env for tests: reach the target count with "inc". Its PI carries a canary string."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

CANARY = "CANARY-7f3a9c-never-in-student-view"
TOY_ID = "agentdistill/Toy-v0"
CHARSET = frozenset(chr(c) for c in range(32, 127)) | {"\n"}


class ToyEnv(gym.Env):
    """Count from 0 to a seeded target with "inc"; "wait" does nothing; anything else is invalid (−0.1).

    ``fail_at_turn`` injects an env bug (an exception) at that step, to test error recording: in every
    episode, or only in those reset with a seed in ``fail_on_seeds`` (so a rollout mixes errored and clean
    episodes). ``fail_with`` says how the bug shows: "raise" (a RuntimeError), or — to test env worker
    processes, never in-process — "exit" (``os._exit(1)``) or "segfault" (a real SIGSEGV).

    ``rendezvous`` (a file path) makes every step first wait, up to 10 s, for that file to exist, and end its
    observation with whether it appeared: a step that sees a file only a later policy call (or another env's
    step) creates was running while that call (or step) was made. ``announce`` (a file path) is created at the
    start of every step, before the wait.
    """

    privileged_kinds: ClassVar[tuple[str, ...]] = ("expert_plan", "secret")
    default_max_turns: ClassVar[int] = 8
    metadata = {"render_modes": []}

    def __init__(self, privileged: Sequence[str] = (), fail_at_turn: int | None = None,
                 fail_on_seeds: Sequence[int] | None = None, fail_with: str = "raise", rendezvous: str | None = None,
                 announce: str | None = None):
        unknown = set(privileged) - set(self.privileged_kinds)
        if unknown:
            raise ValueError(f"unknown privileged kinds {sorted(unknown)}; available: {self.privileged_kinds}")
        self.privileged = tuple(privileged)
        self.fail_at_turn = fail_at_turn
        self.fail_on_seeds = None if fail_on_seeds is None else frozenset(fail_on_seeds)
        if fail_with not in ("raise", "exit", "segfault"):
            raise ValueError(f"fail_with must be raise, exit or segfault, got {fail_with!r}")
        self.fail_with = fail_with
        self.rendezvous, self.announce = rendezvous, announce
        self.reset_seed: int | None = None
        self.observation_space = spaces.Text(max_length=256, charset=CHARSET)
        self.action_space = spaces.Text(max_length=64, charset=CHARSET)
        self.target = self.count = self.turn = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.reset_seed = seed
        self.target = int(self.np_random.integers(2, 5))
        self.count = self.turn = 0
        return f"count: 0 of {self.target}", self._info(invalid=False)

    def step(self, action: str):
        self.turn += 1
        if self.fail_at_turn is not None and self.turn == self.fail_at_turn and self._fails_on(self.reset_seed):
            if self.fail_with == "exit":
                os._exit(1)
            if self.fail_with == "segfault":
                ctypes.string_at(0)  # reads address 0: SIGSEGV
            raise RuntimeError("injected env bug")
        seen = self._await_rendezvous()
        invalid = action not in ("inc", "wait")
        reward = -0.1 if invalid else 0.0
        if action == "inc":
            self.count += 1
            reward = 1.0 if self.count == self.target else 0.0
        terminated = self.count >= self.target
        obs = f"count: {self.count} of {self.target}" + ("" if seen is None else f" (rendezvous {seen})")
        return obs, reward, terminated, False, self._info(invalid)

    def _await_rendezvous(self) -> str | None:
        if self.announce is not None:
            open(self.announce, "a").close()
        if self.rendezvous is None:
            return None
        deadline = time.monotonic() + 10.0
        while not os.path.exists(self.rendezvous) and time.monotonic() < deadline:
            time.sleep(0.005)
        return "seen" if os.path.exists(self.rendezvous) else "missed"

    def _fails_on(self, seed: int | None) -> bool:
        return self.fail_on_seeds is None or seed in self.fail_on_seeds

    def _info(self, invalid: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "task": f"count to {self.target}", "task_id": f"toy-{self.target}", "won": self.count >= self.target,
            "admissible_actions": ["inc", "wait"], "invalid_action": invalid,
        }
        if self.privileged:
            pi = {"expert_plan": ["inc"] * (self.target - self.count), "secret": CANARY}
            info["privileged"] = {k: pi[k] for k in self.privileged}
        return info


class ToyInterface:
    name = "toy"

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        return f"You are counting. Task: {info['task']}. Reply with inc or wait."

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        return f"{observation}\nActions: {', '.join(info['admissible_actions'])}"

    def parse_action(self, text: str) -> str | None:
        word = text.strip().lower()
        return word if word in ("inc", "wait") else None

    def format_action(self, action: str) -> str:
        return action

    def render_privileged(self, privileged: Mapping[str, Any]) -> str:
        parts = []
        if "expert_plan" in privileged:
            parts.append("plan: " + " ".join(privileged["expert_plan"]))
        if "secret" in privileged:
            parts.append("secret: " + privileged["secret"])
        return "\n".join(parts)


def register() -> None:
    if TOY_ID not in gym.registry:
        gym.register(TOY_ID, entry_point="toy_env:ToyEnv")


def refuse_to_start() -> None:
    """A broken ``EnvPool`` initializer."""
    raise RuntimeError("this worker refuses to start")


class LeakyToyEnv(ToyEnv):
    """Broken on purpose: requesting PI changes the observation."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return obs + (f" {CANARY}" if self.privileged else ""), info


class UnseededToyEnv(ToyEnv):
    """Broken on purpose: ignores the reset seed."""

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=None)


class SelfTruncatingToyEnv(ToyEnv):
    """Broken on purpose: truncates itself instead of leaving budgets to wrappers."""

    def step(self, action):
        obs, reward, terminated, _, info = super().step(action)
        return obs, reward, terminated, self.turn >= 3, info
