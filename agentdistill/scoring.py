"""Token log-probs of the same response ids under different prompts (the student view and the teacher view).

Every sequence is ``prompt_ids ⊕ response_ids`` exactly as stored: nothing is decoded and re-tokenised, so
the teacher and the student score identical response ids (DESIGN §4.2). Sequences are left-padded into a
batch with an attention mask and position ids counted from each row's first real token, so padding never
shifts a position and a row scores the same alone or in any batch. The logits at positions
``[len(prompt) − 1, len(prompt) + len(response) − 1)`` predict the response ids; results are returned
right-padded on the response axis, so column ``t`` is response token ``t`` whatever the prompt length.

    log π(y_t | x, y_<t) = log_softmax(logits_t / temperature)[y_t]

Rows of a micro-batch that open with the same tokens (every turn's system prompt) share that prefix: it runs
through the model once, and its keys and values are repeated for every row (gradients sum back through the
repeat), so the result equals the padded batch up to float rounding while the shared tokens cost one row's
compute instead of B (``prefix_sharing`` turns it off, e.g. to measure it).

Inside ``packing(True)`` a micro-batch is instead one row of its sequences laid end to end, with position ids
restarting at 0 per sequence and no attention mask: transformers reads that as packed sequences and masks
attention block-diagonally (varlen kernels under flash attention), so no compute goes to padding; logits are
computed only where a response id is predicted. Same results up to float rounding.

Shapes: B sequences, T = the longest response, K top-k entries, V vocabulary, H hidden size. Every tensor of
a ``Scored`` holds exactly 0 where ``mask_BT`` is False.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

from agentdistill.teachers import Teacher
from agentdistill.types import TurnSample

MIN_SHARED_PREFIX = 16
"""Share a micro-batch's common prefix only when it is at least this many tokens (below that the extra forward
call costs more than it saves)."""
_SHARING = {"on": True}
_PACKING = {"on": False}


@contextmanager
def prefix_sharing(enabled: bool) -> Iterator[None]:
    """Turn shared-prefix forwards on or off inside the block (scoring and ``HFPolicy`` prefill)."""
    before = _SHARING["on"]
    _SHARING["on"] = enabled
    try:
        yield
    finally:
        _SHARING["on"] = before


@contextmanager
def packing(enabled: bool) -> Iterator[None]:
    """Score packed sequences inside the block: each micro-batch's rows laid end to end in one row, position ids
    restarting per sequence, no padding (``score``; the training loops' ``packing`` option)."""
    if enabled:
        import transformers.masking_utils as masking

        if not hasattr(masking, "find_packed_sequence_indices"):  # older transformers would attend across rows
            raise RuntimeError("packing needs a transformers release that reads packed sequences from position "
                               "ids (transformers.masking_utils.find_packed_sequence_indices): upgrade "
                               "transformers, or set packing=false")
    before = _PACKING["on"]
    _PACKING["on"] = enabled
    try:
        yield
    finally:
        _PACKING["on"] = before


def shared_prefix_length(seqs: Sequence[Sequence[int]], limit: int) -> int:
    """Length of the prefix all ``seqs`` share, capped at ``limit``; 0 when sharing is off, there is one
    sequence, or the prefix is shorter than ``MIN_SHARED_PREFIX``."""
    if not _SHARING["on"] or len(seqs) < 2:
        return 0
    first, k = seqs[0], 0
    while k < limit and all(len(s) > k and s[k] == first[k] for s in seqs):
        k += 1
    return k if k >= MIN_SHARED_PREFIX else 0


def forward_with_prefix(model: torch.nn.Module, rows: Sequence[Sequence[int]], shared: int, pad_token_id: int,
                        **kwargs: Any) -> Any:
    """Forward left-padded ``rows`` whose first ``shared`` tokens are identical: the prefix once (its cache
    repeated per row), then each row's rest. Returns the model output for the rest (logits, hidden states
    and cache cover the columns after the prefix) and the rest's attention mask (B × W)."""
    device = next(model.parameters()).device
    B, W = len(rows), max(len(r) - shared for r in rows)
    ids_BW = torch.full((B, W), pad_token_id, dtype=torch.long)
    attention_BW = torch.zeros((B, W), dtype=torch.long)
    for b, row in enumerate(rows):
        rest = row[shared:]
        ids_BW[b, W - len(rest):] = torch.tensor(rest, dtype=torch.long)
        attention_BW[b, W - len(rest):] = 1
    ids_BW, attention_BW = ids_BW.to(device), attention_BW.to(device)
    positions_BW = shared + (attention_BW.cumsum(-1) - 1).clamp(min=0)
    if shared == 0:
        out = model(input_ids=ids_BW, attention_mask=attention_BW, position_ids=positions_BW, **kwargs)
        return out, attention_BW
    prefix = model(input_ids=torch.tensor([list(rows[0][:shared])], device=device), use_cache=True)
    cache = prefix.past_key_values
    cache.batch_repeat_interleave(B)
    full_BW = torch.cat([torch.ones((B, shared), dtype=attention_BW.dtype, device=device), attention_BW], dim=1)
    out = model(input_ids=ids_BW, attention_mask=full_BW, position_ids=positions_BW, past_key_values=cache,
                **{**kwargs, "use_cache": True})
    return out, full_BW


@dataclass(frozen=True)
class Extras:
    """What to compute besides the sampled-token log-probs (each costs memory; all off by default)."""

    top_k: int | None = None
    """Return the K most likely ids per position and their log-probs."""
    full_vocab: bool = False
    """Return the raw logits over the whole vocabulary (B·T·V floats: large)."""
    hidden: bool = False
    """Return the last hidden states, for chunked losses that recompute logits as hidden @ lm_head."""
    entropy: bool = False
    """Return the entropy of the tempered next-token distribution."""


@dataclass(frozen=True, eq=False)
class Scored:
    """Per-token results for B sequences, right-padded along the response axis (T = the longest response)."""

    logprobs_BT: torch.Tensor
    """log_softmax(logits / temperature)[response id], float32."""
    mask_BT: torch.Tensor
    """bool, True on real response tokens."""
    temperature: float
    entropy_BT: torch.Tensor | None = None
    """−Σ_v p_v log p_v with p = softmax(logits / temperature), float32."""
    topk_ids_BTK: torch.Tensor | None = None
    topk_logprobs_BTK: torch.Tensor | None = None
    """Tempered log-probs of ``topk_ids_BTK``, sorted high to low."""
    logits_BTV: torch.Tensor | None = None
    """Raw (untempered) logits, float32: divide by ``temperature`` before any softmax."""
    hidden_BTH: torch.Tensor | None = None
    """Last hidden states (after the final norm) at the positions predicting each response token, in the
    model's dtype: ``lm_head(hidden_BTH)`` gives ``logits_BTV``."""

    def to(self, device: torch.device | str) -> Scored:
        """The same results on another device."""
        moved: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        tensors: dict[str, Any] = {k: v.to(device) for k, v in moved.items() if isinstance(v, torch.Tensor)}
        return replace(self, **tensors)


def score(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    full_vocab: bool = False,
    hidden: bool = False,
    entropy: bool = False,
    max_tokens_per_microbatch: int | None = None,
    pad_token_id: int | None = None,
) -> Scored:
    """Score ``responses[b]`` after ``prompts[b]`` with a causal LM; grad flows when called in grad mode.

    Args:
        model: a transformers causal LM (anything taking input_ids, attention_mask, position_ids and
            returning ``.logits``, plus ``.hidden_states`` when ``hidden``).
        prompts: B prompt id lists, each non-empty.
        responses: B response id lists (an empty one gives an all-False mask row).
        temperature: > 0; log-probs, top-k and entropy are those of softmax(logits / temperature).
        max_tokens_per_microbatch: budget of padded tokens (rows × longest row) per forward pass; a single
            sequence over the budget runs alone. Results equal one big batch (up to float rounding).
        pad_token_id: id written into padding (masked out of attention, so its value never matters);
            default the model config's pad id, else 0.

    Returns:
        ``Scored`` with ``logprobs_BT``/``mask_BT`` (+ ``entropy_BT``, ``topk_*_BTK``, ``logits_BTV``,
        ``hidden_BTH`` when asked), on the model's device.
    """
    if len(prompts) != len(responses) or not prompts:
        raise ValueError(f"need as many prompts as responses, at least one: got {len(prompts)} prompts and "
                         f"{len(responses)} responses")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (greedy samples are scored at 1.0)")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token: the first response id is predicted from it")
    if pad_token_id is None:
        pad_token_id = getattr(getattr(model, "config", None), "pad_token_id", None) or 0
    extras = Extras(top_k=top_k, full_vocab=full_vocab, hidden=hidden, entropy=entropy)
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=False)]
    if _PACKING["on"]:
        parts = [_score_packed(model, [prompts[i] for i in rows], [responses[i] for i in rows], temperature, extras)
                 for rows in packed_groups(lengths, max_tokens_per_microbatch)]
    else:
        parts = [_score_batch(model, [prompts[i] for i in rows], [responses[i] for i in rows], temperature, extras,
                              pad_token_id)
                 for rows in microbatch_groups(lengths, max_tokens_per_microbatch)]
    T = max((len(r) for r in responses), default=0)
    merged = {}
    for f in fields(Scored):
        values = [getattr(p, f.name) for p in parts]
        if isinstance(values[0], torch.Tensor):
            merged[f.name] = torch.cat([F.pad(v, _pad_spec(v, T)) for v in values])
    return Scored(temperature=temperature, **merged)


