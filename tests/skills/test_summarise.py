"""Summarisers and the worker: template skills from real episodes, JSON parsing, failures counted not raised."""

from __future__ import annotations

import re

import pytest

from agentdistill import envs
from agentdistill.policies import ExpertPolicy, RandomPolicy
from agentdistill.policies.base import Completion
from agentdistill.rollout import rollout
from agentdistill.skills import SkillDraft, SkillWorker, SummaryError, TemplateSummariser, parse_skill
from agentdistill.skills.summarise import SYSTEM_PROMPT, render_episodes

SOKOBAN = "agentdistill/Sokoban-v0"
ALFWORLD = "agentdistill/ALFWorld-v0"


def expert_episodes(env_id: str, seed: int):
    return rollout(env_id, ExpertPolicy(envs.default_interface(env_id)), seeds=[seed], max_turns=40,
                   progress=False).episodes


class Say:
    """Replies with ``replies`` in turn (a scripted agent that makes the mistakes a test needs)."""

    sees_privileged, needs_privileged, name = False, (), "say"

    def __init__(self, replies: list[str]):
        self.replies, self.calls = replies, 0

    def act(self, prompts):
        out = []
        for _ in prompts:
            reply = self.replies[self.calls % len(self.replies)]
            out.append(Completion(text=reply, finish_reason="scripted"))
            self.calls += 1
        return out


def expand(workflow: tuple[str, ...]) -> list[str]:
    """Undo the ``×n`` counting of a workflow."""
    out = []
    for step in workflow:
        found = re.fullmatch(r"(.*) ×(\d+)", step)
        out += [found.group(1)] * int(found.group(2)) if found else [step]
    return out


@pytest.fixture(scope="module")
def group():
    interface = envs.default_interface(SOKOBAN)
    won = rollout(SOKOBAN, ExpertPolicy(interface), seeds=[3], max_turns=20, progress=False).episodes
    lost = rollout(SOKOBAN, RandomPolicy(interface), seeds=[3], group_size=2, max_turns=2, progress=False).episodes
    return won + lost


def test_template_skill_counts_the_moves_of_the_shortest_win(group):
    draft = TemplateSummariser().summarise("sokoban", group)
    expert = group[0]
    assert expand(draft.golden_workflow) == [t.action for t in expert.turns]
    workflow = draft.golden_workflow
    assert all(a != b for a, b in zip(workflow, workflow[1:], strict=False))  # runs are counted
    assert "1 of 3 attempts solved" in draft.success_analysis
    assert "2 of 3 attempts did not finish" in draft.mistake_analysis
    assert TemplateSummariser().summarise("sokoban", group) == draft  # deterministic


def test_template_skill_without_a_win(group):
    draft = TemplateSummariser().summarise("sokoban", group[1:])
    assert draft.golden_workflow == () and "No attempt solved" in draft.success_analysis


def test_template_skill_has_no_instance_specific_names():
    drafts, instances = [], []
    for seed in (1, 2):  # two ALFWorld tasks of one type: "clean some <object> and put it in <receptacle>"
        (episode,) = expert_episodes(ALFWORLD, seed)
        assert episode.won and episode.metadata["task_family"] == "pick_clean_then_place_in_recep"
        drafts.append(TemplateSummariser().summarise("pick_clean_then_place_in_recep", [episode]))
        instances.append(episode)
    for draft, episode in zip(drafts, instances, strict=False):
        text = " ".join(draft.golden_workflow) + draft.success_analysis + draft.mistake_analysis
        named = set(re.findall(r"clean some (\w+) and put it in (\w+)", episode.task)[0])
        visited = {m.group(1) for a in (t.action for t in episode.turns) for m in re.finditer(r"(\w+) \d", a)}
        instance_only = named | (visited - set(re.findall(r"\w+", episode.messages[0].content)))
        assert instance_only and not any(re.search(rf"\b{name}\b", text) for name in instance_only), text
        assert not re.search(r"\d", re.sub(r"<[^>]*>", "", " ".join(draft.golden_workflow)))  # nor numbers
        assert draft.golden_workflow[1].startswith("take <task-1> from ")
    assert "bathtubbasin" in " ".join(t.action for t in instances[0].turns)  # the check had names to find
    shared = set(drafts[0].golden_workflow) & set(drafts[1].golden_workflow)
    assert {"clean <task-1> with sinkbasin <n>", "go to <task-2>", "move <task-1> to <task-2>"} <= shared


