"""Full-vocabulary divergences between the student's and the teacher's next-token distributions.

p_S = softmax(z_S / τ_T), p_T = softmax(z_T / τ_T) at every position, with τ_T the ``temperature``
(OPSD divides both logits by the sampling temperature). The teacher side is always under stop-gradient.

Per-entry clipping (OPSD v3 / ``jsd_token_clip``, arXiv 2601.18734): every divergence here is a sum over
the vocabulary of pointwise terms d_v; with ``clip=c`` each term is capped, D_clip = Σ_v min(d_v, c), so
no single token (a "wait" or "hmm") can dominate. Capping only lowers terms, so it never increases the loss,
but a capped sum is no longer a divergence: individual d_v can be negative, and D_clip can be < 0.

Two forms of each divergence:

- ``forward_kl`` / ``reverse_kl`` / ``generalized_jsd`` take logits [B, T, V] (the reference versions);
- ``*_chunked`` take hidden states [B, T, H] and the lm_head weight [V, H] and compute the logits a
  chunk of response tokens at a time under activation checkpointing, so the [B, T, V] logits never exist
  at once (methods.md pitfall 16). They are tested equal to the reference versions, values and gradients.

All return ``loss_BT`` (zero where the mask is False); reduce with
:func:`agentdistill.losses.reduce.reduce_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch.utils.checkpoint import checkpoint

from agentdistill.losses._common import check_mask, float_dtype, zero_masked


def _log_probs(logits_NV: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(z / τ) over the last axis, in at least fp32."""
    z = logits_NV.to(float_dtype(logits_NV.dtype))
    if temperature != 1.0:
        z = z / temperature
    return torch.log_softmax(z, dim=-1)


def _kl_terms(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """Pointwise terms of KL(p ‖ q): p_v·(log p_v − log q_v)."""
    return p_log.exp() * (p_log - q_log)


def _sum_vocab(terms_NV: torch.Tensor, clip: float | None) -> torch.Tensor:
    if clip is not None:
        terms_NV = terms_NV.clamp(max=clip)
    return terms_NV.sum(dim=-1)


def _forward_kl_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float, clip: float | None
) -> torch.Tensor:
    student_log = _log_probs(student_logits, temperature)
    teacher_log = _log_probs(teacher_logits.detach(), temperature)
    return _sum_vocab(_kl_terms(teacher_log, student_log), clip)


def _reverse_kl_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float, clip: float | None
) -> torch.Tensor:
    student_log = _log_probs(student_logits, temperature)
    teacher_log = _log_probs(teacher_logits.detach(), temperature)
    return _sum_vocab(_kl_terms(student_log, teacher_log), clip)


def _jsd_rows(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    beta: float,
    temperature: float,
    clip: float | None,
) -> torch.Tensor:
    student_log = _log_probs(student_logits, temperature)
    teacher_log = _log_probs(teacher_logits.detach(), temperature)
    # The endpoints follow TRL/GKD: the mixture formula tends to 0 there, the direction it points in does not.
    if beta == 0.0:
        terms = _kl_terms(teacher_log, student_log)
    elif beta == 1.0:
        terms = _kl_terms(student_log, teacher_log)
    else:
        mixture_log = torch.logaddexp(student_log + math.log1p(-beta), teacher_log + math.log(beta))
        teacher_terms = _kl_terms(teacher_log, mixture_log)
        student_terms = _kl_terms(student_log, mixture_log)
        terms = beta * teacher_terms + (1.0 - beta) * student_terms
    return _sum_vocab(terms, clip)


def _check_scalars(temperature: float, clip: float | None, beta: float | None = None) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (or None for no clipping), got {clip}")
    if beta is not None and not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")


def _on_logits(
    rows: Callable[..., torch.Tensor],
    student_logits_BTV: torch.Tensor,
    teacher_logits_BTV: torch.Tensor,
    mask_BT: torch.Tensor,
) -> torch.Tensor:
    check_mask(
        mask_BT,
        (student_logits_BTV.shape, "student_logits_BTV"),
        (teacher_logits_BTV.shape, "teacher_logits_BTV"),
    )
    if student_logits_BTV.shape != teacher_logits_BTV.shape:
        raise ValueError(
            f"student and teacher logits must have the same [B, T, V] shape; got "
            f"{tuple(student_logits_BTV.shape)} and {tuple(teacher_logits_BTV.shape)} "
            "(slice each stream at its own prompt length first)"
        )
    return zero_masked(rows(student_logits_BTV, teacher_logits_BTV), mask_BT)


