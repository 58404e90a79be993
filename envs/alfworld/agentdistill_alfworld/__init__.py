"""ALFWorld-style household tasks for LLM agents: a fast native engine with ALFWorld 0.4.x's exact text,
a seeded ALFRED-like game generator with train / valid_seen / valid_unseen splits, an optimal expert planner,
and an optional TextWorld backend (the real engine) for parity.

Gymnasium id: ``agentdistill/ALFWorld-v0``. Importing the package registers it.
"""

import gymnasium

from .env import ENV_ID, TASK_TYPES, ALFWorldEnv
from .interface import ALFWorldInterface


def agentdistill_plugin() -> dict[str, type]:
    """Register the Gymnasium id (idempotent) and return {env id: default AgentInterface factory}."""
    if ENV_ID not in gymnasium.envs.registration.registry:
        gymnasium.register(ENV_ID, entry_point="agentdistill_alfworld.env:ALFWorldEnv")
    return {ENV_ID: ALFWorldInterface}


agentdistill_plugin()

__all__ = ["ENV_ID", "TASK_TYPES", "ALFWorldEnv", "ALFWorldInterface", "agentdistill_plugin"]
