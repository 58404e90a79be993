"""TextWorld games env: contract per kind, the expert wins every generated game, seeded and byte-stable generation,
rewards / won / lost / budget, PI quarantine, pickling, bad kwargs, the cross-process cache lock, the CLI and a
smoke run of every trainer on it.

Games are generated once per session into a temporary cache (about 30 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("textworld", reason="needs textworld: pip install -e envs/textworld")
agentdistill_textworld = pytest.importorskip("agentdistill_textworld", reason="pip install -e envs/textworld")

from agentdistill import envs
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.envs import check_text_env, public_info
from agentdistill_textworld import (
    CACHE_ENV_VAR,
    ENV_ID,
    KINDS,
    REFUSED,
    SPLITS,
    TextWorldEnv,
    TextWorldInterface,
    cache_root,
    prepare,
    spec_for,
)
from agentdistill_textworld.games import generate

# (kind, difficulty, split, index): what the session cache holds.
GAMES = [*[(kind, d, split, 0) for kind in KINDS for d, split in [(1, "train"), (2, "test")]],
         ("treasure", 1, "train", 1), ("coin", 1, "train", 1)]


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> str:
    """A cache folder with every game of GAMES (its root; pass it as cache_dir)."""
    base = tmp_path_factory.mktemp("textworld-cache")
    prepare([spec_for(*game) for game in GAMES], cache_dir=base, workers=os.cpu_count() or 2)
    return str(base)


def _env(cache, kind="cooking", difficulty=1, split="train", **kwargs) -> TextWorldEnv:
    return TextWorldEnv(kind=kind, difficulty=difficulty, split=split, cache_dir=cache, **kwargs)


def _play_expert(env, index: int, max_steps: int = 60):
    """Follow expert_plan from game ``index``; returns (rewards, last step's result)."""
    _, info = env.reset(options={"game": index})
    rewards, result = [], None
    for _ in range(max_steps):
        result = env.step(info["privileged"]["expert_plan"][0])
        rewards.append(result[1])
        info = result[4]
        if result[2] or result[3]:
            break
    return rewards, result


@pytest.mark.parametrize("kind", KINDS)
def test_contract_for_each_kind(cache, kind):
    games = 2 if kind in ("treasure", "coin") else 1  # the games the session cache holds
    check_text_env(gym.make(ENV_ID, kind=kind, num_games=games, cache_dir=cache), seeds=(0, 1), n_steps=12)


@pytest.mark.parametrize("game", GAMES, ids=lambda g: "-".join(map(str, g)))
def test_expert_wins_every_generated_game(cache, game):
    kind, difficulty, split, index = game
    env = _env(cache, kind, difficulty, split, privileged=["expert_plan", "expert_trace"])
    rewards, (_, _, terminated, truncated, info) = _play_expert(env, index)
    assert terminated and not truncated and info["won"] and info["success"] and not info["lost"]
    assert info["score"] == info["max_score"] and sum(rewards) == pytest.approx(1.0)
    assert info["privileged"]["expert_plan"] == [] and info["admissible_actions"] == []
    trace = info["privileged"]["expert_trace"]
    replay = _env(cache, kind, difficulty, split)  # the trace alone wins from the start, without PI
    replay.reset(options={"game": index})
    results = [replay.step(command) for command in trace]
    assert results[-1][2] and results[-1][4]["won"] and not any(r[2] for r in results[:-1])


def test_generation_is_byte_stable_and_seeded(cache, tmp_path):
    spec = spec_for("treasure", 1, "train", 0)
    generate(spec, tmp_path)  # a second, independent generation of a cached game
    cached = cache_root(cache) / spec.relpath
    for name in ("game.z8", "game.json"):
        assert (tmp_path / name).read_bytes() == (cached / name).read_bytes(), name
    assert (tmp_path / "game.z8").read_bytes()[0x12:0x18] == b"000000"  # no compile date in the header
    for kind in ("treasure", "coin"):  # other seeds, other games
        files = [(cache_root(cache) / spec_for(kind, 1, "train", i).relpath / "game.z8").read_bytes() for i in (0, 1)]
        assert files[0] != files[1]
        assert _env(cache, kind).reset(seed=0)[0] != _env(cache, kind).reset(seed=1)[0]
    for kind in KINDS:  # the same seed, the same first observation and walkthrough
        firsts = [_env(cache, kind, num_games=1, privileged=["expert_trace"]).reset(seed=0) for _ in range(2)]
        assert firsts[0] == firsts[1] and firsts[0][1]["task_id"] == f"textworld/{kind}/d1/train/0"


def test_split_seed_ranges_are_disjoint():
    ranges = sorted(SPLITS.values())
    assert all(start + size <= nxt for (start, size), (nxt, _) in pairwise(ranges))
    assert spec_for("coin", 2, "valid", 7).seed == SPLITS["valid"][0] + 7
    assert spec_for("coin", 2, "test", 0).task_id == f"textworld/coin/d2/test/{SPLITS['test'][0]}"


def test_rewards_are_score_deltas_scaled_by_max_score(cache):
    env = _env(cache, "cooking", 2, "test", privileged=["expert_plan"])
    _, info = env.reset(options={"game": 0})
    total, positive = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(info["privileged"]["expert_plan"][0])
        total += reward
        positive += reward > 0
        assert total == pytest.approx(info["score"] / info["max_score"]) and not truncated
        if terminated:
            break
    assert info["won"] and info["max_score"] > 1 and positive == info["max_score"]  # one point at a time
    assert "*** The End ***" in obs and "RESTART" not in obs and not obs.endswith(">")


def test_won_on_the_last_allowed_turn_is_terminated_not_truncated(cache):
    trace = _env(cache, "coin", privileged=["expert_trace"]).reset(seed=0)[1]["privileged"]["expert_trace"]
    env = envs.make(ENV_ID, max_turns=len(trace), kind="coin", cache_dir=cache)
    env.reset(seed=0)
    results = [env.step(command) for command in trace]
    assert results[-1][2] and not results[-1][3] and results[-1][1] == 1.0


def test_the_budget_truncates_without_terminating(cache):
    env = envs.make(ENV_ID, max_turns=2, kind="cooking", cache_dir=cache)
    env.reset(seed=0)
    assert env.step("look")[2:4] == (False, False)
    _, reward, terminated, truncated, info = env.step("inventory")
    assert truncated and not terminated and reward == 0.0 and not info["won"]


def test_eating_a_needed_ingredient_loses(cache):
    # Cooking games fail when an ingredient of the recipe is eaten: take the first one the expert takes, eat it.
    env = _env(cache, "cooking", privileged=["expert_plan"])
    _, info = env.reset(seed=0)
    take = next(c for c in info["privileged"]["expert_plan"] if c.startswith("take "))
    ingredient = take.removeprefix("take ").split(" from ")[0]
    _, _, terminated, _, info = env.step(take)
    assert not terminated and f"eat {ingredient}" in info["admissible_actions"]
    obs, reward, terminated, truncated, info = env.step(f"eat {ingredient}")
    assert terminated and not truncated and info["lost"] and not info["won"] and not info["success"]
    assert reward == 0.0 and "You lost!" in obs and info["admissible_actions"] == []
    assert info["privileged"]["expert_plan"] is None
    assert TextWorldInterface().render_privileged(info["privileged"]).endswith("can no longer be won from here.")
    with pytest.raises(RuntimeError, match="reset"):
        env.step("look")


def test_invalid_and_refused_commands_are_observations(cache):
    env = _env(cache, "cooking", privileged=["expert_plan"])
    obs, info = env.reset(seed=0)
    plan = info["privileged"]["expert_plan"]
    obs, reward, terminated, _, info = env.step("xyzzy")
    assert obs == "That's not a verb I recognise." and reward == 0.0 and info["invalid_action"] and not terminated
    for command in ("restart", "  UNDO ", "", "save game", "tw-trace-actions", "quit", "look. restart",
                    "look then QUIT", "look, tw-extra-infos score"):
        obs, reward, terminated, _, info = env.step(command)
        assert obs == REFUSED and reward == 0.0 and info["invalid_action"] and not terminated
    obs, _, _, _, info = env.step("\\x take \u00fc\nthing")  # frotz escapes and non-ASCII are made harmless
    assert info["invalid_action"] and env.observation_space.contains(obs)
    obs, _, _, _, info = env.step(" " + plan[0].upper().replace(" ", "  "))  # case and spacing do not matter
    assert not info["invalid_action"] and info["privileged"]["expert_plan"] == plan[1:]


def test_privileged_information_is_opt_in_and_quarantined(cache):
    _, info = _env(cache).reset(seed=0)
    assert "privileged" not in info
    assert set(info) == {"task", "task_id", "task_type", "won", "lost", "success", "admissible_actions",
                         "invalid_action", "score", "max_score"}
    with pytest.raises(ValueError, match=r"unknown privileged kinds \['oracle'\].*expert_plan"):
        _env(cache, privileged=["oracle"])
    with pytest.raises(ValueError, match="not a string"):
        _env(cache, privileged="expert_plan")
    _, rich = _env(cache, privileged=["expert_trace"]).reset(seed=0)
    assert set(rich["privileged"]) == {"expert_trace"} and public_info(rich) == info


def test_pickling_mid_episode_continues_identically(cache):
    env = _env(cache, "treasure", difficulty=2, split="test", privileged=["expert_plan", "expert_trace"])
    _, info = env.reset(seed=0)
    move = next(c for c in info["admissible_actions"] if c.startswith("go "))
    for command in ["look", "dance", move, "inventory"]:
        env.step(command)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(40):
        plan = env.step("look")[4]["privileged"]["expert_plan"]
        assert clone.step("look")[4]["privileged"]["expert_plan"] == plan
        result = env.step(plan[0])
        assert clone.step(plan[0]) == result
        if result[2]:
            break
    assert result[4]["won"] and env.reset(seed=0) == clone.reset(seed=0)


@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")  # gymnasium warns before the env raises
@pytest.mark.parametrize(
    "kwargs, message",
    [({"kind": "zork"}, "choose kind= one of"), ({"difficulty": 4}, r"difficulty must be one of \[1, 2, 3\]"),
     ({"difficulty": "2"}, "difficulty must be one of"), ({"split": "dev"}, "choose split= one of"),
     ({"num_games": 0}, r"num_games must be an int in \[1, 100000\]"), ({"render_mode": "human"}, "render_mode")],
)
def test_bad_kwargs_name_the_fix(cache, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextWorldEnv(cache_dir=cache, **kwargs)
    with pytest.raises(ValueError, match=message):
        envs.make(ENV_ID, cache_dir=cache, **kwargs)


def test_bad_reset_options_name_the_fix(cache):
    env = _env(cache)
    with pytest.raises(ValueError, match="only 'game'"):
        env.reset(options={"level": 1})
    with pytest.raises(ValueError, match=r"game index must be an int in \[0, 1000\) for split 'test'"):
        _env(cache, split="test").reset(options={"game": 1000})


def test_cache_location_kwarg_env_var_and_default(monkeypatch, tmp_path):
    from importlib.metadata import version

    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("AGENTDISTILL_CACHE", raising=False)
    tail = Path(version("textworld")) / "gen1"
    assert cache_root() == Path("~/.cache/agentdistill/textworld").expanduser() / tail
    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path / "all"))
    assert cache_root() == tmp_path / "all" / "textworld" / tail
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env" / tail
    assert cache_root(tmp_path / "kw") == tmp_path / "kw" / tail
    assert TextWorldEnv(cache_dir=tmp_path / "kw").root == tmp_path / "kw" / tail


