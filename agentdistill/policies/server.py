"""Sampling from a separate ``vllm serve``: token ids in, token ids and their sampler log-probs out.

Each prompt is sent as its rendered ids (a token-id prompt to ``/v1/completions``: never decoded and
re-tokenised), and each reply comes back as the sampled ids (``return_token_ids``) with their log-probs
(``logprobs=0``: the sampled token's only). The server computes those after temperature
(``--logprobs-mode processed_logprobs``, which ``VLLMServer`` sets), so they are log-probs of the distribution
each id was drawn from, the π_old trainers use — the same quantity ``HFPolicy`` and ``VLLMPolicy`` record.
Requests carry ``top_p=1, top_k=0`` explicitly, so a model folder's sampling defaults never narrow that
distribution. A reply that ends on an end-of-turn token keeps it: the server returns the EOS it sampled among
the ids (only the text drops it), exactly as ``VLLMPolicy`` does, so training scores the ids that were sampled.

Each prompt is its own request with its own seed (``Prompt.sample_seed``), so a reply does not depend on which
other prompts were in the batch; a batch's requests run concurrently on threads and the server batches them.

``load_weights(model)`` pushes the training model into the server through vLLM's weight-transfer API
(``agentdistill.serving.weight_sync``), which makes the training loops' ``sync_sampler(policy, model)`` work
unchanged. ``variant`` shares the server and the weight sync.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from agentdistill.policies.base import Completion, TokenIdSampler
from agentdistill.serving.client import ServerClient, ServerError
from agentdistill.serving.weight_sync import PushStats, ServerWeightSync


class ServerPolicy(TokenIdSampler):
    """Sample replies from a ``vllm serve`` given prompt token ids; exact ids and sampler log-probs.

    Args:
        base_url: the server's root, ``http://host:port`` (``VLLMServer.url``; a trailing ``/v1`` is accepted).
        temperature: sampling temperature; 0 is greedy.
        max_new_tokens: token budget per reply.
        stop_token_ids: ids that end a reply besides the model's EOS.
        weight_folder: where ``load_weights`` writes weight files (the server must see it at the same path);
            None: this policy cannot take weights, and ``load_weights`` raises.
        model: the served model name; None lets the server use its only model.
        max_concurrency: most requests in flight at once.
        timeout_s: per-request timeout.
    """

    def __init__(
        self,
        base_url: str,
        *,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        stop_token_ids: Sequence[int] = (),
        weight_folder: str | os.PathLike | None = None,
        model: str | None = None,
        max_concurrency: int = 16,
        timeout_s: float = 600.0,
        name: str = "server",
    ):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.client = ServerClient(base_url, timeout_s=timeout_s, max_concurrency=max_concurrency)
        self.sync = ServerWeightSync(base_url, weight_folder, timeout_s=timeout_s) if weight_folder else None
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.stop_token_ids = tuple(stop_token_ids)
        self.model, self.name = model, name

    def generate(self, prompt_ids: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Completion]:
        """One reply per prompt (a list of token ids), each sampled with its own seed."""
        if len(prompt_ids) != len(seeds):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(seeds)} seeds")
        if any(len(ids) == 0 for ids in prompt_ids):
            raise ValueError("every prompt needs at least one token id")
        return self.client.map(self._complete, list(zip(prompt_ids, seeds, strict=True)))

    def load_weights(self, model: torch.nn.Module) -> PushStats | None:
        """Push a transformers model's weights (same architecture) into the server; see ``ServerWeightSync``.
        Under FSDP every rank calls it. Returns the push's timings on rank 0."""
        if self.sync is None:
            raise ValueError(f"{self.name}: this ServerPolicy has no weight_folder, so it cannot send the server new "
                             "weights (and would sample from stale ones): pass weight_folder=... (a folder the "
                             "server sees at the same path)")
        return self.sync.push(model)

    def close(self) -> None:
        """Close the connections and delete the last weight file."""
        self.client.close()
        if self.sync is not None:
            self.sync.close()

    def _complete(self, job: tuple[Sequence[int], int]) -> Completion:
        ids, seed = job
        body: dict[str, Any] = {
            "prompt": [int(t) for t in ids], "max_tokens": self.max_new_tokens, "temperature": self.temperature,
            "top_p": 1.0, "top_k": 0, "seed": int(seed) % 2**63, "logprobs": 0, "return_token_ids": True,
            "stop_token_ids": list(self.stop_token_ids), "skip_special_tokens": True,
        }
        if self.model is not None:
            body["model"] = self.model
        reply = self.client.post("/v1/completions", body)
        choice = reply["choices"][0]
        token_ids = tuple(int(t) for t in choice.get("token_ids") or ())
        logprobs = tuple(float(x) for x in (choice.get("logprobs") or {}).get("token_logprobs") or ())
        if len(logprobs) != len(token_ids):
            raise ServerError(f"{self.client.url} returned {len(token_ids)} token ids but {len(logprobs)} log-probs: "
                              "is it a vLLM server (return_token_ids and logprobs are needed)?")
        finish = choice.get("finish_reason")
        if finish not in ("stop", "length"):
            raise ServerError(f"{self.client.url} ended a reply with finish_reason={finish!r} (aborted, e.g. by a "
                              "pause with mode=abort during a weight push); sample again")
        usage = reply.get("usage") or {}
        return Completion(text=choice["text"], token_ids=token_ids, logprobs=logprobs, finish_reason=finish,
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))
