"""AppWorld-style tasks for code agents: simulated apps on SQLite, a seeded population, a sandboxed REPL,
state-based evaluation. Gymnasium id: ``agentdistill/AppWorld-v0``. Importing the package registers it."""

import gymnasium

from .env import ENV_ID, AppWorldEnv
from .interface import AppWorldInterface


def agentdistill_plugin() -> dict[str, type]:
    """Register the Gymnasium id (idempotent) and return {env id: default AgentInterface factory}."""
    if ENV_ID not in gymnasium.envs.registration.registry:
        gymnasium.register(ENV_ID, entry_point="agentdistill_appworld.env:AppWorldEnv")
    return {ENV_ID: AppWorldInterface}


agentdistill_plugin()

__all__ = ["ENV_ID", "AppWorldEnv", "AppWorldInterface", "agentdistill_plugin"]
