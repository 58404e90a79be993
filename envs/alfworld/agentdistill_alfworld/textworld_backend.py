"""`TextWorldEngine`: play an ALFWorld ``game.tw-pddl`` with the real engine (TextWorld PDDL + ALFWorld).

It has the native `Engine`'s playing surface (``reset``, ``step``, ``admissible_commands``, ``won``), so the
two backends can be swapped and compared. TextWorld and ALFWorld are optional: install them with
``pip install -e "envs/alfworld[textworld]"``. The engine's state lives in a C library (Fast Downward), so a
pickle keeps the game file and the commands played since ``reset``, and unpickling replays them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install -e "envs/alfworld[textworld]"'


def _real_env() -> Any:
    """A fresh TextWorld PDDL env wrapped in ALFWorld's demangler (imported here: both are optional)."""
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv
    except ImportError as err:
        raise ImportError(
            f"the TextWorld backend needs textworld[pddl]==1.7.0 and alfworld==0.4.2 ({err}); "
            f"install them with: {INSTALL_HINT}"
        ) from err
    return AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True)))


class TextWorldEngine:
    """One ALFWorld game on TextWorld's PDDL backend; ``reset()`` gives the intro, ``step()`` the feedback."""

    def __init__(self, game_file: str | Path):
        self.game_file = str(game_file)
        self._env = _real_env()
        self._env.load(self.game_file)
        self._state: Any = None
        self._played: list[str] = []

    def reset(self) -> str:
        self._state = self._env.reset()
        self._played = []
        return self._state.feedback

    def step(self, command: str) -> str:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._state, _, _ = self._env.step(command)
        self._played.append(command)
        return self._state.feedback

    @property
    def admissible_commands(self) -> list[str]:
        return list(self._current()["admissible_commands"])

    @property
    def won(self) -> bool:
        return bool(self._current()["won"])

    def _current(self) -> Any:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def __getstate__(self) -> dict[str, Any]:
        return {"game_file": self.game_file, "played": None if self._state is None else list(self._played)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["game_file"])
        if state["played"] is not None:
            self.reset()
            for command in state["played"]:
                self.step(command)
