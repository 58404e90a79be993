"""Text Sokoban for LLM agents: the Gymnasium env `agentdistill/Sokoban-v0` and its agent interface.

Importing this package registers the Gymnasium id. The toolkit finds the family through the
`agentdistill.envs` entry point, which calls `agentdistill_plugin`.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from .env import ENV_ID, SokobanEnv
from .interface import SokobanInterface
from .levels import LEGEND, Level, generate_level
from .solver import SolverLimitError, solve

__all__ = [
    "ENV_ID",
    "LEGEND",
    "Level",
    "SokobanEnv",
    "SokobanInterface",
    "SolverLimitError",
    "agentdistill_plugin",
    "generate_level",
    "solve",
]


def agentdistill_plugin() -> dict[str, type]:
    """Register the Gymnasium id (once) and map it to the factory of its default agent interface.

    No `max_episode_steps`: turn budgets come from the toolkit's own wrapper.
    """
    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="agentdistill_sokoban.env:SokobanEnv")
    return {ENV_ID: SokobanInterface}


agentdistill_plugin()
