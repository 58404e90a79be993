"""The expert: a breadth-first planner that returns an optimal (fewest commands) plan from any engine state.

The search runs over the engine's own admissible commands, restricted to those that can matter for the
goal: going to, opening, taking from and placing into receptacles that hold or may receive a goal object
(or, while holding something else, anywhere it can be put down), heating/cooling/cleaning goal objects, and
switching goal lamps. ``look``, ``inventory``, ``help``, ``examine``, ``close`` and actions on unrelated
objects never bring the goal closer, so leaving them out keeps every optimal plan and makes the search
small (hundreds of states on full-size rooms).
"""

from __future__ import annotations

from collections import deque

from .engine import APPLIANCE, Engine
from .pddl import Formula

_DYNAMIC = frozenset({"atlocation", "holds", "inreceptacle", "opened", "ishot", "iscool", "isclean", "istoggled"})
_NEEDS_APPLIANCE = {"ishot": APPLIANCE["heat"], "iscool": APPLIANCE["cool"], "isclean": APPLIANCE["clean"]}


class PlannerLimitError(RuntimeError):
    """The search visited more states than allowed."""


def plan(engine: Engine, *, max_states: int = 100_000) -> list[str] | None:
    """Optimal remaining commands from the engine's current state ([] if won, None if unreachable).

    The engine's state is left as it was.
    """
    start = engine.snapshot()
    goal_types, recep_types = _goal_constants(engine.problem.goal)
    recep_types |= {rtype for pred, rtype in _NEEDS_APPLIANCE.items() if _mentions(engine.problem.goal, pred)}
    goal_objects = {o for o, t in engine.otype.items() if t in goal_types}
    try:
        if engine.won:
            return []
        frontier = deque([(start, ())])
        seen = {_key(start)}
        while frontier:
            state, path = frontier.popleft()
            engine.restore(state)
            for command in _useful(engine, goal_objects, recep_types):
                engine.restore(state)
                engine.step(command)
                nxt = engine.snapshot()
                key = _key(nxt)
                if key in seen:
                    continue
                if engine.won:
                    return [*path, command]
                seen.add(key)
                if len(seen) > max_states:
                    raise PlannerLimitError(f"planner visited more than {max_states} states")
                frontier.append((nxt, (*path, command)))
        return None
    finally:
        engine.restore(start)


def _useful(engine: Engine, goal_objects: set[str], recep_types: set[str]) -> list[str]:
    held = engine.held
    relevant = {
        r for r, t in engine.rtype.items()
        if t in recep_types or any(("inreceptacle", o, r) in engine.facts for o in goal_objects)
    }
    out = []
    for command, (kind, *args) in engine._grounded().items():
        if kind == "goto":
            keep = args[2] in relevant or (held is not None and held not in goal_objects)
        elif kind == "open":
            keep = args[0] in relevant
        elif kind == "take":
            keep = args[0] in goal_objects
        elif kind == "put":
            keep = True
        elif kind in ("heat", "cool", "clean", "use"):
            keep = args[0] in goal_objects
        else:
            keep = False
        if keep:
            out.append(command)
    return out


def _key(state: frozenset) -> frozenset:
    return frozenset(f for f in state if f[0] in _DYNAMIC)


def _goal_constants(goal: Formula) -> tuple[set[str], set[str]]:
    """Object types and receptacle types the goal names (``objecttype ?o appletype`` → appletype)."""
    otypes, rtypes = set(), set()
    stack = [goal]
    while stack:
        f = stack.pop()
        if f[0] == "atom" and f[1] == "objecttype" and not f[3].startswith("?"):
            otypes.add(f[3])
        elif f[0] == "atom" and f[1] == "receptacletype" and not f[3].startswith("?"):
            rtypes.add(f[3])
        elif f[0] in ("and", "or"):
            stack.extend(f[1:])
        elif f[0] == "not":
            stack.append(f[1])
        elif f[0] in ("exists", "forall"):
            stack.append(f[2])
    return otypes, rtypes


def _mentions(goal: Formula, predicate: str) -> bool:
    if goal[0] == "atom":
        return goal[1] == predicate
    if goal[0] in ("exists", "forall"):
        return _mentions(goal[2], predicate)
    if goal[0] == "=":
        return False
    return any(_mentions(g, predicate) for g in goal[1:])
