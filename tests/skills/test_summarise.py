"""Summarisers and the worker: template skills from real episodes, JSON parsing, failures counted not raised."""

from __future__ import annotations

import pytest

from agentdistill import envs
from agentdistill.policies import ExpertPolicy, RandomPolicy
from agentdistill.rollout import rollout
from agentdistill.skills import SkillDraft, SkillWorker, SummaryError, TemplateSummariser, parse_skill
from agentdistill.skills.summarise import render_episodes

SOKOBAN = "agentdistill/Sokoban-v0"


@pytest.fixture(scope="module")
def group():
    interface = envs.default_interface(SOKOBAN)
    won = rollout(SOKOBAN, ExpertPolicy(interface), seeds=[3], max_turns=20, progress=False).episodes
    lost = rollout(SOKOBAN, RandomPolicy(interface), seeds=[3], group_size=2, max_turns=2, progress=False).episodes
    return won + lost


def test_template_skill_uses_the_shortest_win(group):
    draft = TemplateSummariser().summarise("sokoban", group)
    expert = group[0]
    assert draft.golden_workflow == tuple(t.action for t in expert.turns)
    assert "1 of 3 attempts solved" in draft.success_analysis
    assert "2 of 3 attempts did not finish" in draft.mistake_analysis
    assert TemplateSummariser().summarise("sokoban", group) == draft  # deterministic


def test_template_skill_without_a_win(group):
    draft = TemplateSummariser().summarise("sokoban", group[1:])
    assert draft.golden_workflow == () and "No attempt solved" in draft.success_analysis


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
