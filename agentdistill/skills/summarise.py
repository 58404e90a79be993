"""Summarisers turn one task's finished episodes into a ``SkillDraft``.

- ``TemplateSummariser``: deterministic, built from the episodes alone (tests and CPU runs). The golden
  workflow is the winning episodes' valid actions with this instance's names replaced by role placeholders
  and repeats counted (``skills.abstract``); without a win it is empty and the analyses say what the
  attempts did and which kinds of action the env refused.
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

from agentdistill.skills.abstract import Vocabulary, abstract_actions, collapse_repeats, legend
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
    "steps that solve such tasks). Write general advice that holds for similar tasks, not this instance's "
    "exact moves: do not copy object names, coordinates or values that only this task has."
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
    """A deterministic skill from the episodes' actions (no model), written to transfer to other instances.

    - ``golden_workflow``: the winning episodes' valid actions, abstracted (``skills.abstract``): names this
      instance showed (in the task text or an observation) and the env's instructions do not use become
      role placeholders (``<task-1>`` for the first thing the task names, ``<seen-1>`` for the first other
      thing used, ``<n>`` for a number), code keeps its first line, and runs of one step become one counted
      step ("left ×3"). The order of the steps, hence of the action kinds, is kept. The workflow most winners
      share is written (ties: the fewest turns, then the episode id), capped at ``max_steps`` steps with a
      last one saying how many were left out. Empty without a win.
    - ``success_analysis``: how many attempts solved the task, the shortest win's length, how many wins
      share the workflow, and what the placeholders stand for.
    - ``mistake_analysis``: replies that did not parse, actions the env refused (abstracted the same way,
      most common first), attempts that failed or ran out of turns, each with the general remedy.

    Why it transfers: what is left is the env's own language and the shape of a solution (which kinds of
    action, in which order, on which roles), which other tasks of the family share; a level's exact names,
    positions and values, which they do not, are gone. A bare move sequence (Sokoban) has no names to take
    out: it stays one level's solution, only counted and capped.
    """

    name = "template"
    runs_inline = False

    def __init__(self, max_steps: int = 12):
        if max_steps < 2:
            raise ValueError(f"max_steps must be >= 2 (one step and the cut note), got {max_steps}")
        self.max_steps = max_steps

    def summarise(self, family: str, episodes: Sequence[Episode]) -> SkillDraft:
        if not episodes:
            raise SummaryError("no episodes to summarise")
        winners = sorted((ep for ep in episodes if ep.won), key=lambda ep: (ep.num_turns, ep.episode_id))
        if not winners:
            best = max(episodes, key=lambda ep: (len(valid_actions(ep)), ep.total_reward, ep.episode_id))
            moves = workflow_of(best)
            success = (f"No attempt solved the task yet; the furthest made "
                       f"{_count(len(valid_actions(best)), 'valid move')}"
                       + (f": {', '.join(moves[:8])}." if moves else "."))
            return SkillDraft(success, mistake_analysis(episodes), ())
        flows = [tuple(workflow_of(ep)) for ep in winners]
        shared = Counter(flows)
        workflow = max(flows, key=lambda f: shared[f])  # max keeps the first of equals: the shortest win
        success = (f"{len(winners)} of {len(episodes)} attempts solved the task; the shortest took "
                   f"{winners[0].num_turns} turns, and {shared[workflow]} of {len(winners)} wins follow the "
                   f"workflow below. {legend(workflow)}").strip()
        return SkillDraft(success, mistake_analysis(episodes), self._cap(workflow))

    def _cap(self, workflow: Sequence[str]) -> tuple[str, ...]:
        if len(workflow) <= self.max_steps:
            return tuple(workflow)
        kept = list(workflow[: self.max_steps - 1])
        return (*kept, f"… and {len(workflow) - len(kept)} more steps of the same kinds")


def workflow_of(episode: Episode) -> list[str]:
    """The episode's valid actions, abstracted and with repeats counted."""
    return collapse_repeats(abstract_actions(valid_actions(episode), Vocabulary.of(episode)))


def mistake_analysis(episodes: Sequence[Episode]) -> str:
    """What went wrong across the attempts, in general terms (no instance names), with the remedies."""
    unparsed = sum(t.action is None for ep in episodes for t in ep.turns)
    refused: Counter[str] = Counter()
    for ep in episodes:
        actions = [t.action for t in ep.turns if t.invalid_action and t.action is not None]
        refused.update(abstract_actions(actions, Vocabulary.of(ep)))
    parts = []
    if unparsed:
        parts.append(f"{_count(unparsed, 'reply', 'replies')} did not parse as an action: reply in exactly "
                     "the required format, one action per reply.")
    if refused:
        common = "; ".join(f"'{text}' ×{n}" for text, n in refused.most_common(3))
        n = sum(refused.values())
        parts.append(f"{_count(n, 'action')} {'was' if n == 1 else 'were'} refused by the environment, most "
                     f"often: {common}; only take actions the current observation allows.")
    if not parts:
        parts.append("No action was refused.")
    lost = [ep for ep in episodes if not ep.won]
    if lost:
        ran_out = sum(ep.truncated for ep in lost)
        parts.append(f"{len(lost)} of {len(episodes)} attempts did not finish the task ({ran_out} ran out of "
                     "turns" + ("; moves that change nothing or undo progress use up the turn budget)."
                                if ran_out else ")."))
    return " ".join(parts)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


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