_RACER = """
import hashlib, json, sys, time
from agentdistill_textworld import cache_root, game_file, spec_for
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
path, made = game_file(spec_for("coin", 1, "train", 2), cache_root(sys.argv[1]))
print(json.dumps({"made": made, "sha": hashlib.sha256(path.read_bytes()).hexdigest()}))
"""


def test_two_processes_generating_one_game_both_succeed(tmp_path):
    import time

    start = str(time.time() + 3.0)  # both past their imports by then
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path), start], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    assert sorted(r["made"] for r in results) == [False, True] and results[0]["sha"] == results[1]["sha"]
    folder = cache_root(tmp_path) / spec_for("coin", 1, "train", 2).relpath
    assert sorted(p.name for p in folder.parent.iterdir()) == ["2", "2.lock"]  # no temporary folder left
    assert sorted(p.name for p in folder.iterdir()) == ["game.json", "game.z8"]
    env = TextWorldEnv(kind="coin", cache_dir=tmp_path, privileged=["expert_plan"])
    assert env.reset(options={"game": 2})[1]["privileged"]["expert_plan"]


def test_interface_round_trip_parsing_and_prompts(cache):
    agent = TextWorldInterface()
    for action in ["go north", "take red apple from counter", "close type D locker"]:
        assert agent.parse_action(agent.format_action(action)) == action
    cases = {"I think... Action: take knife.": "take knife", "action: `open fridge`\nthen eat": "open fridge",
             "**go   west**": "go west", "Action:": None, "": None, "ACTION: x\nAction: look": "look"}
    for text, expected in cases.items():
        assert agent.parse_action(text) == expected, text
    with pytest.raises(ValueError):
        agent.format_action("take\nknife")
    obs, info = _env(cache, "coin").reset(seed=0)
    assert info["task"] in agent.system_prompt(info) and "Action: <command>" in agent.system_prompt(info)
    message = agent.observation_message(obs, info)
    assert message.startswith(obs) and f"Admissible actions: {', '.join(info['admissible_actions'])}" in message
    assert agent.render_privileged({}) == ""
    pi = {"expert_plan": ["go west", "take coin"], "expert_trace": ["go west", "take coin"]}
    assert agent.render_privileged(pi) == ("Expert plan, remaining winning commands: go west, take coin\n"
                                           "Expert solution from the start: go west, take coin")
    assert TextWorldInterface("next_k", k=1).render_privileged({"expert_plan": pi["expert_plan"]}).endswith("go west")
    assert TextWorldInterface("names").render_privileged({"expert_plan": pi["expert_plan"]}).endswith("go, take")
    with pytest.raises(ValueError, match="oracle"):
        agent.render_privileged({"oracle": 1})


