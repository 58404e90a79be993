"""`AppWorldInterface`: how an LLM talks to the AppWorld-style env — a ReAct-style code agent, one Python
block per turn. Structural implementation of the toolkit's AgentInterface protocol (no toolkit import)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

SYSTEM = """You are my assistant and do my day-to-day tasks on my apps by writing Python. Each turn, think \
briefly, then write exactly one ```python``` code block; I run it and show you what it printed.

How the apps work:
- Call APIs as apis.<app>.<api>(**kwargs); they return JSON values (dicts and lists).
- Read the documentation before calling an API: apis.api_docs.show_app_descriptions(), \
apis.api_docs.show_api_descriptions(app_name=...), apis.api_docs.show_api_doc(app_name=..., api_name=...).
- Most APIs need an access_token from apis.<app>.login(username=..., password=...); the username is my email \
(my phone number for the phone app) and my passwords come from apis.supervisor.show_account_passwords().
- Lists are paginated (page_index from 0, page_limit up to 20): keep reading pages until one comes back empty.
- People I mention by relationship ("my roommates") are in my phone contacts.
- Variables persist between turns. Print what you need to see; write small steps.
- When the task is done, call apis.supervisor.complete_task(answer=...) with the answer if I asked a \
question, or apis.supervisor.complete_task() otherwise. To give up, call \
apis.supervisor.complete_task(status="fail").

{task_line}"""


class AppWorldInterface:
    """The default agent interface of the AppWorld-style family."""

    name: str = "appworld"

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        return SYSTEM.format(task_line=f"Task: {info['task']}")

    def observation_message(self, observation: str, info: Mapping[str, Any]) -> str:
        return f"Output:\n```\n{observation}\n```"

    def parse_action(self, text: str) -> str | None:
        """The first ```python``` (or bare ```) code block of a reply; None if there is none."""
        found = _BLOCK.search(text)
        if found is None:
            return None
        code = found.group(1).strip("\n")
        return code if code.strip() else None

    def format_action(self, action: str) -> str:
        return f"```python\n{action}\n```"

    def render_privileged(self, privileged: Mapping[str, Any]) -> str:
        parts = []
        if privileged.get("api_calls") is not None:
            parts.append("A working solution makes these API calls, in order:\n" + "\n".join(privileged["api_calls"]))
        if privileged.get("api_names") is not None:
            parts.append("A working solution uses these APIs: " + ", ".join(privileged["api_names"]))
        if privileged.get("plan") is not None:
            parts.append("A plan that works:\n" + "\n".join(privileged["plan"]))
        if "expert_plan" in privileged:
            plan = privileged["expert_plan"]
            parts.append("The rest of a working solution:\n" + ("\n".join(plan) if plan else
                                                                  "(unknown: you have left the reference path)"))
        return "\n\n".join(parts)
