"""Batched sampling from a transformers causal LM, returning the exact sampled ids and their log-probs.

Prompts are left-padded into one batch with position ids counted from each row's first real token (their
shared prefix, the system prompt, runs once: ``scoring.forward_with_prefix``), then decoded token by token
with a KV cache. Each row draws its own Gumbel noise from a generator seeded by the
prompt's ``sample_seed``, so a reply does not depend on which other prompts share its batch: batched and
one-by-one rollouts give the same episodes (up to float ties between near-equal logits).

``logprobs[t] = log softmax(logits_t / temperature)[ids[t]]``: the log-probability of each sampled id
under the distribution it was drawn from. With ``temperature == 0`` decoding is greedy and the log-probs
are those of the untempered model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from agentdistill.models import eos_token_ids
from agentdistill.policies.base import Completion, Prompt
from agentdistill.scoring import forward_with_prefix, shared_prefix_length


class HFPolicy:
    """Sample replies from a transformers model (CPU fp32 or CUDA bf16)."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        batch_size: int = 32,
        name: str = "hf",
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; load it with agentdistill.models.load_tokenizer")
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.max_new_tokens, self.batch_size = temperature, max_new_tokens, batch_size
        self.name = name
        self.eos_ids = frozenset(eos_token_ids(tokenizer, model))

    def load_weights(self, model: torch.nn.Module) -> None:
        """Copy ``model``'s weights into the model this policy samples from, when that is a separate replica
        (the full copy a sharded trainer samples from: a collective, every rank calls it); nothing when the
        policy samples from ``model`` itself."""
        if model is self.model:
            return
        from agentdistill.dist import full_state_dict

        self.model.load_state_dict(full_state_dict(model))

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            if any(p.token_ids is None for p in chunk):
                raise ValueError("HFPolicy needs token ids: pass the tokenizer to rollout()")
            out += self.generate([list(p.token_ids) for p in chunk if p.token_ids is not None],
                                 [p.sample_seed for p in chunk])
        return out

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Completion]:
        """Sample one reply per prompt. Stops a row at the first EOS (kept in its ids) or at the token budget."""
        device = next(self.model.parameters()).device
        n = len(prompt_ids)
        # Generators live on the model's device: the noise is drawn where the logits are, and only the picked
        # ids and log-probs cross to the host (B numbers per token, not B × V).
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        # Prefill: the prompts' shared prefix (the system prompt) once, then each prompt's rest; only the last
        # position's logits are computed.
        shared = shared_prefix_length(prompt_ids, min(len(p) for p in prompt_ids) - 1)
        out, attention = forward_with_prefix(self.model, prompt_ids, shared, self.tokenizer.pad_token_id,
                                             use_cache=True, logits_to_keep=1)
        next_pos = torch.tensor([[len(p)] for p in prompt_ids], device=device)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        done = [False] * n
        for _ in range(self.max_new_tokens):
            next_ids, next_logprobs = self._sample(out.logits[:, -1, :].float(), generators)
            for row in range(n):
                if not done[row]:
                    tokens[row].append(int(next_ids[row]))
                    logprobs[row].append(float(next_logprobs[row]))
                    done[row] = int(next_ids[row]) in self.eos_ids
            if all(done):
                break
            feed = torch.tensor(
                [self.tokenizer.pad_token_id if d else t[-1] for d, t in zip(done, tokens, strict=True)], device=device
            )[:, None]
            attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=device)], dim=1)
            out = self.model(
                input_ids=feed,
                attention_mask=attention,
                position_ids=next_pos,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
            next_pos = next_pos + 1
        return [
            Completion(
                # decode of one id list returns str; transformers types the batched case's list[str] in too.
                text=self.tokenizer.decode(ids, skip_special_tokens=True),  # type: ignore[arg-type]
                token_ids=tuple(ids),
                logprobs=tuple(lps),
                finish_reason="stop" if ids and ids[-1] in self.eos_ids else "length",
            )
            for ids, lps in zip(tokens, logprobs, strict=True)
        ]

    def _sample(self, logits_BV: torch.Tensor, generators: list[torch.Generator]) -> tuple[list[int], list[float]]:
        """Gumbel-max sampling with one generator per row; returns ids and their tempered log-probs."""
        scale = self.temperature if self.temperature > 0 else 1.0
        logprobs_BV = torch.log_softmax(logits_BV / scale, dim=-1)
        if self.temperature == 0:
            ids = logprobs_BV.argmax(-1)
        else:
            vocab, device = logprobs_BV.shape[-1], logprobs_BV.device
            uniform_BV = torch.stack([torch.rand(vocab, generator=g, device=device) for g in generators])
            gumbel_BV = -torch.log(-torch.log(uniform_BV.clamp_min(1e-20)))
            ids = (logprobs_BV + gumbel_BV).argmax(-1)
        picked = logprobs_BV.gather(-1, ids[:, None])[:, 0]
        return ids.tolist(), picked.tolist()