def test_plugin_registers_once_without_step_limit():
    assert agentdistill_textworld.agentdistill_plugin() == {ENV_ID: TextWorldInterface}
    assert ENV_ID in envs.registered_env_ids() and gym.spec(ENV_ID).max_episode_steps is None
    assert isinstance(envs.default_interface(ENV_ID, pi_format="next_k", k=2), TextWorldInterface)


def test_rollout_command_plays_textworld(cache, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "agentdistill.cli", "rollout", "env=textworld", "model=tiny-random",
         "policies=[hf,expert,random]", "n=2", "env.max_turns=4", "env.kwargs.kind=coin", "env.kwargs.num_games=2",
         "sampling.max_new_tokens=6", "progress=false", f"hydra.run.dir={out}"],
        capture_output=True, text=True, env={**os.environ, CACHE_ENV_VAR: cache, "OMP_NUM_THREADS": "1"}, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr
    assert "success_rate[expert]: 1.000" in proc.stdout
    assert set(json.loads((out / "metrics.json").read_text())) == {"hf", "expert", "random"}


def _train_cfg(algo: str, cache: str, out: Path):
    from agentdistill.algos import algorithm

    config_class, train = algorithm(algo)
    env = EnvConfig(ENV_ID, max_turns=6 if algo == "sft" else 2, teacher_privileged=["expert_plan"],
                    kwargs={"kind": "coin", "difficulty": 1, "num_games": 2, "cache_dir": cache})
    common = {"model": ModelConfig("tiny-random", device="cpu", dtype="float32"), "env": env,
              "eval": EvalConfig(num_tasks=0), "num_tasks": 2, "steps": 2, "lr": 1e-3, "seed": 0,
              "history_window": 0, "max_tokens_per_microbatch": 4096, "out_dir": str(out),
              "checkpoint_every": 2, "progress": False}
    extra = {
        "sft": {"batch_turns": 4},
        "grpo": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6},
        "opd": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6,
                "teacher_model": ModelConfig("tiny-random"), "teacher_weight_noise": 0.05},
        "opsd_reward": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6},
        "opsd_distill": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6},
        "pi_distill": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6},
        "skill_sd": {"tasks_per_step": 2, "group_size": 2, "max_new_tokens": 6, "async_summaries": False},
    }[algo]
    return replace(config_class(), **common, **extra), train