def score_turns(
    student_model: torch.nn.Module,
    teacher: Teacher,
    samples: Sequence[TurnSample],
    *,
    temperature: float,
    student_extras: Extras = Extras(),
    teacher_extras: Extras = Extras(),
    max_tokens_per_microbatch: int | None = None,
    pad_token_id: int | None = None,
) -> tuple[Scored, Scored]:
    """Score each turn's ``response_ids`` under its student view (with grad) and its teacher view (no grad).

    Student: ``student_prompt_ids ⊕ response_ids`` through ``student_model``; teacher:
    ``teacher_prompt_ids ⊕ response_ids`` through ``teacher.model_for_scoring()``. Both sides use the same
    response ids and temperature, so with an empty PI block the two ``logprobs_BT`` are equal. The teacher's
    results are moved to the student's device.
    """
    for s in samples:
        where = f"turn {s.turn} of episode {s.episode_id!r}"
        if not s.response_ids or not s.student_prompt_ids:
            raise ValueError(f"{where} has no token ids: roll out with a tokenizer (rollout(tokenizer=...))")
        if s.teacher_prompt_ids is None:
            raise ValueError(
                f"{where} has no teacher_prompt_ids: request privileged information for the teacher view "
                "(rollout(..., teacher_privileged=[...])) or render one with views.render_turn(pi_text=...)")
    responses = [s.response_ids for s in samples]
    common: dict[str, Any] = dict(temperature=temperature, max_tokens_per_microbatch=max_tokens_per_microbatch,
                                  pad_token_id=pad_token_id)
    student = score(student_model, [s.student_prompt_ids for s in samples], responses,
                    **common, **_as_kwargs(student_extras))
    teacher_prompts = [s.teacher_prompt_ids for s in samples if s.teacher_prompt_ids is not None]
    with teacher.model_for_scoring() as teacher_model, torch.no_grad():
        scored = score(teacher_model, teacher_prompts, responses, **common, **_as_kwargs(teacher_extras))
    return student, scored.to(student.logprobs_BT.device)


