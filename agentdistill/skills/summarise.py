"""Summarisers turn one task's finished episodes into a ``SkillDraft``.

- ``TemplateSummariser``: deterministic, built from the episodes alone (tests and CPU runs). The golden
  workflow is the valid actions of the best winning episode (fewest turns); without a win it is empty and
  the analyses say what the attempts did and which actions the env refused.
- ``LLMSummariser``: any OpenAI-compatible endpoint (``OpenAIClient``; a local ``vllm serve`` counts), asked
  for the skill as JSON, constrained by a JSON schema where the server supports it.
- ``ModelSummariser``: the training model itself, with greedy decoding, same prompt and parser. It shares the
  weights being trained, so it runs between updates (``runs_inline``), never beside them.

A summariser raises ``SummaryError`` when a reply is unusable; the worker records, retries and counts those.
Episodes without a win still make a skill (what was tried, what the env refused): early in training they
are all there is, and the mistakes are worth knowing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from agentdistill.skills.bank import SkillDraft
from agentdistill.types import Episode

SKILL_SCHEMA = {
    "type": "object",
    "properties": {
        "success_analysis": {"type": "string", "maxLength": 400},
        "mistake_analysis": {"type": "string", "maxLength": 400},
        "golden_workflow": {"type": "array", "items": {"type": "string", "maxLength": 120}, "maxItems": 12},
    },
    "required": ["success_analysis", "mistake_analysis", "golden_workflow"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = (
    "You study an agent's attempts at a task and write one reusable skill for tasks of the same kind. "
    "Answer with a JSON object with exactly these keys: success_analysis (what worked and why), "
    "mistake_analysis (what went wrong and how to avoid it), golden_workflow (a list of short, general "
    "steps that solve such tasks). Do not copy object names that only this task has."
)


class SummaryError(RuntimeError):
    """A summariser's reply could not be turned into a skill."""


class Summariser(Protocol):
    name: str
    runs_inline: bool
    """True when it must run between training updates (it reads the weights being trained)."""

    def summarise(self, family: str, episodes: Sequence[Episode]) -> SkillDraft: ...


def valid_actions(episode: Episode) -> list[str]:
    return [t.action for t in episode.turns if t.action is not None and not t.invalid_action]


class TemplateSummariser:
    """A deterministic skill from the episodes' actions (no model)."""

    name = "template"
    runs_inline = False

    def __init__(self, max_steps: int = 30):
        self.max_steps = max_steps

    def summarise(self, family: str, episodes: Sequence[Episode]) -> SkillDraft:
        if not episodes:
            raise SummaryError("no episodes to summarise")
        winners = sorted((ep for ep in episodes if ep.won), key=lambda ep: (ep.num_turns, ep.episode_id))
        refused = Counter(t.response_text.strip()[:60] for ep in episodes for t in ep.turns if t.invalid_action)
        mistakes = (f"{sum(refused.values())} replies were refused or did not parse, most often: "
                    + "; ".join(f"'{text}' ×{n}" for text, n in refused.most_common(3)) + ".") if refused else \
            "No action was refused."
        lost = [ep for ep in episodes if not ep.won]
        if lost:
            mistakes += f" {len(lost)} of {len(episodes)} attempts did not finish the task"
            mistakes += f" ({sum(ep.truncated for ep in lost)} ran out of turns)."
        if winners:
            best = winners[0]
            workflow = tuple(valid_actions(best)[: self.max_steps])
            success = (f"{len(winners)} of {len(episodes)} attempts solved '{best.task}'; the shortest took "
                       f"{best.num_turns} turns.")
        else:
            best = max(episodes, key=lambda ep: (len(valid_actions(ep)), ep.total_reward, ep.episode_id))
            workflow = ()
            moves = valid_actions(best)
            success = (f"No attempt solved '{best.task}' yet; the furthest made {len(moves)} valid moves"
                       + (f": {', '.join(moves[:8])}." if moves else "."))
        return SkillDraft(success_analysis=success, mistake_analysis=mistakes, golden_workflow=workflow)


