"""ALFWorld game files: PDDL problems (parse, write) and their goal formulas (evaluate).

A game is a PDDL problem over the alfred domain. ALFWorld stores one as ``game.tw-pddl``: a JSON object with
``pddl_domain`` (the domain text), ``grammar`` (the text grammar, its ``Your task is to: ...`` line holding the
goal), ``pddl_problem`` and ``solvable``. We read the problem and the goal sentence from such files, and write
our generated games in the same format so the real engine can play them.

Names are lowercased on the way in, as Fast Downward does: every id the engine and the demangler see is
lowercase (``apple_bar__minus_00_dot_47_...``). Facts are tuples ``(predicate, arg, ...)`` in lowercase.
A goal formula is a nested tuple:

    ("and", f, ...) | ("or", f, ...) | ("not", f) | ("exists", ((var, type), ...), f)
    | ("forall", ((var, type), ...), f) | ("=", a, b) | ("atom", predicate, arg, ...)

where variables start with ``?``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Fact = tuple[str, ...]
Formula = tuple[Any, ...]
SExpr = str | list["SExpr"]


class PddlError(ValueError):
    """A PDDL problem or game file that cannot be read."""


@dataclass(frozen=True)
class Problem:
    """A PDDL problem of the alfred domain, lowercased.

    Attributes:
        name: the problem name.
        objects: ``(name, type)`` pairs in declaration order.
        init: the initial facts (numeric fluents such as ``totalCost`` are dropped).
        goal: the goal formula.
    """

    name: str
    objects: tuple[tuple[str, str], ...]
    init: frozenset[Fact]
    goal: Formula

    def objects_of_type(self, type_name: str) -> list[str]:
        return sorted(name for name, t in self.objects if t == type_name)


# --------------------------------------------------------------------------------------------------- parse


def tokenize(text: str) -> list[str]:
    text = re.sub(r";[^\n]*", " ", text)  # comments
    return re.findall(r"\(|\)|[^\s()]+", text)


def parse_sexpr(text: str) -> SExpr:
    tokens = tokenize(text)
    if not tokens:
        raise PddlError("empty PDDL text")
    stack: list[list[SExpr]] = [[]]
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise PddlError("unbalanced ')' in PDDL text")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token.lower())
    if len(stack) != 1 or len(stack[0]) != 1:
        raise PddlError("unbalanced '(' in PDDL text, or more than one top-level expression")
    return stack[0][0]


def _typed_list(items: list[str]) -> list[tuple[str, str]]:
    """``a b - t1 c - t2`` → [(a, t1), (b, t1), (c, t2)] (untyped names get type ``object``)."""
    out, pending, i = [], [], 0
    while i < len(items):
        if items[i] == "-":
            if i + 1 >= len(items):
                raise PddlError("a '-' in a typed list must be followed by a type")
            out += [(name, items[i + 1]) for name in pending]
            pending, i = [], i + 2
        else:
            pending.append(items[i])
            i += 1
    return out + [(name, "object") for name in pending]


def _formula(expr: SExpr) -> Formula:
    if isinstance(expr, str) or not expr:
        raise PddlError(f"not a formula: {expr!r}")
    head = expr[0]
    if head in ("and", "or"):
        return (head, *(_formula(e) for e in expr[1:]))
    if head == "not":
        return ("not", _formula(expr[1]))
    if head in ("exists", "forall"):
        return (head, tuple(_typed_list(expr[1])), _formula(expr[2]))
    if head == "=":
        return ("=", expr[1], expr[2])
    if not all(isinstance(a, str) for a in expr):
        raise PddlError(f"unsupported formula {expr!r}")
    return ("atom", *expr)


def parse_problem(text: str) -> Problem:
    """Parse a PDDL problem of the alfred domain."""
    expr = parse_sexpr(text)
    if not isinstance(expr, list) or expr[:1] != ["define"]:
        raise PddlError("a PDDL problem must start with (define ...)")
    name, objects, init, goal = "", [], set(), None
    for section in expr[1:]:
        if not isinstance(section, list) or not section:
            continue
        key = section[0]
        if key == "problem":
            name = section[1]
        elif key == ":objects":
            objects = _typed_list(section[1:])
        elif key == ":init":
            for fact in section[1:]:
                if isinstance(fact, list) and fact and fact[0] != "=" and all(isinstance(a, str) for a in fact):
                    init.add(tuple(fact))
        elif key == ":goal":
            goal = _formula(section[1])
    if goal is None:
        raise PddlError("the PDDL problem has no :goal")
    return Problem(name=name, objects=tuple(objects), init=frozenset(init), goal=goal)


def read_game_file(path: str | Path) -> tuple[Problem, str]:
    """Read an ALFWorld ``game.tw-pddl``: its problem and its goal sentence (``put a hot apple in fridge``)."""
    try:
        data = json.loads(Path(path).read_text())
        problem_text, grammar_text = data["pddl_problem"], data["grammar"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PddlError(
            f"{path} is not an ALFWorld game.tw-pddl file (JSON with pddl_problem and grammar): {err}"
        ) from err
    return parse_problem(problem_text), goal_text_from_grammar(grammar_text)


def goal_text_from_grammar(grammar_text: str) -> str:
    """The goal sentence of a game's grammar (its ``task`` rule is ``Your task is to: <goal>.``)."""
    found = re.search(r'"rhs"\s*:\s*"Your task is to: (.*?)\.?"', grammar_text)
    if not found:
        raise PddlError("the grammar has no 'Your task is to: ...' task line")
    return found.group(1)


