"""`SokobanEnv`: text Sokoban as a Gymnasium environment (`agentdistill/Sokoban-v0`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from .levels import Level, check_knobs, generate_level
from .solver import ACTIONS, apply_move, solve

ENV_ID = "agentdistill/Sokoban-v0"

STEP_REWARD = -0.1
"""Every step, valid or not: shorter solutions earn more."""
INVALID_ACTION_REWARD = -0.1
"""An unknown or blocked action (the board does not change)."""
BOX_ON_TARGET_REWARD = 1.0
"""Added when the move pushes a box onto a target."""
BOX_OFF_TARGET_REWARD = -1.0
"""Added when the move pushes a box off a target."""
WIN_REWARD = 10.0
"""Added on the move that puts the last box on a target."""

TASK = "Push every box (X) onto a target (O)."
CHARSET = "".join(chr(code) for code in range(32, 127)) + "\n"
"""Printable ASCII, space and newline: every character an observation can contain."""
OBS_MAX_LENGTH = 4096
ACTION_MAX_LENGTH = 256
_QUOTE_MAX = 40  # longest action echoed back in the invalid-action line


class SokobanEnv(gym.Env[str, str]):
    """Text Sokoban: move the player (P) to push every box (X) onto a target (O).

    Observation: the grid in `levels.LEGEND`, one line per row. After an invalid action the grid is
    preceded by the line ``Invalid action: '<action>'. The board did not change.``

    Actions: ``up``, ``down``, ``left``, ``right`` (surrounding whitespace and case are ignored).
    Anything else, or a move into a wall or a box that cannot move, is an invalid action: the state
    does not change and ``info["invalid_action"]`` is True.

    Rewards per step: -0.1 (`STEP_REWARD`; `INVALID_ACTION_REWARD` for an invalid action), plus
    +1.0 for a box pushed onto a target (`BOX_ON_TARGET_REWARD`), -1.0 for a box pushed off one
    (`BOX_OFF_TARGET_REWARD`), and +10.0 when all boxes are on targets (`WIN_REWARD`).

    ``terminated`` is True exactly on the winning move; ``truncated`` is always False (turn budgets
    are a wrapper's job). Stepping after the win raises RuntimeError.

    ``reset(options=...)`` picks the level: ``{"level_seed": int}`` for a generated one, or
    ``{"level": text}`` for a level written in the legend (XSB symbols accepted). Without options the
    level seed is drawn from the env's seeded generator.

    Privileged information (requested with ``privileged=[...]``, returned only in
    ``info["privileged"]``): ``expert_plan``, the optimal remaining moves from the current state
    (``[]`` once won, None when the level can no longer be solved), and ``expert_trace``, an optimal
    solution from the episode's first state.
    """

    # render_fps only silences the Gymnasium env checker; "ansi" text has no frame rate.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    privileged_kinds: ClassVar[tuple[str, ...]] = ("expert_plan", "expert_trace")
    default_max_turns: ClassVar[int] = 20

    def __init__(
        self,
        dim_room: tuple[int, int] = (6, 6),
        num_boxes: int = 1,
        privileged: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        self.dim_room = tuple(dim_room)
        check_knobs(self.dim_room, num_boxes)
        self.num_boxes = num_boxes
        self.privileged = _check_privileged(privileged, self.privileged_kinds)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Text(OBS_MAX_LENGTH, charset=CHARSET)
        self.action_space = spaces.Text(ACTION_MAX_LENGTH, min_length=0, charset=CHARSET)
        self._level: Level | None = None  # the current state
        self._task_id = ""
        self._done = False
        self._trace: tuple[str, ...] | None = None  # optimal plan from the episode's first state
        self._plan: tuple[str, ...] | None = None  # optimal plan from the current state (cache)
        self._plan_stale = True

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on a new level; see the class docstring for `options`."""
        super().reset(seed=seed)
        # Always draw, so that the generator's stream does not depend on the options.
        level_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._level, self._task_id = self._pick_level(level_seed, options or {})
        self._done = False
        self._trace = self._plan = None
        self._plan_stale = True
        if self.privileged:
            self._trace = self._plan = solve(self._level)
            self._plan_stale = False
        return self._level.to_text(), self._info(invalid=False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one move; an unknown or blocked action leaves the board unchanged (never raises)."""
        if self._level is None:
            raise RuntimeError("step() before reset(); call reset() first")
        if self._done:
            raise RuntimeError(
                "the episode is over (all boxes are on targets); call reset() to start a new one"
            )
        move = str(action).strip().lower()
        after = apply_move(self._level, move) if move in ACTIONS else None
        if after is None:
            obs = f"Invalid action: '{_quote(move)}'. The board did not change.\n{self._level.to_text()}"
            return obs, INVALID_ACTION_REWARD, False, False, self._info(invalid=True)
        before = self._level
        self._follow_plan(move)
        self._level = after
        self._done = after.won
        reward = STEP_REWARD
        if after.boxes != before.boxes:  # a push: exactly one box moved
            (old,), (new,) = before.boxes - after.boxes, after.boxes - before.boxes
            reward += BOX_ON_TARGET_REWARD * (new in after.targets)
            reward += BOX_OFF_TARGET_REWARD * (old in before.targets)
        if after.won:
            reward += WIN_REWARD
        return after.to_text(), reward, after.won, False, self._info(invalid=False)

    def render(self) -> str | None:
        """The grid text in "ansi" mode; None without a render mode."""
        if self.render_mode != "ansi" or self._level is None:
            return None
        return self._level.to_text()

    def _pick_level(self, level_seed: int, options: Mapping[str, Any]) -> tuple[Level, str]:
        """The episode's level and task id from the drawn seed and the reset options."""
        unknown = set(options) - {"level_seed", "level"}
        if unknown or len(options) > 1:
            raise ValueError(
                f"reset options take one of 'level_seed' (int) or 'level' (grid text), got {sorted(options)}"
            )
        if "level" in options:
            if not isinstance(options["level"], str):  # else Level.from_text fails with an AttributeError
                raise ValueError(f"options['level'] must be the level's grid text (a str), got {options['level']!r}")
            level = Level.from_text(options["level"])
            if level.won:
                raise ValueError("the given level is already solved; put at least one box off its target")
            if level.height * (level.width + 1) + 2 * _QUOTE_MAX > OBS_MAX_LENGTH:
                raise ValueError(f"the given level is too large for observations of {OBS_MAX_LENGTH} chars")
            digest = hashlib.sha256(level.to_text().encode()).hexdigest()[:16]
            return level, f"sokoban-custom-{digest}"
        level_seed = options.get("level_seed", level_seed)
        if not isinstance(level_seed, int) or isinstance(level_seed, bool):
            raise ValueError(f"options['level_seed'] must be an int, got {level_seed!r}")
        level = generate_level(level_seed, dim_room=self.dim_room, num_boxes=self.num_boxes)
        height, width = self.dim_room
        return level, f"sokoban-{height}x{width}-b{self.num_boxes}-{level_seed}"

    def _follow_plan(self, move: str) -> None:
        """Keep the cached plan's tail when `move` follows it; otherwise mark it for re-solving.

        An unsolvable state only leads to unsolvable states, so a None plan stays None.
        """
        if self._plan_stale or self._plan is None:
            return
        if self._plan[:1] == (move,):
            self._plan = self._plan[1:]
        else:
            self._plan_stale = True

    def _info(self, *, invalid: bool) -> dict[str, Any]:
        """The info dict of the current state; privileged information only under its own key."""
        level = self._level
        admissible = [] if self._done else [a for a in ACTIONS if apply_move(level, a) is not None]
        info: dict[str, Any] = {
            "task": TASK,
            "task_id": self._task_id,
            "won": level.won,
            "success": level.won,
            "admissible_actions": admissible,
            "invalid_action": invalid,
            "boxes_on_target": level.boxes_on_target,
        }
        if self.privileged:
            info["privileged"] = {kind: self._privileged(kind) for kind in self.privileged}
        return info

    def _privileged(self, kind: str) -> list[str] | None:
        """A fresh copy of one kind of privileged information (callers may mutate it)."""
        if kind == "expert_trace":
            return None if self._trace is None else list(self._trace)
        if self._plan_stale:
            self._plan = solve(self._level)
            self._plan_stale = False
        return None if self._plan is None else list(self._plan)


def _check_privileged(privileged: Sequence[str], available: tuple[str, ...]) -> tuple[str, ...]:
    """The requested kinds, deduplicated in order; unknown kinds raise."""
    if isinstance(privileged, str):
        raise ValueError(f"privileged must be a list of kinds such as [{privileged!r}], not a string")
    kinds = tuple(dict.fromkeys(privileged))
    unknown = [kind for kind in kinds if kind not in available]
    if unknown:
        raise ValueError(f"unknown privileged kinds {unknown}; this env provides {list(available)}")
    return kinds


def _quote(text: str) -> str:
    """`text` made safe to echo: printable ASCII only (others become '?'), at most _QUOTE_MAX chars."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return safe if len(safe) <= _QUOTE_MAX else safe[: _QUOTE_MAX - 3] + "..."
