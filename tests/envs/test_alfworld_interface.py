"""ALFWorld plugin: the agent interface, and the TextWorld backend against the native engine."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest

from agentdistill_alfworld.interface import ALFWorldInterface, verb

INTRO = (
    "-= Welcome to TextWorld, ALFRED! =-\n\n"
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, and a fridge 1.\n\n"
    "Your task is to: put a hot apple in fridge."
)
PLAN = ["go to countertop 1", "take apple 1 from countertop 1", "go to microwave 1",
        "heat apple 1 with microwave 1", "go to fridge 1", "open fridge 1", "move apple 1 to fridge 1"]


# ------------------------------------------------------------------------------------------------ interface


def test_system_prompt_has_task_grammar_and_format():
    prompt = ALFWorldInterface().system_prompt({"task": "put a hot apple in fridge", "task_id": "x"})
    assert "household" in prompt
    assert "Your task is to: put a hot apple in fridge." in prompt
    for phrase in ("go to <", "open <", "close <", "take <object> from <", "move <object> to <",
                   "heat <object> with", "cool <object> with", "clean <object> with", "use <",
                   "examine <", "look", "inventory", "Action: <command>"):
        assert phrase in prompt, phrase
    assert "put <" not in prompt  # one dialect: 0.4.x `move X to Y`


def test_compact_prompt_keeps_task_and_format_in_a_fraction_of_the_tokens():
    info = {"task": "put a hot apple in fridge", "task_id": "x"}
    compact = ALFWorldInterface(prompt="compact").system_prompt(info)
    assert "Your task is to: put a hot apple in fridge." in compact
    assert "Action: <command>" in compact and "admissible" in compact
    assert len(compact) < len(ALFWorldInterface().system_prompt(info)) / 4  # 304 tokens → under 60
    assert ALFWorldInterface(prompt="full").system_prompt(info) == ALFWorldInterface().system_prompt(info)


def test_observation_message_strips_banner_and_help():
    actions = ["go to cabinet 1", "help", "inventory", "look"]
    info = {"task": "t", "task_id": "x", "admissible_actions": actions}
    message = ALFWorldInterface().observation_message(INTRO, info)
    assert message.startswith("You are in the middle of a room.")
    assert "Welcome" not in message
    assert "Your task is to: put a hot apple in fridge." in message
    assert "Admissible actions: go to cabinet 1, inventory, look\n" in message
    assert "help" not in message
    assert message.endswith("Reply with `Action: <command>`.")
    # later observations pass through unchanged
    later = ALFWorldInterface().observation_message("Nothing happens.", info)
    assert later.startswith("Nothing happens.\n\nAdmissible actions: ")


@pytest.mark.parametrize("reply, expected", [
    ("Action: go to cabinet 1", "go to cabinet 1"),
    ("action:   GO  TO   Cabinet 1.  ", "go to cabinet 1"),
    ("Thought: the apple may be there.\nAction: `open fridge 1`", "open fridge 1"),
    ("Action: look\nNo.\nACTION: \"take apple 1 from countertop 1\".", "take apple 1 from countertop 1"),
    ("Action:\n  inventory\nmore text", "inventory"),
    ("**Action:** examine mug 2", "examine mug 2"),
    ("go to fridge 1\nsecond line", "go to fridge 1"),
    ("'look'", "look"),
    ("Action: put apple 1 in fridge 1", "move apple 1 to fridge 1"),
    ("Action: put mug 2 on countertop 1.", "move mug 2 to countertop 1"),
    ("put apple 1 in/on sinkbasin 1", "move apple 1 to sinkbasin 1"),
    ("Action: move apple 1 to fridge 1", "move apple 1 to fridge 1"),
    ("The transaction: ignored. Action: use desklamp 1", "use desklamp 1"),
])
def test_parse_action(reply, expected):
    assert ALFWorldInterface().parse_action(reply) == expected


@pytest.mark.parametrize("reply", ["", "   \n  ", "Action:", "Action: ``", "Action: '.'", "Hmm\naction:  \n"])
def test_parse_failures_are_none(reply):
    assert ALFWorldInterface().parse_action(reply) is None


def test_format_parse_round_trip():
    interface = ALFWorldInterface()
    for action in [*PLAN, "look", "inventory", "help", "examine apple 1", "use desklamp 1"]:
        assert interface.format_action(action) == f"Action: {action}"
        assert interface.parse_action(interface.format_action(action)) == action
    for bad in ["Go to cabinet 1", "go to  cabinet 1", "put apple 1 in fridge 1", "", "look\nlook"]:
        with pytest.raises(ValueError):
            interface.format_action(bad)


def test_render_expert_plan_in_each_format():
    trace = ALFWorldInterface().render_privileged({"expert_plan": PLAN})
    assert trace == "Expert plan, optimal remaining commands: " + ", ".join(PLAN)
    names = ALFWorldInterface(pi_format="names").render_privileged({"expert_plan": PLAN})
    assert names.endswith(": go to, take, go to, heat, go to, open, move")
    assert "apple" not in names
    next_k = ALFWorldInterface(pi_format="next_k", k=2).render_privileged({"expert_plan": PLAN})
    assert next_k.endswith(": go to countertop 1, take apple 1 from countertop 1")
    assert "microwave" not in next_k
    short = ALFWorldInterface(pi_format="next_k", k=3).render_privileged({"expert_plan": PLAN[-1:]})
    assert short.endswith(": move apple 1 to fridge 1")
    assert [verb(c) for c in ("go to x 1", "cool a 1 with fridge 1", "look")] == ["go to", "cool", "look"]


@pytest.mark.parametrize("pi_format", ["trace", "names", "next_k"])
def test_render_dead_ends_done_and_trace(pi_format):
    interface = ALFWorldInterface(pi_format=pi_format)
    assert "can no longer be completed" in interface.render_privileged({"expert_plan": None})
    assert "already complete" in interface.render_privileged({"expert_plan": []})
    both = interface.render_privileged({"expert_trace": PLAN, "expert_plan": PLAN[3:]})
    first, second = both.split("\n")
    assert first.startswith("Expert plan") and second == "Expert solution from the start: " + ", ".join(PLAN)
    assert "no solution" in interface.render_privileged({"expert_trace": None})
    assert interface.render_privileged({}) == ""


def test_errors():
    with pytest.raises(ValueError, match="unknown privileged kinds"):
        ALFWorldInterface().render_privileged({"reference_solution": "x"})
    with pytest.raises(ValueError, match="pi_format"):
        ALFWorldInterface(pi_format="skills")
    for k in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="k must"):
            ALFWorldInterface(pi_format="next_k", k=k)
    with pytest.raises(ValueError, match="prompt must be one of"):
        ALFWorldInterface(prompt="short")


def test_protocol_members():
    interface = ALFWorldInterface()
    assert interface.name == "alfworld"
    members = ("system_prompt", "observation_message", "parse_action", "format_action", "render_privileged")
    assert all(callable(getattr(interface, member)) for member in members)


# -------------------------------------------------------------------------------------- TextWorld backend

# A tiny kitchen: two cabinets, a countertop, a fridge, a microwave and a sink basin; two apples and a mug.
CABINET_A = "Cabinet_bar__minus_01_dot_10_bar__plus_00_dot_40"  # sorts first: demangled as `cabinet 2`
COUNTER = "CounterTop_bar__minus_00_dot_60_bar__plus_00_dot_90"
_RECEPTACLES = {  # id -> (type, location index, openable)
    CABINET_A: ("CabinetType", 1, True),
    "Cabinet_bar__plus_02_dot_30_bar__plus_00_dot_40": ("CabinetType", 2, True),
    COUNTER: ("CounterTopType", 3, False),
    "Fridge_bar__plus_01_dot_10_bar__plus_00_dot_00": ("FridgeType", 4, True),
    "Microwave_bar__plus_03_dot_10_bar__plus_00_dot_90": ("MicrowaveType", 5, True),
    "Sink_bar__plus_04_dot_10_bar__plus_00_dot_90_bar_SinkBasin": ("SinkBasinType", 6, False),
}
_OBJECTS = {  # id -> (type, receptacle id, abilities)
    "Apple_bar__minus_00_dot_40_bar__plus_01_dot_10": ("AppleType", COUNTER, ("heatable", "coolable")),
    "Apple_bar__minus_01_dot_20_bar__plus_01_dot_10": ("AppleType", CABINET_A, ("heatable", "coolable")),
    "Mug_bar__plus_00_dot_20_bar__plus_01_dot_10": ("MugType", COUNTER, ("cleanable",)),
}
_CAN_CONTAIN = [("FridgeType", "AppleType"), ("CounterTopType", "AppleType"), ("MicrowaveType", "AppleType"),
                ("CabinetType", "MugType"), ("CounterTopType", "MugType"), ("SinkBasinType", "MugType")]
_GOAL = """(exists (?r - receptacle) (exists (?o - object) (and (heatable ?o) (objectType ?o AppleType)
            (receptacleType ?r FridgeType) (isHot ?o) (inReceptacle ?o ?r))))"""


def _location(i: int) -> str:
    return f"loc_bar_{i}_bar_0_bar_0_bar_30"


def _problem_text() -> str:
    types = sorted({t for t, _, _ in _OBJECTS.values()})
    rtypes = sorted({t for t, _, _ in _RECEPTACLES.values()})
    objects = ["agent1 - agent", *(f"{o} - object" for o in _OBJECTS), *(f"{t} - otype" for t in types),
               *(f"{t} - rtype" for t in rtypes), *(f"{r} - receptacle" for r in _RECEPTACLES),
               *(f"{_location(i)} - location" for i in range(7))]
    init = [f"(atLocation agent1 {_location(0)})"]
    for r, (rtype, loc, openable) in _RECEPTACLES.items():
        init += [f"(receptacleType {r} {rtype})", f"(receptacleAtLocation {r} {_location(loc)})"]
        init += [f"(openable {r})"] if openable else []
    for o, (otype, r, abilities) in _OBJECTS.items():
        init += [f"(objectType {o} {otype})", f"(inReceptacle {o} {r})", f"(pickupable {o})",
                 f"(objectAtLocation {o} {_location(_RECEPTACLES[r][1])})"]
        init += [f"({ability} {o})" for ability in abilities]
    init += [f"(canContain {r} {o})" for r, o in _CAN_CONTAIN]
    lines = "\n        ".join
    return (f"(define (problem test_kitchen)\n    (:domain alfred)\n"
            f"    (:objects\n        {lines(objects)}\n    )\n"
            f"    (:init\n        {lines(init)}\n    )\n    (:goal (and {_GOAL}))\n)\n")


@pytest.fixture
def game_file(tmp_path: Path) -> Path:
    pytest.importorskip("textworld")
    pytest.importorskip("fast_downward")
    alfworld = pytest.importorskip("alfworld")
    data_dir = Path(alfworld.__file__).parent / "data"
    grammar = (data_dir / "alfred.twl2").read_text().replace("UNKNOWN GOAL", "put a hot apple in fridge")
    path = tmp_path / "game.tw-pddl"
    path.write_text(json.dumps({"pddl_domain": (data_dir / "alfred.pddl").read_text(), "grammar": grammar,
                                "pddl_problem": _problem_text(), "solvable": True}))
    return path


SCRIPT = [
    "look", "inventory", "jump around", "go to cabinet 2", "open cabinet 2", "examine cabinet 2", "look",
    "take apple 1 from cabinet 2", "inventory", "examine apple 1", "go to cabinet 1", "open cabinet 1",
    "take mug 1 from countertop 1", "go to countertop 1", "move apple 1 to countertop 1",
    "examine countertop 1",
    "take mug 1 from countertop 1", "go to sinkbasin 1", "clean mug 1 with sinkbasin 1", "examine mug 1",
    "move mug 1 to sinkbasin 1", "look", "help", "go to microwave 1", "close microwave 1", "open microwave 1",
    "close microwave 1", "go to fridge 1", "put apple 2 in fridge 1", "  look  ",
]


def _play(engine, commands):
    out = []
    for command in commands:
        out.append((engine.step(command), engine.admissible_commands, engine.won))
    return out


def test_textworld_engine_matches_native_engine(game_file):
    from agentdistill_alfworld.engine import Engine
    from agentdistill_alfworld.pddl import read_game_file
    from agentdistill_alfworld.planner import plan
    from agentdistill_alfworld.textworld_backend import TextWorldEngine

    real = TextWorldEngine(game_file)
    native = Engine(*read_game_file(game_file))
    intro = real.reset()
    assert intro.startswith("-= Welcome to TextWorld, ALFRED! =-\n\n")
    assert intro == native.reset()
    assert real.admissible_commands == native.admissible_commands
    assert "help" in real.admissible_commands and not real.won
    assert _play(real, SCRIPT) == _play(native, SCRIPT)
    rest = plan(native)
    assert rest, "the scripted state must still be solvable"
    steps = _play(real, rest)
    assert steps == _play(native, rest)
    assert steps[-1][2] is True and real.won
    assert all(feedback != "Nothing happens." for feedback, _, _ in steps)


def test_textworld_engine_pickles_mid_episode(game_file):
    from agentdistill_alfworld.textworld_backend import TextWorldEngine

    engine = TextWorldEngine(game_file)
    engine.reset()
    _play(engine, SCRIPT[:10])
    clone = pickle.loads(pickle.dumps(engine))
    assert clone.admissible_commands == engine.admissible_commands and clone.won == engine.won
    assert _play(clone, SCRIPT[10:]) == _play(engine, SCRIPT[10:])
    fresh = pickle.loads(pickle.dumps(TextWorldEngine(game_file)))  # never reset: reset still works
    assert fresh.reset() == engine.reset()


def test_textworld_engine_import_error_names_the_fix(monkeypatch, tmp_path):
    from agentdistill_alfworld.textworld_backend import TextWorldEngine

    monkeypatch.setitem(sys.modules, "textworld", None)
    with pytest.raises(ImportError, match=r'pip install -e "envs/alfworld\[textworld\]"'):
        TextWorldEngine(tmp_path / "game.tw-pddl")
