"""Turn samples as tensors: the ids each view scores, padded per-token values, token-budget micro-batches and
the gradient accumulation that keeps one big batch's gradient (shared by the training loops)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from agentdistill.losses import normalizer_for
from agentdistill.losses.reduce import ReduceMode
from agentdistill.scoring import microbatch_groups
from agentdistill.types import Episode, TurnSample


def score_temperature(temperature: float) -> float:
    """The temperature the sampler's log-probs were computed at (greedy sampling reports untempered ones)."""
    return temperature if temperature > 0 else 1.0


def trainable_turns(episodes: Sequence[Episode]) -> list[tuple[int, TurnSample]]:
    """(episode index, turn) for every turn with token ids, a teacher view and sampler log-probs."""
    out = []
    for e, ep in enumerate(episodes):
        if ep.error is not None:
            continue
        for t in ep.turns:
            if t.response_ids and t.student_prompt_ids and t.teacher_prompt_ids is not None:
                if t.sampler_logprobs is None or len(t.sampler_logprobs) != len(t.response_ids):
                    raise ValueError(f"turn {t.turn} of {t.episode_id!r} has no sampler log-probs for its ids")
                out.append((e, t))
    return out


def prompts_of(samples: Sequence[TurnSample], view: str) -> list[Sequence[int]]:
    """Each sample's prompt ids in ``view`` ("student" or "teacher")."""
    if view not in ("student", "teacher"):
        raise ValueError(f"view must be 'student' or 'teacher', got {view!r}")
    out: list[Sequence[int]] = []
    for s in samples:
        ids = s.teacher_prompt_ids if view == "teacher" else s.student_prompt_ids
        if ids is None:
            raise ValueError(f"turn {s.turn} of {s.episode_id!r} has no {view} view")
        out.append(ids)
    return out


def sampler_logprobs_BT(samples: Sequence[TurnSample], lp_BT: torch.Tensor) -> torch.Tensor:
    """[B, T] each sample's ``sampler_logprobs`` (the current log-probs, detached, for a sample that has none)."""
    old_BT = torch.zeros_like(lp_BT)
    for b, s in enumerate(samples):
        n = len(s.response_ids)
        old_BT[b, :n] = (torch.tensor(s.sampler_logprobs, dtype=lp_BT.dtype, device=lp_BT.device)
                         if s.sampler_logprobs is not None else lp_BT[b, :n].detach())
    return old_BT


def padded_BT(rows: Sequence[Sequence[float]], like_BT: torch.Tensor) -> torch.Tensor:
    """Right-pad per-row values to ``like_BT``'s [B, T] shape (zeros), on its device, float32."""
    out = torch.zeros(like_BT.shape, dtype=torch.float32, device=like_BT.device)
    for b, r in enumerate(rows):
        if r:
            out[b, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out


def microbatches_by_tokens(samples: Sequence[TurnSample], max_tokens: int | None) -> list[list[TurnSample]]:
    """Split ``samples`` (in order) into micro-batches whose padded size stays within ``max_tokens``.

    A row's size is its longer prompt (the teacher view's PI block makes it the longer one) plus its
    response: rows × the longest row is what one forward pass holds in memory. A single sample over the
    budget goes alone. None keeps everything in one micro-batch.
    """
    lengths = [max(len(s.student_prompt_ids), len(s.teacher_prompt_ids or ())) + len(s.response_ids)
               for s in samples]
    return [[samples[i] for i in group] for group in microbatch_groups(lengths, max_tokens)] if samples else []


def response_mask_BT(samples: Sequence[TurnSample]) -> torch.Tensor:
    """[B, T] bool, True on each sample's response tokens (right-padded, as ``scoring.score`` returns)."""
    T = max((len(s.response_ids) for s in samples), default=0)
    lengths_B = torch.tensor([len(s.response_ids) for s in samples])
    return torch.arange(T)[None, :] < lengths_B[:, None]


def backward_microbatches(
    micro: Sequence[Sequence[TurnSample]],
    loss_fn: Callable[[Sequence[TurnSample], int], torch.Tensor],
    *,
    mode: ReduceMode,
    rank: int = 0,
    world_size: int = 1,
    idle_pass: Callable[[], None] | None = None,
) -> float:
    """Accumulate the gradient of one optimiser step over micro-batches; returns this rank's share of the loss.

    The global normaliser N = Σ ``normalizer_for(response mask, mode)`` over all micro-batches is computed
    first; ``loss_fn(microbatch, N)`` must reduce with ``reduce_loss(..., mode=mode, normalizer=N)``. Each
    micro-batch loss is back-propagated at once (freeing its graph), and since every part divides by the
    same N, the summed gradients and losses equal those of one big batch.

    Under FSDP every rank holds the same ``micro`` and takes micro-batches ``rank, rank + world_size, ...``;
    the ranks' gradients sum to the one-process gradient. A rank with one micro-batch fewer than the others
    calls ``idle_pass`` (a zero-weight forward and backward) so every rank issues the same collectives.
    """
    normalizer = sum(normalizer_for(response_mask_BT(mb), mode=mode) for mb in micro)
    mine = micro[rank::world_size]
    total = 0.0
    for mb in mine:
        loss = loss_fn(mb, normalizer)
        loss.backward()
        total += float(loss.detach())
    for _ in range(-(-len(micro) // world_size) - len(mine)):
        if idle_pass is None:
            raise ValueError("ranks with fewer micro-batches need an idle_pass to keep collectives in step")
        idle_pass()
    return total


def clip_gradients(model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the global gradient norm to ``max_norm`` (None: no clipping); returns the norm before clipping
    (over all shards under FSDP, where the norm comes back as a DTensor)."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm is not None else float("inf"))
    full = getattr(norm, "full_tensor", None)
    return full() if callable(full) else norm
