"""Held-out evaluation: PI stays out of student-view evaluation prompts, held-out tasks, the leak metric."""

from __future__ import annotations

from dataclasses import replace

import pytest
from toy_env import CANARY, TOY_ID

from agentdistill.config import EnvConfig, EvalConfig
from agentdistill.eval import eval_env_kwargs, evaluate, pi_leak_rate
from agentdistill.types import load_episodes, save_episodes


def test_student_view_evaluation_never_sees_the_pi_and_the_teacher_view_does(tiny, toy_interface):
    model, tok = tiny
    env = EnvConfig(TOY_ID, max_turns=3, teacher_privileged=["expert_plan", "secret"], eval_seed_start=50)
    student, teacher = evaluate(model, tok, env, EvalConfig(num_tasks=2, temperature=1.0),
                                views=["student", "teacher"], max_new_tokens=4, interface=toy_interface)
    assert (student.view, teacher.view) == ("student", "teacher")
    assert [ep.task_id for ep in student.episodes] == [ep.task_id for ep in teacher.episodes]
    for ep in student.episodes:
        for turn in ep.turns:
            assert CANARY not in tok.decode(turn.student_prompt_ids)
            assert turn.teacher_prompt_ids is None  # no PI was even rendered for the deployment setting
    for ep in teacher.episodes:
        assert ep.metadata["act_on"] == "teacher"
        assert all(CANARY in tok.decode(t.teacher_prompt_ids) for t in ep.turns)
    assert set(student.metrics) >= {"success_rate", "mean_return", "pi_leak_rate", "invalid_action_rate"}


def test_evaluation_is_seeded_and_restores_train_mode(tiny, toy_interface):
    model, tok = tiny
    env = EnvConfig(TOY_ID, max_turns=3)
    model.train()
    runs = [evaluate(model, tok, env, EvalConfig(num_tasks=2, temperature=1.0), max_new_tokens=4,
                     interface=toy_interface, seed=3)[0] for _ in range(2)]
    assert model.training
    assert [t.response_ids for ep in runs[0].episodes for t in ep.turns] == \
        [t.response_ids for ep in runs[1].episodes for t in ep.turns]


def test_bad_views_name_the_fix(tiny, toy_interface):
    model, tok = tiny
    with pytest.raises(ValueError, match="choose from"):
        evaluate(model, tok, EnvConfig(TOY_ID), EvalConfig(num_tasks=1), views=["oracle"], interface=toy_interface)
    with pytest.raises(ValueError, match="teacher_privileged"):
        evaluate(model, tok, EnvConfig(TOY_ID), EvalConfig(num_tasks=1), views=["teacher"],
                 interface=toy_interface)


def test_eval_kwargs_override_the_training_kwargs():
    env = EnvConfig("x", kwargs={"split": "train", "dim_room": [6, 6]}, eval_kwargs={"split": "valid_unseen"})
    assert eval_env_kwargs(env) == {"split": "valid_unseen", "dim_room": (6, 6)}


def test_pi_leak_rate_counts_replies_that_mention_the_pi(tiny, toy_interface, tmp_path):
    model, tok = tiny
    (result,) = evaluate(model, tok, EnvConfig(TOY_ID, max_turns=2), EvalConfig(num_tasks=1),
                         max_new_tokens=2, interface=toy_interface)
    episodes = result.episodes
    turns = [t for ep in episodes for t in ep.turns]
    assert len(turns) == 2
    leaky = tok("The hint says inc", add_special_tokens=False)["input_ids"]
    clean = tok("inc", add_special_tokens=False)["input_ids"]
    first, second = episodes[0].turns
    episodes[0] = replace(episodes[0], turns=[
        replace(first, response_ids=tuple(leaky), sampler_logprobs=None),
        replace(second, response_ids=tuple(clean), sampler_logprobs=None)])
    assert pi_leak_rate(episodes, tok) == 0.5
    save_episodes(tmp_path / "e.jsonl", episodes)
    assert pi_leak_rate(load_episodes(tmp_path / "e.jsonl"), tok) == 0.5


def test_env_errors_are_counted_and_left_out_of_the_evaluation_figures(tiny, toy_interface):
    model, tok = tiny
    env = EnvConfig(TOY_ID, max_turns=3, kwargs={"fail_at_turn": 1, "fail_on_seeds": [50]}, eval_seed_start=50)
    (result,) = evaluate(model, tok, env, EvalConfig(num_tasks=2), max_new_tokens=2, interface=toy_interface)
    errored, clean = result.episodes  # held-out seeds 50 (breaks on its first step) and 51
    assert errored.error == "RuntimeError: injected env bug" and "Traceback" in errored.error_traceback
    assert clean.error is None and clean.num_turns > 0
    assert (result.metrics["errors"], result.metrics["error_rate"]) == (1, 0.5)
    # the figures are the clean episode's alone; counting the errored one as a failure would halve them
    assert result.metrics["mean_turns"] == clean.num_turns
    assert result.metrics["success_rate"] == float(clean.won)
