"""When do N student samples agree? Normalisers per action language, and the agreement rule.

- ``command``: text commands (ALFWorld-style): lower-case, whitespace collapsed, surrounding quotes and
  trailing punctuation dropped.
- ``code_ast``: Python code (AppWorld-style): the AST without positions, so formatting, comments, quote
  style and redundant parentheses do not matter; code that does not parse normalises to its stripped text.
- ``api_calls``: Python code reduced to the sequence of ``apis.<app>.<api>`` calls with their sorted keyword
  names (values ignored): agreement on *what* to call, not on every literal.

``agree(actions, normaliser)`` accepts when every sample normalises to the same key (``min_agree`` lets a
majority rule be configured: the share of samples that must share the most common key).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SPACES = re.compile(r"\s+")


def normalise_command(text: str) -> str:
    text = _SPACES.sub(" ", text.strip().lower())
    return text.strip("\"'`").rstrip(".!;").strip()


def normalise_code(code: str) -> str:
    try:
        return ast.dump(ast.parse(code.strip()), annotate_fields=True, include_attributes=False)
    except SyntaxError:
        return code.strip()


def api_call_signature(code: str) -> str:
    try:
        tree = ast.parse(code.strip())
    except SyntaxError:
        return code.strip()
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "apis":
                keywords = ",".join(sorted(k.arg for k in node.keywords if k.arg))
                calls.append((node.lineno, node.col_offset, f"{target.attr}.{node.func.attr}({keywords})"))
    return ";".join(sig for *_, sig in sorted(calls))


NORMALISERS: dict[str, Callable[[str], str]] = {
    "command": normalise_command, "code_ast": normalise_code, "api_calls": api_call_signature}


@dataclass(frozen=True)
class Agreement:
    accepted: bool
    action: str | None
    """The first sample with the winning key, when accepted."""
    share: float
    """Fraction of samples with the most common key."""
    keys: tuple[str, ...]


def agree(actions: Sequence[str | None], normaliser: str = "command", *, min_agree: float = 1.0) -> Agreement:
    """Accept when at least ``min_agree`` of the samples (1.0: all) share one normalised key.

    A sample that failed to parse (None) never agrees with anything.
    """
    if not actions:
        raise ValueError("agree needs at least one sample")
    if normaliser not in NORMALISERS:
        raise ValueError(f"unknown normaliser {normaliser!r}; choose from {sorted(NORMALISERS)}")
    if not 0.0 < min_agree <= 1.0:
        raise ValueError(f"min_agree must be in (0, 1], got {min_agree}")
    norm = NORMALISERS[normaliser]
    keys = tuple(norm(a) if a is not None else f"<unparsed {i}>" for i, a in enumerate(actions))
    key, count = Counter(keys).most_common(1)[0]
    share = count / len(keys)
    accepted = share >= min_agree and not key.startswith("<unparsed")
    action = next(a for a, k in zip(actions, keys, strict=False) if k == key) if accepted else None
    return Agreement(accepted=accepted, action=action, share=share, keys=keys)
