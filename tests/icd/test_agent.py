"""The ICD agent on the ALFWorld-style env: demos from other tasks only, the cascade's deferral rule, the
student never sees PI, and every step's dollars equal the price table applied to its token counts."""

from __future__ import annotations

import pytest

from agentdistill import envs
from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig
from agentdistill.icd.agent import DEMO_HEADER, IcdAgent, RetrievalSpec
from agentdistill.icd.ledger import BillingModel, Call, Ledger, call_cost
from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, load_demos
from agentdistill.models import load_tokenizer
from agentdistill.policies import ExpertPolicy, RandomPolicy
from agentdistill.policies.base import Prompt
from agentdistill.policies.openai import Price
from agentdistill.rollout import rollout
from agentdistill.types import Message
from agentdistill.views import ViewSpec, encode, render_text

ALFWORLD = "agentdistill/ALFWorld-v0"
SMALL = {"split": "train", "difficulty": "small"}
PRICES = {"cheap": Price(0.10, 0.40, 0.025), "dear": Price(2.00, 8.00, 0.50)}
CANARY = "canary7f3eprivileged"


class Recording:
    """Wraps a policy and keeps every prompt it was asked (what the student saw)."""

    def __init__(self, policy):
        self.policy, self.prompts = policy, []
        self.name, self.sees_privileged = policy.name, policy.sees_privileged
        self.needs_privileged = policy.needs_privileged

    def act(self, prompts):
        self.prompts += list(prompts)
        return self.policy.act(prompts)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    env = EnvConfig(ALFWORLD, kwargs=SMALL, max_turns=30)
    collect(CollectJobConfig(env=env, num_tasks=10, chunk_size=5, out_dir=str(out), progress=False))
    return load_demos(out / "demos.jsonl")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


def _agent(tokenizer, *, student, teacher, index=None, samples=1, billing=BillingModel()):
    return IcdAgent(student=student, teacher=teacher, interface=envs.default_interface(ALFWORLD),
                    tokenizer=tokenizer, ledger=Ledger(dict(PRICES), billing), student_model="cheap",
                    teacher_model="dear", index=index, retrieval=RetrievalSpec(k=2, window=1), samples=samples)


def _play(agent, tokenizer, seeds, max_turns=6):
    return rollout(ALFWORLD, agent, seeds=seeds, tokenizer=tokenizer, view=ViewSpec(history_window=2),
                   max_turns=max_turns, env_kwargs=SMALL, progress=False, on_error="raise").episodes


def test_demos_of_the_evaluated_task_are_never_in_the_students_prompt(demos, tokenizer):
    # The demo pool holds the very tasks being played (seeds 0..3 of the train split): exclusion must work.
    index = DemoIndex(demos, HashingEmbedder())
    student = Recording(RandomPolicy(envs.default_interface(ALFWORLD)))
    agent = _agent(tokenizer, student=student, teacher=None, index=index)
    episodes = _play(agent, tokenizer, seeds=[0, 1, 2, 3])
    by_task = {d["task_id"]: d for d in demos}
    assert {ep.task_id for ep in episodes} <= set(by_task)
    assert student.prompts and all(p.task_id in by_task for p in student.prompts)
    for prompt in student.prompts:
        system = prompt.messages[0].content
        assert DEMO_HEADER in system  # demos were given...
        own_goal_demo = f"Task: {by_task[prompt.task_id]['goal']}"
        others = [d for d in demos if d["task_id"] != prompt.task_id and d["goal"] == by_task[prompt.task_id]["goal"]]
        if not others:  # ...but never the evaluated task's own (unless another task has the same goal text)
            assert own_goal_demo not in system
    for ep in episodes:
        for step in agent.take(ep.episode_id):
            assert step.demo_tasks and ep.task_id not in step.demo_tasks


def test_the_student_never_sees_privileged_information(demos, tokenizer):
    expert = ExpertPolicy(envs.default_interface(ALFWORLD))
    student = Recording(RandomPolicy(envs.default_interface(ALFWORLD)))
    agent = _agent(tokenizer, student=student, teacher=expert, index=DemoIndex(demos, HashingEmbedder()), samples=3)
    assert agent.sees_privileged and agent.needs_privileged == ("expert_plan",)
    _play(agent, tokenizer, seeds=[20, 21])
    assert student.prompts
    for p in student.prompts:
        assert p.privileged is None
        text = "".join(m.content for m in p.messages)
        assert "privileged" not in text.lower()
        assert p.token_ids == encode(tokenizer, render_text(tokenizer, p.messages))  # ids match the text


def test_cascade_defers_exactly_the_steps_whose_samples_disagree(tokenizer):
    interface = envs.default_interface(ALFWORLD)
    expert = Recording(ExpertPolicy(interface))
    agent = _agent(tokenizer, student=RandomPolicy(interface), teacher=expert, samples=2)
    episodes = _play(agent, tokenizer, seeds=range(30, 36))
    steps = [s for ep in episodes for s in agent.take(ep.episode_id)]
    deferred = [s for s in steps if s.deferred]
    assert 0 < len(deferred) < len(steps)  # two random picks of ~8 admissible actions: mostly disagree
    for s in steps:
        assert len(s.actions) == 2
        assert s.deferred == (len(set(s.actions)) > 1)
        assert (s.teacher_usd > 0) == s.deferred and s.student_usd > 0
    assert len(expert.prompts) == len(deferred)
    for ep in episodes:  # an accepted step plays the agreed action
        for turn in ep.turns:
            assert turn.action is not None