# --------------------------------------------------------------------------------------------------- write


def format_formula(f: Formula, indent: int = 2) -> str:
    pad = " " * indent
    head = f[0]
    if head == "atom":
        return f"{pad}({' '.join(f[1:])})"
    if head == "=":
        return f"{pad}(= {f[1]} {f[2]})"
    if head == "not":
        return f"{pad}(not\n{format_formula(f[1], indent + 2)}\n{pad})"
    if head in ("exists", "forall"):
        variables = " ".join(f"{v} - {t}" for v, t in f[1])
        return f"{pad}({head} ({variables})\n{format_formula(f[2], indent + 2)}\n{pad})"
    body = "\n".join(format_formula(g, indent + 2) for g in f[1:])
    return f"{pad}({head}\n{body}\n{pad})"


def format_problem(problem: Problem, *, names: Mapping[str, str] | None = None) -> str:
    """PDDL text of a problem. ``names`` maps lowercase ids back to their original spelling (optional)."""

    def spell(token: str) -> str:
        return (names or {}).get(token, token)

    objects = "\n".join(f"        {spell(n)} - {t}" for n, t in problem.objects)
    init = "\n".join(f"        ({' '.join(spell(a) for a in fact)})" for fact in sorted(problem.init))
    goal = format_formula(_respell(problem.goal, spell), 8)
    return (
        f"(define (problem {problem.name})\n    (:domain alfred)\n    (:objects\n{objects}\n    )\n"
        f"    (:init\n{init}\n    )\n    (:goal\n{goal}\n    )\n)\n"
    )


def _respell(f: Formula, spell) -> Formula:
    if f[0] == "atom":
        return ("atom", f[1], *(a if a.startswith("?") else spell(a) for a in f[2:]))
    if f[0] == "=":
        return f
    if f[0] in ("exists", "forall"):
        return (f[0], f[1], _respell(f[2], spell))
    return (f[0], *(_respell(g, spell) for g in f[1:]))


# ------------------------------------------------------------------------------------------------ evaluate


class FactIndex:
    """Facts indexed by predicate, optionally layered over a base index (static facts shared by many states)."""

    def __init__(self, facts, base: FactIndex | None = None):
        self.facts = facts
        self.base = base
        self.by_predicate: dict[str, list[Fact]] = defaultdict(list)
        for fact in facts:
            self.by_predicate[fact[0]].append(fact)

    def __contains__(self, fact: Fact) -> bool:
        return fact in self.facts or (self.base is not None and fact in self.base)

    def matching(self, predicate: str) -> list[Fact]:
        own = self.by_predicate.get(predicate, [])
        return own + self.base.matching(predicate) if self.base is not None else own


