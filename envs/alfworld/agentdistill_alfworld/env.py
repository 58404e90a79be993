"""`ALFWorldEnv`: ALFWorld-style household tasks as a Gymnasium environment (`agentdistill/ALFWorld-v0`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from .engine import Engine
from .generator import TASK_TYPES
from .pddl import read_game_file
from .planner import plan

ENV_ID = "agentdistill/ALFWorld-v0"
WIN_REWARD = 1.0
CHARSET = "".join(chr(code) for code in range(32, 127)) + "\n"
BACKENDS = ("native", "textworld")


class ALFWorldEnv(gym.Env[str, str]):
    """ALFWorld household tasks in the 0.4.x text dialect (``move X to Y``), played by our native engine or by
    TextWorld's PDDL engine (``backend="textworld"``, same text).

    Games: the generated ``split`` (``train`` 3,553, ``valid_seen`` 140, ``valid_unseen`` 134, optionally
    filtered by ``task_types``), or every ``game.tw-pddl`` below ``data_dir`` (e.g. ALFWorld's own
    ``json_2.1.1/valid_unseen``; files without ``"solvable": true`` and sliced or movable-receptacle tasks are
    skipped, as ALFWorld does). ``reset(seed=i)`` plays game ``i % n_games``; ``options={"game": i}`` does too.

    Observation: the intro text on reset, then each command's feedback. A command that is not admissible
    gives ``Nothing happens.`` (``info["invalid_action"]``), reward 0, and still uses a step. Reward:
    1.0 on the step that wins, else 0. ``terminated`` when won; the 50-step budget is truncation, applied
    by the toolkit's ``TurnLimit`` (``default_max_turns``).

    Privileged information: ``expert_plan`` (optimal remaining commands from the current state; None if
    the goal is unreachable) and ``expert_trace`` (an optimal solution from the start).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    privileged_kinds: ClassVar[tuple[str, ...]] = ("expert_plan", "expert_trace")
    default_max_turns: ClassVar[int] = 50

    def __init__(
        self,
        split: str = "valid_unseen",
        task_types: Sequence[int | str] | None = None,
        backend: str = "native",
        data_dir: str | os.PathLike | None = None,
        difficulty: str = "full",
        privileged: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(privileged, str):
            raise ValueError(f"privileged must be a list of kinds such as [{privileged!r}], not a string")
        unknown = [k for k in privileged if k not in self.privileged_kinds]
        if unknown:
            raise ValueError(f"unknown privileged kinds {unknown}; this env provides {list(self.privileged_kinds)}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.split, self.backend, self.difficulty = split, backend, difficulty
        self.task_types = _task_type_names(task_types)
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self.privileged = tuple(dict.fromkeys(privileged))
        self.render_mode = render_mode
        self.observation_space = spaces.Text(16_384, charset=CHARSET)
        self.action_space = spaces.Text(256, min_length=0, charset=CHARSET)
        self._games = _game_list(self.data_dir, split, self.task_types, difficulty)
        self._game: _GameRef | None = None
        self._native: Engine | None = None  # always kept: it answers PI (and is the game for backend=native)
        self._real = None
        self._last_obs = ""
        self._won = False
        self._trace: list[str] | None = None
        self._plan: list[str] | None = None
        self._plan_stale = True

    @property
    def n_games(self) -> int:
        return len(self._games)

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"game"}
        if unknown:
            raise ValueError(f"reset options take only 'game' (an index), got {sorted(unknown)}")
        if "game" in options:
            index = int(options["game"])
        elif seed is not None:
            index = seed
        else:
            index = int(self.np_random.integers(0, self.n_games))
        self._game = self._games[index % self.n_games]
        problem, goal_text, path = self._game.load(self.difficulty)
        self._native = Engine(problem, goal_text)
        obs = self._native.reset()
        if self.backend == "textworld":
            from .textworld_backend import TextWorldEngine

            self._real = TextWorldEngine(os.fspath(path))
            obs = self._real.reset()
        self._won = False
        self._trace = plan(self._native) if self.privileged else None
        self._plan, self._plan_stale = self._trace, not self.privileged
        self._last_obs = obs
        return obs, self._info(invalid=False)

    def step(self, action: str):
        if self._native is None:
            raise RuntimeError("step() before reset(); call reset() first")
        if self._won:
            raise RuntimeError("the episode is over (the task is done); call reset() to start a new one")
        command = str(action).strip()
        admissible = self._engine.admissible_commands
        valid = command in admissible
        if valid:
            self._follow_plan(command)
        obs = self._engine.step(command)
        if self._real is not None:
            self._native.step(command)  # keep the PI engine in step with the real one
        self._won = self._engine.won
        self._last_obs = obs
        reward = WIN_REWARD if self._won else 0.0
        return obs, reward, self._won, False, self._info(invalid=not valid)

    def render(self) -> str | None:
        return self._last_obs if self.render_mode == "ansi" else None

    @property
    def _engine(self):
        return self._real if self._real is not None else self._native

    def _follow_plan(self, command: str) -> None:
        if self._plan_stale or self._plan is None:
            return
        if self._plan[:1] == [command]:
            self._plan = self._plan[1:]
        else:
            self._plan_stale = True

    def _info(self, *, invalid: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "task": self._native.goal_text,
            "task_id": self._game.game_id,
            "task_type": self._game.task_type,
            "won": self._won,
            "success": self._won,
            "admissible_actions": [] if self._won else list(self._engine.admissible_commands),
            "invalid_action": invalid,
        }
        if self.privileged:
            if self._plan_stale:
                self._plan, self._plan_stale = plan(self._native), False
            pi = {"expert_plan": None if self._plan is None else list(self._plan),
                  "expert_trace": None if self._trace is None else list(self._trace)}
            info["privileged"] = {kind: pi[kind] for kind in self.privileged}
        return info


class _GameRef:
    """A game of the list: either a generated game spec or a game file on disk (loaded on demand)."""

    def __init__(self, game_id: str, task_type: str, *, spec: Any = None, path: Path | None = None):
        self.game_id, self.task_type, self.spec, self.path = game_id, task_type, spec, path

    def load(self, difficulty: str):
        """(problem, goal text, path of a game.tw-pddl file or None until one is needed)."""
        if self.path is not None:
            problem, goal = read_game_file(self.path)
            return problem, goal, self.path
        from .generator import make_game

        game = make_game(self.spec, difficulty=difficulty)
        return game.problem, game.goal_text, _LazyGameFile(game)


class _LazyGameFile(os.PathLike):
    """The path of a generated game's ``game.tw-pddl``, written to the cache the first time it is needed."""

    def __init__(self, game: Any):
        self.game = game

    def __fspath__(self) -> str:
        from .generator import write_game_file

        cache = Path(os.environ.get("AGENTDISTILL_CACHE", "~/.cache/agentdistill")).expanduser()
        path = cache / "alfworld" / "games" / f"{self.game.game_id}.tw-pddl"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            write_game_file(self.game, tmp)
            os.replace(tmp, path)
        return str(path)


def _task_type_names(task_types: Sequence[int | str] | None) -> tuple[str, ...] | None:
    if task_types is None:
        return None
    names = []
    for t in task_types:
        name = TASK_TYPES.get(t) if isinstance(t, int) else t
        if name not in TASK_TYPES.values():
            raise ValueError(f"unknown task type {t!r}; use 1-6 or one of {list(TASK_TYPES.values())}")
        names.append(name)
    return tuple(names)


def _game_list(data_dir: Path | None, split: str, task_types, difficulty: str) -> list[_GameRef]:
    if data_dir is not None:
        games = _games_on_disk(data_dir, task_types)
        where = f"{data_dir} (game.tw-pddl files with \"solvable\": true)"
    else:
        from .generator import split_games

        specs = split_games(split, task_types=list(task_types) if task_types else None, difficulty=difficulty)
        games = [_GameRef(s.game_id, s.task_type, spec=s) for s in specs]
        where = f"split {split!r}"
    if not games:
        raise ValueError(f"no games found in {where} for task types {task_types or 'all'}")
    return games


def _games_on_disk(data_dir: Path, task_types) -> list[_GameRef]:
    import json

    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} is not a folder of ALFWorld games (game.tw-pddl files)")
    games = []
    for path in sorted(data_dir.rglob("*.tw-pddl")):
        text = str(path.relative_to(data_dir))
        if "movable" in text or "Sliced" in text:
            continue
        task_type = next((t for t in TASK_TYPES.values() if t in text), "unknown")
        if task_types and task_type not in task_types:
            continue
        with path.open() as f:
            if not json.load(f).get("solvable", False):
                continue
        games.append(_GameRef(text, task_type, path=path))
    return games
