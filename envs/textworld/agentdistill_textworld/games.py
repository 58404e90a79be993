"""Which TextWorld game a (kind, difficulty, split, index) names, and how it is generated.

Games come from TextWorld's own generators, offline: ``tw-cooking``, ``tw-treasure_hunter``,
``tw-coin_collector`` and the custom quest generator behind ``tw-make custom``. Generation runs in a child
process (``python -m agentdistill_textworld.games SPEC_JSON FOLDER``) with ``PYTHONHASHSEED=0``: TextWorld
iterates over Python sets while it builds a game, so with a random hash seed the same game seed gives
different files. The child writes ``game.z8`` and ``game.json`` into the folder it is given; the caller
(``cache.game_files``) makes that folder a temporary one and renames it into place.

Inform 6 stamps the compile date into the story file header as its serial number; ``_fix_serial`` overwrites
it with ``000000`` (the header checksum covers bytes from 0x40 on, so it stays valid), which makes the same
spec give byte-identical files on any day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("cooking", "treasure", "coin", "custom")
DIFFICULTIES = (1, 2, 3)

# split -> (first game seed, number of games); the ranges are disjoint.
SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 100_000),
    "valid": (100_000, 1_000),
    "test": (200_000, 1_000),
}

# Generator settings per (kind, difficulty); the README's difficulty table mirrors this one.
COOKING = {  # tw-cooking skills; `split` is added from the env's split (its own food/preparation split)
    1: {"recipe": 1, "take": 1, "go": 1, "open": False, "cook": False, "cut": False},
    2: {"recipe": 2, "take": 2, "go": 6, "open": True, "cook": False, "cut": True},
    3: {"recipe": 3, "take": 3, "go": 9, "open": True, "cook": True, "cut": True},
}
TREASURE_LEVEL = {1: 5, 2: 15, 3: 25}  # tw-treasure_hunter --level: easy / medium / hard modes
COIN_LEVEL = {1: 3, 2: 106, 3: 210}  # tw-coin_collector --level
CUSTOM = {  # tw-make custom: rooms, objects, quest length
    1: {"world_size": 3, "nb_objects": 5, "quest_length": 2},
    2: {"world_size": 6, "nb_objects": 10, "quest_length": 4},
    3: {"world_size": 10, "nb_objects": 20, "quest_length": 8},
}

RETRY_SEED_STRIDE = 10_000_000
"""Attempt k of a spec whose quest cannot be generated uses seed ``seed + k * RETRY_SEED_STRIDE`` (outside
every split's range, so a retry never equals another game's first attempt)."""
MAX_ATTEMPTS = 20
GENERATION_TIMEOUT_S = 600


@dataclass(frozen=True)
class GameSpec:
    """One generated game: its kind, difficulty, split and game seed (``SPLITS[split][0] + index``)."""

    kind: str
    difficulty: int
    split: str
    seed: int

    @property
    def task_id(self) -> str:
        return f"textworld/{self.kind}/d{self.difficulty}/{self.split}/{self.seed}"

    @property
    def relpath(self) -> str:
        """Its folder below the cache root."""
        return f"{self.kind}/d{self.difficulty}/{self.split}/{self.seed}"


def check_knobs(kind: str, difficulty: int, split: str) -> None:
    """Raise ValueError naming the valid choices when a knob is wrong."""
    if kind not in KINDS:
        raise ValueError(f"unknown game kind {kind!r}; choose kind= one of {list(KINDS)}")
    if isinstance(difficulty, bool) or difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)} (an int), got {difficulty!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose split= one of {list(SPLITS)}")


def spec_for(kind: str, difficulty: int, split: str, index: int) -> GameSpec:
    """The spec of game ``index`` (0-based) of a split; its seed is the split's first seed plus the index."""
    check_knobs(kind, difficulty, split)
    start, size = SPLITS[split]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ValueError(f"game index must be an int in [0, {size}) for split {split!r}, got {index!r}")
    return GameSpec(kind, difficulty, split, start + index)


def generate(spec: GameSpec, folder: Path) -> None:
    """Write ``game.z8`` and ``game.json`` of ``spec`` into ``folder`` (which must exist), in a child process."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "agentdistill_textworld.games", json.dumps(asdict(spec)), str(folder)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=GENERATION_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"generating TextWorld game {spec.task_id} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n"
            "Check that textworld (with its Inform 7 compiler) is installed: `tw-make tw-coin_collector --level 1` "
            "must work."
        )


# ------------------------------------------------------------------------------------- in the child process


def _make_game(spec: GameSpec, seed: int, path: Path):
    """Generate and compile one attempt; returns the Game. Imports textworld (heavy) only here."""
    import textworld
    import textworld.challenges
    from textworld.generator import compile_game, make_game

    options = textworld.GameOptions()
    options.seeds = seed
    options.path = str(path)
    options.force_recompile = True
    if spec.kind == "custom":
        knobs = CUSTOM[spec.difficulty]
        options.nb_rooms, options.nb_objects = knobs["world_size"], knobs["nb_objects"]
        options.quest_length = knobs["quest_length"]
        game = make_game(options)
    else:
        challenge, settings = {
            "cooking": ("tw-cooking", {**COOKING[spec.difficulty], "drop": False, "recipe_seed": 0,
                                       "split": spec.split}),
            "treasure": ("tw-treasure_hunter", {"level": TREASURE_LEVEL[spec.difficulty]}),
            "coin": ("tw-coin_collector", {"level": COIN_LEVEL[spec.difficulty]}),
        }[spec.kind]
        game = textworld.challenges.CHALLENGES[challenge][1](settings, options)
    compile_game(game, options)
    return game


def _fix_serial(z8: Path) -> None:
    """Replace the compile-date serial number (header bytes 0x12-0x17) with 000000."""
    data = bytearray(z8.read_bytes())
    data[0x12:0x18] = b"000000"
    z8.write_bytes(bytes(data))


def _main(spec_json: str, folder: str) -> None:
    from textworld.generator import QuestGenerationError

    spec = GameSpec(**json.loads(spec_json))
    out = Path(folder)
    for attempt in range(MAX_ATTEMPTS):
        try:
            _make_game(spec, spec.seed + attempt * RETRY_SEED_STRIDE, out / "game.z8")
            break
        except QuestGenerationError:
            continue  # only the custom generator raises this; the next attempt uses another seed
    else:
        raise RuntimeError(f"no quest could be generated for {spec} in {MAX_ATTEMPTS} attempts")
    (out / "game.ni").unlink(missing_ok=True)  # the Inform 7 source, left next to the story file
    _fix_serial(out / "game.z8")


if __name__ == "__main__":
    _main(*sys.argv[1:])
