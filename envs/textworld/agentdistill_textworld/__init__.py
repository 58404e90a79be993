"""TextWorld games for LLM agents: the Gymnasium env `agentdistill/TextWorld-v0` and its agent interface.

Games (cooking, treasure hunter, coin collector, custom quests) are made by TextWorld's own generators on first
use and cached on disk. Importing this package registers the Gymnasium id without importing textworld; the
toolkit finds the family through the `agentdistill.envs` entry point, which calls `agentdistill_plugin`.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from .cache import CACHE_ENV_VAR, cache_root, game_file, prepare
from .env import ENV_ID, REFUSED, TextWorldEnv
from .games import DIFFICULTIES, KINDS, SPLITS, GameSpec, spec_for
from .interface import TextWorldInterface

__all__ = [
    "CACHE_ENV_VAR",
    "DIFFICULTIES",
    "ENV_ID",
    "KINDS",
    "REFUSED",
    "SPLITS",
    "GameSpec",
    "TextWorldEnv",
    "TextWorldInterface",
    "agentdistill_plugin",
    "cache_root",
    "game_file",
    "prepare",
    "spec_for",
]


def agentdistill_plugin() -> dict[str, type]:
    """Register the Gymnasium id (once) and map it to the factory of its default agent interface.

    No `max_episode_steps`: turn budgets come from the toolkit's own wrapper.
    """
    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="agentdistill_textworld.env:TextWorldEnv")
    return {ENV_ID: TextWorldInterface}


agentdistill_plugin()