@pytest.fixture()
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, two spinning threads make these runs several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("algo", ["sft", "grpo", "opd", "opsd_reward", "opsd_distill", "pi_distill", "skill_sd"])
def test_every_trainer_smoke_runs_on_textworld(cache, tmp_path, algo, one_torch_thread):
    from agentdistill.runs import read_metrics

    cfg, train = _train_cfg(algo, cache, tmp_path / algo)
    result = train(cfg)
    rows = read_metrics(result.run_dir)
    assert result.final_step == 2 and [r["step"] for r in rows] == [1, 2]
    assert (result.run_dir / "checkpoints" / "latest").read_text().strip() == "step_000002"


@pytest.mark.slow
def test_expert_wins_game_zero_of_every_kind_difficulty_and_split(tmp_path):
    specs = [spec_for(k, d, s, 0) for k in KINDS for d in (1, 2, 3) for s in SPLITS]
    prepare(specs, cache_dir=tmp_path, workers=os.cpu_count() or 2)
    for spec in specs:
        env = _env(str(tmp_path), spec.kind, spec.difficulty, spec.split, privileged=["expert_plan"])
        rewards, (_, _, terminated, _, info) = _play_expert(env, 0)
        assert terminated and info["won"] and sum(rewards) == pytest.approx(1.0), spec.task_id
        assert info["task"], spec.task_id