def test_template_workflow_is_capped_with_a_note():
    episodes = expert_episodes(SOKOBAN, 5)
    full = TemplateSummariser().summarise("sokoban", episodes).golden_workflow
    capped = TemplateSummariser(max_steps=3).summarise("sokoban", episodes).golden_workflow
    assert len(full) > 3 and capped[:2] == full[:2] and len(capped) == 3
    assert capped[2] == f"… and {len(full) - 2} more steps of the same kinds"


def test_template_mistakes_are_general():
    replies = ["I would rather think", "Action: take soapbar 1 from cabinet 2",
               "Action: go to bathtubbasin 1"]
    episodes = rollout(ALFWORLD, Say(replies), seeds=[1], max_turns=5, progress=False).episodes
    draft = TemplateSummariser().summarise("pick_clean_then_place_in_recep", episodes)
    assert draft.golden_workflow == () and "No attempt solved the task yet" in draft.success_analysis
    mistakes = draft.mistake_analysis
    assert "refused by the environment" in mistakes and "'take <task-1> from cabinet <n>' ×2" in mistakes
    assert "1 of 1 attempts did not finish the task (1 ran out of turns" in mistakes
    assert not re.search(r"soapbar|bathtubbasin|\d ×|cabinet \d", mistakes + draft.success_analysis)
    sokoban = rollout(SOKOBAN, Say(["I think", "Action: up"]), seeds=[3], max_turns=4,
                      progress=False).episodes
    draft = TemplateSummariser().summarise("sokoban", sokoban)
    assert "2 replies did not parse as an action" in draft.mistake_analysis


def test_llm_summariser_prompt_asks_for_general_advice():
    assert "not this instance's exact moves" in SYSTEM_PROMPT


def test_render_episodes_shows_actions_and_feedback(group):
    text = render_episodes(group)
    assert text.startswith("Task: ") and "Attempt 1 (solved" in text and "Attempt 3 (" in text
    assert f"> {group[0].turns[0].action}" in text


def test_parse_skill():
    reply = 'Sure! {"success_analysis": "s", "mistake_analysis": "m", "golden_workflow": ["go", "take"]} done'
    assert parse_skill(reply) == SkillDraft("s", "m", ("go", "take"))
    assert parse_skill('{"success_analysis": "s", "mistake_analysis": "m", "golden_workflow": "go"}') \
        .golden_workflow == ("go",)
    with pytest.raises(SummaryError, match="no JSON object"):
        parse_skill("I cannot help")
    with pytest.raises(SummaryError, match="does not parse"):
        parse_skill("{not json}")
    with pytest.raises(SummaryError, match=r"lacks \['golden_workflow'\]"):
        parse_skill('{"success_analysis": "s", "mistake_analysis": "m"}')


class Flaky:
    """Fails its first ``failures`` calls, then answers."""

    name, runs_inline = "flaky", False

    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    def summarise(self, family, episodes):
        self.calls += 1
        if self.calls <= self.failures:
            raise SummaryError(f"bad reply {self.calls}")
        return SkillDraft("s", "m", ())


@pytest.mark.parametrize("asynchronous", [False, True])
def test_worker_retries_then_succeeds(group, asynchronous):
    worker = SkillWorker(Flaky(failures=2), asynchronous=asynchronous, max_attempts=3, retry_delay_s=0.0)
    worker.submit("sokoban", group, step=0)
    worker.wait()
    done = worker.drain()
    assert len(done) == 1 and done[0].attempts == 3 and done[0].job.step == 0
    assert done[0].job.task == group[0].task  # what the bank keys the skill's relevance on
    assert (worker.stats.failed_attempts, worker.stats.succeeded, worker.stats.dropped) == (2, 1, 0)
    assert worker.drain() == [] and worker.pending == 0
    worker.close()


def test_worker_drops_a_summary_that_keeps_failing_and_never_raises(group):
    worker = SkillWorker(Flaky(failures=10), asynchronous=True, max_attempts=2, retry_delay_s=0.0)
    worker.submit("sokoban", group, step=1)
    worker.submit("sokoban", group, step=2)
    worker.wait()
    assert worker.drain() == []
    assert (worker.stats.failed_attempts, worker.stats.dropped) == (4, 2)
    assert "bad reply 4" in worker.stats.errors[-1] and "step 2" in worker.stats.errors[-1]
    worker.close()
