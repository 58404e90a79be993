"""Sokoban levels: the immutable `Level`, its text format, and a seeded generator of solvable levels.

The generator is byte-stable: it draws only from `random.Random` seeded with strings derived from the
seed (string seeding hashes with SHA-512, which is fixed across machines and Python versions), so the
same seed gives the same level everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .solver import DELTAS, SolverLimitError, solve

Pos = tuple[int, int]
"""A square as (row, col); row 0 is the top row."""

LEGEND = """\
# wall
_ floor
O empty target
X box off target
* box on target
P player
S player standing on a target"""
"""The symbols of the grid text (`Level.to_text`, observations, prompts)."""

# char -> (wall, target, box, player). The first seven are the canonical legend; the rest are the
# standard XSB symbols, accepted on input so that classic level files can be loaded as they are.
_CELLS: dict[str, tuple[bool, bool, bool, bool]] = {
    "#": (True, False, False, False),
    "_": (False, False, False, False),
    "O": (False, True, False, False),
    "X": (False, False, True, False),
    "*": (False, True, True, False),
    "P": (False, False, False, True),
    "S": (False, True, False, True),
    " ": (False, False, False, False),
    "-": (False, False, False, False),
    ".": (False, True, False, False),
    "$": (False, False, True, False),
    "@": (False, False, False, True),
    "+": (False, True, False, True),
}

_DIRECTIONS: tuple[Pos, ...] = tuple(DELTAS.values())
"""Row/column steps of up, down, left, right, in that fixed order (the draws depend on it)."""

MIN_DIM = 5
"""Smallest room side, border walls included (a 3x3 interior)."""
MAX_DIM = 30
"""Largest room side: keeps observations short and the solver fast."""
MAX_BOXES = 4
"""Most boxes per level: the optimal solver's state space grows steeply with the number of boxes."""
MAX_TRIES = 1000
"""Generation attempts before `generate_level` gives up."""


@dataclass(frozen=True)
class Level:
    """One Sokoban state: a rectangular grid of walls and targets, the boxes and the player.

    Squares outside the grid count as walls. There are as many boxes as targets, so the level is won
    exactly when every box stands on a target.
    """

    height: int
    width: int
    walls: frozenset[Pos]
    targets: frozenset[Pos]
    boxes: frozenset[Pos]
    player: Pos

    def __post_init__(self) -> None:
        for name in ("walls", "targets", "boxes"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "player", tuple(self.player))
        if self.height < 1 or self.width < 1:
            raise ValueError(f"a level needs at least one row and column, got {self.height}x{self.width}")
        squares = self.walls | self.targets | self.boxes | {self.player}
        outside = sorted(p for p in squares if not (0 <= p[0] < self.height and 0 <= p[1] < self.width))
        if outside:
            raise ValueError(f"squares {outside} lie outside the {self.height}x{self.width} grid")
        if self.walls & (self.targets | self.boxes | {self.player}):
            raise ValueError("a wall square also holds a target, a box or the player; remove one of them")
        if self.player in self.boxes:
            raise ValueError(f"the player at {self.player} stands on a box; move one of them")
        if not self.boxes or len(self.boxes) != len(self.targets):
            raise ValueError(
                f"a level needs at least one box and as many boxes as targets, "
                f"got {len(self.boxes)} boxes and {len(self.targets)} targets"
            )

    @property
    def boxes_on_target(self) -> int:
        """How many boxes stand on a target."""
        return len(self.boxes & self.targets)

    @property
    def won(self) -> bool:
        """True when every box stands on a target."""
        return self.boxes == self.targets

    def is_blocked(self, pos: Pos) -> bool:
        """True for a wall or a square outside the grid (boxes are not counted)."""
        row, col = pos
        return not (0 <= row < self.height and 0 <= col < self.width) or pos in self.walls

    def to_text(self) -> str:
        """The grid in the canonical legend (`LEGEND`), one line per row, no trailing newline."""
        return "\n".join("".join(self._symbol((r, c)) for c in range(self.width)) for r in range(self.height))

    def _symbol(self, pos: Pos) -> str:
        if pos in self.walls:
            return "#"
        on_target = pos in self.targets
        if pos == self.player:
            return "S" if on_target else "P"
        if pos in self.boxes:
            return "*" if on_target else "X"
        return "O" if on_target else "_"

    @classmethod
    def from_text(cls, text: str) -> Level:
        """Parse a grid written in `LEGEND` (XSB symbols ` -.$@+` are accepted too).

        Blank lines around the grid are ignored; rows shorter than the longest are padded with walls
        (XSB files often leave out the squares outside the level). Exactly one player is required.
        """
        rows = [line.rstrip("\r") for line in text.strip("\r\n").split("\n")]
        if not rows or not any(rows):
            raise ValueError("the level text is empty; write one grid row per line")
        width = max(len(row) for row in rows)
        walls, targets, boxes, players = set(), set(), set(), []
        for r, row in enumerate(rows):
            for c, char in enumerate(row.ljust(width, "#")):
                if char not in _CELLS:
                    raise ValueError(
                        f"unknown symbol {char!r} at row {r}, column {c}; the legend is:\n{LEGEND}"
                    )
                wall, target, box, player = _CELLS[char]
                for flag, bucket in ((wall, walls), (target, targets), (box, boxes)):
                    if flag:
                        bucket.add((r, c))
                if player:
                    players.append((r, c))
        if len(players) != 1:
            raise ValueError(f"a level needs exactly one player (P or S), found {len(players)}")
        return cls(len(rows), width, frozenset(walls), frozenset(targets), frozenset(boxes), players[0])


