"""The on-disk cache of generated games: where it lives, and generating into it safely from many processes.

Layout: ``<root>/<textworld version>/gen<GENERATOR_VERSION>/<kind>/d<difficulty>/<split>/<seed>/game.{z8,json}``.
The root is, first found: the env kwarg ``cache_dir``, the environment variable
``AGENTDISTILL_TEXTWORLD_CACHE``, ``$AGENTDISTILL_CACHE/textworld``, ``~/.cache/agentdistill/textworld``.
The TextWorld version and our generator version are part of the path, so a cache never mixes games made by
different generators.

A game is generated at most once: a worker takes an exclusive ``fcntl.flock`` on ``<seed>.lock`` next to the
game's folder, and, if the folder is still missing, generates into a fresh temporary sibling folder and renames
it into place (a rename is atomic). Readers that find the folder never see a half-written game; a crash leaves
at most a stray temporary folder, which the next generation of that game removes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

from .games import GameSpec, generate

CACHE_ENV_VAR = "AGENTDISTILL_TEXTWORLD_CACHE"
GENERATOR_VERSION = 1
"""Bump when a change to games.py (settings, seeds, post-processing) changes which game a spec names."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The versioned folder that holds the games, from the kwarg, the environment or the default."""
    if cache_dir is not None:
        base = Path(cache_dir)
    elif os.environ.get(CACHE_ENV_VAR):
        base = Path(os.environ[CACHE_ENV_VAR])
    elif os.environ.get("AGENTDISTILL_CACHE"):
        base = Path(os.environ["AGENTDISTILL_CACHE"]) / "textworld"
    else:
        base = Path("~/.cache/agentdistill/textworld")
    return base.expanduser() / version("textworld") / f"gen{GENERATOR_VERSION}"


def game_file(spec: GameSpec, root: Path) -> tuple[Path, bool]:
    """(path of the spec's ``game.z8`` in ``root``, whether this call generated it), generating it if needed."""
    folder = root / spec.relpath
    z8 = folder / "game.z8"
    if z8.is_file():  # the fast path: a finished game (folders appear only complete, by rename)
        return z8, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f"{folder.name}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            if z8.is_file():  # another worker made it while we waited
                return z8, False
            for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
                shutil.rmtree(stale)  # left by a worker that died mid-generation
            if folder.exists():
                shutil.rmtree(folder)  # a game folder someone emptied by hand: make it again
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
            try:
                generate(spec, tmp)
                os.rename(tmp, folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return z8, True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(specs: Iterable[GameSpec], cache_dir: str | os.PathLike | None = None, workers: int = 2) -> list[Path]:
    """Generate (or find) many games ahead of play, ``workers`` at a time; returns their ``game.z8`` paths.

    Each generation is a child process, so threads are enough to keep ``workers`` CPU cores busy.
    """
    root = cache_root(cache_dir)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [path for path, _ in pool.map(lambda spec: game_file(spec, root), list(specs))]
