"""The HTTP side shared by ``ServerPolicy``, ``ServerTeacher`` and ``ServerWeightSync``: one JSON client per
``vllm serve``, requests fanned out over threads, and errors that say what to do.

There are no retries: the server is ours (started next to the trainer), so a refused connection or a 5xx is a
fault to report, not load to wait out. HTTP model providers with rate limits go through
``agentdistill.policies.openai`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
R = TypeVar("R")

START_HINT = ("start one with agentdistill.serving.VLLMServer (docs/serving.md gives the `vllm serve` command), "
              "or fix the URL")


class ServerError(RuntimeError):
    """A ``vllm serve`` request failed; the message names the server, the route and the fix.

    Attributes:
        status: the HTTP status, or None when no reply came (unreachable, timed out).
        body: the reply's text (empty without a reply).
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


def root_url(url: str) -> str:
    """The server's root (``http://host:port``): the weight-transfer routes live there, the OpenAI ones under
    ``/v1``. Accepts either form."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class ServerClient:
    """JSON over HTTP to one server.

    Args:
        base_url: ``http://host:port`` (``/v1`` at the end is accepted and dropped).
        timeout_s: per-request timeout; a weight load or a long batch can take a while on a CPU.
        max_concurrency: most requests in flight at once from ``map``.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 600.0, max_concurrency: int = 16):
        if timeout_s <= 0 or max_concurrency < 1:
            raise ValueError(f"timeout_s > 0 and max_concurrency >= 1 are required, got {timeout_s}, "
                             f"{max_concurrency}")
        self.url = root_url(base_url)
        self.timeout_s, self.max_concurrency = timeout_s, max_concurrency
        # One pooled client for every thread (httpx.Client is thread-safe).
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s,
                                  limits=httpx.Limits(max_connections=max(max_concurrency, 4)))

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, None, params)

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        return self._send("POST", path, body, params)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]`` with up to ``max_concurrency`` calls in flight; results in order."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, Any]) -> Any:
        where = f"{method} {self.url}{path}"
        try:
            reply = self._http.request(method, path, json=body, params=params or None)
        except httpx.TimeoutException:
            raise ServerError(f"{where} got no reply within {self.timeout_s:g}s: the server is stuck or "
                              "overloaded (see its log), or raise timeout_s") from None
        except httpx.TransportError as e:
            raise ServerError(f"no vLLM server answers at {self.url} ({type(e).__name__}: {e}): "
                              f"{START_HINT}") from None
        if reply.status_code >= 400:
            raise ServerError(f"{where} failed with HTTP {reply.status_code}: {reply.text[:2000]}",
                              status=reply.status_code, body=reply.text)
        if not reply.content:
            return None
        try:
            return reply.json()
        except ValueError:
            return reply.text
