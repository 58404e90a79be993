"""`TextWorldEnv`: TextWorld's generated games as a Gymnasium environment (`agentdistill/TextWorld-v0`)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces
from gymnasium.utils import seeding

from .cache import cache_root, game_file
from .games import SPLITS, GameSpec, check_knobs, spec_for

ENV_ID = "agentdistill/TextWorld-v0"
CHARSET = "".join(chr(code) for code in range(32, 127)) + "\n"
OBS_MAX_LENGTH = 32_768
ACTION_MAX_LENGTH = 256
COMMAND_MAX_LENGTH = 190  # the Z-machine reads at most 198 bytes a line; Jericho would cut the rest
FROTZ_SEED = 1  # the interpreter's random seed: fixed, so the games' few random texts repeat (Jericho's -1 = clock)

META_VERBS = frozenset({"restart", "restore", "save", "quit", "q", "undo", "script", "unscript", "transcript",
                        "noscript", "verify"})
REFUSED = "That command is not available in this game (interpreter meta-commands are disabled). Nothing happens."
"""The observation for an empty command, an interpreter meta-command (which would desynchronise TextWorld's
state tracking or block on a yes/no question) or a TextWorld debug command (``tw-...``); it is not sent."""

_SEPARATORS = re.compile(r"[.,;]|\bthen\b")  # where Inform starts another command on the same line
_PROMPT = re.compile(r"\n?>[^\n]*\Z")  # the trailing '>' prompt and the status line printed after it
_END_QUESTION = re.compile(r"\n*Would you like to RESTART, RESTORE a saved game, QUIT or UNDO[^\n]*")


class TextWorldEnv(gym.Env[str, str]):
    """A family of TextWorld games: ``kind`` (cooking, treasure, coin, custom) at ``difficulty`` 1-3.

    Games: game ``i`` of ``split`` (train, valid, test; disjoint seed ranges, see ``games.SPLITS``) is generated
    by TextWorld with seed ``SPLITS[split][0] + i`` on first use and cached on disk (``cache.py``; ``cache_dir``
    overrides the location). ``num_games`` limits the env to the split's first games. ``reset(seed=s)`` plays
    game ``s % num_games``; ``options={"game": i}`` plays game ``i``; with neither, the env's seeded generator
    picks one.

    Observation: the game's text, cleaned of the interpreter's screen furniture: on reset, the text from the
    objective on (the ASCII-art title is dropped); the trailing ``>`` prompt, the status line and the final
    "Would you like to RESTART..." question are removed. Action: one text command, e.g. ``take knife``
    (surrounding whitespace is stripped, inner runs of whitespace become one space). A command that is not
    admissible (case and spacing ignored) is still sent and the game answers it (e.g. "That's not a verb I
    recognise."); ``info["invalid_action"]`` is True. Empty commands and lines holding an interpreter
    meta-command (save, restore, restart, undo, quit, ...; also after a ``.``, ``,``, ``;`` or ``then``, where
    Inform starts another command) are not sent: the observation is `REFUSED`. Both cost a step.

    Reward: the change of TextWorld's score divided by the game's ``max_score``, so rewards lie in [0, 1] and an
    episode's rewards sum to ``score / max_score``; a won game sums to 1. Invalid and refused commands give 0;
    losing gives no penalty. ``terminated`` when the game is won or lost; ``truncated`` is always False (turn
    budgets belong to the toolkit's ``TurnLimit``; ``default_max_turns`` = 50). Stepping after the end raises.

    Privileged information (``privileged=[...]``; only in ``info["privileged"]``): ``expert_plan``, TextWorld's
    winning policy from the current state (``policy_commands``, re-planned by its quest tracker after every
    command; ``[]`` once won, None when the game is lost or can no longer be won); ``expert_trace``, the winning
    policy from the game's start.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    privileged_kinds: ClassVar[tuple[str, ...]] = ("expert_plan", "expert_trace")
    default_max_turns: ClassVar[int] = 50

    def __init__(
        self,
        kind: str = "cooking",
        difficulty: int = 1,
        split: str = "train",
        num_games: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        privileged: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        check_knobs(kind, difficulty, split)
        size = SPLITS[split][1]
        in_range = type(num_games) is int and 1 <= num_games <= size  # bool is not a count
        if num_games is not None and not in_range:
            raise ValueError(f"num_games must be an int in [1, {size}] for split {split!r} (or None), "
                             f"got {num_games!r}")
        if isinstance(privileged, str):
            raise ValueError(f"privileged must be a list of kinds such as [{privileged!r}], not a string")
        unknown = [k for k in privileged if k not in self.privileged_kinds]
        if unknown:
            raise ValueError(f"unknown privileged kinds {unknown}; this env provides {list(self.privileged_kinds)}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.kind, self.difficulty, self.split = kind, difficulty, split
        self.num_games = num_games or size
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.root = cache_root(self.cache_dir)
        self.privileged = tuple(dict.fromkeys(privileged))
        self.render_mode = render_mode
        self.observation_space = spaces.Text(OBS_MAX_LENGTH, charset=CHARSET)
        self.action_space = spaces.Text(ACTION_MAX_LENGTH, min_length=0, charset=CHARSET)
        self._tw: Any = None  # the TextWorld environment, kept open across resets
        self._loaded: str | None = None  # the game file it has loaded
        self._spec: GameSpec | None = None
        self._state: Any = None  # TextWorld's GameState after the last command
        self._actions: list[str] = []  # every step() action since reset, for pickling
        self._trace: list[str] | None = None
        self._obs = ""

    # ------------------------------------------------------------------------------------------- episode

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None) -> tuple[str, dict]:
        """Start game ``seed % num_games`` (or ``options["game"]``, or a drawn one); see the class docstring."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"game"}
        if unknown:
            raise ValueError(f"reset options take only 'game' (an index in the split), got {sorted(unknown)}")
        drawn = int(self.np_random.integers(0, self.num_games))  # always drawn: the stream ignores options
        index = options.get("game", drawn if seed is None else seed % self.num_games)
        self._start(spec_for(self.kind, self.difficulty, self.split, index))
        return self._obs, self._info(invalid=False)

    def _start(self, spec: GameSpec) -> None:
        path, _ = game_file(spec, self.root)
        self._open(os.fspath(path))
        self._spec, self._actions = spec, []
        self._state = self._tw.reset()
        objective = self._state["objective"]
        text = self._state.feedback
        self._obs = _clean(text[text.find(objective):] if objective and objective in text else text)
        if self._state["max_score"] < 1:
            raise RuntimeError(f"game {spec.task_id} has max_score {self._state['max_score']}: cannot scale rewards")
        self._trace = list(self._state["policy_commands"]) if self.privileged else None

    def _open(self, path: str) -> None:
        """Load the game into the kept TextWorld env (started on first use; reused when the game is the same)."""
        if self._loaded == path:
            return
        import jericho
        import textworld  # heavy: only when a game is played, not when the plugin is discovered

        with warnings.catch_warnings():
            # Jericho knows only its own catalogue of games; TextWorld tracks score and state itself.
            warnings.simplefilter("ignore", jericho.UnsupportedGameWarning)
            if self._tw is None:
                infos = textworld.EnvInfos(admissible_commands=True, score=True, max_score=True, won=True,
                                           lost=True, objective=True, policy_commands=bool(self.privileged))
                self._tw = textworld.start(path, infos)
            else:
                self._tw.load(path)
        self._tw.seed(FROTZ_SEED)  # after load: Jericho's load resets the interpreter's seed
        self._loaded = path

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Send one command to the game (never raises for a bad command; see the class docstring)."""
        if self._state is None:
            raise RuntimeError("step() before reset(); call reset() first")
        if self._done:
            raise RuntimeError("the game is over (won or lost); call reset() to start a new one")
        self._actions.append(action)
        command = _command(action)
        if _refused(command):
            self._obs = REFUSED
            return self._obs, 0.0, False, False, self._info(invalid=True)
        admissible = {_norm(c) for c in self._state["admissible_commands"]}
        before = self._state["score"]
        self._state, _, _ = self._tw.step(command)
        self._obs = _clean(self._state.feedback)
        reward = (self._state["score"] - before) / self._state["max_score"]
        return self._obs, reward, self._done, False, self._info(invalid=_norm(command) not in admissible)

    @property
    def _done(self) -> bool:
        return bool(self._state["won"] or self._state["lost"])

    def render(self) -> str | None:
        return self._obs if self.render_mode == "ansi" else None

    def close(self) -> None:
        if self._tw is not None:
            self._tw.close()
            self._tw, self._loaded = None, None

    # ---------------------------------------------------------------------------------------------- info

    def _info(self, *, invalid: bool) -> dict[str, Any]:
        state, spec = self._state, self._spec
        info: dict[str, Any] = {
            "task": state["objective"],
            "task_id": spec.task_id,
            "task_type": spec.kind,
            "won": bool(state["won"]),
            "lost": bool(state["lost"]),
            "success": bool(state["won"]),
            "admissible_actions": [] if self._done else list(state["admissible_commands"]),
            "invalid_action": invalid,
            "score": int(state["score"]),
            "max_score": int(state["max_score"]),
        }
        if self.privileged:
            plan = list(state["policy_commands"])
            pi = {"expert_plan": [] if state["won"] else (plan or None), "expert_trace": list(self._trace)}
            info["privileged"] = {kind: pi[kind] for kind in self.privileged}
        return info

    # -------------------------------------------------------------------------------------------- pickle

    def __getstate__(self) -> dict[str, Any]:
        """The constructor knobs, the random streams, the game and the actions played: the engine is a C
        library, so unpickling reopens the game and replays the actions."""
        return {
            "init": {"kind": self.kind, "difficulty": self.difficulty, "split": self.split,
                     "num_games": self.num_games, "cache_dir": self.cache_dir, "privileged": self.privileged,
                     "render_mode": self.render_mode},
            "rng": None if self._np_random is None else (self._np_random_seed, self._np_random.bit_generator.state),
            "action_rng": self.action_space.np_random.bit_generator.state,
            "spec": self._spec,
            "actions": list(self._actions),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init"])
        if state["rng"] is not None:
            self._np_random, _ = seeding.np_random(0)
            self._np_random_seed, self._np_random.bit_generator.state = state["rng"]
        self.action_space.np_random.bit_generator.state = state["action_rng"]
        if state["spec"] is not None:
            self._start(state["spec"])
            for action in state["actions"]:
                self.step(action)


def _command(action: str) -> str:
    """The command sent to the game: whitespace runs become one space, non-ASCII and backslashes (escapes of
    the dumb-frotz interpreter's own commands) become '?', length capped."""
    text = " ".join(str(action).split())
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)[:COMMAND_MAX_LENGTH]


def _refused(command: str) -> bool:
    """Whether a command is empty or holds a meta or debug command. Inform runs several commands from one line
    (``look. restart``, ``look then quit``), so every part is checked."""
    parts = [part.split() for part in _SEPARATORS.split(command.lower())]
    return not command or any(words and (words[0] in META_VERBS or words[0].startswith("tw-")) for words in parts)


def _norm(command: str) -> str:
    return " ".join(command.lower().split())


def _clean(text: str) -> str:
    """Game text without the prompt, status line and end-of-game question; ASCII; blank-line runs collapsed."""
    text = _END_QUESTION.sub("", _PROMPT.sub("", text))
    lines = [line.rstrip() for line in text.replace("\t", " ").splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    text = "".join(c if c in CHARSET else "?" for c in text)
    if len(text) > OBS_MAX_LENGTH:
        raise RuntimeError(f"a game printed {len(text)} characters in one turn; raise OBS_MAX_LENGTH in env.py")
    return text
