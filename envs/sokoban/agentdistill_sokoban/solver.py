"""Sokoban dynamics (one move) and an optimal solver.

The environment, the generator and the solver all move the player through `step_state`, so the rules
live in one place. `solve` is a breadth-first search over (player, boxes) states; every action is one
move (a push too), so the first goal state found is reached by a plan with the fewest moves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # levels.py imports this module; the solver only reads Level attributes
    from .levels import Level, Pos

ACTIONS: tuple[str, ...] = ("up", "down", "left", "right")
"""The four moves, in the fixed order used everywhere (admissible actions, search order)."""

DELTAS: dict[str, tuple[int, int]] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
"""Row/column step of each move."""

DEFAULT_MAX_NODES = 2_000_000
"""States `solve` may visit before giving up (tiny levels need a few thousand)."""

State = tuple["Pos", frozenset["Pos"]]


class SolverLimitError(RuntimeError):
    """The search visited more states than allowed; the level is too large for the optimal solver."""


def step_state(level: Level, player: Pos, boxes: frozenset[Pos], action: str) -> State | None:
    """The (player, boxes) after one move on `level`'s walls, or None when the move is blocked.

    The player walks onto a free square, or pushes the box ahead of it when the square behind that
    box is free; walls, the grid edge and a second box block. `action` must be one of `ACTIONS`.
    """
    dr, dc = DELTAS[action]
    ahead = (player[0] + dr, player[1] + dc)
    if level.is_blocked(ahead):
        return None
    if ahead not in boxes:
        return ahead, boxes
    beyond = (ahead[0] + dr, ahead[1] + dc)
    if level.is_blocked(beyond) or beyond in boxes:
        return None
    return ahead, (boxes - {ahead}) | {beyond}


def apply_move(level: Level, action: str) -> Level | None:
    """`level` after one move, or None when the move is blocked."""
    moved = step_state(level, level.player, level.boxes, action)
    if moved is None:
        return None
    return replace(level, player=moved[0], boxes=moved[1])


def dead_squares(level: Level) -> frozenset[Pos]:
    """Open squares from which no push sequence can bring a box to any target, even on an empty board.

    Found backwards from the targets: a box at `p` can be pushed to `p + d` when `p + d` and the
    player's square `p - d` are open. Other boxes only ever block more, so a box on a dead square
    stays off target forever; pruning such states removes only dead ends and keeps plans optimal.
    """
    live = set(level.targets)
    frontier = deque(level.targets)
    while frontier:
        row, col = frontier.popleft()
        for dr, dc in DELTAS.values():
            source, stand = (row - dr, col - dc), (row - 2 * dr, col - 2 * dc)
            if source not in live and not level.is_blocked(source) and not level.is_blocked(stand):
                live.add(source)
                frontier.append(source)
    squares = ((r, c) for r in range(level.height) for c in range(level.width))
    return frozenset(p for p in squares if not level.is_blocked(p) and p not in live)


def solve(level: Level, *, max_nodes: int = DEFAULT_MAX_NODES) -> tuple[str, ...] | None:
    """An optimal (fewest-moves) plan from `level`'s current state, () when already won, None if unsolvable.

    Raises SolverLimitError after visiting `max_nodes` states.
    """
    if level.won:
        return ()
    dead = dead_squares(level)
    if level.boxes & dead:
        return None
    start: State = (level.player, level.boxes)
    parent: dict[State, tuple[State, str] | None] = {start: None}
    frontier = deque([start])
    while frontier:
        player, boxes = state = frontier.popleft()
        for action in ACTIONS:
            nxt = step_state(level, player, boxes, action)
            if nxt is None or nxt in parent:
                continue
            if nxt[0] in boxes and not (nxt[1] - boxes).isdisjoint(dead):
                continue  # this move pushed a box onto a dead square
            parent[nxt] = (state, action)
            if nxt[1] == level.targets:
                return _plan_to(nxt, parent)
            if len(parent) > max_nodes:
                raise SolverLimitError(
                    f"the solver visited over {max_nodes} states without finishing; use a smaller level "
                    "(fewer boxes, smaller dim_room) or pass a larger max_nodes"
                )
            frontier.append(nxt)
    return None


def _plan_to(goal: State, parent: dict[State, tuple[State, str] | None]) -> tuple[str, ...]:
    """Walk the parent links back from `goal` to the start and return the moves in order."""
    moves = []
    link = parent[goal]
    while link is not None:
        state, action = link
        moves.append(action)
        link = parent[state]
    return tuple(reversed(moves))