def forward_kl(
    student_logits_BTV: torch.Tensor,
    teacher_logits_BTV: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = Σ_v p_T(v)·[log p_T(v) − log p_S(v)] = KL(p_T ‖ p_S), each term capped at ``clip`` if given.

    Direction: forward, KL(teacher ‖ student) — mass-covering; the main setting of OPSD v3
    (arXiv 2601.18734; methods.md §3.6), and π-Distill's Rao-Blackwellised KL(π_T ‖ π_S) (App. E.1).
    Gradient flows into the student logits only.

    Args:
        student_logits_BTV: [B, T, V] student logits at the response positions (carry the gradient).
        teacher_logits_BTV: [B, T, V] teacher logits at the same positions (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: both logits are divided by it before the softmax (use the sampling temperature).
        clip: cap c on each pointwise term (OPSD τ = 0.05); None = no cap.

    Returns:
        [B, T]; ≥ 0 without clipping, 0 for identical inputs, 0 where masked.
    """
    _check_scalars(temperature, clip)
    rows = partial(_forward_kl_rows, temperature=temperature, clip=clip)
    return _on_logits(rows, student_logits_BTV, teacher_logits_BTV, mask_BT)


def reverse_kl(
    student_logits_BTV: torch.Tensor,
    teacher_logits_BTV: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = Σ_v p_S(v)·[log p_S(v) − log p_T(v)] = KL(p_S ‖ p_T), each term capped at ``clip`` if given.

    Direction: reverse, KL(student ‖ teacher) — mode-seeking; the exact per-position quantity that the
    sampled-token estimators of ``sampled.py`` estimate on student samples (OPD, OPSD's reward mode; SDPO's
    rich-feedback runs, arXiv 2601.20802). π-Distill's Rao-Blackwellised KL (arXiv 2602.04942 App. E.1) is the
    other direction, KL(π_T ‖ π_S) on teacher samples: :func:`forward_kl`.
    Gradient flows into the student logits only.

    Args:
        student_logits_BTV: [B, T, V] student logits at the response positions (carry the gradient).
        teacher_logits_BTV: [B, T, V] teacher logits at the same positions (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: both logits are divided by it before the softmax.
        clip: cap c on each pointwise term; None = no cap.

    Returns:
        [B, T]; ≥ 0 without clipping, 0 for identical inputs, 0 where masked.
    """
    _check_scalars(temperature, clip)
    rows = partial(_reverse_kl_rows, temperature=temperature, clip=clip)
    return _on_logits(rows, student_logits_BTV, teacher_logits_BTV, mask_BT)


def generalized_jsd(
    student_logits_BTV: torch.Tensor,
    teacher_logits_BTV: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = β·KL(p_T ‖ m) + (1−β)·KL(p_S ‖ m),  m = β·p_T + (1−β)·p_S;
    β=0 → KL(p_T ‖ p_S), β=1 → KL(p_S ‖ p_T).

    The generalised Jensen-Shannon divergence of GKD (arXiv 2306.13649) in TRL's convention, which OPSD and
    SDPO (``alpha``) share: **β = 0 is the forward KL(teacher ‖ student), β = 1 the reverse
    KL(student ‖ teacher)** (methods.md pitfall 8). The endpoints are defined, as in TRL, as those KLs:
    the mixture formula itself vanishes as β → 0 or 1 (JSD_β ≈ β·KL(p_T ‖ p_S) for small β), so values just
    inside (0, 1) are much smaller than at the endpoints while pointing the same way. β = 0.5 is the
    symmetric JSD, bounded by log 2. Pointwise terms (capped at ``clip``) are β·p_T·log(p_T/m) +
    (1−β)·p_S·log(p_S/m). Gradient flows into the student logits only.

    Args:
        student_logits_BTV: [B, T, V] student logits at the response positions (carry the gradient).
        teacher_logits_BTV: [B, T, V] teacher logits at the same positions (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        beta: β ∈ [0, 1], see above.
        temperature: both logits are divided by it before the softmax.
        clip: cap c on each pointwise term (OPSD's ``jsd_token_clip``); None = no cap.

    Returns:
        [B, T]; ≥ 0 without clipping, 0 for identical inputs, 0 where masked.
    """
    _check_scalars(temperature, clip, beta)
    rows = partial(_jsd_rows, beta=float(beta), temperature=temperature, clip=clip)
    return _on_logits(rows, student_logits_BTV, teacher_logits_BTV, mask_BT)


# ---------------------------------------------------------------------------------------------------------
# Chunked variants: logits are computed from hidden states a chunk of response tokens at a time.


def _chunk_loss(
    rows: Callable[..., torch.Tensor],
    student_hidden_NH: torch.Tensor,
    teacher_hidden_NH: torch.Tensor,
    lm_head_weight_VH: torch.Tensor,
    teacher_lm_head_weight_VH: torch.Tensor,
) -> torch.Tensor:
    return rows(student_hidden_NH @ lm_head_weight_VH.T, teacher_hidden_NH @ teacher_lm_head_weight_VH.T)


def _chunked(
    rows: Callable[..., torch.Tensor],
    student_hidden_BTH: torch.Tensor,
    teacher_hidden_BTH: torch.Tensor,
    lm_head_weight_VH: torch.Tensor,
    mask_BT: torch.Tensor,
    teacher_lm_head_weight_VH: torch.Tensor | None,
    chunk_size: int,
) -> torch.Tensor:
    check_mask(
        mask_BT,
        (student_hidden_BTH.shape, "student_hidden_BTH"),
        (teacher_hidden_BTH.shape, "teacher_hidden_BTH"),
    )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if student_hidden_BTH.dim() != 3 or teacher_hidden_BTH.dim() != 3:
        raise ValueError("student_hidden_BTH and teacher_hidden_BTH must be [B, T, H]")
    teacher_weight_VH = lm_head_weight_VH if teacher_lm_head_weight_VH is None else teacher_lm_head_weight_VH
    if (
        student_hidden_BTH.shape[-1] != lm_head_weight_VH.shape[-1]
        or teacher_hidden_BTH.shape[-1] != teacher_weight_VH.shape[-1]
    ):
        raise ValueError(
            f"hidden size mismatch: student_hidden_BTH {tuple(student_hidden_BTH.shape)}, lm_head_weight_VH "
            f"{tuple(lm_head_weight_VH.shape)}, teacher_hidden_BTH {tuple(teacher_hidden_BTH.shape)}, "
            f"teacher weight {tuple(teacher_weight_VH.shape)} (lm_head weights are [V, H], as nn.Linear "
            "stores them)"
        )
    if lm_head_weight_VH.shape[0] != teacher_weight_VH.shape[0]:
        raise ValueError(
            f"student and teacher vocabularies differ: {lm_head_weight_VH.shape[0]} vs "
            f"{teacher_weight_VH.shape[0]}"
        )
    B, T, H = student_hidden_BTH.shape
    # Only response tokens are ever turned into logits: prompt and padding rows cost nothing.
    index_N = mask_BT.reshape(-1).nonzero().squeeze(1)
    student_NH = student_hidden_BTH.reshape(B * T, H).index_select(0, index_N)
    teacher_NH = (
        teacher_hidden_BTH.detach().reshape(B * T, teacher_hidden_BTH.shape[-1]).index_select(0, index_N)
    )
    teacher_weight_VH = teacher_weight_VH.detach()
    out_dtype = float_dtype(torch.promote_types(student_hidden_BTH.dtype, lm_head_weight_VH.dtype))
    if index_N.numel() == 0:
        return (student_hidden_BTH.sum(dim=-1) * 0.0).to(out_dtype)
    pieces = []
    for start in range(0, index_N.numel(), chunk_size):
        # Checkpointing keeps only the chunk's inputs; its [chunk, V] logits are rebuilt during backward.
        pieces.append(
            checkpoint(
                _chunk_loss,
                rows,
                student_NH[start : start + chunk_size],
                teacher_NH[start : start + chunk_size],
                lm_head_weight_VH,
                teacher_weight_VH,
                use_reentrant=False,
                preserve_rng_state=False,  # the loss draws no random numbers
            )
        )
    loss_N = torch.cat(pieces)
    return (
        torch.zeros(B * T, dtype=loss_N.dtype, device=loss_N.device).index_put((index_N,), loss_N).view(B, T)
    )


def forward_kl_chunked(
    student_hidden_BTH: torch.Tensor,
    teacher_hidden_BTH: torch.Tensor,
    lm_head_weight_VH: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    teacher_lm_head_weight_VH: torch.Tensor | None = None,
    chunk_size: int = 256,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = KL(p_T ‖ p_S),  p_S = softmax(h_S·Wᵀ/τ),  p_T = softmax(h_T·W_Tᵀ/τ),
    computed ``chunk_size`` tokens at a time.

    Same value and gradient as :func:`forward_kl` on the full logits (direction: forward,
    KL(teacher ‖ student)), with peak memory O(chunk_size·V) instead of O(B·T·V). Only positions where
    ``mask_BT`` is True are computed.

    Args:
        student_hidden_BTH: [B, T, H] final hidden states of the student stream at the response positions
            (the positions whose logits predict the response tokens); carry the gradient.
        teacher_hidden_BTH: [B, T, H'] teacher hidden states at the same positions (stop-gradient).
        lm_head_weight_VH: [V, H] the student's output projection (``model.lm_head.weight``); gets a gradient.
        mask_BT: [B, T] bool, True = a response token the student produced.
        teacher_lm_head_weight_VH: [V, H'] the teacher's output projection (stop-gradient); None = the
            student's weight (self-distillation: one model, two views).
        chunk_size: response tokens per chunk.
        temperature, clip: as in :func:`forward_kl`.

    Returns:
        [B, T] in at least fp32, 0 where masked.
    """
    _check_scalars(temperature, clip)
    rows = partial(_forward_kl_rows, temperature=temperature, clip=clip)
    return _chunked(
        rows,
        student_hidden_BTH,
        teacher_hidden_BTH,
        lm_head_weight_VH,
        mask_BT,
        teacher_lm_head_weight_VH,
        chunk_size,
    )


def reverse_kl_chunked(
    student_hidden_BTH: torch.Tensor,
    teacher_hidden_BTH: torch.Tensor,
    lm_head_weight_VH: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    teacher_lm_head_weight_VH: torch.Tensor | None = None,
    chunk_size: int = 256,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = KL(p_S ‖ p_T),  p_S = softmax(h_S·Wᵀ/τ),  p_T = softmax(h_T·W_Tᵀ/τ),
    computed ``chunk_size`` tokens at a time.

    Same value and gradient as :func:`reverse_kl` on the full logits (direction: reverse,
    KL(student ‖ teacher)), with peak memory O(chunk_size·V). Arguments as in :func:`forward_kl_chunked`.

    Returns:
        [B, T] in at least fp32, 0 where masked.
    """
    _check_scalars(temperature, clip)
    rows = partial(_reverse_kl_rows, temperature=temperature, clip=clip)
    return _chunked(
        rows,
        student_hidden_BTH,
        teacher_hidden_BTH,
        lm_head_weight_VH,
        mask_BT,
        teacher_lm_head_weight_VH,
        chunk_size,
    )


def generalized_jsd_chunked(
    student_hidden_BTH: torch.Tensor,
    teacher_hidden_BTH: torch.Tensor,
    lm_head_weight_VH: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    beta: float = 0.5,
    teacher_lm_head_weight_VH: torch.Tensor | None = None,
    chunk_size: int = 256,
    temperature: float = 1.0,
    clip: float | None = None,
) -> torch.Tensor:
    """L_t = β·KL(p_T ‖ m) + (1−β)·KL(p_S ‖ m),  m = β·p_T + (1−β)·p_S,
    with the logits computed from hidden states chunk by chunk.

    Same value and gradient as :func:`generalized_jsd` (β = 0 → forward KL(teacher ‖ student), β = 1 →
    reverse KL(student ‖ teacher)), with peak memory O(chunk_size·V). Arguments as in
    :func:`forward_kl_chunked`, plus ``beta`` ∈ [0, 1].

    Returns:
        [B, T] in at least fp32, 0 where masked.
    """
    _check_scalars(temperature, clip, beta)
    rows = partial(_jsd_rows, beta=float(beta), temperature=temperature, clip=clip)
    return _chunked(
        rows,
        student_hidden_BTH,
        teacher_hidden_BTH,
        lm_head_weight_VH,
        mask_BT,
        teacher_lm_head_weight_VH,
        chunk_size,
    )
