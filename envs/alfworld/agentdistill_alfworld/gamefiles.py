"""ALFWorld ``game.tw-pddl`` files for generated games (what the real TextWorld engine loads)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .pddl import format_problem

if TYPE_CHECKING:
    from .generator import Game

_INSTALL_HINT = 'pip install -e "envs/alfworld[textworld]"'


def alfworld_data_texts() -> tuple[str, str]:
    """The ``alfred.pddl`` domain and ``alfred.twl2`` grammar texts of the installed alfworld package.

    The package is located without importing it (alfworld's modules pull in heavy dependencies).
    """
    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"writing ALFWorld game files needs the alfworld package: {_INSTALL_HINT}")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    try:
        return (data / "alfred.pddl").read_text(), (data / "alfred.twl2").read_text()
    except OSError as err:
        raise FileNotFoundError(
            f"the installed alfworld package lacks its data files ({err}); {_INSTALL_HINT}"
        ) from err


def game_to_json(game: Game, domain_text: str, grammar_text: str) -> dict:
    """An ALFWorld ``game.tw-pddl`` object: the domain, the grammar with the goal filled in, the problem."""
    placeholder = "Your task is to: UNKNOWN GOAL."
    if grammar_text.count(placeholder) != 1:
        raise ValueError(f"the grammar must hold the line {placeholder!r} exactly once")
    return {
        "pddl_domain": domain_text,
        "grammar": grammar_text.replace(placeholder, f"Your task is to: {game.goal_text}."),
        "pddl_problem": format_problem(game.problem),
        "solvable": True,
    }


def write_game_file(game: Game, path: str | Path) -> Path:
    """Write ``game`` as an ALFWorld ``game.tw-pddl`` file (parent folders are created)."""
    domain_text, grammar_text = alfworld_data_texts()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(game_to_json(game, domain_text, grammar_text)))
    return path
