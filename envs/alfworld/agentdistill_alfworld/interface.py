"""`ALFWorldInterface`: how an LLM talks to the ALFWorld env (prompts, action parsing, privileged text).

The dialect is ALFWorld 0.4.x's: objects are placed with ``move X to Y``. Replies in the legacy ReAct
dialect (``put X in Y`` / ``put X on Y`` / ``put X in/on Y``) are rewritten to ``move X to Y`` when parsed.
The class implements the toolkit's AgentInterface protocol structurally, so this plugin imports no toolkit
code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .engine import WELCOME

PI_FORMATS = ("trace", "names", "next_k")
PROMPTS = ("full", "compact")

_ACTION_TAG = re.compile(r"\baction\s*:", re.IGNORECASE)
_LEGACY_PUT = re.compile(r"^put (.+?) (?:in/on|in|on) (.+)$")
_WRAPPERS = "\"'`*"

_COMMANDS = (
    "  go to <receptacle>\n"
    "  open <receptacle>\n"
    "  close <receptacle>\n"
    "  take <object> from <receptacle>\n"
    "  move <object> to <receptacle>        (put the object you hold in or on the receptacle)\n"
    "  heat <object> with <microwave>\n"
    "  cool <object> with <fridge>\n"
    "  clean <object> with <sinkbasin>\n"
    "  use <lamp>                           (switch on a desklamp or floorlamp)\n"
    "  examine <object or receptacle>\n"
    "  look\n"
    "  inventory\n"
)


class ALFWorldInterface:
    """The default agent interface of the ALFWorld family.

    Args:
        pi_format: how ``expert_plan`` is rendered for the teacher: ``"trace"`` (the optimal remaining
            commands in full), ``"names"`` (only their verbs, e.g. ``go to, take, heat, go to, move``) or
            ``"next_k"`` (only the next ``k`` commands).
        k: the number of commands shown by ``"next_k"``.
        prompt: ``"full"`` (the setting, the command grammar and the reply format: 305 tokens for
            SmolLM2) or ``"compact"`` (the task and the reply format only: about a tenth of that). The
            observation lists the admissible actions either way, so the grammar is redundant for a model that
            picks from them; compact halves the tokens of a turn with one turn of history, which is what a
            CPU run pays for in scoring and updates.
    """

    name: str = "alfworld"

    def __init__(self, pi_format: str = "trace", k: int = 3, prompt: str = "full"):
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {list(PROMPTS)}, got {prompt!r}")
        if pi_format not in PI_FORMATS:
            raise ValueError(f"pi_format must be one of {list(PI_FORMATS)}, got {pi_format!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.pi_format, self.k, self.prompt = pi_format, k, prompt

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        """The setting, the task, the command grammar and the reply format (compact: the task and the format)."""
        task = str(info["task"]).strip().rstrip(".")
        if self.prompt == "compact":
            return (f"You act in a household. Your task is to: {task}.\n"
                    "Each turn, reply with one of the admissible actions as `Action: <command>`.")
        return (
            "You are an expert agent operating in a household. You move between receptacles (cabinets, "
            "drawers, countertops, a fridge, a microwave, a sink basin, ...) and handle the objects in them "
            "to complete a task. You only see what is at your current location, and a closed receptacle "
            "must be opened before you can see or take what is inside it. You can hold one object at a "
            "time.\n"
            f"Your task is to: {task}.\n"
            "Commands (use the exact names you have seen, such as `apple 1` or `cabinet 3`):\n"
            f"{_COMMANDS}"
            'A command that cannot be carried out changes nothing and gives "Nothing happens."\n'
            "Each turn, choose one of the admissible actions and reply with exactly one line of the form "
            "`Action: <command>`, for example `Action: go to cabinet 1`."
        )

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        """The observation (without the welcome banner), the admissible actions, and a format reminder."""
        text = observation
        if text.startswith(WELCOME):
            text = text[len(WELCOME):].lstrip("\n")
        parts = [text]
        if "admissible_actions" in info:
            actions = [a for a in info["admissible_actions"] if a != "help"]
            parts.append(f"Admissible actions: {', '.join(actions)}")
        parts.append("Reply with `Action: <command>`.")
        return "\n\n".join(parts)

    def parse_action(self, text: str) -> str | None:
        """The command in a model reply, or None when nothing is left (a parse failure, counted as invalid).

        Takes the text after the LAST ``action:`` (any case) if there is one, else the whole reply; keeps its
        first non-empty line; strips surrounding whitespace, quotes, backticks, asterisks and a trailing
        period; lowercases; collapses runs of spaces; rewrites ``put X in/on Y`` to ``move X to Y``.
        """
        tags = list(_ACTION_TAG.finditer(text))
        rest = text[tags[-1].end():] if tags else text
        lines = [line for line in rest.splitlines() if line.strip()]
        if not lines:
            return None
        command = lines[0]
        previous = None
        while command != previous:
            previous = command
            command = command.strip().strip(_WRAPPERS).removesuffix(".")
        command = " ".join(command.lower().split())
        legacy = _LEGACY_PUT.match(command)
        if legacy:
            command = f"move {legacy.group(1)} to {legacy.group(2)}"
        return command or None

    def format_action(self, action: str) -> str:
        """The reply an expert writes for ``action`` (a command in normal form, e.g. ``go to cabinet 1``)."""
        reply = f"Action: {action}"
        if self.parse_action(reply) != action:
            raise ValueError(
                f"{action!r} is not a command in normal form "
                "(one line, lowercase, single spaces, `move X to Y`)"
            )
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
            return "Expert plan: none: the task can no longer be completed from here."
        if not plan:
            return "Expert plan: none needed: the task is already complete."
        if self.pi_format == "names":
            verbs = ", ".join(map(verb, plan))
            return f"Expert plan, action types of the optimal remaining commands: {verbs}"
        if self.pi_format == "next_k":
            return f"Expert plan, next optimal commands: {', '.join(plan[: self.k])}"
        return f"Expert plan, optimal remaining commands: {', '.join(plan)}"


def verb(command: str) -> str:
    """The action verb of a command: ``go to`` for ``go to cabinet 1``, else the first word."""
    return "go to" if command.startswith("go to ") else command.split(" ", 1)[0]


def _render_trace(trace: list[str] | None) -> str:
    if trace is None:
        return "Expert solution from the start: none: the task has no solution."
    return f"Expert solution from the start: {', '.join(trace)}"
