"""The six ALFWorld task types: their goal sentences and their PDDL goal formulas (ALFWorld's semantics)."""

from __future__ import annotations

from . import vocab
from .pddl import Formula

GOAL_TEMPLATES: dict[str, tuple[str, str]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "look_at_obj_in_light": ("look at {obj} under the {toggle}", "examine the {obj} with the {toggle}"),
    "pick_clean_then_place_in_recep": (
        "put a clean {obj} in {recep}",
        "clean some {obj} and put it in {recep}",
    ),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"),
    "pick_two_obj_and_place": ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
}


def _check_task_type(task_type: str) -> None:
    if task_type not in GOAL_TEMPLATES:
        raise ValueError(f"unknown task type {task_type!r}; use one of {', '.join(GOAL_TEMPLATES)}")


def goal_formula(task_type: str, *, obj: str, recep: str | None = None, toggle: str | None = None) -> Formula:
    """The PDDL goal of an ALFWorld task type (ALFWorld's goal semantics), with THOR class arguments."""
    _check_task_type(task_type)
    ot = vocab.type_name(obj)

    def atom(*args: str) -> Formula:
        return ("atom", *args)

    if task_type == "look_at_obj_in_light":
        if toggle is None:
            raise ValueError("look_at_obj_in_light needs a toggle (lamp) class")
        lamp_on = (
            "and",
            atom("objecttype", "?ot", vocab.type_name(toggle)),
            atom("toggleable", "?ot"),
            atom("istoggled", "?ot"),
            atom("receptacleatlocation", "?r", "?l"),
            atom("atlocation", "?a", "?l"),
            atom("inreceptacle", "?ot", "?r"),
        )
        held = ("and", atom("objecttype", "?o", ot), atom("holds", "?a", "?o"))
        return (
            "and",
            (
                "exists",
                (("?ot", "object"), ("?r", "receptacle"), ("?a", "agent"), ("?l", "location")),
                lamp_on,
            ),
            ("exists", (("?o", "object"), ("?a", "agent")), held),
        )
    if recep is None:
        raise ValueError(f"{task_type} needs a receptacle class")
    rt = vocab.type_name(recep)
    if task_type == "pick_two_obj_and_place":
        second = (
            "and",
            ("not", ("=", "?o1", "?o2")),
            atom("objecttype", "?o2", ot),
            atom("receptacletype", "?r", rt),
            atom("inreceptacle", "?o2", "?r"),
        )
        first = (
            "and",
            atom("objecttype", "?o1", ot),
            atom("receptacletype", "?r", rt),
            atom("inreceptacle", "?o1", "?r"),
            ("exists", (("?o2", "object"),), second),
        )
        return ("and", ("exists", (("?r", "receptacle"),), ("exists", (("?o1", "object"),), first)))
    if task_type == "pick_and_place_simple":
        body = (
            "and",
            atom("inreceptacle", "?o", "?r"),
            atom("objecttype", "?o", ot),
            atom("receptacletype", "?r", rt),
        )
    else:
        ability, state = {
            "pick_clean_then_place_in_recep": ("cleanable", "isclean"),
            "pick_heat_then_place_in_recep": ("heatable", "ishot"),
            "pick_cool_then_place_in_recep": ("coolable", "iscool"),
        }[task_type]
        body = (
            "and",
            atom(ability, "?o"),
            atom("objecttype", "?o", ot),
            atom("receptacletype", "?r", rt),
            atom(state, "?o"),
            atom("inreceptacle", "?o", "?r"),
        )
    return ("and", ("exists", (("?r", "receptacle"),), ("exists", (("?o", "object"),), body)))
