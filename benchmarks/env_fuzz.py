"""Env fuzzing: random and adversarial actions against every env family. Two properties must hold: the host
survives (no exception escapes ``env.step``/``env.reset`` other than documented ones, and the process lives),
and a refused action leaves the env's state as it was (DESIGN §3.1: "an invalid action is an observation with
a documented reward, never an exception").

    python benchmarks/env_fuzz.py                                  # 10,000 actions per family, minutes on 2 cores
    python benchmarks/env_fuzz.py --actions 500 --families sokoban alfworld --seed 3

Prints a table, writes a JSON next to this file (or --out), and ends with headline lines `name: value`.
Each family runs in its own child process, so even a crash that kills the interpreter (a segfault in a C
engine) is counted instead of ending the run. ``tests/envs/test_fuzz.py`` loads this file and runs the same
fuzzer at a smaller count: the fuzz logic lives here, next to its only command-line entry, because a
benchmark must run from a checkout without reaching into tests/ (tests depend on the tools, not the reverse).

Actions. Text families (Sokoban, ALFWorld, TextWorld) draw, by weight: the env's valid/admissible actions
(so episodes move and the state varies), near misses of them (typos, case changes, extra or unicode spaces,
truncations, swapped arguments, numbers out of range, homoglyphs, punctuation, prefixes), empty strings,
whitespace, unicode (emoji, RTL marks, combining marks, lone surrogates, NUL, BOM), control characters
(``\\x00``, ``\\x1b[2J``, ``\\r``, ``\\b``...), random ASCII and random bytes, injection-like strings, several
commands on one line, family words (Inform meta-commands for TextWorld, wrong verb/object pairs for ALFWorld)
and huge strings of 100 kB - 1 MB. AppWorld actions are Python cells: reference-solution statements and near
misses of them, plain code, code that raises (1/0, SystemExit, KeyboardInterrupt, MemoryError, exceptions
whose ``__str__`` fails...), syntax errors, recursion, memory bombs, huge prints, API calls with wrong
arguments (missing, unknown, wrong type, out of range, unserialisable, lone surrogates) or misspelt names,
plus a fixed quota of expensive cells at seeded positions: infinite loops that hit the timeout (the fuzzer
runs AppWorld with a 1 s cell timeout; n/1000 of them), loops that hit the API-call cap (n/2000) and cells that
kill their own session (SIGKILL, ``os._exit``, garbage on the protocol pipe; n/1000). Resets are fuzzed too:
10% of episodes first try a bad seed or bad options, which may only raise ValueError, TypeError or
``gymnasium.error.Error``.

Refusals and state. A step is refused when ``info["invalid_action"]`` is True. What "unchanged" means, per
family, from each env's source:

- Sokoban: the ``Level`` (walls, targets, boxes, player) and the done flag. Every refusal is checked.
- ALFWorld: the engine's fact set (``Engine.snapshot``), its admissible commands and ``won``. Every refusal.
- TextWorld: the whole Z-machine state (RAM, stack, pc, RNG: ``jericho.get_state``) plus TextWorld's tracked
  facts, score, won/lost and admissible commands. Only refusals that the env does not send to the game
  (the ``REFUSED`` observation: empty lines, interpreter meta-commands) are checked; a non-admissible command
  is, as documented, still sent and answered, so when one changes the world it is counted apart
  (``invalid_world_changes``), not as a failure; nor is such a command that scores (``invalid_scored``), though
  the docstring says invalid commands give 0. Every TextWorld observation is also searched for the interpreter's
  answers to meta-commands (restart/quit confirmation, undo, transcript, verify): one would mean a meta-command
  slipped past the env's filter.
- AppWorld: the whole SQLite database (every table, login tokens included; re-hashed only when
  ``total_changes`` moved, which no write can avoid) and the REPL's variables (a sentinel variable is planted
  after each reset and printed after each checked refusal; a documented session restart - timeout, kill,
  protocol breach - may drop it). Every refusal is checked except those of cells that replay or mutate a
  reference statement, which may fail halfway through after real API calls. Each episode starts with an
  uncounted set-up cell (the sentinel, and a login to every app so wrong-argument calls get past the 401).

In the table, ``checked`` counts the refusals whose state was compared and ``state_changes`` those that moved it.

Documented observations and rewards of refusals are checked too (Sokoban: -0.1 and "Invalid action: ..." with
the unchanged grid; ALFWorld: 0 and "Nothing happens."; TextWorld: 0, and ``REFUSED`` when not sent;
AppWorld: 0 and "Execution failed..."), as are the step contract (str observation, finite reward, bool
flags, ``task``/``task_id``/``invalid_action`` in info) and, as a separate count, whether observations lie
in the env's ``observation_space``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import random
import string
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym

FAMILIES = ("sokoban", "alfworld", "textworld", "appworld")
DOCUMENTED_RESET_ERRORS = (ValueError, TypeError, gym.error.Error)
"""What a bad ``reset`` may raise: bad option values, arguments of the wrong type, Gymnasium's seed checks."""
HUGE_MIN, HUGE_MAX = 100_000, 1_000_000
NO_BUDGET = 10**9  # the TurnLimit budget while fuzzing: episodes end when the fuzzer says, not by truncation
BAD_RESET_RATE = 0.1
MAX_EXAMPLES = 8


class Action(NamedTuple):
    """One fuzz action: its kind (for the per-kind counts) and the text sent to ``env.step``."""

    kind: str
    text: str


# ------------------------------------------------------------------------------------------- text actions

WHITESPACE = (" ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u1680", "\u2003", "\u2028", "\u2029", "\u3000",
              "\u200b", "\ufeff", "\x1c", "\x85")
UNICODE = ("😀", "🧑‍🚀", "👍🏽", "🇫🇷", "\u202e", "\u202d", "\u200f", "\u2066", "שלום", "مرحبا", "e\u0301",
           "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306", "\ud800", "\udfff", "\udcff\udcfe", "\x00", "\ufeff",
           "\ufffd", "\uffff", "ＵＰ", "İ", "ß", "ﬁ", "Ω", "\U0010ffff", "𝐮𝐩", "ǅ", "①", "٣", "™", "\u0345")
CONTROL = ("\x00", "\x1b[2J", "\x1b[31m", "\x1b]0;title\x07", "\r", "\b", "\x07", "\x7f", "\x0b", "\x0c", "\r\n",
           "\x85", "\x9b", "\x1a", "\x04", "\x1b[1;1H", "\x1bc")
INJECTION = ("%s%s%s%n", "{0}{1}", "{__class__}", "${jndi:ldap://x}", "'; DROP TABLE users; --", "<script>x</script>",
             "\\", "\\n", "../../etc/passwd", '{"action": "look"}', "Action: ", "null", "None", "nan", "-1", "0",
             "1e309", "[]", "()", "`rm -rf /`", "$(reboot)", "\\x00", "%00", "A" * 256, "\\u0000", "&&", "|", "\\r\\n")
HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "x": "х", "y": "у", "k": "κ", "n": "п"}
NUMBERS = ("0", "-1", "99", "100000000000000000000", "1.5", "one", "①", "٣", "1e9", "+1", "00", "0x1", "-0")
SEPARATORS = (" ", "\n", "; ", ". ", ", ", " then ", " and ", " && ", "\t", "|")

TEXT_WEIGHTS: dict[str, int] = {
    "valid": 20, "near_miss": 30, "empty": 2, "whitespace": 5, "unicode": 9, "control": 7, "random_ascii": 5,
    "random_bytes": 4, "injection": 4, "multi": 3, "family": 10, "huge": 1,
}


def _pick_weighted(rng: random.Random, weights: Mapping[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _insert(rng: random.Random, text: str, piece: str) -> str:
    """``piece`` inserted at a random position of ``text``."""
    at = rng.randint(0, len(text))
    return text[:at] + piece + text[at:]


def _typo(rng: random.Random, text: str) -> str:
    """One keyboard slip: swap two neighbours, drop, double or replace a character."""
    if len(text) < 2:
        return text + rng.choice(string.ascii_lowercase)
    at = rng.randrange(len(text) - 1)
    how = rng.randrange(4)
    if how == 0:
        return text[:at] + text[at + 1] + text[at] + text[at + 2:]
    if how == 1:
        return text[:at] + text[at + 1:]
    if how == 2:
        return text[:at] + text[at] + text[at:]
    return text[:at] + rng.choice(string.ascii_lowercase) + text[at + 1:]


def _case(rng: random.Random, text: str) -> str:
    how = rng.randrange(4)
    if how == 0:
        return text.upper()
    if how == 1:
        return text.title()
    if how == 2:
        return text.swapcase()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def _spaces(rng: random.Random, text: str) -> str:
    """Extra, missing or exotic spaces: around, inside, or instead of the single inner spaces."""
    how = rng.randrange(4)
    if how == 0:
        return rng.choice(WHITESPACE) * rng.randint(1, 3) + text + rng.choice(WHITESPACE) * rng.randint(1, 3)
    if how == 1:
        return text.replace(" ", " " * rng.randint(2, 5))
    if how == 2:
        return text.replace(" ", rng.choice(WHITESPACE))
    return text.replace(" ", "", 1) if " " in text else _insert(rng, text, " ")


def _truncate(rng: random.Random, text: str) -> str:
    words = text.split()
    if len(words) > 1 and rng.random() < 0.5:
        return " ".join(words[: rng.randrange(1, len(words))])
    return text[: rng.randrange(1, len(text))] if len(text) > 1 else ""


def _swap_args(rng: random.Random, text: str) -> str:
    """``take X from Y`` becomes ``take Y from X``; without a preposition, the words are reversed."""
    for prep in (" from ", " to ", " with ", " into ", " on ", " in "):
        if prep in text:
            head, tail = text.split(prep, 1)
            verb, _, obj = head.partition(" ")
            return f"{verb} {tail}{prep}{obj}" if obj else f"{tail}{prep}{head}"
    return " ".join(reversed(text.split()))


def _renumber(rng: random.Random, text: str) -> str:
    """Numbers out of range: every digit run becomes 0, -1, 99, 10**20, a word, a unicode digit..."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    if not digits:
        return f"{text} {rng.choice(NUMBERS)}"
    out, i = [], 0
    while i < len(text):
        if text[i].isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(rng.choice(NUMBERS))
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _homoglyph(rng: random.Random, text: str) -> str:
    spots = [i for i, c in enumerate(text) if c in HOMOGLYPHS]
    if not spots:
        return text + "\u0301"
    at = rng.choice(spots)
    return text[:at] + HOMOGLYPHS[text[at]] + text[at + 1:]


def _dress(rng: random.Random, text: str) -> str:
    """Punctuation, quotes, prefixes and suffixes a chatty model might add."""
    return rng.choice((f"{text}.", f"{text}!", f"{text}?", f'"{text}"', f"'{text}'", f"`{text}`", f"<{text}>",
                       f"Action: {text}", f"please {text}", f"{text} now", f"I {text}", f"> {text}", f"{text}\n",
                       f"{text} {text}", f"[{text}]", f"({text})", f"*{text}*", f"{text}\\", f"{text}#"))


def _fullwidth(rng: random.Random, text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and rng.random() < 0.7 else c for c in text)


MUTATIONS: dict[str, Callable[[random.Random, str], str]] = {
    "typo": _typo, "case": _case, "spaces": _spaces, "truncate": _truncate, "swap_args": _swap_args,
    "renumber": _renumber, "homoglyph": _homoglyph, "dress": _dress, "fullwidth": _fullwidth,
}


def near_miss(rng: random.Random, base: str) -> str:
    """``base`` after one or two mutations: the commands a model gets almost right."""
    text = base
    for _ in range(1 if rng.random() < 0.7 else 2):
        text = MUTATIONS[rng.choice(list(MUTATIONS))](rng, text)
    return text


def random_bytes_text(rng: random.Random) -> str:
    """Random bytes decoded as a model's tokenizer or a broken pipe might: lone surrogates and all."""
    raw = rng.randbytes(rng.randint(1, 200))
    return raw.decode("utf-8", "surrogateescape") if rng.random() < 0.5 else raw.decode("latin-1")


def huge_text(rng: random.Random, valid: Sequence[str]) -> str:
    """100 kB - 1 MB: a valid action repeated or padded, random bytes, one character, or unicode."""
    size = rng.randint(HUGE_MIN, HUGE_MAX)
    base = rng.choice(valid) if valid else "look"
    how = rng.randrange(5)
    if how == 0:
        piece = base + rng.choice(SEPARATORS)
    elif how == 1:
        return base + " " * (size - len(base))  # a valid action drowned in spaces
    elif how == 2:
        return rng.randbytes(size).decode("latin-1")
    elif how == 3:
        piece = rng.choice(string.printable)
    else:
        piece = rng.choice(UNICODE)
    return (piece * (size // max(1, len(piece)) + 1))[:size]


def text_action(rng: random.Random, valid: Sequence[str], extras: Sequence[str]) -> Action:
    """One action for a text family, drawn by ``TEXT_WEIGHTS``; ``extras`` are the family's own odd words."""
    kind = _pick_weighted(rng, TEXT_WEIGHTS)
    base = rng.choice(valid) if valid else "look"
    if kind == "valid":
        text = base
    elif kind == "near_miss":
        text = near_miss(rng, base)
    elif kind == "empty":
        text = ""
    elif kind == "whitespace":
        text = "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 12)))
    elif kind == "unicode":
        text = rng.choice((lambda: _insert(rng, base, rng.choice(UNICODE)),
                           lambda: "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 8))),
                           lambda: base + "\u0301" * rng.randint(1, 50)))()
    elif kind == "control":
        text = _insert(rng, base, rng.choice(CONTROL)) if rng.random() < 0.7 else rng.choice(CONTROL)
    elif kind == "random_ascii":
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 300)))
    elif kind == "random_bytes":
        text = random_bytes_text(rng)
    elif kind == "injection":
        text = rng.choice(INJECTION) if rng.random() < 0.5 else base + rng.choice(INJECTION)
    elif kind == "multi":
        text = rng.choice(SEPARATORS).join(rng.choice(valid or ["look"]) for _ in range(rng.randint(2, 4)))
    elif kind == "family":
        text = rng.choice(extras) if extras else base
    else:
        text = huge_text(rng, valid)
    return Action(kind, text)


# ------------------------------------------------------------------------------------------- code actions

RAISES = (
    "1/0", "raise SystemExit", "raise SystemExit(3)", "exit()", "quit()", "exit(0)", "raise KeyboardInterrupt",
    "raise GeneratorExit", "raise BaseException('x')", "raise MemoryError", "raise RecursionError",
    "raise StopIteration", "assert False, 'nope'", "[][0]", "{}['missing']", "None.x", "int('x')",
    "raise Exception('\\x00\\ud800\\x1b[2J')", "raise ValueError('x' * 10**6)", "raise KeyboardInterrupt from None",
    "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('inner')\nraise E()",
    "class E(Exception):\n    def __str__(self):\n        return 5\nraise E()",
    "class X(BaseException):\n    pass\nraise X()", "try:\n    1/0\nfinally:\n    raise SystemExit",
    "def g():\n    yield 1\n    raise StopIteration\nlist(g())", "import os", "import sys\nsys.exit(1)",
    "open('/etc/passwd')", "__import__('os')", "eval('1')", "exec('x = 1')", "input()", "breakpoint()",
    "import time\ntime.sleep(100)", "import socket", "import subprocess", "compile('1', 'x', 'eval')",
    "getattr(apis, '__dict__')", "vars(__builtins__)", "import math\nmath.factorial(10**5)\nprint(str(10**5000))",
)
SYNTAX = (
    "def (:", "x = = 1", "if True\n    pass", "print('unterminated", '"""never closed', "return 1", "yield 1",
    "await x", "break", "continue", "nonlocal x", "from __future__ import braces", "import *", "@\ndef f(): pass",
    "f'{'", "(x := 1) = 2", "if 1:\n\tx = 1\n        y = 2", "x = 1\x00", "'\ud800'", "\ufeffx = 1\ufeff", "λ = 1",
    "x = 1 +", "lambda: (yield)", "def f(x, x): pass", "class", "print(1))", "((((" * 60 + "))))" * 60,
    "[" * 100_000, "-" * 100_000 + "1", "x" + "." * 1000, "1" * 5000 + "j" + "+" * 3, "\\", "#!/bin/sh\nrm -rf /",
)
RECURSION = (
    "def f():\n    return f()\nf()", "def f(n):\n    return f(n + 1)\nf(0)",
    "x = []\nfor _ in range(10**5):\n    x = [x]\nprint(x)",
    "class A:\n    def __repr__(self):\n        return repr(self)\nprint(A())",
    "class A:\n    def __getattr__(self, name):\n        return getattr(self, name + 'x')\nA().y",
    "import json\nd = []\nfor _ in range(10**4):\n    d = [d]\nprint(json.dumps(d))",
)
MEMORY = (
    "x = bytearray(10**10)", "x = [0] * 10**9", "x = 'a' * 10**10", "x = bytes(600 * 2**20)",
    "x = [bytearray(2**20) for _ in range(10**4)]", "x = list(range(10**9))",
)
HUGE_PRINT = (
    "print('y' * 10**7)", "for i in range(10**5):\n    print(i)", "print('\\n' * 10**6)", "print(*range(10**5))",
    "print('\\x1b[2J' * 10**5)", "print('😀' * 10**6)", "print('\\ud800' * 1000)", "print('\\x00' * 10**5)",
    "print('\\u202e' * 10**5)", "print(apis.api_docs.show_app_descriptions() * 1000)",
)
TIMEOUTS = (
    "while True:\n    pass", "while True:\n    x = 1", "sum(range(10**12))",
    "import itertools\nfor _ in itertools.count():\n    pass", "x = 10**(10**8)",
    "import re\nre.match('(a+)+$', 'a' * 40 + 'b')",
    "def g():\n    while True:\n        yield 1\nfor _ in g():\n    pass",
    "try:\n    while True:\n        pass\nexcept BaseException:\n    while True:\n        pass",
    "while True:\n    try:\n        1/0\n    except Exception:\n        pass",
    "x = 2**(10**10)", "x = {i: i for i in range(10**10)}",  # memory bombs too slow to fail within 1 s
)
API_CAP = (
    "while True:\n    apis.supervisor.show_profile()",
    "for _ in range(10**6):\n    apis.api_docs.show_app_descriptions()",
    "while True:\n    try:\n        apis.nope.nope()\n    except Exception:\n        pass",
)
_ESCAPE = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__"
CHILD_DEATH = (
    f"{_ESCAPE}['kill']({_ESCAPE}['getpid'](), 9)", f"{_ESCAPE}['_exit'](3)",
    f"{_ESCAPE}['write'](4, b'\\x00\\x00\\x00\\x05{{\"a\"}}')", f"{_ESCAPE}['write'](4, b'\\xff' * 64)",
    f"p = b'[' * 100000 + b']' * 100000\n{_ESCAPE}['write'](4, len(p).to_bytes(4, 'big') + p)",
    f"{_ESCAPE}['kill']({_ESCAPE}['getppid'](), 0)", f"{_ESCAPE}['close'](4)",
)
PLAIN = (
    "x = 1", "x = [i * i for i in range(100)]", "print(x)", "import math\nprint(math.pi)", "print(1 + 1)",
    "print(apis.supervisor.show_profile())", "print(apis.api_docs.show_app_descriptions())",
    "apis.phone", "print(len(_fuzz_tok))", "def f(a):\n    return a + 1\nprint(f(1))",
    "import json\nprint(json.dumps({'a': [1, 2]}))", "for i in range(3):\n    print(i)", "print(dir(apis))",
    "import datetime\nprint(datetime.datetime.now())", "import random\nprint(random.random())",
    "print('héllo 😀 \\u202e abc')", "print(apis.supervisor.show_account_passwords())",
)
WRONG_VALUES = (
    "None", "''", "' '", "'x' * 10**6", "'x' * 60000", "-1", "0", "10**100", "10**400", "2**63", "-2**63 - 1",
    "1.5", "-0.0", "1e308", "5e-324", "True", "[]", "{}", "[[[]]]", "{'a': {'b': None}}", "'\\ud800'", "'a\\udcff'",
    "'\\x00'", "'\\x1b[2J'", "'😀' * 1000", "'\\u202e'", "'%'", "'_%'", "\"' OR 1=1 --\"", "float('nan')",
    "float('inf')", "b'x'", "object()", "lambda: 1", "{1, 2}", "print", "apis", "...", "['\\ud800']", "[2**70]",
    "{'k': 2**70}", "'9999-99-99'", "'2024-02-30T25:61:00'", "[None]", "[1, 'a', [2]]", "'%' * 30000",
)
GOOD_VALUES = {"string": ("'1'", "_fuzz_me['email']", "'x@y.example'", "'a'"), "integer": ("1", "0", "2"),
               "number": ("1.0", "2"), "boolean": ("True", "False"), "array": ("[]",), "object": ("{}",),
               "any": ("None", "'a'")}

CODE_WEIGHTS: dict[str, int] = {
    "reference": 6, "reference_near_miss": 5, "plain": 6, "empty": 2, "whitespace": 4, "raises": 12, "syntax": 10,
    "api_wrong_args": 16, "api_near_miss": 8, "recursion": 3, "memory": 3, "huge_print": 3, "unicode": 4,
    "control": 3, "random_text": 4, "huge": 1,
}
LAX_CODE_KINDS = frozenset({"reference", "reference_near_miss"})
"""Cells that may fail halfway after real API calls: their refusals are not required to keep the state."""


def expensive_quota(n_actions: int) -> dict[str, int]:
    """How many cells of each costly kind a run of ``n_actions`` AppWorld actions holds (each costs ~0.1-1.2 s)."""
    return {"timeout": max(1, n_actions // 1000), "api_cap": max(1, n_actions // 2000),
            "child_death": max(1, n_actions // 1000)}


def wrong_call(rng: random.Random, app: str, spec: Any) -> str:
    """A call of ``app.api`` that is wrong in one way: missing, unknown, badly typed or out-of-range arguments,
    positional arguments, or a bad token. Single calls run in a savepoint, so a refused one changes nothing."""
    params = [p for p in spec.params if p.name != "access_token"]
    args = {p.name: rng.choice(GOOD_VALUES.get(p.type, ("None",))) for p in params if p.required}
    if spec.needs_login:
        args["access_token"] = f"_fuzz_tok[{app!r}]"
    how = rng.randrange(6)
    if how == 0 and params:
        args.pop(rng.choice(params).name, None)
    elif how == 1:
        args[rng.choice(("zz_unknown", "access_tokens", "__class__", "page", "x" * 300))] = rng.choice(WRONG_VALUES)
    elif how == 2 and params:
        args[rng.choice(params).name] = rng.choice(WRONG_VALUES)
    elif how == 3:
        return f"apis.{app}.{spec.name}({', '.join(rng.choice(WRONG_VALUES) for _ in range(rng.randint(1, 3)))})"
    elif how == 4 and spec.needs_login:
        args["access_token"] = rng.choice(("'x'", "None", "''", "_fuzz_tok", "'\\ud800'", "1",
                                           f"_fuzz_tok[{rng.choice(('phone', 'todo', 'wallet'))!r}] + 'x'"))
    else:
        for p in rng.sample(params, k=min(len(params), rng.randint(1, 3))):
            args[p.name] = rng.choice(WRONG_VALUES)
    return f"apis.{app}.{spec.name}({', '.join(f'{k}={v}' for k, v in args.items())})"


def misspelt_call(rng: random.Random, app: str, api_name: str) -> str:
    """A call whose app or API name (or the ``apis`` object's use) is nearly right."""
    how = rng.randrange(8)
    if how == 0:
        return f"apis.{_typo(rng, app)}.{api_name}()"
    if how == 1:
        return f"apis.{app}.{_typo(rng, api_name)}()"
    if how == 2:
        return f"apis.{_case(rng, app)}.{_case(rng, api_name)}()"
    if how == 3:
        return f"apis.{app}.{api_name.replace('_', rng.choice(('-', '', ' ', '__')))}()"
    if how == 4:
        # Not ``apis.x.y()()``: its call may succeed (even complete the task) before the cell fails.
        return rng.choice((f"api.{app}.{api_name}()", f"{app}.{api_name}()", f"apis.{api_name}()",
                           f"apis.{app}()", "apis()", f"apis.{app}.{api_name}", f"apis.{app}.{api_name}.x()"))
    if how == 5:
        return f"apis.{app}[{api_name!r}]()"
    if how == 6:
        return f"getattr(apis, {app!r}).{api_name}.__call__.__call__(zz=1)"
    return f"apis.{app}.{api_name}(**{{{rng.choice(WRONG_VALUES)}: 1}})"


# ----------------------------------------------------------------------------------------------- families


class Family:
    """One env family under fuzz: how to make and reset it, draw actions, read its state and judge refusals.

    Subclasses read the env's private state on purpose: the public observation cannot prove the state
    did not change (an observation can stay the same while the world moves, and vice versa).
    """

    name = ""
    episode_range = (20, 200)
    bad_resets: tuple[dict[str, Any], ...] = ({"seed": -1}, {"seed": 1.5}, {"seed": "1"}, {"options": {"nope": 1}},
                                              {"options": [1]}, {"options": "x"})
    world_keys: frozenset[str] = frozenset()
    """State keys that describe the world, for refusals that are allowed to move the rest."""

    def __init__(self) -> None:
        self.env: Any = None  # a gym.Env; Any because the families read its unwrapped env's private state
        self.notes: Counter[str] = Counter()

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.env is not None:
            self.env.close()

    def prepare(self, rng: random.Random, n_actions: int) -> None:
        """Called once before the run (AppWorld schedules its expensive cells here)."""

    def reset(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        return self.env.reset(seed=rng.randrange(2**32))

    def draw(self, rng: random.Random, obs: str, info: Mapping[str, Any]) -> Action:
        raise NotImplementedError

    def state(self) -> dict[str, Hashable]:
        raise NotImplementedError

    def strict(self, action: Action, obs: str) -> bool:
        """Whether refusing ``action`` (which gave ``obs``) must leave the whole state unchanged."""
        return True

    def after_refusal(self, action: Action, obs: str, terminated: bool) -> str | None:
        """A further check of a strict refusal that needs to act on the env (AppWorld's REPL probe)."""
        return None

    def refusal_problem(self, action: Action, obs: str, reward: float, terminated: bool) -> str | None:
        """How a refusal's observation or reward departs from the documented one, or None."""
        return None

    def step_problem(self, action: Action, obs: str) -> str | None:
        """A family rule any step must keep, refused or not (TextWorld: no meta-command reaches the game)."""
        return None


class SokobanFamily(Family):
    """State: the ``Level`` (walls, targets, boxes, player) and the done flag. Blocked moves are refusals."""

    name = "sokoban"
    episode_range = (20, 120)
    bad_resets = (*Family.bad_resets, {"options": {"level": 123}}, {"options": {"level": ""}},
                  {"options": {"level": "#\x00P"}}, {"options": {"level_seed": "1"}}, {"options": {"level": None}},
                  {"options": {"level": "#" * 10**5}}, {"options": {"level_seed": 1, "level": "x"}},
                  {"options": {"level": "#####\n#P XO#\n#####"}}, {"options": {"level": "\ud800"}})
    extras = ("Action: up", "action: left", "move up", "go down", "u", "d", "l", "r", "w", "a", "s", "north", "south",
              "east", "west", "UP!", "up.", "up up", "up,down", "push left", "pull right", "↑", "⬆️", "ｕｐ", "1", "0",
              "-1", "noop", "wait", "stay", "undo", "reset", "quit", "help", "up\ndown", "`up`", '"up"', "<up>",
              "[up]", '{"action": "up"}', "None", "null", "UP", " Left ", "RIGHT\n", "dOwN", "up\x00", "up\u200b")

    def open(self) -> None:
        from agentdistill import envs

        self.env = envs.make("agentdistill/Sokoban-v0", max_turns=NO_BUDGET)

    def draw(self, rng: random.Random, obs: str, info: Mapping[str, Any]) -> Action:
        from agentdistill_sokoban.solver import ACTIONS

        return text_action(rng, list(ACTIONS), self.extras)  # all four moves: blocked ones are refusals too

    def state(self) -> dict[str, Hashable]:
        raw = self.env.unwrapped
        return {"level": raw._level, "done": raw._done}

    def refusal_problem(self, action: Action, obs: str, reward: float, terminated: bool) -> str | None:
        from agentdistill_sokoban.env import INVALID_ACTION_REWARD

        grid = self.env.unwrapped._level.to_text()
        if reward != INVALID_ACTION_REWARD or terminated:
            return f"refusal gave reward {reward} / terminated {terminated}"
        if not (obs.startswith("Invalid action: '") and obs.endswith("The board did not change.\n" + grid)):
            return f"refusal observation is not the documented one: {obs[:80]!r}"
        return None


class ALFWorldFamily(Family):
    """State: the native engine's facts, its admissible commands and ``won`` (backend native)."""

    name = "alfworld"
    episode_range = (30, 200)
    bad_resets = (*Family.bad_resets, {"options": {"game": "x"}}, {"options": {"game": None}},
                  {"options": {"game": [1]}}, {"options": {"game": 1, "x": 2}})
    verbs = ("go to", "open", "close", "take", "move", "examine", "use", "heat", "cool", "clean", "slice", "put",
             "drop", "look at", "toggle", "eat", "push", "go")
    extras = ("go north", "go to", "go to go to", "take", "take all", "take all from countertop 1", "look around", "l",
              "i", "inv", "examine", "examine room", "use", "heat", "cool", "clean", "slice", "open", "close",
              "help me", "Nothing happens.", "move", "move to", "drop", "toggle", "turn on lamp", "LOOK", "Look",
              "inventory please", "help help", "look look", "go to cabinet 0", "go to cabinet 999999999999",
              "go to cabinet -1", "go to Cabinet 1", "take apple 1 from fridge 1", "put apple 1 in/on fridge 1")

    def open(self) -> None:
        from agentdistill import envs

        self.env = envs.make("agentdistill/ALFWorld-v0", max_turns=NO_BUDGET)

    def draw(self, rng: random.Random, obs: str, info: Mapping[str, Any]) -> Action:
        valid = list(info.get("admissible_actions") or [])
        return text_action(rng, valid, [*self.extras, *self._mixed(rng, valid)])

    def _mixed(self, rng: random.Random, valid: Sequence[str]) -> list[str]:
        """Wrong verb/object pairs built from the names in this state's admissible commands."""
        names = sorted({w for c in valid for w in _names_in(c)}) or ["apple 1"]
        return [f"{rng.choice(self.verbs)} {rng.choice(names)}",
                f"take {rng.choice(names)} from {rng.choice(names)}",
                f"move {rng.choice(names)} to {rng.choice(names)}",
                f"{rng.choice(('heat', 'cool', 'clean', 'slice'))} {rng.choice(names)} with {rng.choice(names)}"]

    def state(self) -> dict[str, Hashable]:
        raw = self.env.unwrapped
        return {"facts": raw._native.snapshot(), "admissible": tuple(raw._engine.admissible_commands),
                "won": raw._won}

    def refusal_problem(self, action: Action, obs: str, reward: float, terminated: bool) -> str | None:
        from agentdistill_alfworld.engine import NOTHING_HAPPENS

        if obs != NOTHING_HAPPENS or reward != 0.0 or terminated:
            return f"refusal gave {obs[:60]!r}, reward {reward}, terminated {terminated}"
        return None


def _names_in(command: str) -> list[str]:
    """The object/receptacle names of an ALFWorld or TextWorld command (``take apple 1 from table 2``)."""
    words = command.split(" ", 1)
    if len(words) < 2:
        return []
    rest = words[1].removeprefix("to ")
    for prep in (" from ", " to ", " with ", " into ", " on ", " in "):
        if prep in rest:
            return [part for part in rest.split(prep, 1) if part]
    return [rest]


META_ANSWERS = ("Are you sure you want to", 'does not provide "undo"', "Start of a transcript", "transcript failed",
                "End of transcript", "verified as intact")
"""What the Inform interpreter prints for restart/quit, undo, script/transcript and verify."""


class TextWorldFamily(Family):
    """State: the Z-machine's whole state (jericho ``get_state``) and TextWorld's facts, score, won/lost and
    admissible commands. Only refusals that are not sent to the game must keep all of it; a sent
    non-admissible command may move the world (Inform understands more than the admissible list), which is
    counted as ``invalid_world_changes``."""

    name = "textworld"
    episode_range = (30, 200)
    bad_resets = (*Family.bad_resets, {"options": {"game": "x"}}, {"options": {"game": -5}},
                  {"options": {"game": None}}, {"options": {"game": 1.5}}, {"options": {"game": 10**30}})
    world_keys = frozenset({"facts", "score", "won", "lost"})
    meta = ("save", "restore", "restart", "quit", "q", "undo", "script", "unscript", "transcript", "noscript",
            "verify")
    inform = ("again", "g", "oops", "oops table", "superbrief", "brief", "verbose", "score", "full", "full score",
              "notify", "notify off", "pronouns", "version", "y", "yes", "no", "it", "all", "take", "open", "wait",
              "z", "sleep", "xyzzy", "i", "x me", "n", "s", "e", "w", "u", "d", "ne", "get all", "take all",
              "drop all", "eat all", "look and quit", 'quit"', '"quit"', "say quit", "answer quit", "restart?",
              "quit!", "*quit", "-quit", "tw", "tw-", "look.", "look,", ".", ",", ";", "then", "look then",
              "go north then go south", "examine examine", "get", "put", "insert", "unlock", "lock")
    verbs = ("eat", "drink", "drop", "put", "insert", "cook", "slice", "chop", "dice", "unlock", "lock", "open",
             "close", "examine", "take", "go", "push", "pull", "wear", "smell", "listen to", "kiss", "attack")

    def __init__(self, games: Sequence[tuple[str, int, int]] = (("cooking", 1, 2), ("treasure", 1, 1),
                                                                  ("coin", 1, 1)),
                 cache_dir: str | None = None) -> None:
        super().__init__()
        self.games, self.cache_dir = tuple(games), cache_dir
        self.pool: list[gym.Env] = []

    def open(self) -> None:
        """One env per (kind, difficulty), games generated up front so that generation is not timed."""
        from agentdistill import envs
        from agentdistill_textworld import prepare, spec_for

        prepare([spec_for(k, d, "train", i) for k, d, n in self.games for i in range(n)], cache_dir=self.cache_dir)
        self.pool = [envs.make("agentdistill/TextWorld-v0", max_turns=NO_BUDGET, kind=k, difficulty=d,
                               num_games=n, cache_dir=self.cache_dir) for k, d, n in self.games]
        self.env = self.pool[0]

    def close(self) -> None:
        for env in self.pool:
            env.close()

    def reset(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        self.env = rng.choice(self.pool)
        return super().reset(rng)

    def draw(self, rng: random.Random, obs: str, info: Mapping[str, Any]) -> Action:
        valid = list(info.get("admissible_actions") or [])
        return text_action(rng, valid, [*self.inform, *self._metas(rng, valid), *self._mixed(rng, valid)])

    def _metas(self, rng: random.Random, valid: Sequence[str]) -> list[str]:
        """Interpreter meta-commands, alone or behind a separator Inform honours: the env must refuse them."""
        verb, other = rng.choice(self.meta), rng.choice(valid) if valid else "look"
        return [verb, _case(rng, verb), f"{other}. {verb}", f"{other},{verb}", f"{other};{verb}",
                f"{other} then {verb}", f"  {verb}  ", f"{verb}.", f"tw-{rng.choice(('print', 'trace-actions', 'x'))}",
                f"TW-{verb}", f"{other} THEN {verb}", f"{verb}\t{other}"]

    def _mixed(self, rng: random.Random, valid: Sequence[str]) -> list[str]:
        names = sorted({w for c in valid for w in _names_in(c)}) or ["cookbook"]
        return [f"{rng.choice(self.verbs)} {rng.choice(names)}", f"put {rng.choice(names)} on {rng.choice(names)}",
                f"insert {rng.choice(names)} into {rng.choice(names)}", f"take {rng.choice(names)}"]

    def step_problem(self, action: Action, obs: str) -> str | None:
        """The interpreter's answers to meta-commands must never appear: the env is meant to refuse them."""
        found = [marker for marker in META_ANSWERS if marker in obs]
        return f"a meta-command reached the interpreter: {found}" if found else None

    def _jericho(self) -> Any:
        inner = self.env.unwrapped._tw
        while not hasattr(inner, "_jericho"):
            inner = inner._wrapped_env
        return inner._jericho

    def state(self) -> dict[str, Hashable]:
        raw = self.env.unwrapped
        machine = hashlib.sha256()
        for part in self._jericho().get_state():
            machine.update(part.tobytes() if hasattr(part, "tobytes") else repr(part).encode())
        tracked = raw._state
        return {"z_machine": machine.hexdigest(), "facts": frozenset(map(str, tracked["_facts"])),
                "score": tracked["score"], "won": bool(tracked["won"]), "lost": bool(tracked["lost"]),
                "admissible": tuple(tracked["admissible_commands"])}

    def strict(self, action: Action, obs: str) -> bool:
        from agentdistill_textworld import REFUSED

        return obs == REFUSED

    def refusal_problem(self, action: Action, obs: str, reward: float, terminated: bool) -> str | None:
        """A refused (unsent) command gives ``REFUSED``, 0 and no ending. A sent non-admissible one that scores
        contradicts the docstring ("Invalid and refused commands give 0") but follows from sending it: counted
        as a note (``invalid_scored``), like ``invalid_world_changes``."""
        if not self.strict(action, obs):
            self.notes["invalid_scored"] += reward != 0.0
            return None
        if reward != 0.0 or terminated:
            return f"a refused command gave reward {reward}, terminated {terminated}"
        return None


class AppWorldFamily(Family):
    """State: the whole database and the REPL's variables (a planted sentinel). See the module docstring."""

    name = "appworld"
    episode_range = (200, 600)
    bad_resets = (*Family.bad_resets, {"options": {"task_id": None}}, {"options": {"task_id": "zz"}},
                  {"options": {"task_id": 5}}, {"options": {"task_id": "\ud800"}}, {"options": {"game": 1}})
    world_keys = frozenset({"db"})
    sentinel = "_fuzz_sentinel"
    setup = ("{sentinel} = {value!r}\n_fuzz_tok = {{}}\n_fuzz_me = apis.supervisor.show_profile()\n"
             "for _fuzz_acct in apis.supervisor.show_account_passwords():\n"
             "    _fuzz_app = _fuzz_acct['account_name']\n"
             "    _fuzz_user = _fuzz_me['phone'] if _fuzz_app == 'phone' else _fuzz_me['email']\n"
             "    _fuzz_tok[_fuzz_app] = getattr(apis, _fuzz_app).login(\n"
             "        username=_fuzz_user, password=_fuzz_acct['password'])['access_token']\n")

    def __init__(self, exec_timeout_s: float = 1.0, split: str = "train") -> None:
        super().__init__()
        self.exec_timeout_s, self.split = exec_timeout_s, split
        self.schedule: dict[int, str] = {}
        self.drawn = 0
        self.episode = 0
        self.reference: list[str] = []
        self.next_statement = 0
        self.specs: list[tuple[str, Any]] = []
        self.digest: tuple[int, str] | None = None

    def open(self) -> None:
        from agentdistill import envs

        self.env = envs.make("agentdistill/AppWorld-v0", max_turns=NO_BUDGET, split=self.split,
                             exec_timeout_s=self.exec_timeout_s)

    def prepare(self, rng: random.Random, n_actions: int) -> None:
        """Put the expensive cells at seeded positions, so a run holds exactly its quota of each."""
        kinds = [kind for kind, count in expensive_quota(n_actions).items() for _ in range(count)][:n_actions]
        self.schedule = dict(zip(rng.sample(range(1, n_actions + 1), k=len(kinds)), kinds, strict=True))

    def reset(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        obs, info = super().reset(rng)
        raw = self.env.unwrapped
        self.episode += 1
        self.reference, self.next_statement = list(raw._reference), 0
        self.specs = [(app, spec) for app, model in sorted(raw._ctx.apps.items())
                      for _, spec in sorted(model.specs.items())]
        self.digest = None  # a new database: its change counter starts afresh
        self._plant()
        return obs, info

    def _plant(self) -> None:
        """Set the sentinel and log in to every app (tokens for the wrong-argument calls): set-up, not fuzz."""
        obs = self.env.step(self.setup.format(sentinel=self.sentinel, value=f"episode-{self.episode}"))[0]
        if obs != "Execution successful.":
            self.notes["setup_failed"] += 1

    def draw(self, rng: random.Random, obs: str, info: Mapping[str, Any]) -> Action:
        self.drawn += 1
        kind = self.schedule.get(self.drawn) or _pick_weighted(rng, CODE_WEIGHTS)
        return Action(kind, self._code(rng, kind))

    def _code(self, rng: random.Random, kind: str) -> str:
        pools = {"raises": RAISES, "syntax": SYNTAX, "recursion": RECURSION, "memory": MEMORY,
                 "huge_print": HUGE_PRINT, "timeout": TIMEOUTS, "api_cap": API_CAP, "child_death": CHILD_DEATH,
                 "plain": PLAIN}
        if kind in pools:
            return rng.choice(pools[kind])
        if kind == "reference":
            return self._next_reference()
        if kind == "reference_near_miss":
            return near_miss(rng, rng.choice(self.reference or ["x = 1"]))
        if kind == "api_wrong_args":
            return wrong_call(rng, *rng.choice(self.specs))
        if kind == "api_near_miss":
            app, spec = rng.choice(self.specs)
            return misspelt_call(rng, app, spec.name)
        if kind == "empty":
            return ""
        if kind == "whitespace":
            return "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 12)))
        if kind == "unicode":
            return _insert(rng, rng.choice(PLAIN), rng.choice(UNICODE))
        if kind == "control":
            return _insert(rng, rng.choice(PLAIN), rng.choice(CONTROL))
        if kind == "random_text":
            return random_bytes_text(rng) if rng.random() < 0.5 else "".join(
                rng.choice(string.printable) for _ in range(rng.randint(1, 300)))
        return huge_text(rng, ["x = 1", "print('a')", "#", "(", "'''", "A", "apis.supervisor.show_profile()"])

    def _next_reference(self) -> str:
        """The reference solution's next statement; once it is spent, give up the task (ends the episode)."""
        if self.next_statement >= len(self.reference):
            return "apis.supervisor.complete_task(status='fail')"
        self.next_statement += 1
        return self.reference[self.next_statement - 1]

    def state(self) -> dict[str, Hashable]:
        """The database digest, recomputed only when SQLite's ``total_changes`` moved: every INSERT, UPDATE or
        DELETE (rolled back or not) moves it, so an unchanged counter proves an unchanged database."""
        db = self.env.unwrapped._ctx.db
        if self.digest is None or self.digest[0] != db.total_changes:
            self.digest = (db.total_changes, _db_digest(db))
        return {"db": self.digest[1]}

    def strict(self, action: Action, obs: str) -> bool:
        return action.kind not in LAX_CODE_KINDS

    def after_refusal(self, action: Action, obs: str, terminated: bool) -> str | None:
        """The REPL must keep its variables after a failed cell, unless the observation says it restarted."""
        from agentdistill_appworld.executor import KILLED_MESSAGE, PROTOCOL_MESSAGE, TIMEOUT_MESSAGE

        if terminated:
            return None
        if obs.startswith((TIMEOUT_MESSAGE.split("{")[0], KILLED_MESSAGE, PROTOCOL_MESSAGE)):
            self.notes["session_restarts"] += 1
            self._plant()
            return None
        probe = self.env.step(f"print({self.sentinel})")[0]
        if probe != f"episode-{self.episode}\n":
            self._plant()
            return f"REPL variables lost (the sentinel probe printed {probe[:80]!r})"
        return None

    def refusal_problem(self, action: Action, obs: str, reward: float, terminated: bool) -> str | None:
        from agentdistill_appworld.env import EMPTY_ACTION

        if not action.text.strip() and obs != EMPTY_ACTION:
            return f"an empty cell gave {obs[:60]!r}"
        if not obs.startswith("Execution failed"):
            return f"a failed cell's observation does not start with 'Execution failed': {obs[:60]!r}"
        if reward != 0.0 or (terminated and self.strict(action, obs)):
            return f"a failed cell gave reward {reward}, terminated {terminated}"
        return None


def _db_digest(db: Any) -> str:
    """sha256 over every table's rows, login tokens included (stricter than ``world_digest``)."""
    digest = hashlib.sha256()
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
        digest.update(table.encode())
        for row in sorted(repr(r) for r in db.execute(f'SELECT * FROM "{table}"')):
            digest.update(row.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


FAMILY_TYPES: dict[str, type[Family]] = {
    "sokoban": SokobanFamily, "alfworld": ALFWorldFamily, "textworld": TextWorldFamily, "appworld": AppWorldFamily,
}


# ------------------------------------------------------------------------------------------------ harness


@dataclass
class Tally:
    """What one family's fuzz run found. ``state_changes`` and ``host_crashes`` are the failures."""

    family: str
    actions: int = 0
    refused: int = 0
    accepted: int = 0
    checked: int = 0
    host_crashes: int = 0
    state_changes: int = 0
    contract_violations: int = 0
    obs_outside_space: int = 0
    invalid_world_changes: int = 0
    episodes: int = 0
    bad_resets: int = 0
    wall_s: float = 0.0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    kind_s: dict[str, float] = field(default_factory=dict)
    """Seconds spent in ``env.step`` per kind (wall clock, so not part of a seeded run's identity)."""
    notes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def count(self, kind: str, what: str) -> None:
        row = self.by_kind.setdefault(kind, {"n": 0, "refused": 0})
        row[what] = row.get(what, 0) + 1

    def example(self, what: str, action: Action, detail: str) -> None:
        """Keep the first few failures of each sort, the action shortened so the JSON stays small."""
        shown = self.examples.setdefault(what, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append({"kind": action.kind, "action": ascii(action.text[:160]), "len": str(len(action.text)),
                          "detail": detail[:400]})


def fuzz(family: Family, n_actions: int, seed: int) -> Tally:
    """Play ``n_actions`` fuzz actions on ``family`` (seeded) and tally crashes, refusals and state changes."""
    rng = random.Random(f"{family.name}:{seed}")
    tally = Tally(family.name)
    family.open()
    family.prepare(rng, n_actions)
    start = time.perf_counter()
    try:
        while tally.actions < n_actions:
            started = _start_episode(family, rng, tally)
            if started is None:
                continue
            _play_episode(family, rng, tally, *started, budget=n_actions - tally.actions)
    finally:
        tally.wall_s = time.perf_counter() - start
        tally.notes = dict(family.notes)
        family.close()
    return tally


def _start_episode(family: Family, rng: random.Random, tally: Tally) -> tuple[str, dict[str, Any]] | None:
    """Maybe try a bad reset first (it may only raise a documented error), then a good one."""
    if rng.random() < BAD_RESET_RATE:
        tally.bad_resets += 1
        kwargs = rng.choice(family.bad_resets)
        try:
            family.env.reset(**kwargs)
        except DOCUMENTED_RESET_ERRORS:
            pass
        except Exception as err:  # noqa: BLE001 - the point is to catch what should not escape
            _crash(family, tally, Action("bad_reset", repr(kwargs)), err)
    try:
        obs, info = family.reset(rng)
    except Exception as err:  # noqa: BLE001
        _crash(family, tally, Action("reset", "reset"), err)
        tally.actions += 1  # never loop forever on an env that cannot reset
        return None
    tally.episodes += 1
    return obs, info


def _play_episode(family: Family, rng: random.Random, tally: Tally, obs: str, info: dict[str, Any],
                  budget: int) -> None:
    for _ in range(min(budget, rng.randint(*family.episode_range))):
        action = family.draw(rng, obs, info)
        before = family.state()
        tally.actions += 1
        tally.count(action.kind, "n")
        start = time.perf_counter()
        try:
            obs, reward, terminated, truncated, info = family.env.step(action.text)
        except Exception as err:  # noqa: BLE001
            _crash(family, tally, action, err)
            return
        finally:
            tally.kind_s[action.kind] = tally.kind_s.get(action.kind, 0.0) + time.perf_counter() - start
        _check_step(family, tally, action, obs, reward, terminated, truncated, info)
        if info.get("invalid_action"):
            _check_refusal(family, tally, action, before, obs, reward, terminated)
        else:
            tally.accepted += 1
        if terminated or truncated:
            return


def _check_step(family: Family, tally: Tally, action: Action, obs: Any, reward: Any, terminated: Any,
                truncated: Any, info: Any) -> None:
    """The step contract every action must keep, refused or not."""
    problem = None
    if not isinstance(obs, str):
        problem = f"observation is {type(obs).__name__}, not str"
    elif not isinstance(reward, (int, float)) or isinstance(reward, bool) or not math.isfinite(reward):
        problem = f"reward {reward!r} is not a finite number"
    elif not isinstance(terminated, bool) or not isinstance(truncated, bool) or truncated:
        problem = f"flags terminated={terminated!r} truncated={truncated!r}"
    elif not isinstance(info, dict) or not {"task", "task_id", "invalid_action"} <= set(info):
        problem = f"info lacks task/task_id/invalid_action: {sorted(info) if isinstance(info, dict) else info!r}"
    problem = problem or family.step_problem(action, obs)
    if problem:
        tally.contract_violations += 1
        tally.example("contract", action, problem)
    elif not family.env.observation_space.contains(obs):
        tally.obs_outside_space += 1
        bad = sorted({c for c in obs if c not in family.env.observation_space.character_set})[:10]
        tally.example("obs_outside_space", action, f"len {len(obs)}, characters outside the space: {ascii(bad)}")


def _check_refusal(family: Family, tally: Tally, action: Action, before: Mapping[str, Hashable], obs: str,
                   reward: Any, terminated: bool) -> None:
    tally.refused += 1
    tally.count(action.kind, "refused")
    after = family.state()
    changed = [key for key in before if before[key] != after[key]]
    if family.strict(action, obs):
        tally.checked += 1
        repl = family.after_refusal(action, obs, terminated)
        if changed or repl:
            tally.state_changes += 1
            tally.count(action.kind, "state_changes")
            tally.example("state_change", action, f"changed {changed} {repl or ''}; observation {obs[:120]!r}")
    elif set(changed) & family.world_keys:
        tally.invalid_world_changes += 1
        tally.example("invalid_world_change", action, f"changed {changed}; observation {obs[:120]!r}")
    problem = family.refusal_problem(action, obs, reward, terminated)
    if problem:
        tally.contract_violations += 1
        tally.example("refusal_contract", action, problem)


def _crash(family: Family, tally: Tally, action: Action, err: BaseException) -> None:
    """Count an exception that escaped the env, then get a working env back (reset, or a new one)."""
    tally.host_crashes += 1
    tally.count(action.kind, "crashes")
    where = traceback.extract_tb(err.__traceback__)[-1]
    tally.example("host_crash", action, f"{type(err).__name__}: {err} at {where.filename}:{where.lineno}")
    try:
        family.env.reset(seed=0)
    except Exception:  # noqa: BLE001 - a broken env is replaced, not investigated
        family.close()
        family.open()


# ------------------------------------------------------------------------------------------------- report


def run_family(name: str, n_actions: int, seed: int, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fuzz one family by name; the result as a plain dict (it crosses a process boundary)."""
    return asdict(fuzz(FAMILY_TYPES[name](**(options or {})), n_actions, seed))


def run_isolated(name: str, n_actions: int, seed: int) -> dict[str, Any]:
    """``run_family`` in a fresh child process: a crash that kills the interpreter becomes a counted crash."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        try:
            return pool.submit(run_family, name, n_actions, seed).result()
        except BrokenProcessPool as err:
            died = asdict(Tally(name, host_crashes=1))
            died["examples"] = {"host_crash": [{"kind": "process", "action": "", "len": "0",
                                                "detail": f"the fuzzing process died: {err}"}]}
            return died


COLUMNS = ("family", "actions", "refused", "accepted", "checked", "host_crashes", "state_changes", "episodes",
           "wall_s")


def print_table(results: Sequence[Mapping[str, Any]]) -> None:
    print(" ".join(f"{c:>13}" for c in COLUMNS))
    for r in results:
        print(" ".join(f"{r[c]:>13.1f}" if c == "wall_s" else f"{r[c]:>13}" for c in COLUMNS))
    for r in results:
        extras = {k: r[k] for k in ("contract_violations", "obs_outside_space", "invalid_world_changes", "bad_resets")}
        print(f"{r['family']}: {extras} {r['notes'] or ''}")
        kinds = ", ".join(f"{k} {v['n']}/{v.get('refused', 0)} ({r['kind_s'].get(k, 0.0):.1f} s)"
                          for k, v in sorted(r["by_kind"].items()))
        print(f"  actions/refused (step seconds) by kind: {kinds}")
        for what, shown in r["examples"].items():
            for example in shown[:3]:
                print(f"  {what}: [{example['kind']}] {example['action'][:80]} -> {example['detail'][:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=10_000, help="fuzz actions per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()

    start = time.perf_counter()
    results = [run_isolated(name, args.actions, args.seed) for name in args.families]
    print_table(results)
    total = {key: sum(r[key] for r in results) for key in ("actions", "refused", "checked", "host_crashes",
                                                          "state_changes", "contract_violations", "obs_outside_space",
                                                          "invalid_world_changes")}
    summary = {"machine": f"{platform.machine()} {platform.processor()}".strip(), "python": sys.version.split()[0],
               "command": " ".join(sys.argv), "actions_per_family": args.actions, "seed": args.seed,
               "appworld_expensive_quota": expensive_quota(args.actions), "wall_s": time.perf_counter() - start,
               "totals": total, "families": results}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"actions: {total['actions']}")
    print(f"refused_checked: {total['checked']}")
    print(f"host_crashes: {total['host_crashes']}")
    print(f"refused_state_changes: {total['state_changes']}")
    print(f"contract_violations: {total['contract_violations']}")
    print(f"obs_outside_space: {total['obs_outside_space']}")
    print(f"invalid_world_changes: {total['invalid_world_changes']}")


if __name__ == "__main__":
    main()
