"""Argument values the apps share: money as integer cents, ISO dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from agentdistill_appworld.framework import Unprocessable

MAX_AMOUNT_CENTS = 100_000_000  # $1,000,000.00 per payment, request, expense, deposit or withdrawal


def to_cents(value: float, name: str = "amount", *, allow_zero: bool = False) -> int:
    """An amount argument as integer cents: finite, > 0 (>= 0 with ``allow_zero``), at most 2 decimals.

    Decimal arithmetic on the number's shortest repr, so 0.1 + 0.2-style float noise never decides a check.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unprocessable(f"{name} must be a number, got {value!r}")
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        raise Unprocessable(f"{name} must be a number, got {value!r}") from None
    if not exact.is_finite():
        raise Unprocessable(f"{name} must be a finite number, got {value!r}")
    if exact < 0 or (exact == 0 and not allow_zero):
        raise Unprocessable(f"{name} must be {'at least 0' if allow_zero else 'greater than 0'}, got {value!r}")
    if exact * 100 > MAX_AMOUNT_CENTS:
        raise Unprocessable(f"{name} must be at most {MAX_AMOUNT_CENTS / 100:.2f}, got {value!r}")
    if exact != exact.quantize(Decimal("0.01")):
        raise Unprocessable(f"{name} must have at most 2 decimals (whole cents), got {value!r}; "
                            f"round it, e.g. {name}={round(value, 2)}")
    return int(exact * 100)


def money(cents: int) -> float:
    """Cents as a number of dollars with 2 decimals."""
    return round(cents / 100, 2)


def fmt_cents(cents: int) -> str:
    return f"{cents / 100:.2f}"


def clean_text(value: str, name: str, limit: int) -> str:
    """``value`` stripped, or 422 when it is empty or longer than ``limit`` characters."""
    clean = value.strip()
    if not clean:
        raise Unprocessable(f"{name} must not be empty")
    if len(clean) > limit:
        raise Unprocessable(f"{name} must have at most {limit} characters, got {len(clean)}")
    return clean


def check_date(value: str, name: str) -> str:
    """``value`` if it is a date YYYY-MM-DD, else 422 naming the parameter."""
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None
    if len(value) != 10:
        raise Unprocessable(f"{name} must be a date YYYY-MM-DD, got {value!r}")
    return value
