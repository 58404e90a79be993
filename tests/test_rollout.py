"""The rollout loop: PI quarantine, batching invariance, truncation vs termination, recorded errors."""

from __future__ import annotations

import pytest
import torch
from toy_env import CANARY, TOY_ID

from agentdistill.policies import Completion, ExpertPolicy, HFPolicy, RandomPolicy
from agentdistill.rollout import clean_episodes, first_error, rollout
from agentdistill.views import ViewSpec

SOKOBAN = "agentdistill/Sokoban-v0"


class RecordingPolicy:
    """Replays fixed replies and keeps every prompt it was shown."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(self, reply: str = "inc"):
        self.name, self.reply, self.seen = "recording", reply, []

    def act(self, prompts):
        self.seen += list(prompts)
        return [Completion(text=self.reply, finish_reason="scripted") for _ in prompts]


def test_pi_canary_never_reaches_student_text_or_ids(tiny, toy_interface):
    model, tok = tiny
    canary_ids = tok(CANARY, add_special_tokens=False)["input_ids"]
    recorder = RecordingPolicy()
    sampler = HFPolicy(model, tok, temperature=1.0, max_new_tokens=6)
    for policy in (recorder, sampler):
        result = rollout(
            TOY_ID, policy, seeds=[0, 1], group_size=2, interface=toy_interface, tokenizer=tok,
            teacher_privileged=["expert_plan", "secret"], view=ViewSpec(history_window=2), progress=False,
        )
        for ep in result.episodes:
            assert all(CANARY not in m.content for m in ep.messages) and CANARY not in ep.final_observation
            for turn in ep.turns:
                student = tok.decode(turn.student_prompt_ids)
                assert CANARY not in student and CANARY not in turn.response_text
                assert not _contains(turn.student_prompt_ids, canary_ids)
                assert CANARY in tok.decode(turn.teacher_prompt_ids)  # the teacher does see it
                assert turn.privileged["secret"] == CANARY
    for prompt in recorder.seen:
        assert prompt.privileged is None
        assert all(CANARY not in m.content for m in prompt.messages)


def _contains(seq, sub) -> bool:
    return any(tuple(seq[i : i + len(sub)]) == tuple(sub) for i in range(len(seq) - len(sub) + 1))


def test_batched_and_unbatched_rollouts_give_the_same_episodes(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=1.0, max_new_tokens=8)
    kwargs = dict(seeds=[3, 4], group_size=2, tokenizer=tok, max_turns=4, run_seed=7, progress=False,
                  teacher_privileged=["expert_plan"])
    batched = rollout(SOKOBAN, policy, **kwargs).episodes
    one_by_one = rollout(SOKOBAN, policy, max_batch=1, **kwargs).episodes
    assert [e.messages for e in batched] == [e.messages for e in one_by_one]
    for a, b in zip(batched, one_by_one, strict=False):
        for ta, tb in zip(a.turns, b.turns, strict=True):
            assert (ta.student_prompt_ids, ta.teacher_prompt_ids, ta.response_ids) == (
                tb.student_prompt_ids, tb.teacher_prompt_ids, tb.response_ids)
            torch.testing.assert_close(torch.tensor(ta.sampler_logprobs), torch.tensor(tb.sampler_logprobs),
                                       atol=1e-4, rtol=0)
    # samples of one task differ (their seeds differ), and the group shares its task
    assert batched[0].group_id == batched[1].group_id and batched[0].task_id == batched[1].task_id


def test_prompt_ids_plus_response_ids_are_what_the_policy_saw(tiny):
    model, tok = tiny
    recorder = RecordingPolicy("inc")
    from toy_env import ToyInterface

    result = rollout(TOY_ID, recorder, seeds=[0], interface=ToyInterface(), tokenizer=tok, progress=False)
    turns = result.episodes[0].turns
    assert [t.student_prompt_ids for t in turns] == [p.token_ids for p in recorder.seen]
    # a scripted reply is stored as its text plus the template's end-of-turn token
    assert tok.decode(turns[0].response_ids) == "inc<|im_end|>" and turns[0].sampler_logprobs is None


def test_termination_and_truncation_are_recorded_separately(toy_interface):
    won = rollout(TOY_ID, RecordingPolicy("inc"), seeds=[0], interface=toy_interface, progress=False)
    ep = won.episodes[0]
    assert ep.won and ep.terminated and not ep.truncated
    assert [(t.terminated, t.truncated) for t in ep.turns][-1] == (True, False)
    assert ep.turns[-1].reward == 1.0 and ep.turns[0].return_to_go == pytest.approx(1.0)

    stalled = rollout(TOY_ID, RecordingPolicy("wait"), seeds=[0], max_turns=3, interface=toy_interface,
                      progress=False)
    ep = stalled.episodes[0]
    assert not ep.won and ep.truncated and not ep.terminated and ep.num_turns == 3
    assert [(t.terminated, t.truncated) for t in ep.turns] == [(False, False), (False, False), (False, True)]
    assert stalled.metrics.truncation_rate == 1.0 and stalled.metrics.success_rate == 0.0


def test_unparseable_replies_are_invalid_actions_not_crashes(toy_interface):
    result = rollout(TOY_ID, RecordingPolicy("let me think"), seeds=[0], max_turns=2, interface=toy_interface,
                     progress=False)
    turns = result.episodes[0].turns
    assert all(t.action is None and t.invalid_action and t.reward == -0.1 for t in turns)
    assert result.metrics.format_error_rate == 1.0 and result.metrics.invalid_action_rate == 1.0


def test_env_errors_are_recorded_not_dropped(toy_interface):
    result = rollout(TOY_ID, RecordingPolicy("wait"), seeds=[0, 1], interface=toy_interface, progress=False,
                     env_kwargs={"fail_at_turn": 2})
    assert result.metrics.errors == 2 and all("injected env bug" in e.error for e in result.episodes)
    assert all(e.num_turns == 1 for e in result.episodes)
    with pytest.raises(RuntimeError, match="injected"):
        rollout(TOY_ID, RecordingPolicy("wait"), seeds=[0], interface=toy_interface, progress=False,
                env_kwargs={"fail_at_turn": 2}, on_error="raise")


def test_an_env_error_on_some_seeds_keeps_its_traceback_and_leaves_the_quality_metrics(toy_interface):
    result = rollout(TOY_ID, RecordingPolicy("inc"), seeds=[0, 1, 2, 3], interface=toy_interface, progress=False,
                     env_kwargs={"fail_at_turn": 2, "fail_on_seeds": [1, 3]})
    errored = [ep for ep in result.episodes if ep.error is not None]
    assert [ep.seed for ep in errored] == [1, 3]
    for ep in errored:
        assert ep.error == "RuntimeError: injected env bug" and not ep.won and ep.num_turns == 1
        assert ep.error_traceback.startswith("Traceback (most recent call last):")
        assert "toy_env.py" in ep.error_traceback and "RuntimeError: injected env bug" in ep.error_traceback
    clean = clean_episodes(result.episodes)
    assert [ep.seed for ep in clean] == [0, 2] and all(ep.error_traceback is None for ep in clean)
    assert first_error(result.episodes) is errored[0] and first_error(clean) is None
    m = result.metrics
    assert (m.episodes, m.errors, m.error_rate) == (4, 2, 0.5)
    # "inc" wins every task that did not break: the errored ones are not counted as failures
    assert m.success_rate == 1.0 and m.truncation_rate == 0.0
    assert m.mean_turns == sum(ep.num_turns for ep in clean) / 2
    assert m.mean_return == sum(ep.total_reward for ep in clean) / 2 == 1.0


def test_when_every_episode_errors_the_quality_metrics_are_zero_and_the_error_rate_one(toy_interface):
    result = rollout(TOY_ID, RecordingPolicy("wait"), seeds=[0, 1], interface=toy_interface, progress=False,
                     env_kwargs={"fail_at_turn": 2})
    m = result.metrics
    assert (m.episodes, m.errors, m.error_rate) == (2, 2, 1.0)
    assert (m.success_rate, m.mean_return, m.mean_turns, m.invalid_action_rate, m.truncation_rate) == (0.0,) * 5
    assert clean_episodes(result.episodes) == [] and first_error(result.episodes) is result.episodes[0]


def test_expert_wins_sokoban_and_random_is_reproducible():
    expert = rollout(SOKOBAN, ExpertPolicy(_sokoban_interface()), seeds=range(10), progress=False)
    assert expert.metrics.success_rate == 1.0 and expert.metrics.invalid_action_rate == 0.0
    random_a = rollout(SOKOBAN, RandomPolicy(_sokoban_interface()), seeds=range(4), progress=False)
    random_b = rollout(SOKOBAN, RandomPolicy(_sokoban_interface()), seeds=range(4), progress=False)
    assert random_a.episodes == random_b.episodes


def _sokoban_interface():
    from agentdistill.envs import default_interface

    return default_interface(SOKOBAN)


class RecordingTokenPolicy(RecordingPolicy):
    """Like RecordingPolicy, for checking which ids a token-level policy is handed."""


def test_acting_on_the_teacher_view_keeps_the_student_view_clean(tiny, toy_interface):
    model, tok = tiny
    recorder = RecordingTokenPolicy()
    result = rollout(TOY_ID, recorder, seeds=[0], interface=toy_interface, tokenizer=tok,
                     teacher_privileged=["secret"], act_on="teacher", progress=False)
    turns = result.episodes[0].turns
    assert [p.token_ids for p in recorder.seen] == [t.teacher_prompt_ids for t in turns]
    assert all(CANARY in tok.decode(p.token_ids) for p in recorder.seen)
    assert all(CANARY not in tok.decode(t.student_prompt_ids) for t in turns)
    assert all(CANARY not in m.content for m in result.episodes[0].messages)
    assert result.episodes[0].metadata == {"act_on": "teacher", "cost_usd": 0.0, "task_family": "agentdistill/Toy-v0"}
    # the sampler's log-probs are those of the teacher view
    from agentdistill.scoring import score

    sampled = rollout(TOY_ID, HFPolicy(model, tok, temperature=1.0, max_new_tokens=5), seeds=[1],
                      interface=toy_interface, tokenizer=tok, teacher_privileged=["secret"], act_on="teacher",
                      max_turns=2, progress=False).episodes[0].turns
    scored = score(model, [t.teacher_prompt_ids for t in sampled], [t.response_ids for t in sampled])
    for row, turn in enumerate(sampled):
        got = scored.logprobs_BT[row, : len(turn.response_ids)]
        torch.testing.assert_close(got, torch.tensor(turn.sampler_logprobs), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="act_on='teacher' needs"):
        rollout(TOY_ID, recorder, seeds=[0], interface=toy_interface, act_on="teacher", progress=False)
