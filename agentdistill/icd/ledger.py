"""Cost ledger: what every call billed, under an explicit billing model, and the amortisation arithmetic.

Billing of N student samples per step (the choice moves costs by up to N×, so it is explicit and reported):

- ``samples="one_call"``: one request with ``n=N`` — the prompt is billed once, completions N times;
- ``samples="separate_calls"``: N requests — the prompt is billed N times.

With ``prompt_caching=True`` a call's cached prompt tokens (reported by the provider, or the prefix shared
with the same role's previous request in the episode — see ``icd.agent``) are billed at the cached price
(when the price table has one), and so are the repeated prompts of ``separate_calls``; otherwise every
prompt token is billed at the input price.

Amortisation (envs_and_icd.md §1.6): collecting demonstrations costs ``C_demo`` once; afterwards the method
costs ``c_method`` per episode against the teacher's ``c_teacher``. Total(n) = C_demo + n·c_method, so the
break-even number of episodes is n* = C_demo / (c_teacher − c_method) (never, when the method is not cheaper),
and the savings after n episodes are n·(c_teacher − c_method) − C_demo.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Literal

from agentdistill.policies.openai import Price

SAMPLE_BILLING = ("one_call", "separate_calls")


@dataclass(frozen=True)
class BillingModel:
    samples: Literal["one_call", "separate_calls"] = "one_call"
    """How N samples are requested: one call with n=N (prompt billed once) or N calls (prompt billed N×)."""
    prompt_caching: bool = False
    """Bill cached prompt tokens at the cached price."""

    def __post_init__(self) -> None:
        if self.samples not in SAMPLE_BILLING:
            raise ValueError(f"samples must be one of {SAMPLE_BILLING}, got {self.samples!r}")


@dataclass(frozen=True)
class Call:
    """One step's call(s) by one role: tokens as the provider reports them for ONE request."""

    episode: str
    role: Literal["student", "teacher"]
    model: str
    prompt_tokens: int
    completion_tokens: int
    """Over all samples of the request(s)."""
    samples: int = 1
    cached_tokens: int = 0


def call_cost(call: Call, price: Price, billing: BillingModel) -> float:
    """Dollars for ``call`` under ``billing`` (see the module docstring).

    With ``separate_calls`` and prompt caching, the 2nd..Nth requests of a step find the whole prompt cached.
    """
    prompt_price = Price(price.input, 0.0, price.cached_input)
    cached = call.cached_tokens if billing.prompt_caching else 0
    first = prompt_price.cost(call.prompt_tokens, 0, cached)
    repeats = call.samples - 1 if billing.samples == "separate_calls" else 0
    repeat = prompt_price.cost(call.prompt_tokens, 0, call.prompt_tokens if billing.prompt_caching else 0)
    return first + repeats * repeat + call.completion_tokens * price.output / 1e6


@dataclass
class Ledger:
    """Every call with its cost; totals per episode and role. ``prices`` are stored with the run."""

    prices: dict[str, Price]
    billing: BillingModel = field(default_factory=BillingModel)
    calls: list[tuple[Call, float]] = field(default_factory=list)

    def add(self, call: Call) -> float:
        if call.model not in self.prices:
            raise ValueError(f"no price for model {call.model!r} in the ledger's price table {sorted(self.prices)}")
        cost = call_cost(call, self.prices[call.model], self.billing)
        self.calls.append((call, cost))
        return cost

    def by_episode(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(lambda: {"student": 0.0, "teacher": 0.0})
        for call, cost in self.calls:
            out[call.episode][call.role] += cost
        return {k: {**v, "total": v["student"] + v["teacher"]} for k, v in out.items()}

    def total(self, role: str | None = None) -> float:
        return sum(cost for call, cost in self.calls if role is None or call.role == role)

    def to_dict(self) -> dict:
        return {"billing": asdict(self.billing), "prices": {m: asdict(p) for m, p in self.prices.items()},
                "calls": [{**asdict(c), "cost_usd": cost} for c, cost in self.calls]}


def break_even_episodes(demo_cost: float, teacher_per_episode: float, method_per_episode: float) -> float:
    """n* = C_demo / (c_teacher − c_method); ``math.inf`` when the method is not cheaper per episode."""
    saving = teacher_per_episode - method_per_episode
    if demo_cost < 0:
        raise ValueError(f"demo_cost must be >= 0, got {demo_cost}")
    return demo_cost / saving if saving > 0 else math.inf


def savings_after(episodes: float, demo_cost: float, teacher_per_episode: float, method_per_episode: float) -> float:
    """n·(c_teacher − c_method) − C_demo: what the method has saved after ``episodes`` episodes (< 0 before n*)."""
    return episodes * (teacher_per_episode - method_per_episode) - demo_cost
