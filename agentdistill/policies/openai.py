"""Chat models behind any OpenAI-compatible endpoint (OpenAI, vLLM's ``serve``, other gateways).

``OpenAIClient`` is the one place that talks HTTP: a bounded number of requests in flight, retries with
jittered exponential backoff on 429 / 5xx / timeouts / dropped connections (``Retry-After`` honoured), a
per-call timeout, and a running ``Usage`` (calls, tokens, retries, dollars). Errors that retrying cannot fix
(wrong base URL, unknown model, bad key, a request the server rejects) raise ``EndpointError`` at once, with
the endpoint and the fix in the message. ``OpenAIPolicy`` adapts the client to the ``Policy`` protocol.

Cost is ``prompt_tokens · input + completion_tokens · output`` (USD per million tokens, from ``Price``),
with cached prompt tokens billed at ``cached_input`` when the server reports them and a cached price is
known. With ``n > 1`` the prompt is billed once, as the server reports it. Prices come from
``configs/prices.yaml`` (``load_prices``) or are passed explicitly; an unpriced model is an error, never a
silent $0.

HTTP replies carry text, not our token ids: completions from this policy have empty ``token_ids`` and no
log-probs, so they serve as teachers, summarisers and ICD agents, not as samplers for on-policy training.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openai

from agentdistill.policies.base import Completion, Prompt

log = logging.getLogger(__name__)

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


class EndpointError(RuntimeError):
    """An OpenAI-compatible endpoint failed in a way retrying cannot fix (the message names the fix)."""


@dataclass(frozen=True)
class Price:
    """List price in USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    """Price of prompt tokens the provider served from its cache; None bills them as ``input``."""

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached = cached_tokens if self.cached_input is not None else 0
        return ((prompt_tokens - cached) * self.input + cached * (self.cached_input or 0.0)
                + completion_tokens * self.output) / 1e6


def load_prices(path: str | os.PathLike | None = None) -> dict[str, Price]:
    """Read a price table (YAML: ``model: {input, output, cached_input?}``); default ``configs/prices.yaml``."""
    import yaml

    from agentdistill.config import config_dir

    path = Path(path) if path is not None else config_dir() / "prices.yaml"
    table = yaml.safe_load(path.read_text()) or {}
    try:
        return {str(model): Price(**entry) for model, entry in table.items()}
    except TypeError as e:
        raise ValueError(
            f"{path}: each entry must be 'model: {{input: X, output: Y, cached_input: Z}}' ({e})"
        ) from None


def price_for(model: str, prices: Mapping[str, Price] | None = None) -> Price:
    """The price of ``model`` from ``prices`` (default: ``configs/prices.yaml``), or a clear error."""
    prices = load_prices() if prices is None else prices
    if model not in prices:
        raise ValueError(
            f"no price for model {model!r}: add it to configs/prices.yaml or pass price_in/price_out "
            f"(USD per million tokens; 0 for a free local server). Priced models: {sorted(prices)}"
        )
    return prices[model]


