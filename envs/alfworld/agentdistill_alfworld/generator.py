"""ALFWorld-style games: household rooms, object placements and the six ALFWorld task types, as PDDL problems.

A game is a PDDL problem over ALFWorld's ``alfred`` domain, shaped like ALFWorld's own ``initial_state.pddl``
files (THOR-style ids, one location per receptacle, ``canContain`` facts ...), so that our engine and the real
TextWorld + Fast Downward engine play it the same way. It is made in two steps:

* a **layout** — the room kind, its receptacles with their THOR ids and navigation points, and its
  lamps — is a pure function of ``layout_id`` (and the difficulty, which shrinks the room);
* a **placement** — the task's targets, the objects and where they lie, which containers start open, where the
  agent starts, the goal sentence — is a function of ``placement_seed`` (and the layout and task type).

Every random choice comes from ``random.Random(<string seed>)``, so the same arguments give the same
``format_problem`` text on any machine and Python version.

Splits mirror ALFWorld's sizes and task-type mixes (train 3,553 · valid_seen 140 · valid_unseen 134):

=============================  =====  ==========  ============
task type                      train  valid_seen  valid_unseen
=============================  =====  ==========  ============
pick_and_place_simple            790          35            24
look_at_obj_in_light             308          13            18
pick_clean_then_place_in_recep   650          27            31
pick_heat_then_place_in_recep    459          16            23
pick_cool_then_place_in_recep    533          25            21
pick_two_obj_and_place           813          24            17
=============================  =====  ==========  ============

train and valid_seen draw layouts from ids ``0..119`` (30 per room kind; valid_seen with placement seeds that
train never uses); valid_unseen draws from ids ``120..143``, which train never uses.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from . import vocab
from .gamefiles import alfworld_data_texts, game_to_json, write_game_file
from .goals import GOAL_TEMPLATES, _check_task_type, goal_formula

__all__ = [
    "GOAL_TEMPLATES", "SPLITS", "SPLIT_TYPE_COUNTS", "TASK_TYPES", "Game", "GameSpec", "alfworld_data_texts",
    "game_to_json", "generate_game", "goal_formula", "make_game", "make_layout", "split_games", "write_game_file",
]
from .pddl import Fact, Problem, holds

TASK_TYPES: dict[int, str] = {
    1: "pick_and_place_simple",
    2: "look_at_obj_in_light",
    3: "pick_clean_then_place_in_recep",
    4: "pick_heat_then_place_in_recep",
    5: "pick_cool_then_place_in_recep",
    6: "pick_two_obj_and_place",
}

SPLITS: dict[str, int] = {"train": 3553, "valid_seen": 140, "valid_unseen": 134}

#: Games per task type in each split (ALFWorld's own mix).
SPLIT_TYPE_COUNTS: dict[str, dict[str, int]] = {
    "train": dict(zip(TASK_TYPES.values(), (790, 308, 650, 459, 533, 813), strict=True)),
    "valid_seen": dict(zip(TASK_TYPES.values(), (35, 13, 27, 16, 25, 24), strict=True)),
    "valid_unseen": dict(zip(TASK_TYPES.values(), (24, 18, 31, 23, 21, 17), strict=True)),
}

TRAIN_LAYOUTS: range = range(120)
UNSEEN_LAYOUTS: range = range(120, 144)
_SPLIT_LAYOUTS = {"train": TRAIN_LAYOUTS, "valid_seen": TRAIN_LAYOUTS, "valid_unseen": UNSEEN_LAYOUTS}
_SPLIT_SEED_BASE = {"train": 0, "valid_seen": 1_000_000, "valid_unseen": 2_000_000}

DIFFICULTIES: tuple[str, ...] = ("full", "medium", "small")
#: Per difficulty: receptacles in the room, target instances (pick-two instances), distractor objects.
_SIZES = {
    "full": {"receptacles": (10, 30), "targets": (1, 3), "pairs": (2, 4), "distractors": (8, 20)},
    "medium": {"receptacles": (8, 12), "targets": (1, 2), "pairs": (2, 3), "distractors": (4, 8)},
    "small": {"receptacles": (4, 6), "targets": (1, 1), "pairs": (2, 2), "distractors": (1, 3)},
}
_OPEN_PROBABILITY = 0.1  # share of openable receptacles that start open
_MAX_ATTEMPTS = 50
_SEED_PREFIX = "agentdistill-alfworld"

AGENT = "agent1"


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Receptacle:
    """A receptacle of a layout: its THOR class, PDDL id and navigation point (all ids lowercase)."""

    thor_class: str
    name: str
    location: str
    x_cm: int
    y_cm: int
    z_cm: int


@dataclass(frozen=True)
class Thing:
    """An object placed in a receptacle (``receptacle`` is the receptacle's PDDL id)."""

    thor_class: str
    name: str
    receptacle: str


@dataclass(frozen=True)
class Layout:
    """A room: a pure function of ``layout_id`` and the difficulty."""

    layout_id: int
    difficulty: str
    room: str
    receptacles: tuple[Receptacle, ...]
    lamps: tuple[Thing, ...]
    grid: int  # the room spans navigation points -grid..grid on both axes


@dataclass(frozen=True)
class Game:
    """One generated game: an ALFWorld task as a PDDL problem.

    Attributes:
        game_id: unique across splits for a difficulty, e.g. ``pick_heat_then_place_in_recep-l004-s0000123``.
        split: ``train``, ``valid_seen`` or ``valid_unseen`` (``custom`` for games made directly).
        task_type: ALFWorld's task type name (see :data:`TASK_TYPES`).
        goal_text: the goal sentence, e.g. ``put a hot apple in fridge``.
        problem: the PDDL problem (lowercase names, as Fast Downward reads it).
        room: the room kind (``kitchen``, ``livingroom``, ``bedroom``, ``bathroom``).
        layout_id: the room layout.
        seed: the placement seed.
    """

    game_id: str
    split: str
    task_type: str
    goal_text: str
    problem: Problem
    room: str
    layout_id: int
    seed: int


@dataclass(frozen=True)
class GameSpec:
    """A game of a split, before it is generated (cheap to list): :func:`make_game` builds it."""

    game_id: str
    split: str
    layout_id: int
    placement_seed: int
    task_type: str
    difficulty: str = "full"


# --------------------------------------------------------------------------------------------------- checks


def _check_difficulty(difficulty: str) -> None:
    if difficulty not in _SIZES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _check_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def room_of(layout_id: int) -> str:
    """The room kind of a layout (layouts cycle through kitchen, livingroom, bedroom, bathroom)."""
    _check_int("layout_id", layout_id)
    return vocab.ROOM_KINDS[layout_id % len(vocab.ROOM_KINDS)]


def game_id_of(task_type: str, layout_id: int, placement_seed: int, difficulty: str = "full") -> str:
    """``<task_type>-l<layout>-s<seed>[-<difficulty>]``, task type first as in ALFWorld's game folders."""
    suffix = "" if difficulty == "full" else f"-{difficulty}"
    return f"{task_type}-l{layout_id:03d}-s{placement_seed:07d}{suffix}"


# --------------------------------------------------------------------------------------------------- layouts


@functools.lru_cache(maxsize=1024)
def make_layout(layout_id: int, difficulty: str = "full") -> Layout:
    """The room of ``layout_id``. Smaller difficulties keep a subset of the full room's receptacles."""
    _check_int("layout_id", layout_id)
    _check_difficulty(difficulty)
    full = _full_layout(layout_id)
    if difficulty == "full":
        return full
    return _shrink(full, difficulty)


def _full_layout(layout_id: int) -> Layout:
    rng = random.Random(f"{_SEED_PREFIX}/layout/{layout_id}")
    room = room_of(layout_id)
    lo_total, hi_total = _SIZES["full"]["receptacles"]
    specs = vocab.ROOM_RECEPTACLES[room]
    counts = {cls: rng.randint(lo, hi) for cls, lo, hi in specs}
    least = {cls: lo for cls, lo, _ in specs}
    most = {cls: hi for cls, _, hi in specs}
    while sum(counts.values()) > hi_total:  # trim the most numerous class that may shrink
        cls = max((c for c in counts if counts[c] > least[c]), key=lambda c: (counts[c], c))
        counts[cls] -= 1
    while sum(counts.values()) < lo_total:
        growable = [c for c in vocab.ROOM_PADDING[room] if counts[c] < most[c] + 4]
        counts[rng.choice(growable)] += 1

    grid = rng.randint(8, 18)  # half-width of the room in 0.25 m steps
    half_cm = grid * 25
    used_ids: set[str] = set()
    used_locations: set[str] = set()
    receptacles = []
    for cls, _, _ in specs:
        for _ in range(counts[cls]):
            while True:
                x, z = rng.randint(-half_cm, half_cm), rng.randint(-half_cm, half_cm)
                y = round(vocab.RECEPTACLE_HEIGHT[cls] * 100)
                if cls == "Cabinet":
                    y = rng.choice((39, 181, 211))
                elif cls == "Shelf":
                    y = rng.choice((17, 60, 115, 160))
                y += rng.randint(0, 4) if y else 0
                name = vocab.mangle(vocab.thor_object_id(cls, x, y, z))
                if name not in used_ids:
                    break
            used_ids.add(name)
            location = _fresh_location(rng, used_locations, round(x / 25), round(z / 25))
            receptacles.append(Receptacle(cls, name, location, x, y, z))

    lamps = _lamps(rng, room, receptacles, used_ids)
    return Layout(layout_id, "full", room, tuple(receptacles), tuple(lamps), grid)


def _lamps(rng: random.Random, room: str, receptacles: list[Receptacle], used_ids: set[str]) -> list[Thing]:
    """The lamps of a living room or bedroom, each on its own lamp holder (none in other rooms)."""
    lamps: list[Thing] = []
    if room in ("livingroom", "bedroom"):
        if room == "livingroom":
            kinds = rng.choice((("DeskLamp",), ("FloorLamp",), ("DeskLamp", "FloorLamp")))
        else:
            kinds = rng.choice(
                (("DeskLamp",), ("DeskLamp",), ("DeskLamp",), ("FloorLamp",), ("DeskLamp", "FloorLamp"))
            )
        holders = [r for r in receptacles if r.thor_class in vocab.LAMP_HOLDERS]
        rng.shuffle(holders)
        # one lamp per holder: a room with one holder has one lamp
        for cls, holder in zip(kinds, holders, strict=False):
            while True:
                x, z = holder.x_cm + rng.randint(-30, 30), holder.z_cm + rng.randint(-30, 30)
                name = vocab.mangle(vocab.thor_object_id(cls, x, holder.y_cm + rng.randint(60, 90), z))
                if name not in used_ids:
                    break
            used_ids.add(name)
            lamps.append(Thing(cls, name, holder.name))
    return lamps


def _shrink(full: Layout, difficulty: str) -> Layout:
    rng = random.Random(f"{_SEED_PREFIX}/layout/{full.layout_id}/{difficulty}")
    lo, hi = _SIZES[difficulty]["receptacles"]
    target = rng.randint(lo, hi)
    keep: list[Receptacle] = []
    for cls in vocab.ROOM_CORE[full.room]:
        keep.append(next(r for r in full.receptacles if r.thor_class == cls))
    for lamp in full.lamps:
        holder = next(r for r in full.receptacles if r.name == lamp.receptacle)
        if holder not in keep:
            keep.append(holder)
    rest = [r for r in full.receptacles if r not in keep]
    rng.shuffle(rest)
    keep += rest[: max(0, target - len(keep))]
    kept = set(keep)
    receptacles = tuple(r for r in full.receptacles if r in kept)  # keep the full room's order
    return replace(full, difficulty=difficulty, receptacles=receptacles)


def _fresh_location(rng: random.Random, used: set[str], x: int, z: int) -> str:
    while True:
        name = vocab.location_id(
            x + rng.randint(-2, 2),
            z + rng.randint(-2, 2),
            rng.randrange(4),
            rng.choice((-30, 0, 15, 30, 45, 60)),
        )
        if name not in used:
            used.add(name)
            return name


# --------------------------------------------------------------------------------------------------- games


@dataclass(frozen=True)
class _Task:
    obj: str  # THOR class of the object to act on
    recep: str | None  # THOR class of the receptacle to put it in (None for look_at)
    toggle: str | None  # THOR class of the lamp (look_at only)


def generate_game(
    *,
    layout_id: int,
    placement_seed: int,
    task_type: str,
    split: str = "train",
    difficulty: str = "full",
) -> Game:
    """Generate one solvable game whose goal does not hold at the start.

    Raises:
        ValueError: an unknown task type, split or difficulty; a negative or non-int id or seed; or a task
            type that never happens in the layout's room kind (see ``vocab.TASK_ROOMS``).
    """
    _check_task_type(task_type)
    _check_difficulty(difficulty)
    _check_int("layout_id", layout_id)
    _check_int("placement_seed", placement_seed)
    if split not in SPLITS and split != "custom":
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or 'custom'")
    room = room_of(layout_id)
    if room not in vocab.TASK_ROOMS[task_type]:
        rooms = ", ".join(sorted(vocab.TASK_ROOMS[task_type]))
        raise ValueError(
            f"layout {layout_id} is a {room}, but {task_type} tasks happen only in: {rooms} "
            f"(layout ids cycle through {', '.join(vocab.ROOM_KINDS)})"
        )
    layout = make_layout(layout_id, difficulty)
    game_id = game_id_of(task_type, layout_id, placement_seed, difficulty)
    for attempt in range(_MAX_ATTEMPTS):
        rng = random.Random(
            f"{_SEED_PREFIX}/game/{layout_id}/{difficulty}/{task_type}/{placement_seed}/{attempt}"
        )
        made = _try_game(rng, layout, task_type, game_id)
        if made is not None:
            problem, goal_text = made
            return Game(game_id, split, task_type, goal_text, problem, room, layout_id, placement_seed)
    raise RuntimeError(f"could not generate {game_id} in {_MAX_ATTEMPTS} attempts (a generator bug)")


def _try_game(rng: random.Random, layout: Layout, task_type: str, game_id: str) -> tuple[Problem, str] | None:
    sizes = _SIZES[layout.difficulty]
    task = _pick_task(rng, layout, task_type)
    if task is None:
        return None
    present = {r.thor_class for r in layout.receptacles}

    # Targets never start in a receptacle of the goal's type, so the goal cannot hold at the start.
    sources = [
        r
        for r in layout.receptacles
        if task.obj in vocab.CAN_CONTAIN[r.thor_class] and r.thor_class != task.recep
    ]
    n_targets = rng.randint(*sizes["pairs" if task_type == "pick_two_obj_and_place" else "targets"])
    placed: list[tuple[str, Receptacle]] = [(task.obj, rng.choice(sources)) for _ in range(n_targets)]

    others = [
        cls
        for cls in vocab.ROOM_OBJECTS[layout.room]
        if cls != task.obj and any(cls in vocab.CAN_CONTAIN[c] for c in present)
    ]
    for _ in range(rng.randint(*sizes["distractors"])):
        cls = rng.choice(others)
        placed.append(
            (cls, rng.choice([r for r in layout.receptacles if cls in vocab.CAN_CONTAIN[r.thor_class]]))
        )

    used_ids = {r.name for r in layout.receptacles} | {lamp.name for lamp in layout.lamps}
    things = list(layout.lamps)
    for cls, recep in placed:
        while True:
            x, z = recep.x_cm + rng.randint(-40, 40), recep.z_cm + rng.randint(-40, 40)
            name = vocab.mangle(vocab.thor_object_id(cls, x, recep.y_cm + rng.randint(1, 40), z))
            if name not in used_ids:
                break
        used_ids.add(name)
        things.append(Thing(cls, name, recep.name))

    layout_locations = {r.location for r in layout.receptacles}
    start = _fresh_location(
        rng,
        set(layout_locations),
        rng.randint(-layout.grid, layout.grid),
        rng.randint(-layout.grid, layout.grid),
    )
    opened = {
        r.name
        for r in layout.receptacles
        if r.thor_class in vocab.OPENABLE and rng.random() < _OPEN_PROBABILITY
    }

    init = _facts(layout, things, task, task_type, start, opened)
    goal = goal_formula(task_type, obj=task.obj, recep=task.recep, toggle=task.toggle)
    objects = _objects(layout, things, start)
    problem = Problem(name=f"plan_{game_id}", objects=objects, init=frozenset(init), goal=goal)
    if holds(goal, problem.init, dict(objects)):
        return None
    template = rng.choice(GOAL_TEMPLATES[task_type])
    goal_text = template.format(
        obj=vocab.word(task.obj),
        recep=vocab.word(task.recep) if task.recep else "",
        toggle=vocab.word(task.toggle) if task.toggle else "",
    )
    return problem, goal_text


def _pick_task(rng: random.Random, layout: Layout, task_type: str) -> _Task | None:
    present = sorted({r.thor_class for r in layout.receptacles})
    candidates = vocab.ROOM_OBJECTS[layout.room]
    if task_type == "look_at_obj_in_light":
        toggles = sorted({lamp.thor_class for lamp in layout.lamps})
        if not toggles:
            return None
        objs = [c for c in candidates if any(c in vocab.CAN_CONTAIN[r] for r in present)]
        return _Task(rng.choice(objs), None, rng.choice(toggles))

    kind = {
        "pick_clean_then_place_in_recep": "clean",
        "pick_heat_then_place_in_recep": "heat",
        "pick_cool_then_place_in_recep": "cool",
    }.get(task_type)
    if kind is not None:
        if vocab.APPLIANCE[kind] not in present:
            return None
        allowed = {"clean": vocab.CLEANABLE, "heat": vocab.HEATABLE, "cool": vocab.COOLABLE}[kind]
        candidates = [c for c in candidates if c in allowed]
    options: list[tuple[str, str]] = []
    for obj in candidates:
        holders = [r for r in present if obj in vocab.CAN_CONTAIN[r]]
        for recep in holders:
            # The goal receptacle is never the task's own appliance; some other type must hold the targets.
            if kind is not None and recep == vocab.APPLIANCE[kind]:
                continue
            if any(h != recep for h in holders):
                options.append((obj, recep))
    if not options:
        return None
    obj = rng.choice(sorted({o for o, _ in options}))
    recep = rng.choice([r for o, r in options if o == obj])
    return _Task(obj, recep, None)


def _facts(
    layout: Layout, things: list[Thing], task: _Task, task_type: str, start: str, opened: set[str]
) -> set[Fact]:
    facts: set[Fact] = {("atlocation", AGENT, start)}
    location_of = {}
    class_of = {}
    for r in layout.receptacles:
        location_of[r.name] = r.location
        class_of[r.name] = r.thor_class
        facts.add(("receptacletype", r.name, vocab.type_name(r.thor_class)))
        facts.add(("receptacleatlocation", r.name, r.location))
        if r.thor_class in vocab.OPENABLE:
            facts.add(("openable", r.name))
            if r.name in opened:
                facts.add(("opened", r.name))
    for t in things:
        facts.add(("objecttype", t.name, vocab.type_name(t.thor_class)))
        facts.add(("inreceptacle", t.name, t.receptacle))
        facts.add(("objectatlocation", t.name, location_of[t.receptacle]))
        if t.thor_class not in vocab.LAMPS:
            facts.add(("pickupable", t.name))
        for predicate, classes in (
            ("heatable", vocab.HEATABLE),
            ("coolable", vocab.COOLABLE),
            ("cleanable", vocab.CLEANABLE),
        ):
            if t.thor_class in classes:
                facts.add((predicate, t.name))
        # ALFWorld marks only lamps of the goal's lamp type as toggleable, and only in look_at games.
        if task_type == "look_at_obj_in_light" and t.thor_class == task.toggle:
            facts.add(("toggleable", t.name))
        # ALFWorld quirk: target-type objects that start in a fridge are already cool.
        if t.thor_class == task.obj and class_of[t.receptacle] == "Fridge":
            facts.add(("iscool", t.name))
    receptacle_classes = {r.thor_class for r in layout.receptacles}
    object_classes = {t.thor_class for t in things}
    for rc in receptacle_classes:
        for oc in object_classes & vocab.CAN_CONTAIN[rc]:
            facts.add(("cancontain", vocab.type_name(rc), vocab.type_name(oc)))
    return facts


def _objects(layout: Layout, things: list[Thing], start: str) -> tuple[tuple[str, str], ...]:
    objects = [(AGENT, "agent")]
    objects += [(vocab.type_name(c), "otype") for c in sorted(vocab.OBJECT_TYPE_CLASSES, key=str.lower)]
    objects += [(vocab.type_name(c), "rtype") for c in sorted(vocab.RECEPTACLE_TYPE_CLASSES, key=str.lower)]
    objects += [(name, "object") for name in sorted(t.name for t in things)]
    objects += [(name, "receptacle") for name in sorted(r.name for r in layout.receptacles)]
    objects += [(name, "location") for name in sorted({r.location for r in layout.receptacles} | {start})]
    return tuple(objects)


# --------------------------------------------------------------------------------------------------- splits


def _task_type_names(task_types: Iterable[str | int] | None) -> set[str]:
    if task_types is None:
        return set(TASK_TYPES.values())
    names = set()
    for t in task_types:
        if isinstance(t, int) and not isinstance(t, bool) and t in TASK_TYPES:
            names.add(TASK_TYPES[t])
        elif isinstance(t, str) and t in GOAL_TEMPLATES:
            names.add(t)
        else:
            raise ValueError(
                f"unknown task type {t!r}; use an id 1..6 or one of {', '.join(TASK_TYPES.values())}"
            )
    return names


@functools.cache
@functools.cache
def _split_specs(split: str) -> tuple[tuple[str, int, int], ...]:
    """(task_type, layout_id, placement_seed) of every game of a split, in a fixed shuffled order.

    The order is shuffled once (seeded) so that the first n games of a split mix all task types: a rollout
    over env seeds 0..n-1 then samples the split, not just its first task type.
    """
    out = []
    seed = _SPLIT_SEED_BASE[split]
    pool = _SPLIT_LAYOUTS[split]
    for task_type in TASK_TYPES.values():
        layouts = [lid for lid in pool if room_of(lid) in vocab.TASK_ROOMS[task_type]]
        for i in range(SPLIT_TYPE_COUNTS[split][task_type]):
            rng = random.Random(f"{_SEED_PREFIX}/split/{split}/{task_type}/{i}")
            out.append((task_type, rng.choice(layouts), seed))
            seed += 1
    random.Random(f"{_SEED_PREFIX}/order/{split}").shuffle(out)
    return tuple(out)


def split_games(
    split: str, *, task_types: Iterable[str | int] | None = None, difficulty: str = "full"
) -> list[GameSpec]:
    """The games of a split as cheap specs (ids, layouts, seeds), in the split's fixed shuffled order.

    ``task_types`` keeps only games of those types (names or ids 1..6); the kept games are the same ones, with
    the same ids and seeds, as in the unfiltered split.
    """
    _check_split(split)
    _check_difficulty(difficulty)
    wanted = _task_type_names(task_types)
    return [
        GameSpec(game_id_of(t, layout, seed, difficulty), split, layout, seed, t, difficulty)
        for t, layout, seed in _split_specs(split)
        if t in wanted
    ]


def make_game(spec: GameSpec, *, difficulty: str | None = None) -> Game:
    """Generate the game of a spec (``difficulty`` overrides the spec's)."""
    return generate_game(
        layout_id=spec.layout_id,
        placement_seed=spec.placement_seed,
        task_type=spec.task_type,
        split=spec.split,
        difficulty=spec.difficulty if difficulty is None else difficulty,
    )
