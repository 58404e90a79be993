"""ALFWorld-style env: contract on every split and backend, the expert wins every game, parity with the real
TextWorld engine on 200+ generated games (random and expert command sequences)."""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import agentdistill_alfworld  # noqa: F401  (registers the id)
from agentdistill import envs
from agentdistill.envs import check_text_env
from agentdistill_alfworld.engine import Engine
from agentdistill_alfworld.generator import make_game, split_games, write_game_file
from agentdistill_alfworld.planner import plan

ENV_ID = "agentdistill/ALFWorld-v0"
textworld = pytest.importorskip("textworld", reason='the real engine: pip install -e "envs/alfworld[textworld]"')


@pytest.mark.parametrize("split", ["train", "valid_seen", "valid_unseen"])
@pytest.mark.parametrize("backend", ["native", "textworld"])
def test_contract_on_every_split_and_backend(split, backend):
    # The real engine takes ~0.1 s a step and ~0.5 s a reset: a shorter check there.
    seeds, n_steps = ((0, 7), 12) if backend == "native" else ((3,), 8)
    check_text_env(gym.make(ENV_ID, split=split, backend=backend), seeds=seeds, n_steps=n_steps)


@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_expert_wins_every_game_within_the_budget(split):
    env = envs.make(ENV_ID, split=split, privileged=["expert_plan"])
    for index in range(env.unwrapped.n_games):
        _, info = env.reset(seed=index)
        for _ in range(env.unwrapped.default_max_turns):
            _, _, terminated, truncated, info = env.step(info["privileged"]["expert_plan"][0])
            if terminated or truncated:
                break
        assert terminated and info["won"], f"{split} game {index} ({info['task_id']}) not won by the expert"


def test_expert_wins_a_sample_of_train_and_small_games():
    for difficulty in ("full", "medium", "small"):
        specs = split_games("train", difficulty=difficulty)
        for spec in random.Random(difficulty).sample(specs, 30):
            engine = Engine(*_problem(spec, difficulty))
            engine.reset()
            steps = plan(engine)
            assert steps is not None and len(steps) <= 50
            for command in steps:
                engine.step(command)
            assert engine.won


def _problem(spec, difficulty):
    game = make_game(spec, difficulty=difficulty)
    return game.problem, game.goal_text


def _parity_one(args) -> list:
    """Play one game in both engines: a seeded random walk (with invalid commands mixed in), then the
    expert's optimal plan from wherever the walk ended. Returns the mismatches (empty when identical)."""
    from agentdistill_alfworld.textworld_backend import TextWorldEngine

    index, spec, folder = args
    game = make_game(spec)
    path = f"{folder}/{index}.tw-pddl"
    write_game_file(game, path)
    ours, theirs = Engine(game.problem, game.goal_text), TextWorldEngine(path)
    rng = random.Random(index)
    feedback = (ours.reset(), theirs.reset())
    commands, expert = [], None
    for t in range(60):
        ours_view = (feedback[0], ours.admissible_commands, ours.won)
        theirs_view = (feedback[1], theirs.admissible_commands, theirs.won)
        if ours_view != theirs_view:
            return [(spec.game_id, commands, ours_view, theirs_view)]
        if ours.won:
            return []
        if t < 8:  # the random part: admissible commands, an unknown verb, a not-held examine
            pool = theirs.admissible_commands + ["jump around", "examine " + rng.choice(list(ours.names.values()))]
            command = rng.choice(pool)
        else:
            expert = expert or plan(ours)
            if not expert:
                return [(spec.game_id, commands, "expert found no plan", None)]
            command = expert.pop(0)
        commands.append(command)
        feedback = (ours.step(command), theirs.step(command))
    return [(spec.game_id, commands, "not won after the expert's plan", None)]


def test_parity_with_the_real_engine_on_200_generated_games(tmp_path):
    """The native engine and TextWorld's PDDL engine agree on feedback, admissible commands and won at every
    step of 200 games (all of valid_unseen, 66 of valid_seen), split over two processes."""
    from concurrent.futures import ProcessPoolExecutor

    specs = split_games("valid_unseen") + split_games("valid_seen")[::2][:66]
    assert len(specs) >= 200
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_parity_one, [(i, s, str(tmp_path)) for i, s in enumerate(specs)]))
    mismatches = [m for r in results for m in r]
    assert not mismatches, mismatches[:2]


def test_real_alfworld_game_files_load_from_a_data_dir(tmp_path):
    # A data folder laid out like ALFWorld's (json_2.1.1/<split>/<task dir>/<trial>/game.tw-pddl).
    for i, spec in enumerate(split_games("valid_unseen")[:6]):
        game = make_game(spec)
        folder = tmp_path / "valid_unseen" / f"{game.task_type}-x-y-z-{i}" / "trial_0"
        folder.mkdir(parents=True)
        write_game_file(game, folder / "game.tw-pddl")
    env = envs.make(ENV_ID, data_dir=tmp_path / "valid_unseen", privileged=["expert_plan"])
    assert env.unwrapped.n_games == 6
    obs, info = env.reset(seed=2)
    assert obs.startswith("-= Welcome to TextWorld, ALFRED! =-") and info["task_type"] in info["task_id"]
    for _ in range(50):
        obs, reward, terminated, _, info = env.step(info["privileged"]["expert_plan"][0])
        if terminated:
            break
    assert info["won"] and reward == 1.0


def test_invalid_commands_are_nothing_happens_and_cost_a_step():
    env = envs.make(ENV_ID, max_turns=3)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("dance")
    assert obs == "Nothing happens." and reward == 0.0 and info["invalid_action"] and not terminated
    env.step("look")
    *_, truncated, info = env.step("dance")
    assert truncated and not info["won"]


def _full_bfs_length(engine: Engine, limit: int = 300_000) -> int | None:
    """Shortest plan length by breadth-first search over EVERY admissible command (no pruning)."""
    from collections import deque

    start = engine.snapshot()
    key = lambda facts: frozenset(f for f in facts if not f[0].startswith("not_") and f[0] != "checked")  # noqa: E731
    frontier, seen = deque([(start, 0)]), {key(start)}
    while frontier:
        state, depth = frontier.popleft()
        engine.restore(state)
        for command in engine.admissible_commands:
            engine.restore(state)
            engine.step(command)
            if engine.won:
                return depth + 1
            nxt = engine.snapshot()
            if key(nxt) not in seen:
                seen.add(key(nxt))
                frontier.append((nxt, depth + 1))
        assert len(seen) < limit, "state space too large for the brute-force check"
    return None


def test_planner_is_optimal_against_unpruned_search_on_small_games():
    specs = split_games("valid_unseen", difficulty="small")
    for spec in [s for s in specs if s.task_type != "pick_two_obj_and_place"][:8]:
        game = make_game(spec)
        engine = Engine(game.problem, game.goal_text)
        engine.reset()
        pruned = plan(engine)
        assert pruned is not None and len(pruned) == _full_bfs_length(engine), spec.game_id
