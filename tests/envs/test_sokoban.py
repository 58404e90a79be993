"""Tests of the Sokoban plugin: generator, solver optimality, env contract, privileged info, interface."""

from __future__ import annotations

import hashlib
import pickle

import gymnasium as gym
import pytest

import agentdistill_sokoban
from agentdistill_sokoban import Level, SokobanEnv, SokobanInterface, generate_level, solve
from agentdistill_sokoban import env as env_module

DIRS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

GOLDEN_SEED0 = "######\n#_X_O#\n#_#_##\n#___##\n#_P###\n######"
GOLDEN_SHA = "ea8d5545de5ba0b185fc0fba2a820934c84e218f2e7dcdd984a1b7ef33883b21"


def _move(level: Level, player, boxes, action):
    """The test's own Sokoban rule (independent of the solver): new (player, boxes) or None if blocked."""
    (dr, dc), (r, c) = DIRS[action], player
    path = [(r + k * dr, c + k * dc) for k in (1, 2)]  # the square ahead and the one behind it
    inside = [0 <= y < level.height and 0 <= x < level.width and (y, x) not in level.walls for y, x in path]
    if not inside[0]:
        return None
    if path[0] in boxes:
        if not inside[1] or path[1] in boxes:
            return None
        boxes = frozenset(boxes - {path[0]} | {path[1]})
    return path[0], boxes


def _wins_within(level: Level, depth: int) -> bool:
    """Depth-limited search over all move sequences; a state already tried with as much budget is skipped."""
    tried: dict = {}

    def search(player, boxes, left):
        if boxes == level.targets:
            return True
        if left == 0 or tried.get((player, boxes), -1) >= left:
            return False
        tried[(player, boxes)] = left
        for action in DIRS:
            nxt = _move(level, player, boxes, action)
            if nxt is not None and search(*nxt, left - 1):
                return True
        return False

    return search(level.player, level.boxes, depth)


def test_generation_is_byte_stable_and_pinned():
    assert generate_level(0).to_text() == generate_level(0).to_text() == GOLDEN_SEED0
    texts = [
        generate_level(s, dim_room=d, num_boxes=b).to_text()
        for s in range(20)
        for d, b in [((6, 6), 1), ((7, 7), 2)]
    ]
    assert hashlib.sha256("\n\n".join(texts).encode()).hexdigest() == GOLDEN_SHA


def test_level_text_round_trip_and_xsb():
    level = generate_level(3, dim_room=(7, 7), num_boxes=2)
    assert Level.from_text(level.to_text()) == level
    xsb = Level.from_text("#####\n#@$.#\n#####\n")
    assert xsb.to_text() == "#####\n#PXO#\n#####"
    assert Level.from_text("####\n#S*X_\n####").to_text() == "#####\n#S*X_\n#####"


