"""`SokobanInterface`: how an LLM talks to `SokobanEnv` (prompts, action parsing, privileged text).

It implements the toolkit's AgentInterface protocol structurally, so this plugin needs no import of
the toolkit.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from .levels import LEGEND
from .solver import ACTIONS

_ACTION_WORD = re.compile(r"\b(up|down|left|right)\b", re.IGNORECASE)
_ACTION_TAG = re.compile(r"action\s*:", re.IGNORECASE)


PROMPTS = ("full", "compact")


class SokobanInterface:
    """The default agent interface of the Sokoban family.

    Args:
        prompt: ``"full"`` (the rules, the legend, the task and the reply format: 179 SmolLM2 tokens) or
            ``"compact"`` (the legend on one line, the task and the format: about a third of that). The user
            turn lists the moves that change the board either way; compact cuts a turn's tokens by half, which
            is what a CPU run pays for in scoring and updates.
    """

    name: str = "sokoban"

    def __init__(self, prompt: str = "full"):
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {list(PROMPTS)}, got {prompt!r}")
        self.prompt = prompt

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        """The rules, the legend, the task and the reply format (compact: no rules, the legend on one line)."""
        if self.prompt == "compact":
            legend = ", ".join(LEGEND.splitlines())
            return f"Sokoban. {info['task']}\nLegend: {legend}.\nReply `Action: <up|down|left|right>`."
        return (
            "You are playing Sokoban on a grid.\n"
            "Rules: each turn you move the player one square up, down, left or right. Walking into a box "
            "pushes it one square in the same direction, if the square behind the box is free (not a wall "
            "and not another box). You cannot pull boxes and cannot push two boxes at once, so a box "
            "pushed into a corner is stuck for good. A move into a wall or a blocked box is invalid and "
            "wastes a turn.\n"
            f"Legend:\n{LEGEND}\n"
            f"Task: {info['task']}\n"
            "Reply with exactly one line of the form `Action: <up|down|left|right>`, for example "
            "`Action: left`."
        )

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        """The user turn: the observation, the moves that change the board, and a format reminder.

        The reminder sits next to the question because small models follow the nearest instruction.
        """
        actions = ", ".join(info["admissible_actions"]) or "none (every move is blocked)"
        return f"{observation}\n\nAvailable actions: {actions}\nReply with `Action: <move>`."

    def parse_action(self, text: str) -> str | None:
        """The move in a model reply, or None (a parse failure, which the env counts as invalid).

        If the reply contains ``action:`` (any case), the first of up/down/left/right (as a whole
        word) after its LAST occurrence is the move. Otherwise the whole reply, stripped of
        surrounding whitespace and punctuation, must be one of the four words.
        """
        tags = list(_ACTION_TAG.finditer(text))
        if tags:
            found = _ACTION_WORD.search(text, tags[-1].end())
            return found.group(1).lower() if found else None
        bare = text.strip(string.whitespace + string.punctuation).lower()
        return bare if bare in ACTIONS else None

    def format_action(self, action: str) -> str:
        """The reply an expert writes for `action`."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {list(ACTIONS)}")
        return f"Action: {action}"

    def render_privileged(self, privileged: Mapping[str, Any]) -> str:
        """Teacher-only text for the privileged information in `privileged` ("" when empty)."""
        unknown = [kind for kind in privileged if kind not in _RENDERERS]
        if unknown:
            raise ValueError(f"unknown privileged kinds {unknown}; this interface renders {list(_RENDERERS)}")
        return "\n".join(_RENDERERS[kind](privileged[kind]) for kind in _RENDERERS if kind in privileged)


def _render_plan(plan: list[str] | None) -> str:
    if plan is None:
        return "Optimal remaining moves: none: the level can no longer be solved."
    if not plan:
        return "Optimal remaining moves: none: every box is already on a target."
    return f"Optimal remaining moves: {', '.join(plan)}"


def _render_trace(trace: list[str] | None) -> str:
    if trace is None:
        return "A full solution from the start: none: the level has no solution."
    return f"A full solution from the start: {', '.join(trace)}"


_RENDERERS = {"expert_plan": _render_plan, "expert_trace": _render_trace}