@dataclass
class Usage:
    """What an endpoint has cost so far."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    retries: int = 0
    """Failed attempts that were retried (429, 5xx, timeouts, dropped connections)."""
    failures: int = 0
    """Calls that failed for good."""
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ChatReply:
    """One chat completion call: ``n`` choices and what the call cost."""

    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    attempts: int


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Mapping[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    response_format: Mapping[str, Any] | None = None
    """e.g. {"type": "json_schema", "json_schema": {...}}: constrained output (OpenAI and vLLM support it)."""


@dataclass
class OpenAIClient:
    """A chat-completions client for one model at one OpenAI-compatible endpoint.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1`` for ``vllm serve``.
        model: the served model name.
        price: its price; use ``price_for(model)`` for a listed model, ``Price(0, 0)`` for a free server.
        api_key: defaults to ``$OPENAI_API_KEY``, else a placeholder (local servers ignore it).
        max_concurrency: most requests in flight at once, across all threads using this client.
        timeout_s: per-attempt timeout.
        max_retries: retries after the first attempt for retryable failures.
        backoff_s, max_backoff_s: the n-th retry waits ``min(max_backoff_s, backoff_s·2ⁿ)`` scaled by a
            jitter in [0.5, 1], or the server's ``Retry-After`` when it sends one.
        check: ask ``GET /models`` once at construction, so a wrong URL, key or model fails at once.
    """

    base_url: str
    model: str
    price: Price
    api_key: str | None = None
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    check: bool = True
    usage: Usage = field(default_factory=Usage, init=False)

    def __post_init__(self) -> None:
        if self.max_concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "unused-by-local-servers"
        # Our own retry loop (below) counts and logs every retry; the SDK's would hide them.
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=0)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._jitter = random.Random(0)
        if self.check:
            self.check_endpoint()

    @classmethod
    def from_config(cls, endpoint: Any) -> OpenAIClient:
        """A client for an ``EndpointConfig``: priced by ``price_in``/``price_out`` when given (both or neither),
        else by the price table."""
        e = endpoint
        if (e.price_in is None) != (e.price_out is None):
            raise ValueError("give both endpoint.price_in and endpoint.price_out, or neither (then the price table)")
        price = Price(e.price_in, e.price_out) if e.price_in is not None else price_for(e.model)
        return cls(e.base_url, e.model, price, api_key=e.api_key, max_concurrency=e.max_concurrency,
                   timeout_s=e.timeout_s, max_retries=e.max_retries)

    def check_endpoint(self) -> list[str]:
        """List the served models; raise ``EndpointError`` naming the fix if the URL, key or model is wrong."""
        try:
            served = [m.id for m in self._client.models.list()]
        except openai.APIConnectionError as e:
            raise EndpointError(
                f"nothing answers at {self.base_url} ({e.__cause__ or e}): start the server (e.g. "
                f"`python -m vllm.entrypoints.openai.api_server --model MODEL --port 8000`) or fix base_url"
            ) from None
        except openai.APIStatusError as e:
            raise EndpointError(self._explain(e)) from None
        if served and self.model not in served:
            raise EndpointError(f"{self.base_url} does not serve model {self.model!r}; it serves {served}")
        return served

    def chat(self, request: ChatRequest) -> ChatReply:
        """One chat completion, retried on transient failures; adds its usage to ``self.usage``."""
        attempt = 0
        while True:
            try:
                with self._slots:
                    # Our messages and response_format are plain dicts; the SDK types them as its TypedDicts.
                    response = self._client.chat.completions.create(  # type: ignore[call-overload]
                        model=self.model, messages=list(request.messages), temperature=request.temperature,
                        max_tokens=request.max_tokens, n=request.n, seed=request.seed,
                        stop=list(request.stop) or None,
                        **({"response_format": dict(request.response_format)} if request.response_format else {}),
                    )
                break
            except _RETRYABLE as e:
                if attempt >= self.max_retries:
                    self._count(failures=1)
                    raise EndpointError(
                        f"{self.base_url} failed {attempt + 1} times for model {self.model!r}, last with "
                        f"{_describe(e)}: check the server's log and load, or raise max_retries/timeout_s"
                    ) from e
                delay = self._delay(attempt, e)
                log.warning("%s: %s; retry %d/%d in %.1fs", self.base_url, _describe(e), attempt + 1,
                            self.max_retries, delay)
                self._count(retries=1)
                attempt += 1
                time.sleep(delay)
            except openai.APIStatusError as e:
                self._count(failures=1)
                raise EndpointError(self._explain(e)) from e
        usage = response.usage
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        details = getattr(usage, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
        cost = self.price.cost(prompt, completion, cached)
        self._count(calls=1, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, cost_usd=cost)
        choices = sorted(response.choices, key=lambda c: c.index)
        return ChatReply(
            texts=tuple(c.message.content or "" for c in choices),
            finish_reasons=tuple(c.finish_reason or "stop" for c in choices),
            prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, cost_usd=cost,
            attempts=attempt + 1,
        )

    def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        """Many calls at once (at most ``max_concurrency`` in flight), replies in request order."""
        if len(requests) <= 1:
            return [self.chat(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(self.chat, requests))

    def _delay(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        with self._lock:
            jitter = 0.5 + 0.5 * self._jitter.random()
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * jitter

    def _count(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self.usage, name, getattr(self.usage, name) + amount)

    def _explain(self, e: openai.APIStatusError) -> str:
        where = f"{self.base_url} (model {self.model!r}) answered HTTP {e.status_code}: {_body(e)}"
        if e.status_code in (401, 403):
            return f"{where}. Set api_key (or $OPENAI_API_KEY) to a key this endpoint accepts"
        if e.status_code == 404:
            hint = " (OpenAI-compatible servers, vLLM's included, serve under /v1)" if not \
                self.base_url.rstrip("/").endswith("/v1") else ""
            return f"{where}. Check base_url{hint} and the model name"
        if e.status_code in (400, 422):
            return f"{where}. The server rejected the request: check max_tokens against the context length"
        return where


def _describe(e: Exception) -> str:
    status = getattr(e, "status_code", None)
    return f"HTTP {status}" if status is not None else type(e).__name__


def _body(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, Mapping):
        body = body.get("message") or body.get("error") or body
    text = str(body if body is not None else e.message)
    return text if len(text) <= 300 else text[:300] + "…"


class OpenAIPolicy:
    """A ``Policy`` that answers each prompt's chat messages through an ``OpenAIClient``.

    Every prompt of a batch is sent at once (the client bounds concurrency). Sampling seeds are passed to
    the server (vLLM honours them; OpenAI treats them as best effort).
    """

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(self, client: OpenAIClient, *, temperature: float = 0.0, max_new_tokens: int = 256,
                 stop: Sequence[str] = (), name: str | None = None):
        self.client = client
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.stop = tuple(stop)
        self.name = name or f"openai:{client.model}"

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        requests = [
            ChatRequest(
                messages=tuple({"role": m.role, "content": m.content} for m in p.messages),
                temperature=self.temperature, max_tokens=self.max_new_tokens, seed=p.sample_seed % 2**31,
                stop=self.stop,
            )
            for p in prompts
        ]
        return [
            Completion(text=r.texts[0], finish_reason="length" if r.finish_reasons[0] == "length" else "stop",
                       cost_usd=r.cost_usd, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens)
            for r in self.client.chat_many(requests)
        ]

    @property
    def usage(self) -> Usage:
        return self.client.usage