def test_arms_without_a_teacher_or_a_student(tokenizer):
    interface = envs.default_interface(ALFWORLD)
    teacher_only = _agent(tokenizer, student=None, teacher=ExpertPolicy(interface))
    episodes = _play(teacher_only, tokenizer, seeds=[40, 41], max_turns=30)
    assert all(ep.won for ep in episodes)
    steps = [s for ep in episodes for s in teacher_only.take(ep.episode_id)]
    assert all(s.deferred and s.student_usd == 0 and s.agreement is None for s in steps)
    student_only = _agent(tokenizer, student=RandomPolicy(interface), teacher=None, samples=3)
    episodes = _play(student_only, tokenizer, seeds=[40])
    assert not any(s.deferred or s.teacher_usd for ep in episodes for s in student_only.take(ep.episode_id))
    with pytest.raises(ValueError, match="needs a student, a teacher, or both"):
        _agent(tokenizer, student=None, teacher=None)
    with pytest.raises(ValueError, match="reads privileged information"):
        _agent(tokenizer, student=ExpertPolicy(interface), teacher=None)
    with pytest.raises(ValueError, match="is not in the price table"):
        IcdAgent(student=RandomPolicy(interface), teacher=None, interface=interface, tokenizer=tokenizer,
                 ledger=Ledger(dict(PRICES)), student_model="gpt-9")


@pytest.mark.parametrize("billing", [BillingModel("one_call"), BillingModel("separate_calls", prompt_caching=True)])
def test_every_dollar_is_the_price_table_applied_to_the_token_counts(tokenizer, billing):
    interface = envs.default_interface(ALFWORLD)
    agent = _agent(tokenizer, student=RandomPolicy(interface), teacher=ExpertPolicy(interface), samples=2,
                   billing=billing)
    episodes = _play(agent, tokenizer, seeds=[50, 51])
    eot = 1  # a scripted reply is counted as its text's tokens + the end-of-turn token a model would emit
    for ep in episodes:
        steps = agent.take(ep.episode_id)
        assert len(steps) == ep.num_turns
        assert ep.metadata["cost_usd"] == pytest.approx(sum(s.student_usd + s.teacher_usd for s in steps))
        for step, turn in zip(steps, ep.turns, strict=False):
            for call in step.calls:
                if call["role"] == "teacher":  # the expert is billed for reading the student view, no demos
                    assert call["prompt_tokens"] == len(turn.student_prompt_ids)
                    assert call["completion_tokens"] == len(encode(tokenizer, turn.response_text)) + eot
                else:
                    assert call["samples"] == 2
                    assert call["prompt_tokens"] == len(turn.student_prompt_ids)  # no demos in this agent
                price = PRICES["dear" if call["role"] == "teacher" else "cheap"]
                fields = {k: v for k, v in call.items() if k != "cost_usd"}
                assert call["cost_usd"] == pytest.approx(call_cost(Call(**fields), price, billing))
                if billing.prompt_caching and step.turn > 0 and call["role"] == "student":
                    assert call["cached_tokens"] > 0  # the system prompt at least is shared with the last step
                if not billing.prompt_caching:
                    hand = (call["prompt_tokens"] * price.input + call["completion_tokens"] * price.output) / 1e6
                    assert call["cost_usd"] == pytest.approx(hand)


def test_a_planted_pi_canary_reaches_the_teacher_and_never_the_student(demos, tokenizer):
    interface = envs.default_interface(ALFWORLD)
    student, teacher = Recording(RandomPolicy(interface)), Recording(ExpertPolicy(interface))
    agent = _agent(tokenizer, student=student, teacher=teacher, index=DemoIndex(demos, HashingEmbedder()), samples=2)
    messages = (Message("system", "You are in a house. Your task is to: put a mug in the sink."),
                Message("user", "You see a sinkbasin 1 and a table 1.\n\nAdmissible actions: go to sinkbasin 1, look"))
    prompts = [Prompt(messages=messages, token_ids=encode(tokenizer, render_text(tokenizer, messages)),
                      sample_seed=seed, admissible_actions=("go to sinkbasin 1", "look"),
                      privileged={"expert_plan": [f"look {CANARY}"]}, task_id="t", episode_id=f"e{seed}",
                      goal="put a mug in the sink") for seed in range(6)]
    agent.act(prompts)
    assert teacher.prompts and all(CANARY in str(p.privileged) for p in teacher.prompts)  # the teacher reads it
    assert len(student.prompts) == 2 * len(prompts)
    for p in student.prompts:  # the student sees neither the PI mapping nor the canary, in text or ids
        assert p.privileged is None
        assert CANARY not in "".join(m.content for m in p.messages)
        assert CANARY not in tokenizer.decode(list(p.token_ids))