@pytest.mark.parametrize(
    "text, fragment",
    [("#P#X#", "as many boxes"), ("#PPXO#", "one player"), ("#PXO?#", "unknown symbol"), ("", "empty")],
)
def test_bad_level_text(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        Level.from_text(text)


@pytest.mark.parametrize(
    "kwargs",
    [{"dim_room": (4, 6)}, {"dim_room": (6,)}, {"num_boxes": 0}, {"num_boxes": 3, "dim_room": (5, 5)}],
)
def test_bad_knobs(kwargs):
    with pytest.raises(ValueError):
        generate_level(0, **kwargs)
    with pytest.raises(ValueError):
        SokobanEnv(**kwargs)


def test_generated_levels_are_solved_by_the_expert():
    sizes = [(5, 5), (6, 6), (7, 7)]
    for i in range(200):
        dim, boxes = sizes[i % 3], 1 + (i // 3) % 2
        env = SokobanEnv(dim_room=dim, num_boxes=boxes, privileged=["expert_plan", "expert_trace"])
        _, info = env.reset(options={"level_seed": i})
        trace = info["privileged"]["expert_trace"]
        assert trace and len(trace) >= 2 and not info["won"]
        for _ in range(len(trace)):
            _, _, terminated, _, info = env.step(info["privileged"]["expert_plan"][0])
        assert terminated and info["won"] and info["privileged"]["expert_plan"] == []
        replay = SokobanEnv(dim_room=dim, num_boxes=boxes)
        replay.reset(options={"level_seed": i})
        results = [replay.step(a) for a in trace]
        assert results[-1][2] and results[-1][4]["success"]


def test_solver_plans_are_optimal_by_brute_force():
    for seed in range(40):
        level = generate_level(seed, dim_room=(5, 5) if seed % 2 else (6, 6), num_boxes=1)
        plan = solve(level)
        state = (level.player, level.boxes)
        for action in plan:  # the plan is legal under the test's own rule and wins
            state = _move(level, *state, action)
        assert state[1] == level.targets
        for depth in range(len(plan)):  # iterative deepening: nothing shorter wins
            assert not _wins_within(level, depth), (seed, plan)


def test_solver_unsolvable_and_won():
    assert solve(Level.from_text("#####\n#X__#\n#_P_#\n#__O#\n#####")) is None  # box in a corner
    assert solve(Level.from_text("#####\n#P*_#\n#####")) == ()


def _custom(text, **kwargs):
    env = SokobanEnv(**kwargs)
    obs, info = env.reset(options={"level": text})
    return env, obs, info


def test_rewards_push_on_off_and_win():
    env, obs, info = _custom("#######\n#PXO__#\n#__XO_#\n#######")
    assert obs == "#######\n#PXO__#\n#__XO_#\n#######" and info["boxes_on_target"] == 0
    obs, reward, terminated, truncated, info = env.step("right")
    assert reward == pytest.approx(0.9) and info["boxes_on_target"] == 1 and not terminated
    obs, reward, terminated, truncated, info = env.step(" RIGHT ")
    assert reward == pytest.approx(-1.1) and info["boxes_on_target"] == 0 and not info["invalid_action"]
    obs, reward, *_ = env.step("left")
    assert reward == pytest.approx(-0.1) and obs.splitlines()[1] == "#_POX_#"
    assert not truncated

    env, _, _ = _custom("#####\n#PXO#\n#####")
    obs, reward, terminated, truncated, info = env.step("right")
    assert reward == pytest.approx(10.9) and terminated and not truncated
    assert obs == "#####\n#_P*#\n#####" and info["won"] and info["success"]
    assert info["admissible_actions"] == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step("left")


@pytest.mark.parametrize("action", ["up", "left", "jump", "", "Action: right", "ü" * 300])
def test_invalid_actions_do_not_change_the_board(action):
    env, obs, info = _custom("#######\n#PXXOO#\n#######")
    assert info["admissible_actions"] == []  # up/down/left walls, right pushes into a second box
    for step_action in (action, "right"):
        new_obs, reward, terminated, truncated, info = env.step(step_action)
        assert reward == pytest.approx(-0.1) and info["invalid_action"] and not terminated and not truncated
        first, rest = new_obs.split("\n", 1)
        assert first.startswith("Invalid action: '") and first.endswith("'. The board did not change.")
        assert rest == obs and env.observation_space.contains(new_obs)


def test_info_keys_and_spaces():
    env = SokobanEnv()
    obs, info = env.reset(seed=1)
    keys = {"task", "task_id", "won", "success", "admissible_actions", "invalid_action", "boxes_on_target"}
    assert set(info) == keys
    assert info["task"] == "Push every box (X) onto a target (O)."
    assert info["task_id"].startswith("sokoban-6x6-b1-") and not info["invalid_action"]
    assert env.observation_space.contains(obs) and env.action_space.contains("up")
    assert info["admissible_actions"] == [a for a in DIRS if a in info["admissible_actions"]]
    _, custom = SokobanEnv().reset(options={"level": GOLDEN_SEED0})
    assert custom["task_id"] == SokobanEnv().reset(options={"level": GOLDEN_SEED0})[1]["task_id"]
    assert custom["task_id"].startswith("sokoban-custom-")
    for options in ({"level_seed": 1, "level": GOLDEN_SEED0}, {"seed": 1}, {"level": "#####\n#P*_#\n#####"}):
        with pytest.raises(ValueError):
            env.reset(options=options)


def _episode(env, seed, actions):
    out = [env.reset(seed=seed)]
    for action in actions:
        out.append(env.step(action))
        if out[-1][2]:
            break
    return out


ACTIONS = ["up", "left", "down", "bad", "right", "right", "up", "down", "left", "up"] * 3


def test_same_seed_same_episode_and_pickling():
    assert _episode(SokobanEnv(), 5, ACTIONS) == _episode(SokobanEnv(), 5, ACTIONS)
    env = SokobanEnv(dim_room=(7, 7), num_boxes=2, privileged=["expert_plan"])
    env.reset(seed=9)
    for action in ["bad", "up", "down", "up"]:
        assert not env.step(action)[2]
    clone = pickle.loads(pickle.dumps(env))
    for action in ACTIONS:
        result = env.step(action)
        assert result == clone.step(action)
        if result[2]:
            break
    assert env.reset() == clone.reset()


def test_privileged_requests():
    with pytest.raises(ValueError, match="expert_plan"):
        SokobanEnv(privileged=["oracle"])
    with pytest.raises(ValueError):
        SokobanEnv(privileged="expert_plan")
    _, info = SokobanEnv().reset(seed=0)
    assert "privileged" not in info
    _, info = SokobanEnv(privileged=["expert_trace"]).reset(seed=0)
    assert set(info["privileged"]) == {"expert_trace"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_privileged_never_changes_obs_or_other_info(seed):
    plain = _episode(SokobanEnv(num_boxes=2), seed, ACTIONS)
    rich = _episode(SokobanEnv(num_boxes=2, privileged=["expert_plan", "expert_trace"]), seed, ACTIONS)
    assert len(plain) == len(rich)
    for a, b in zip(plain, rich, strict=True):
        info_b = dict(b[-1])
        assert set(info_b.pop("privileged")) == {"expert_plan", "expert_trace"}
        assert a[:-1] == b[:-1] and a[-1] == info_b


def test_expert_plan_follows_cache_and_recomputes_on_deviation(monkeypatch):
    calls = []
    monkeypatch.setattr(env_module, "solve", lambda level: calls.append(level) or solve(level))
    env = SokobanEnv(dim_room=(7, 7), privileged=["expert_plan"], render_mode="ansi")
    _, info = env.reset(options={"level_seed": 0})
    plan = info["privileged"]["expert_plan"]
    assert len(calls) == 1 and len(plan) >= 2
    _, _, _, _, info = env.step(plan[0])
    assert info["privileged"]["expert_plan"] == plan[1:] and len(calls) == 1
    plan = info["privileged"]["expert_plan"]
    deviation = next(a for a in info["admissible_actions"] if a != plan[0])
    _, _, _, _, info = env.step(deviation)
    assert len(calls) == 2
    new_plan = info["privileged"]["expert_plan"]
    state = Level.from_text(env.render())
    assert new_plan == (None if solve(state) is None else list(solve(state)))
    assert new_plan is None or len(new_plan) >= len(plan) - 1


def test_expert_plan_is_none_after_deadlock():
    env, _, info = _custom("######\n#____#\n#_XP_#\n#__O_#\n######", privileged=["expert_plan"])
    assert info["privileged"]["expert_plan"]  # solvable at the start
    _, _, _, _, info = env.step("left")  # box into the left wall column: it can no longer reach O
    assert info["privileged"]["expert_plan"] is None
    assert SokobanInterface().render_privileged(info["privileged"]).endswith("can no longer be solved.")


def test_interface_round_trip_and_parsing():
    agent = SokobanInterface()
    for action in DIRS:
        assert agent.parse_action(agent.format_action(action)) == action
    assert agent.format_action("up") == "Action: up"
    cases = {"I will not go left. Action: Right": "right", "action: down\nNo.\nACTION:  left please": "left"}
    cases |= {"up.": "up", "**Down**": "down", "go up": None, "Action: jump": None, "Action: upward": None}
    cases |= {"": None, "Action:": None}
    for text, expected in cases.items():
        assert agent.parse_action(text) == expected, text
    with pytest.raises(ValueError):
        agent.format_action("jump")


def test_interface_prompts_and_privileged_text():
    agent = SokobanInterface()
    _, info = SokobanEnv().reset(seed=0)
    prompt = agent.system_prompt(info)
    assert info["task"] in prompt and "Action: <up|down|left|right>" in prompt and "# wall" in prompt
    message = agent.observation_message("GRID", {"admissible_actions": ["up", "left"]})
    assert message == "GRID\n\nAvailable actions: up, left\nReply with `Action: <move>`."
    assert agent.render_privileged({}) == ""
    text = agent.render_privileged({"expert_trace": ["up"], "expert_plan": ["up", "left"]})
    assert text == "Optimal remaining moves: up, left\nA full solution from the start: up"
    with pytest.raises(ValueError):
        agent.render_privileged({"oracle": 1})


def test_compact_prompt_keeps_task_legend_and_format():
    _, info = SokobanEnv().reset(seed=0)
    compact = SokobanInterface(prompt="compact").system_prompt(info)
    assert info["task"] in compact and "Action: <up|down|left|right>" in compact
    assert all(f"{line}" in compact for line in ("# wall", "X box off target", "S player standing on a target"))
    assert len(compact) < len(SokobanInterface().system_prompt(info)) / 2
    assert SokobanInterface(prompt="full").system_prompt(info) == SokobanInterface().system_prompt(info)
    with pytest.raises(ValueError, match="prompt must be one of"):
        SokobanInterface(prompt="terse")


def test_plugin_registers_once_without_step_limit():
    mapping = agentdistill_sokoban.agentdistill_plugin()
    assert mapping == {"agentdistill/Sokoban-v0": SokobanInterface}
    assert agentdistill_sokoban.agentdistill_plugin() == mapping
    assert gym.spec("agentdistill/Sokoban-v0").max_episode_steps is None
    env = gym.make("agentdistill/Sokoban-v0", render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs and SokobanEnv.default_max_turns == 20
    assert SokobanEnv.privileged_kinds == ("expert_plan", "expert_trace")
