"""The native ALFWorld engine: the alfred PDDL domain's dynamics and the 0.4.x text grammar, in plain Python.

It reproduces what ALFWorld 0.4.2 prints when TextWorld's PDDL backend (Fast Downward) plays a game, so
both backends give the same observations, admissible commands and ``won`` (``tests/envs`` checks this
against the real engine). The facts that shape the text:

- Names come from ALFWorld's demangler: entity ids are sorted, counted per class, and numbered so that the
  first id of a class in sorted order gets the highest number (``apple 2`` before ``apple 1``).
- Lists (``you see a apple 2, and a mug 1``) follow the sorted order of the facts that produce them, use
  ", " and ", and ", say ``nothing`` when empty, and always use the article "a".
- Like TextWorld's fact store, a deleted fact ``p`` leaves a ``not_p`` fact behind; the grammar reads those
  (``look`` lists objects ``objectatlocation`` at the agent's location that are ``not_inreceptacle`` there).
- Actions: ``go to R`` (not to the agent's own location), ``open``/``close R``, ``take O from R`` (hands
  empty, R open if openable), ``move O to R`` (R open if openable, ``canContain``), ``heat``/``cool``/``clean
  O with R`` (holding O at a microwave / fridge / sink basin; no need to open it), ``use O`` (a toggleable
  object in a receptacle at the agent's location), ``slice O with K`` (holding a knife), ``examine R`` (R at the
  agent's location), ``examine O`` (only while holding O: the domain's other branch never grounds),
  ``look``, ``inventory``, ``help``. Any other command: ``Nothing happens.``
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from itertools import chain

from .pddl import Fact, GoalChecker, Problem

AGENT = "agent1"
NOTHING_HAPPENS = "Nothing happens."
WELCOME = "-= Welcome to TextWorld, ALFRED! =-"
HELP_TEXT = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)
APPLIANCE = {"heat": "microwavetype", "cool": "fridgetype", "clean": "sinkbasintype"}
APPLIANCE_ABILITY = {"heat": "heatable", "cool": "coolable", "clean": "cleanable"}
KNIVES = ("knifetype", "butterknifetype")

# ``examine O`` feedback: the first rule whose facts all hold (``None`` marks the receptacle-object rule).
_EXAMINE_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("isclean", "ishot", "issliced"), "This is a hot and clean sliced {}."),
    (("isclean", "iscool", "issliced"), "This is a cool and clean sliced {}."),
    (("isclean", "issliced"), "This is a clean sliced {}."),
    (("ishot", "issliced"), "This is a hot sliced {}."),
    (("iscool", "issliced"), "This is a cool sliced {}."),
    (("isclean", "ishot"), "This is a hot and clean {}."),
    (("isclean", "iscool"), "This is a cool and clean {}."),
    (("ishot",), "This is a hot {}."),
    (("isclean",), "This is a clean {}."),
    (("iscool",), "This is a cold {}."),
    (("toggleable", "istoggled"), "This {} is on."),
    (("toggleable", "not_istoggled"), "This {} is off."),
    (("sliceable", "issliced"), "This is a sliced {}."),
)


def demangle(ids: Iterable[str]) -> dict[str, str]:
    """ALFWorld's display names: ``cabinet_bar_...`` → ``cabinet 3`` (first sorted id gets the top number)."""
    ids = sorted(set(ids))
    prefixes = {i: i.split("_bar_", 1)[0] + ("basin" if "basin" in i else "") for i in ids if "_bar_" in i}
    remaining = {p: list(range(1, n + 1)) for p, n in Counter(prefixes.values()).items()}
    names = {}
    for i in ids:
        names[i] = f"{prefixes[i]} {remaining[prefixes[i]].pop()}" if i in prefixes else f"{i} "
    return names


