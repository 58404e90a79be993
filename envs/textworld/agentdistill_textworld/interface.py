"""`TextWorldInterface`: how an LLM talks to `TextWorldEnv` (prompts, action parsing, privileged text).

Replies name one command on an ``Action: <command>`` line, as in the ALFWorld family. Commands keep their case
(TextWorld names objects such as ``type D locker``; the game itself ignores case). The class implements the
toolkit's AgentInterface protocol structurally, so this plugin imports no toolkit code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PI_FORMATS = ("trace", "names", "next_k")

_ACTION_TAG = re.compile(r"\baction\s*:", re.IGNORECASE)
_WRAPPERS = "\"'`*"

_COMMANDS = (
    "  go <north|south|east|west>\n"
    "  look                                  (describe the room again)\n"
    "  inventory                             (what you carry)\n"
    "  examine <thing>\n"
    "  take <object>  /  take <object> from <container or supporter>\n"
    "  drop <object>  /  put <object> on <supporter>  /  insert <object> into <container>\n"
    "  open <door or container>  /  close <door or container>\n"
    "  unlock <door or container> with <key>  /  lock <door or container> with <key>\n"
    "  eat <food>\n"
    "  cooking games also have: cook <food> with <stove|oven|BBQ>, slice|dice|chop <food> with <knife>,\n"
    "  prepare meal (with every ingredient of the recipe in your inventory), eat meal\n"
)


class TextWorldInterface:
    """The default agent interface of the TextWorld family.

    Args:
        pi_format: how ``expert_plan`` is rendered for the teacher: ``"trace"`` (the remaining winning commands
            in full), ``"names"`` (only their verbs) or ``"next_k"`` (only the next ``k`` commands).
        k: the number of commands shown by ``"next_k"``.
    """

    name: str = "textworld"

    def __init__(self, pi_format: str = "trace", k: int = 3):
        if pi_format not in PI_FORMATS:
            raise ValueError(f"pi_format must be one of {list(PI_FORMATS)}, got {pi_format!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.pi_format, self.k = pi_format, k

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        """The setting, the task, the usual commands and the reply format."""
        return (
            "You are playing a text adventure game. Each turn you read what you see and type one command; the "
            "game answers with what happened. You only see the room you are in; closed doors and containers must "
            "be opened first. The game may end early if you do something irreversible (for example eating an "
            "ingredient you still need).\n"
            f"Your task: {str(info['task']).strip()}\n"
            "Commands look like this (use the exact names the game uses):\n"
            f"{_COMMANDS}"
            "Each turn, choose one of the admissible actions and reply with exactly one line of the form "
            "`Action: <command>`, for example `Action: go north`."
        )

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        """The observation, the admissible actions, and a format reminder (small models follow the nearest one)."""
        parts = [observation]
        if info.get("admissible_actions"):
            parts.append(f"Admissible actions: {', '.join(info['admissible_actions'])}")
        parts.append("Reply with `Action: <command>`.")
        return "\n\n".join(parts)

    def parse_action(self, text: str) -> str | None:
        """The command in a model reply, or None when nothing is left (a parse failure, counted as invalid).

        Takes the text after the LAST ``action:`` (any case) if there is one, else the whole reply; keeps its
        first non-empty line; strips surrounding whitespace, quotes, backticks, asterisks and a trailing period;
        collapses runs of spaces. Case is kept.
        """
        tags = list(_ACTION_TAG.finditer(text))
        rest = text[tags[-1].end():] if tags else text
        lines = [line for line in rest.splitlines() if line.strip()]
        if not lines:
            return None
        command, previous = lines[0], None
        while command != previous:
            previous = command
            command = command.strip().strip(_WRAPPERS).removesuffix(".")
        command = " ".join(command.split())
        return command or None

    def format_action(self, action: str) -> str:
        """The reply an expert writes for ``action`` (one line, single spaces)."""
        reply = f"Action: {action}"
        if self.parse_action(reply) != action:
            raise ValueError(f"{action!r} is not a command in normal form (one line, single spaces, no quotes)")
        return reply

    def render_privileged(self, privileged: Mapping[str, Any]) -> str:
        """Teacher-only text for ``info["privileged"]`` ("" for an empty mapping)."""
        renderers = {"expert_plan": self._render_plan, "expert_trace": _render_trace}
        unknown = [kind for kind in privileged if kind not in renderers]
        if unknown:
            raise ValueError(f"unknown privileged kinds {unknown}; this interface renders {list(renderers)}")
        return "\n".join(renderers[kind](privileged[kind]) for kind in renderers if kind in privileged)

    def _render_plan(self, plan: list[str] | None) -> str:
        if plan is None:
            return "Expert plan: none: the game can no longer be won from here."
        if not plan:
            return "Expert plan: none needed: the game is already won."
        if self.pi_format == "names":
            return f"Expert plan, action types of the winning commands: {', '.join(map(verb, plan))}"
        if self.pi_format == "next_k":
            return f"Expert plan, next winning commands: {', '.join(plan[: self.k])}"
        return f"Expert plan, remaining winning commands: {', '.join(plan)}"


def verb(command: str) -> str:
    """The verb of a command: its first word (``go`` for ``go north``, ``take`` for ``take knife from table``)."""
    return command.split(" ", 1)[0]


def _render_trace(trace: list[str]) -> str:
    return f"Expert solution from the start: {', '.join(trace)}"
