"""agentdistill/AppWorld-v0: the env contract, the scripted expert wins every task, evaluation in the loop."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("agentdistill_appworld")

from agentdistill import envs  # noqa: E402
from agentdistill.envs import check_text_env  # noqa: E402
from agentdistill.policies import ExpertPolicy  # noqa: E402
from agentdistill.rollout import rollout  # noqa: E402
from agentdistill_appworld.env import ENV_ID, tasks_of  # noqa: E402
from agentdistill_appworld.scenarios import SPLITS  # noqa: E402


def test_conformance():
    check_text_env(ENV_ID, seeds=(0,), n_steps=9)


@pytest.mark.parametrize("split", SPLITS)
def test_the_scripted_expert_wins_every_task(split):
    n = len(tasks_of(split))
    if n == 0:
        pytest.skip(f"no scenarios in {split} yet")
    result = rollout(ENV_ID, ExpertPolicy(envs.default_interface(ENV_ID)), seeds=range(n), max_turns=50,
                     env_kwargs={"split": split}, progress=False, on_error="raise")
    assert {ep.task_id for ep in result.episodes} == {s.variant_id(k) for s, k in tasks_of(split)}
    assert result.metrics.success_rate == 1.0, [(ep.task_id, ep.final_observation) for ep in result.episodes
                                                if not ep.won]


def test_an_episode_ends_at_complete_task_and_is_judged_by_state():
    env = envs.make(ENV_ID, max_turns=50)
    obs, info = env.reset(seed=1)
    assert obs.startswith("I am ") and "Task: " in obs and info["task"] in obs
    obs, reward, terminated, truncated, info = env.step("")
    assert obs.startswith("Execution failed. No code") and info["invalid_action"] and not terminated
    obs, reward, terminated, truncated, info = env.step("x = 1")
    assert obs == "Execution successful." and not terminated
    obs, reward, terminated, truncated, info = env.step("print(x + 1)\napis.supervisor.complete_task()")
    assert obs.strip() == "2" and terminated and not truncated and reward == 0.0 and not info["won"]
    assert any(not r["passed"] for r in info["evaluation"])
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("print(1)")
    env.close()


def test_pickling_mid_episode_replays_the_cells():
    env = envs.make(ENV_ID, max_turns=50)
    env.reset(seed=2)
    env.step("secret = 41\napis.supervisor.show_profile()")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.step("print(secret + 1)")[0].strip() == "42"
    assert env.step("print(secret + 1)")[0].strip() == "42"
    env.close()
    clone.close()


def test_agent_code_cannot_reach_the_evaluator_or_the_database():
    env = envs.make(ENV_ID, max_turns=50)
    env.reset(seed=0)
    assert "Usage of 'sqlite3' is not allowed" in env.step("import sqlite3")[0]
    assert "Usage of 'open' is not allowed" in env.step("open('/proc/self/environ')")[0]
    names = env.step("print(sorted(globals()))")[0]
    assert "apis" in names and "_checker" not in names and "ctx" not in names
    env.close()


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        envs.make(ENV_ID, split="test")
    with pytest.raises(ValueError, match="unknown privileged kinds"):
        envs.make(ENV_ID, privileged=["answer"])
    env = envs.make(ENV_ID)
    with pytest.raises(ValueError, match="is not in this env's tasks"):
        env.reset(options={"task_id": "nope_1"})


def test_tgc_and_sgc():
    from agentdistill_appworld.metrics import scores, task_difficulties

    known = task_difficulties()
    by_scenario: dict[str, list[str]] = {}
    for task_id, (name, _) in sorted(known.items()):
        by_scenario.setdefault(name, []).append(task_id)
    first, *rest = sorted(by_scenario)
    results = [(t, True) for name in rest for t in by_scenario[name]]
    results += [(by_scenario[first][0], False)] + [(t, True) for t in by_scenario[first][1:]]
    s = scores(results)
    n = len(known)
    assert s["tasks"] == n and s["tgc"] == pytest.approx((n - 1) / n)
    assert s["sgc"] == pytest.approx((len(by_scenario) - 1) / len(by_scenario))
    assert scores(results + [(by_scenario[first][1], False)])["tgc"] == pytest.approx((n - 2) / n)
    with pytest.raises(ValueError, match="unknown task id"):
        scores([("nope_1", True)])