def render_episodes(episodes: Sequence[Episode], max_chars_per_episode: int = 1500) -> str:
    """The task and each attempt's actions and feedback, as plain text for a summariser's prompt."""
    parts = [f"Task: {episodes[0].task}"]
    for k, ep in enumerate(episodes, 1):
        outcome = "solved" if ep.won else ("ran out of turns" if ep.truncated else "failed")
        lines = []
        for t in ep.turns:
            feedback = ep.messages[t.message_index + 1].content if t.message_index + 1 < len(ep.messages) \
                else ep.final_observation
            said = t.action if t.action is not None else repr(t.response_text[:80])
            lines.append(f"> {said}\n{feedback.strip()[:200]}")
        body = "\n".join(lines)
        if len(body) > max_chars_per_episode:
            body = body[:max_chars_per_episode] + "\n[...]"
        parts.append(f"Attempt {k} ({outcome}, reward {ep.total_reward:g}):\n{body}")
    return "\n\n".join(parts)


def parse_skill(text: str) -> SkillDraft:
    """The first JSON object in ``text`` as a skill, or ``SummaryError`` saying what is wrong."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise SummaryError(f"the reply holds no JSON object: {text[:120]!r}")
    try:
        data: Any = json.loads(text[start : end + 1])
    except ValueError as e:
        raise SummaryError(f"the reply's JSON does not parse ({e}): {text[start : start + 120]!r}") from None
    missing = [k for k in ("success_analysis", "mistake_analysis", "golden_workflow") if k not in data]
    if missing:
        raise SummaryError(f"the reply's JSON lacks {missing}")
    workflow = data["golden_workflow"]
    if isinstance(workflow, str):
        workflow = [workflow]
    try:
        return SkillDraft(str(data["success_analysis"]), str(data["mistake_analysis"]),
                          tuple(str(s) for s in workflow))
    except TypeError as e:
        raise SummaryError(f"the reply's JSON has the wrong types: {e}") from None


def _messages(family: str, episodes: Sequence[Episode]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Task family: {family}\n\n{render_episodes(episodes)}"}]


class LLMSummariser:
    """Asks an OpenAI-compatible endpoint for the skill (JSON-schema constrained when ``constrained``)."""

    runs_inline = False

    def __init__(self, client: Any, *, max_tokens: int = 400, temperature: float = 0.0, constrained: bool = True):
        self.client, self.max_tokens, self.temperature = client, max_tokens, temperature
        self.constrained = constrained
        self.name = f"llm:{client.model}"

    def summarise(self, family: str, episodes: Sequence[Episode]) -> SkillDraft:
        from agentdistill.policies.openai import ChatRequest

        response_format = ({"type": "json_schema", "json_schema": {"name": "skill", "schema": SKILL_SCHEMA}}
                           if self.constrained else None)
        reply = self.client.chat(ChatRequest(messages=tuple(_messages(family, episodes)),
                                             temperature=self.temperature, max_tokens=self.max_tokens, seed=0,
                                             response_format=response_format))
        if reply.finish_reasons[0] == "length":
            raise SummaryError(f"the reply was cut at max_tokens={self.max_tokens}: raise it, or ask for less")
        return parse_skill(reply.texts[0])


class ModelSummariser:
    """The training model writes the skill (greedy); runs between updates since it reads those weights."""

    name = "model"
    runs_inline = True

    def __init__(self, model: Any, tokenizer: Any, *, max_tokens: int = 300):
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens

    def summarise(self, family: str, episodes: Sequence[Episode]) -> SkillDraft:
        from agentdistill.policies.hf import HFPolicy

        ids = self.tokenizer.apply_chat_template(_messages(family, episodes), add_generation_prompt=True,
                                                 tokenize=True, return_dict=True)["input_ids"]
        policy = HFPolicy(self.model, self.tokenizer, temperature=0.0, max_new_tokens=self.max_tokens)
        was_training = self.model.training
        self.model.eval()
        try:
            reply = policy.generate([list(ids)], [0])[0]
        finally:
            self.model.train(was_training)
        return parse_skill(reply.text)