def _score_batch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    temperature: float,
    extras: Extras,
    pad_token_id: int,
) -> Scored:
    """One forward pass over a left-padded batch; see ``score``."""
    device = next(model.parameters()).device
    B, T = len(prompts), max(map(len, responses))
    # The shared prefix stops before each prompt's last token, which predicts the first response id. A model
    # training with gradient checkpointing keeps no cache to share it through: every row runs its whole prompt.
    checkpointing = model.training and getattr(model, "is_gradient_checkpointing", False)
    shared = 0 if checkpointing else shared_prefix_length(prompts, min(len(p) for p in prompts) - 1)
    out, _ = forward_with_prefix(model, [[*p, *r] for p, r in zip(prompts, responses, strict=True)], shared,
                                 pad_token_id, use_cache=False, logits_to_keep=T + 1,
                                 output_hidden_states=extras.hidden)

    # Rows end together at column W−1, so the last T+1 columns (minus the very last, which predicts nothing)
    # hold every prediction; row b's response occupies its last len(r_b) of those T: shift it to the left.
    lengths_B = torch.tensor([len(r) for r in responses], device=device)
    t_T = torch.arange(T, device=device)
    shift_BT = (t_T[None, :] + T - lengths_B[:, None]).clamp(max=max(T - 1, 0))
    rows_B1 = torch.arange(B, device=device)[:, None]
    logits_BTV = out.logits[:, -(T + 1):-1][rows_B1, shift_BT].float()
    hidden_BTH = out.hidden_states[-1][:, -(T + 1):-1][rows_B1, shift_BT] if extras.hidden else None
    return _results(logits_BTV, hidden_BTH, responses, temperature, extras)