def display_list(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


class Engine:
    """One ALFWorld game. ``reset()`` gives the intro text, ``step(command)`` the feedback.

    The state is a set of facts (positive, plus ``not_*`` traces of deletions); ``admissible_commands`` and
    ``won`` are computed from it. Copy a state with ``snapshot()`` / ``restore()`` (the planner does).
    """

    def __init__(self, problem: Problem, goal_text: str):
        self.problem, self.goal_text = problem, goal_text
        self.types = dict(problem.objects)
        self.names = demangle(arg for fact in problem.init for arg in fact[1:])
        static = {f for f in problem.init if f[0] in _STATIC}
        self._check_goal = GoalChecker(problem.goal, self.types, static)
        self.facts: set[Fact] = set(problem.init)
        self._by_pred: dict[str, set[Fact]] = defaultdict(set)
        self._recep_at: dict[str, list[str]] = defaultdict(list)  # location -> receptacles, sorted
        for _, r, loc in sorted(f for f in problem.init if f[0] == "receptacleatlocation"):
            self._recep_at[loc].append(r)
        self.otype = {f[1]: f[2] for f in problem.init if f[0] == "objecttype"}
        self.rtype = {f[1]: f[2] for f in problem.init if f[0] == "receptacletype"}
        self._commands: dict[str, tuple] | None = None

    # ----------------------------------------------------------------------------------------- state
    def reset(self) -> str:
        self.facts = set(self.problem.init)
        self._commands = None
        look = self._look_text(location=None)
        return f"{WELCOME}\n\n{look}\n\nYour task is to: {self.goal_text}."

    def snapshot(self) -> frozenset[Fact]:
        return frozenset(self.facts)

    def restore(self, facts: frozenset[Fact]) -> None:
        self.facts = set(facts)
        self._commands = None

    @property
    def won(self) -> bool:
        return self._check_goal(self.facts)

    @property
    def location(self) -> str:
        return next(f[2] for f in self.facts if f[0] == "atlocation" and f[1] == AGENT)

    @property
    def held(self) -> str | None:
        return next((f[2] for f in self.facts if f[0] == "holds" and f[1] == AGENT), None)

    def _has(self, *fact: str) -> bool:
        return tuple(fact) in self.facts

    def _open_or_not_openable(self, r: str) -> bool:
        return not self._has("openable", r) or self._has("opened", r)

    # -------------------------------------------------------------------------------------- commands
    @property
    def admissible_commands(self) -> list[str]:
        return sorted(self._grounded())

    def _grounded(self) -> dict[str, tuple]:
        """Every applicable action as {command text: (action, args)}; the first grounding of a text wins."""
        if self._commands is not None:
            return self._commands
        loc, held = self.location, self.held
        here = self._recep_at.get(loc, [])
        out: dict[str, tuple] = {}
        for text, action in chain(self._goto_commands(loc), self._receptacle_commands(here, held, loc),
                                  self._held_commands(held, here, loc)):
            out.setdefault(text, action)
        for text in ("help", "inventory", "look"):
            out.setdefault(text, (text,))
        self._commands = out
        return out

    def _goto_commands(self, loc: str) -> Iterator[tuple[str, tuple]]:
        for target, receps in sorted(self._recep_at.items()):
            if target != loc:
                for r in receps:
                    yield f"go to {self.names[r]}", ("goto", loc, target, r)

    def _receptacle_commands(self, here: list[str], held: str | None, loc: str) -> Iterator[tuple[str, tuple]]:
        """Examine, open or close the receptacles here, take from them (hands empty), use what is in them."""
        for r in here:
            yield f"examine {self.names[r]}", ("examine_r", r)
            if self._has("openable", r):
                yield (f"{'close' if self._has('opened', r) else 'open'} {self.names[r]}",
                       ("close" if self._has("opened", r) else "open", r))
            if held is None and self._open_or_not_openable(r):
                for o in self._in(r):
                    if self._has("pickupable", o):
                        yield f"take {self.names[o]} from {self.names[r]}", ("take", o, r, loc)
            for o in sorted(f[1] for f in self.facts if f[0] == "inreceptacle" and f[2] == r):
                if self._has("toggleable", o):
                    yield f"use {self.names[o]}", ("use", o)

    def _held_commands(self, held: str | None, here: list[str], loc: str) -> Iterator[tuple[str, tuple]]:
        """Examine the held object, put it down, use an appliance on it, slice with it (a knife)."""
        if held is None:
            return
        yield f"examine {self.names[held]}", ("examine_o", held)
        for r in here:
            if self._open_or_not_openable(r) and self._has("cancontain", self.rtype.get(r), self.otype.get(held)):
                yield f"move {self.names[held]} to {self.names[r]}", ("put", held, r, loc)
            for verb, rtype in APPLIANCE.items():
                if self.rtype.get(r) == rtype and self._has(APPLIANCE_ABILITY[verb], held):
                    yield f"{verb} {self.names[held]} with {self.names[r]}", (verb, held, r)
        if self.otype.get(held) in KNIVES:
            for o in sorted(f[1] for f in self.facts if f[0] == "objectatlocation" and f[2] == loc):
                if self._has("sliceable", o):
                    yield f"slice {self.names[o]} with {self.names[held]}", ("slice", o, held)

    def _in(self, r: str) -> list[str]:
        return sorted(f[1] for f in self.facts if f[0] == "inreceptacle" and f[2] == r)

    def step(self, command: str) -> str:
        """Apply a command and return its feedback; a command that is not admissible changes nothing."""
        action = self._grounded().get(command.strip())
        if action is None:
            return NOTHING_HAPPENS
        kind, args = action[0], action[1:]
        feedback = getattr(self, f"_do_{kind}")(*args)
        self._commands = None
        return feedback

    # -------------------------------------------------------------------------------------- effects
    def _add(self, *fact: str) -> None:
        self.facts.discard(("not_" + fact[0], *fact[1:]))
        self.facts.add(tuple(fact))

    def _delete(self, *fact: str) -> None:
        self.facts.discard(tuple(fact))
        self.facts.add(("not_" + fact[0], *fact[1:]))

    def _do_goto(self, start: str, end: str, r: str) -> str:
        self._delete("atlocation", AGENT, start)
        self._add("atlocation", AGENT, end)
        return f"You arrive at {self.names[r]}. {self._describe(r)}"

    def _do_open(self, r: str) -> str:
        self._add("opened", r)
        self._add("checked", r)
        return f"You open the {self.names[r]}. {self._describe(r)}"

    def _do_close(self, r: str) -> str:
        self._delete("opened", r)
        return f"You close the {self.names[r]}."

    def _do_take(self, o: str, r: str, loc: str) -> str:
        self._delete("inreceptacle", o, r)
        self._add("holds", AGENT, o)
        self._add("holdsany", AGENT)
        self._delete("objectatlocation", o, loc)
        return f"You pick up the {self.names[o]} from the {self.names[r]}."

    def _do_put(self, o: str, r: str, loc: str) -> str:
        self._add("inreceptacle", o, r)
        self._add("objectatlocation", o, loc)
        self._delete("holds", AGENT, o)
        self._delete("holdsany", AGENT)
        return f"You move the {self.names[o]} to the {self.names[r]}."

    def _do_heat(self, o: str, r: str) -> str:
        self._add("ishot", o)
        self._delete("iscool", o)
        return f"You heat the {self.names[o]} using the {self.names[r]}."

    def _do_cool(self, o: str, r: str) -> str:
        self._add("iscool", o)
        self._delete("ishot", o)
        return f"You cool the {self.names[o]} using the {self.names[r]}."

    def _do_clean(self, o: str, r: str) -> str:
        self._add("isclean", o)
        return f"You clean the {self.names[o]} using the {self.names[r]}."

    def _do_use(self, o: str) -> str:
        if self._has("ison", o):
            self._delete("ison", o)
        else:
            self._add("ison", o)
        self._add("istoggled", o)
        # The grammar asks istoggled, which never goes back to false: every use says "turn on".
        return f"You turn on the {self.names[o]}."

    def _do_slice(self, o: str, knife: str) -> str:
        self._add("issliced", o)
        return f"You sliced the {self.names[o]} with the {self.names[knife]}."

    def _do_examine_r(self, r: str) -> str:
        self._add("checked", r)
        return self._describe(r)

    def _do_examine_o(self, o: str) -> str:
        if self._has("isreceptacleobject", o):
            inside = sorted(f[1] for f in self.facts if f[0] == "inreceptacleobject" and f[2] == o)
            return f"This is a normal {self.names[o]}. In it, you see {self._a_list(inside)}."
        for needed, text in _EXAMINE_RULES:
            if all(self._has(p, o) for p in needed):
                return text.format(self.names[o])
        return f"There's nothing special about {self.names[o]}."

    def _do_look(self) -> str:
        return self._look_text(location=self.location)

    def _do_inventory(self) -> str:
        if not self._has("holdsany", AGENT):
            return "You are not carrying anything."
        held = sorted(f[2] for f in self.facts if f[0] == "holds" and f[1] == AGENT)
        return f"You are carrying: {self._a_list(held)}."

    def _do_help(self) -> str:
        return HELP_TEXT

    # ----------------------------------------------------------------------------------------- text
    def _a_list(self, entities: list[str]) -> str:
        return display_list([f"a {self.names[e]}" for e in entities])

    def _describe(self, r: str) -> str:
        name = self.names[r]
        if self._has("openable", r) and self._has("opened", r):
            return f"The {name} is open. In it, you see {self._a_list(self._in(r))}."
        if self._has("openable", r):
            return f"The {name} is closed."
        return f"On the {name}, you see {self._a_list(self._in(r))}."

    def _look_text(self, location: str | None) -> str:
        """``look`` at ``location``; ``None`` is the intro's unbound look (lists every receptacle)."""
        if location is not None and self._recep_at.get(location):
            receps = self._recep_at[location]
            floor = [
                o
                for o in sorted(f[1] for f in self.facts if f[0] == "objectatlocation" and f[2] == location)
                for r in receps
                if self._has("not_inreceptacle", o, r)
            ]
            facing = display_list([self.names[r] for r in receps])
            return f"You are facing the {facing}. Next to it, you see {self._a_list(floor)}."
        if location is None and self._recep_at.get(self.location):
            return self._look_text(self.location)
        every = [] if location is not None else [r for _, r, _ in sorted(
            f for f in self.facts if f[0] == "receptacleatlocation")]
        return f"You are in the middle of a room. Looking quickly around you, you see {self._a_list(every)}."


# Facts no action changes: indexed once for goal checks.
_STATIC = frozenset({
    "receptacletype", "objecttype", "cancontain", "receptacleatlocation", "openable", "pickupable",
    "heatable", "coolable", "cleanable", "toggleable", "sliceable", "isreceptacleobject", "moveable",
})
