"""agentdistill: distil multi-turn LLM agents with privileged information.

Importing this package is cheap: it never imports torch or transformers. The light nouns (types, the env
contract, views) are re-exported here; models, policies and trainers are imported from their modules.
"""

from agentdistill.envs import AgentInterface, check_text_env, make, registered_env_ids
from agentdistill.types import Episode, Message, TurnSample, load_episodes, save_episodes

__version__ = "0.1.0"

__all__ = [
    "AgentInterface",
    "Episode",
    "Message",
    "TurnSample",
    "check_text_env",
    "load_episodes",
    "make",
    "registered_env_ids",
    "save_episodes",
]