def holds(goal: Formula, facts, types: Mapping[str, str], *, base: FactIndex | None = None) -> bool:
    """Whether ``goal`` holds in ``facts`` (plus the facts of ``base``); ``types`` maps objects to types."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for name, t in types.items():
        by_type[t].append(name)
    return any(True for _ in _solve(goal, {}, FactIndex(facts, base), by_type))


def _solve(f: Formula, env: dict[str, str], index: FactIndex, by_type) -> Iterator[dict[str, str]]:
    """Yield variable bindings under which ``f`` holds (a tiny join engine: atoms bind, others test)."""
    head = f[0]
    if head == "atom":
        yield from _solve_atom(f, env, index)
    elif head == "and":
        yield from _solve_all(list(f[1:]), env, index, by_type)
    elif head == "or":
        for g in f[1:]:
            yield from _solve(g, env, index, by_type)
    elif head == "not":
        if not any(True for _ in _solve(f[1], env, index, by_type)):
            yield env
    elif head == "=":
        yield from _solve_equal(f, env)
    elif head == "exists":
        yield from _solve_exists(f, env, index, by_type)
    elif head == "forall":
        yield from _solve_forall(f, env, index, by_type)
    else:
        raise PddlError(f"unsupported formula head {head!r}")


def _solve_atom(f: Formula, env: dict[str, str], index: FactIndex) -> Iterator[dict[str, str]]:
    pattern = tuple(env.get(a, a) for a in f[1:])
    if not any(a.startswith("?") for a in pattern):
        if pattern in index:
            yield env
        return
    for fact in index.matching(pattern[0]):
        if len(fact) != len(pattern):
            continue
        new = dict(env)
        for want, got in zip(pattern[1:], fact[1:], strict=True):
            if want.startswith("?"):
                if new.setdefault(want, got) != got:
                    break
            elif want != got:
                break
        else:
            yield new


def _solve_equal(f: Formula, env: dict[str, str]) -> Iterator[dict[str, str]]:
    a, b = env.get(f[1], f[1]), env.get(f[2], f[2])
    if a.startswith("?") or b.startswith("?"):
        raise PddlError(f"'=' over an unbound variable in {f!r}")
    if a == b:
        yield env


def _solve_exists(f: Formula, env: dict[str, str], index: FactIndex, by_type) -> Iterator[dict[str, str]]:
    quantified = {v for v, _ in f[1]}
    inner = {k: v for k, v in env.items() if k not in quantified}  # inner variables shadow outer ones
    for solution in _solve(f[2], inner, index, by_type):
        if all(_has_type(solution, v, t, by_type) for v, t in f[1]):
            yield env
            return


def _solve_forall(f: Formula, env: dict[str, str], index: FactIndex, by_type) -> Iterator[dict[str, str]]:
    variables = [v for v, _ in f[1]]
    for values in _product([by_type.get(t, []) for _, t in f[1]]):
        bound = {**env, **dict(zip(variables, values, strict=True))}
        if not any(True for _ in _solve(f[2], bound, index, by_type)):
            return
    yield env


def _solve_all(parts: list[Formula], env, index, by_type) -> Iterator[dict[str, str]]:
    if not parts:
        yield env
        return
    # Atoms first: they bind variables that the tests ('not', '=') then need.
    parts = sorted(parts, key=lambda g: g[0] != "atom")
    first, rest = parts[0], parts[1:]
    for solution in _solve(first, env, index, by_type):
        yield from _solve_all(rest, solution, index, by_type)


def _has_type(env: dict[str, str], var: str, type_name: str, by_type) -> bool:
    value = env.get(var)
    if value is None:  # a quantified variable no atom binds: any object of its type will do
        return bool(by_type.get(type_name))
    return value in by_type.get(type_name, ())


def _product(pools: list[list[str]]) -> Iterator[tuple[str, ...]]:
    if not pools:
        yield ()
        return
    for head in pools[0]:
        for tail in _product(pools[1:]):
            yield (head, *tail)


class GoalChecker:
    """Evaluates one goal many times: static facts and the type table are indexed once."""

    def __init__(self, goal: Formula, types: Mapping[str, str], static_facts=frozenset()):
        self.goal = goal
        self.static = FactIndex(static_facts)
        self.by_type: dict[str, list[str]] = defaultdict(list)
        for name, t in types.items():
            self.by_type[t].append(name)

    def __call__(self, dynamic_facts) -> bool:
        index = FactIndex(dynamic_facts, self.static)
        return any(True for _ in _solve(self.goal, {}, index, self.by_type))