def packed_groups(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Consecutive row groups whose total length (packed: no padding) stays within ``budget``."""
    if budget is None:
        return [list(range(len(lengths)))]
    if budget <= 0:
        raise ValueError(f"max_tokens_per_microbatch must be > 0, got {budget}")
    groups: list[list[int]] = []
    total = 0
    for i, n in enumerate(lengths):
        if groups and total + n <= budget:
            groups[-1].append(i)
            total += n
        else:
            groups.append([i])
            total = n
    return groups


def _score_packed(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    temperature: float,
    extras: Extras,
) -> Scored:
    """One forward pass over the rows laid end to end in a single row, without padding; see ``score``.

    Position ids restart at 0 for each sequence and no attention mask is passed, which transformers reads as
    packed sequences: each token attends only within its own sequence (block-diagonal causal mask, or varlen
    kernels under flash attention). Logits are computed only where a response id is predicted."""
    device = next(model.parameters()).device
    B, T = len(prompts), max(map(len, responses))
    ids: list[int] = []
    positions: list[int] = []
    keep: list[int] = []
    b_R: list[int] = []
    t_R: list[int] = []
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        start = len(ids)
        ids += [*p, *r]
        positions += range(len(p) + len(r))
        keep += range(start + len(p) - 1, start + len(p) - 1 + len(r))
        b_R += [b] * len(r)
        t_R += range(len(r))
    keep_R = torch.tensor(keep, dtype=torch.long, device=device)
    out = model(input_ids=torch.tensor([ids], device=device), position_ids=torch.tensor([positions], device=device),
                use_cache=False, logits_to_keep=keep_R, output_hidden_states=extras.hidden)
    index = (torch.tensor(b_R, dtype=torch.long, device=device), torch.tensor(t_R, dtype=torch.long, device=device))
    logits_RV = out.logits[0].float()
    logits_BTV = logits_RV.new_zeros((B, T, logits_RV.shape[-1])).index_put(index, logits_RV)
    hidden_BTH = None
    if extras.hidden:
        hidden_RH = out.hidden_states[-1][0, keep_R]
        hidden_BTH = hidden_RH.new_zeros((B, T, hidden_RH.shape[-1])).index_put(index, hidden_RH)
    return _results(logits_BTV, hidden_BTH, responses, temperature, extras)


def _results(logits_BTV: torch.Tensor, hidden_BTH: torch.Tensor | None, responses: Sequence[Sequence[int]],
             temperature: float, extras: Extras) -> Scored:
    """``Scored`` from the raw logits (float32) and hidden states at each response token's prediction."""
    device = logits_BTV.device
    B, T = logits_BTV.shape[:2]
    targets_BT = torch.zeros((B, T), dtype=torch.long)
    for b, r in enumerate(responses):
        targets_BT[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    lengths_B = torch.tensor([len(r) for r in responses], device=device)
    mask_BT = torch.arange(T, device=device)[None, :] < lengths_B[:, None]
    z_BTV = logits_BTV / temperature
    lse_BT = torch.logsumexp(z_BTV, dim=-1)
    logprobs_BT = z_BTV.gather(-1, targets_BT.to(device)[..., None])[..., 0] - lse_BT

    def masked(x: torch.Tensor) -> torch.Tensor:  # exact zeros off the mask (where, not *, keeps NaN out)
        return torch.where(mask_BT.reshape(B, T, *[1] * (x.dim() - 2)), x, 0)

    result = Scored(logprobs_BT=masked(logprobs_BT), mask_BT=mask_BT, temperature=temperature)
    if extras.entropy:  # H = logsumexp(z) − Σ softmax(z)·z
        entropy_BT = lse_BT - (torch.softmax(z_BTV, dim=-1) * z_BTV).sum(-1)
        result = replace(result, entropy_BT=masked(entropy_BT))
    if extras.top_k is not None:
        top_BTK, ids_BTK = z_BTV.topk(extras.top_k, dim=-1)
        topk_logprobs_BTK = top_BTK - lse_BT[..., None]
        result = replace(result, topk_ids_BTK=masked(ids_BTK), topk_logprobs_BTK=masked(topk_logprobs_BTK))
    if extras.full_vocab:
        result = replace(result, logits_BTV=masked(logits_BTV))
    if hidden_BTH is not None:
        result = replace(result, hidden_BTH=masked(hidden_BTH))
    return result


def microbatch_groups(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Consecutive row groups whose padded size (rows × longest row) stays within ``budget``."""
    if budget is None:
        return [list(range(len(lengths)))]
    if budget <= 0:
        raise ValueError(f"max_tokens_per_microbatch must be > 0, got {budget}")
    groups: list[list[int]] = []
    longest = 0
    for i, n in enumerate(lengths):
        if groups and (len(groups[-1]) + 1) * max(longest, n) <= budget:
            groups[-1].append(i)
            longest = max(longest, n)
        else:
            groups.append([i])
            longest = n
    return groups


def _pad_spec(x: torch.Tensor, T: int) -> tuple[int, ...]:
    """F.pad widths that right-pad dim 1 of ``x`` to length T."""
    return (0, 0) * (x.dim() - 2) + (0, T - x.shape[1])


def _as_kwargs(extras: Extras) -> dict[str, Any]:
    return {f.name: getattr(extras, f.name) for f in fields(extras)}