def check_knobs(dim_room: tuple[int, int], num_boxes: int, min_moves: int = 0) -> None:
    """Raise ValueError when the generator knobs cannot give a level."""
    if len(dim_room) != 2 or not all(isinstance(d, int) and MIN_DIM <= d <= MAX_DIM for d in dim_room):
        raise ValueError(
            f"dim_room must be (height, width) with each side in [{MIN_DIM}, {MAX_DIM}] (border walls "
            f"included), got {dim_room!r}"
        )
    most = min(MAX_BOXES, (dim_room[0] - 2) * (dim_room[1] - 2) // 4)
    if not isinstance(num_boxes, int) or not 1 <= num_boxes <= most:
        raise ValueError(
            f"num_boxes must be an int in [1, {most}] for dim_room={tuple(dim_room)}, got {num_boxes!r}; "
            "use fewer boxes or a larger room"
        )
    if not isinstance(min_moves, int) or min_moves < 0:
        raise ValueError(f"min_moves must be a non-negative int, got {min_moves!r}")


def generate_level(
    seed: int, *, dim_room: tuple[int, int] = (6, 6), num_boxes: int = 1, min_moves: int = 2
) -> Level:
    """A solvable level, the same for the same arguments on any machine.

    Each attempt carves a room by a random walk, places targets (with boxes on them) and the player,
    then plays backwards, the player pulling boxes off their targets. Every backward move is the
    reverse of a legal forward move, so the result is solvable; the solver still checks it and also
    requires an optimal solution of at least `min_moves` moves with some box off its target.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    dim_room = tuple(dim_room)
    check_knobs(dim_room, num_boxes, min_moves)
    for attempt in range(MAX_TRIES):
        rng = random.Random(f"agentdistill-sokoban/{seed}/{attempt}")
        level = _attempt(rng, dim_room, num_boxes)
        if level.won:
            continue
        try:
            plan = solve(level)
        except SolverLimitError:
            continue
        if plan is not None and len(plan) >= min_moves:
            return level
    raise RuntimeError(
        f"no level with an optimal solution of >= {min_moves} moves after {MAX_TRIES} tries "
        f"(dim_room={dim_room}, num_boxes={num_boxes}); lower min_moves or num_boxes, or enlarge dim_room"
    )


def _attempt(rng: random.Random, dim_room: tuple[int, int], num_boxes: int) -> Level:
    """One candidate level: carve, place, scatter (may come out already won; the caller checks)."""
    height, width = dim_room
    floor = _carve(rng, height, width, num_boxes)
    cells = sorted(floor)  # sets iterate in hash order; sort so draws do not depend on it
    picked = [cells.pop(rng.randrange(len(cells))) for _ in range(num_boxes + 1)]
    targets, player = frozenset(picked[:-1]), picked[-1]
    interior = (height - 2) * (width - 2)
    steps = rng.randrange(2 * interior, 5 * interior)
    player, boxes = _scatter(rng, floor, set(targets), player, steps=steps)
    walls = frozenset((r, c) for r in range(height) for c in range(width)) - floor
    return Level(height, width, walls, targets, boxes, player)


def _carve(rng: random.Random, height: int, width: int, num_boxes: int) -> frozenset[Pos]:
    """Floor squares dug by a random walk inside the border walls; connected by construction."""
    interior = (height - 2) * (width - 2)
    wanted = min(interior, max(num_boxes + 4, int(interior * (0.5 + 0.3 * rng.random()))))
    pos = (1 + rng.randrange(height - 2), 1 + rng.randrange(width - 2))
    floor = {pos}
    delta = rng.choice(_DIRECTIONS)
    while len(floor) < wanted:
        if rng.random() < 0.35:  # turn now and then so the room is not a straight corridor
            delta = rng.choice(_DIRECTIONS)
        nxt = (pos[0] + delta[0], pos[1] + delta[1])
        if not (1 <= nxt[0] <= height - 2 and 1 <= nxt[1] <= width - 2):
            delta = rng.choice(_DIRECTIONS)
            continue
        pos = nxt
        floor.add(pos)
    return frozenset(floor)


def _scatter(
    rng: random.Random, floor: frozenset[Pos], boxes: set[Pos], player: Pos, *, steps: int
) -> tuple[Pos, frozenset[Pos]]:
    """Play backwards and return the last state seen whose boxes lie farthest from the targets.

    The player walks at random, mostly straight on, and when a box is right behind it usually pulls
    it. Pulling the box at `player - d` while stepping to `player + d` is the reverse of pushing it
    from `player` to `player - d`, so the forward game can undo every step back to the start.
    """
    targets = frozenset(boxes)
    best, best_score = (player, frozenset(boxes)), 0
    delta = rng.choice(_DIRECTIONS)
    for _ in range(steps):
        if rng.random() < 0.3:  # keep walking straight mostly, so pulls chain into long box moves
            delta = rng.choice(_DIRECTIONS)
        ahead = (player[0] + delta[0], player[1] + delta[1])
        if ahead not in floor or ahead in boxes:
            delta = rng.choice(_DIRECTIONS)
            continue
        behind = (player[0] - delta[0], player[1] - delta[1])
        if behind in boxes and rng.random() < 0.8:
            boxes.remove(behind)
            boxes.add(player)
        player = ahead
        score = _spread(boxes, targets)
        if score >= best_score:  # on ties keep the later state: the player has wandered off
            best, best_score = (player, frozenset(boxes)), score
    return best


def _spread(boxes: set[Pos], targets: frozenset[Pos]) -> int:
    """How far the boxes are from the targets: each box's Manhattan distance to its nearest target."""
    return sum(min(abs(b[0] - t[0]) + abs(b[1] - t[1]) for t in targets) for b in boxes)
