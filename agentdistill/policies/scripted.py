"""Scripted policies: the env's expert, and uniform random over admissible actions (tests, data, baselines)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentdistill.envs import AgentInterface
from agentdistill.policies.base import Completion, Prompt


class ExpertPolicy:
    """Plays the first move of the env's ``expert_plan`` (optimal remaining actions from the current state).

    When the plan is empty or None (already won, or no longer solvable) it falls back to the first admissible
    action, so the episode continues and is scored honestly.
    """

    sees_privileged = True
    needs_privileged: tuple[str, ...] = ("expert_plan",)

    def __init__(self, interface: AgentInterface, name: str = "expert"):
        self.interface = interface
        self.name = name

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        out = []
        for prompt in prompts:
            if prompt.privileged is None or "expert_plan" not in prompt.privileged:
                raise ValueError("ExpertPolicy needs info['privileged']['expert_plan']: run it through rollout()")
            plan = prompt.privileged["expert_plan"] or list(prompt.admissible_actions or ["noop"])
            out.append(Completion(text=self.interface.format_action(plan[0]), finish_reason="scripted"))
        return out


class RandomPolicy:
    """Picks uniformly among ``admissible_actions`` using each prompt's sample seed (reproducible)."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(self, interface: AgentInterface, name: str = "random"):
        self.interface = interface
        self.name = name

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        out = []
        for prompt in prompts:
            if not prompt.admissible_actions:
                raise ValueError("RandomPolicy needs an env that reports info['admissible_actions']")
            action = random.Random(prompt.sample_seed).choice(prompt.admissible_actions)
            out.append(Completion(text=self.interface.format_action(action), finish_reason="scripted"))
        return out
