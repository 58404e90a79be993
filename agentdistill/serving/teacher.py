"""Teacher log-probs from a ``vllm serve``: the log-probs of given response ids under given prompt ids.

For each row the server prefills ``prompt_ids ⊕ response_ids`` and reports prompt log-probs
(``prompt_logprobs``; ``max_tokens=1`` samples one throw-away token). Position ``len(prompt) + t`` holds
response token ``t``'s log-prob given everything before it, i.e.

    log π(y_t | x, y_<t) = log_softmax(logits_t)[y_t]

with the ``K`` most likely ids alongside when ``top_k`` is asked (the server's ``--max-logprobs`` bounds K).
Results have ``agentdistill.scoring.score``'s layout (``Scored``: right-padded ``_BT`` tensors, exact zeros
off the mask), so a teacher on another server slots in where a local teacher model was scored.

vLLM computes prompt log-probs before any sampling step, hence at temperature 1 only; ``score`` refuses
another temperature rather than return something else. The server must serve a model with the student's
tokenizer (the ids are shared, never re-tokenised).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from agentdistill.scoring import Scored
from agentdistill.serving.client import ServerClient, ServerError


class ServerTeacher:
    """Scores response ids under prompts with the model a ``vllm serve`` holds.

    Args:
        base_url: the server's root, ``http://host:port`` (a trailing ``/v1`` is accepted).
        model: the served model name; None lets the server use its only model.
        max_concurrency: most rows in flight at once (one request per row).
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str, *, model: str | None = None, max_concurrency: int = 16,
                 timeout_s: float = 600.0):
        self.client = ServerClient(base_url, timeout_s=timeout_s, max_concurrency=max_concurrency)
        self.model = model

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Scored:
        """``Scored`` with ``logprobs_BT``/``mask_BT`` (+ ``topk_ids_BTK``/``topk_logprobs_BTK`` with ``top_k``),
        float32 on the CPU; B = len(prompts), T = the longest response."""
        if len(prompts) != len(responses) or not prompts:
            raise ValueError(f"need as many prompts as responses, at least one: got {len(prompts)} prompts and "
                             f"{len(responses)} responses")
        if temperature != 1.0:
            raise ValueError(f"a server's prompt log-probs are untempered: score at temperature 1.0, not "
                             f"{temperature}")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token: the first response id is predicted from it")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        rows = self.client.map(lambda row: self._row(row[0], row[1], top_k), list(zip(prompts, responses,
                                                                                       strict=True)))
        B, T, K = len(prompts), max(len(r) for r in responses), top_k or 0
        logprobs_BT = torch.zeros((B, T), dtype=torch.float32)
        mask_BT = torch.zeros((B, T), dtype=torch.bool)
        topk_ids_BTK = torch.zeros((B, T, K), dtype=torch.long)
        topk_logprobs_BTK = torch.zeros((B, T, K), dtype=torch.float32)
        for b, (sampled, top) in enumerate(rows):
            n = len(sampled)
            logprobs_BT[b, :n] = torch.tensor(sampled, dtype=torch.float32)
            mask_BT[b, :n] = True
            for t, entries in enumerate(top):
                topk_ids_BTK[b, t] = torch.tensor([i for i, _ in entries], dtype=torch.long)
                topk_logprobs_BTK[b, t] = torch.tensor([lp for _, lp in entries], dtype=torch.float32)
        if top_k is None:
            return Scored(logprobs_BT=logprobs_BT, mask_BT=mask_BT, temperature=temperature)
        return Scored(logprobs_BT=logprobs_BT, mask_BT=mask_BT, temperature=temperature, topk_ids_BTK=topk_ids_BTK,
                      topk_logprobs_BTK=topk_logprobs_BTK)

    def close(self) -> None:
        self.client.close()

    def _row(self, prompt: Sequence[int], response: Sequence[int],
             top_k: int | None) -> tuple[list[float], list[list[tuple[int, float]]]]:
        """One row: the response ids' log-probs, and per response position the top-k (id, log-prob) pairs."""
        if not response:
            return [], []
        body: dict[str, Any] = {"prompt": [*map(int, prompt), *map(int, response)], "max_tokens": 1,
                                "temperature": 0.0, "prompt_logprobs": top_k or 0}
        if self.model is not None:
            body["model"] = self.model
        reply = self.client.post("/v1/completions", body)
        positions = reply["choices"][0].get("prompt_logprobs")
        if not positions or len(positions) != len(prompt) + len(response):
            raise ServerError(f"{self.client.url} returned no prompt log-probs for a {len(prompt) + len(response)}-"
                              "token sequence: is it a vLLM server?")
        sampled, top = [], []
        for t, token in enumerate(response):
            entries = {int(i): float(e["logprob"]) for i, e in positions[len(prompt) + t].items()}
            sampled.append(entries[int(token)])
            if top_k:  # the sampled id rides along even outside the top k: keep the k most likely
                top.append(sorted(entries.items(), key=lambda kv: -kv[1])[:top_k])
        return sampled, top
