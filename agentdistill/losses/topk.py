"""Reverse KL(p_S ‖ p_T) restricted to a top-k support K, for teachers that return only top-k log-probs.

Inputs: the student's full logits [B, T, V] (full log-probs work too: log_softmax leaves them unchanged at
temperature 1), the K ids per position [B, T, K] and the teacher's *full-vocabulary* log-probs at those ids
[B, T, K] (already at the sampling temperature; the teacher side is always under stop-gradient). K is
usually the teacher's top-k (SDPO, OPSD ``top_k_loss``); any set of distinct ids works, e.g. the student's
top-k from :func:`student_topk_ids` with the teacher's log-probs at them (Many Faces of OPD).

The trap (methods.md §5.1, pitfall 6): the plain truncation Σ_K p_S·(log p_S − log p_T)
(:func:`topk_reverse_kl_truncated`) has gradient Σ_K ∇p_S·(log p_S − log p_T) + ∇(Σ_K p_S): the extra
term pushes probability mass out of K. The corrected forms:

- :func:`topk_tail_reverse_kl`: K plus one tail bucket holding the leftover mass of each distribution
  (SDPO ``distillation_add_tail``) — an exact KL between two (K+1)-bucket distributions;
- :func:`topk_renorm_reverse_kl`: both distributions renormalised on K — an exact KL on K;
- :func:`topk_reverse_kl_sg`: Σ_K p_S·(sg(log p_S) − log p_T) — drops the extra term (Many Faces).

All return ``loss_BT`` (zero where the mask is False); reduce with
:func:`agentdistill.losses.reduce.reduce_loss`.
"""

from __future__ import annotations

import math

import torch

from agentdistill.losses._common import as_float, check_mask, float_dtype, zero_masked

# A log-prob no finite logits produce: exp() of it is exactly 0 in fp32 and fp64, yet gradients stay finite
# (an empty student tail, k = V, would otherwise be log 0 = -inf and give NaN gradients).
_LOG_FLOOR = -1.0e4


def _student_log_probs(student_logits_BTV: torch.Tensor, temperature: float) -> torch.Tensor:
    z = student_logits_BTV.to(float_dtype(student_logits_BTV.dtype))
    if temperature != 1.0:
        z = z / temperature
    return torch.log_softmax(z, dim=-1)


def _check(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    temperature: float,
) -> None:
    check_mask(
        mask_BT,
        (student_logits_BTV.shape, "student_logits_BTV"),
        (topk_ids_BTK.shape, "topk_ids_BTK"),
        (teacher_topk_logprobs_BTK.shape, "teacher_topk_logprobs_BTK"),
    )
    if topk_ids_BTK.shape != teacher_topk_logprobs_BTK.shape or topk_ids_BTK.dim() != 3:
        raise ValueError(
            f"topk_ids_BTK and teacher_topk_logprobs_BTK must both be [B, T, K]; got "
            f"{tuple(topk_ids_BTK.shape)} and {tuple(teacher_topk_logprobs_BTK.shape)}"
        )
    if topk_ids_BTK.dtype != torch.long:
        raise TypeError(f"topk_ids_BTK must be int64 token ids, got {topk_ids_BTK.dtype}")
    if topk_ids_BTK.shape[-1] > student_logits_BTV.shape[-1]:
        raise ValueError(
            f"K = {topk_ids_BTK.shape[-1]} exceeds the vocabulary size {student_logits_BTV.shape[-1]}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _gathered(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(student log-probs [B,T,V], student log-probs on K [B,T,K], detached teacher ones [B,T,K])."""
    _check(student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT, temperature)
    student_log_BTV = _student_log_probs(student_logits_BTV, temperature)
    student_log_BTK = student_log_BTV.gather(-1, topk_ids_BTK)
    teacher_log_BTK = as_float(teacher_topk_logprobs_BTK).detach().to(student_log_BTK.dtype)
    # Padding positions may carry anything (e.g. -inf teacher log-probs); keep them finite before any exp.
    teacher_log_BTK = torch.where(mask_BT.unsqueeze(-1), teacher_log_BTK, torch.zeros_like(teacher_log_BTK))
    return student_log_BTV, student_log_BTK, teacher_log_BTK


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x ≤ 0, accurate on both sides of −log 2."""
    x = x.clamp(max=0.0)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def topk_tail_reverse_kl(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """L_t = Σ_{v∈K} p_S(v)·log(p_S(v)/p_T(v)) + P_S(tail)·log(P_S(tail)/P_T(tail)),
    P(tail) = 1 − Σ_{v∈K} p(v).

    Direction: reverse, KL(student ‖ teacher) between the two distributions coarsened to K + one tail
    bucket (SDPO's ``distillation_add_tail``). An exact divergence: ≥ 0, 0 when the bucketed distributions
    agree, and equal to the full-vocabulary reverse KL when K is the whole vocabulary. The student's tail
    mass is summed exactly over the vocabulary outside K; the teacher's is 1 − Σ_K p_T, floored at machine
    epsilon because below it that difference is rounding noise.

    Args:
        student_logits_BTV: [B, T, V] student logits (or full log-probs), carry the gradient.
        topk_ids_BTK: [B, T, K] int64 distinct ids of the support K (usually the teacher's top-k).
        teacher_topk_logprobs_BTK: [B, T, K] the teacher's full-vocabulary log-probs at those ids
            (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: the student logits are divided by it (the teacher's log-probs must already be at it).

    Returns:
        [B, T], ≥ 0, 0 where masked.
    """
    student_log_BTV, student_log_BTK, teacher_log_BTK = _gathered(
        student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT, temperature
    )
    student_tail_BT = student_log_BTV.scatter(-1, topk_ids_BTK, _LOG_FLOOR).logsumexp(dim=-1)
    eps_log = math.log(torch.finfo(teacher_log_BTK.dtype).eps)
    teacher_tail_BT = _log1mexp(teacher_log_BTK.logsumexp(dim=-1)).clamp(min=eps_log)
    on_k_BT = (student_log_BTK.exp() * (student_log_BTK - teacher_log_BTK)).sum(dim=-1)
    tail_BT = student_tail_BT.exp() * (student_tail_BT - teacher_tail_BT)
    return zero_masked(on_k_BT + tail_BT, mask_BT)


def topk_renorm_reverse_kl(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """L_t = Σ_{v∈K} q_S(v)·log(q_S(v)/q_T(v)),  q(v) = p(v) / Σ_{u∈K} p(u)  (both renormalised on K).

    Direction: reverse, KL(student ‖ teacher) between the distributions conditioned on K (SDPO without the
    tail; OPSD ``top_k_loss`` renormalises the same way). An exact divergence on K: ≥ 0, 0 when the
    conditionals agree, equal to the full reverse KL when K is the whole vocabulary. It ignores how much
    mass either side puts outside K.

    Args:
        student_logits_BTV: [B, T, V] student logits (or full log-probs), carry the gradient.
        topk_ids_BTK: [B, T, K] int64 distinct ids of the support K (usually the teacher's top-k).
        teacher_topk_logprobs_BTK: [B, T, K] teacher log-probs at those ids (stop-gradient; only their
            differences matter, so unnormalised logits work too).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: the student logits are divided by it.

    Returns:
        [B, T], ≥ 0, 0 where masked.
    """
    _, student_log_BTK, teacher_log_BTK = _gathered(
        student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT, temperature
    )
    student_cond_BTK = torch.log_softmax(student_log_BTK, dim=-1)
    teacher_cond_BTK = torch.log_softmax(teacher_log_BTK, dim=-1)
    return zero_masked((student_cond_BTK.exp() * (student_cond_BTK - teacher_cond_BTK)).sum(dim=-1), mask_BT)


def topk_reverse_kl_sg(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """L_t = Σ_{v∈K} p_S(v)·(sg(log p_S(v)) − log p_T(v)).

    Direction: reverse, KL(student ‖ teacher) on K with the stop-gradient fix of "The Many Faces of OPD"
    (arXiv 2605.11182, ``topk_reverse_kl_notail_sg``; there K is the student's top-k — pass
    :func:`student_topk_ids` and the teacher's log-probs at them). Its gradient Σ_K ∇p_S·(log p_S − log p_T)
    is the truncated form's minus ∇(Σ_K p_S), so it no longer pushes mass out of K. The *value* equals the
    truncated sum (not a divergence: it can be negative); use it for gradients, log a KL separately.

    Args:
        student_logits_BTV: [B, T, V] student logits (or full log-probs), carry the gradient.
        topk_ids_BTK: [B, T, K] int64 distinct ids of the support K (teacher's or student's top-k).
        teacher_topk_logprobs_BTK: [B, T, K] the teacher's full-vocabulary log-probs at those ids
            (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: the student logits are divided by it.

    Returns:
        [B, T], 0 where masked; zero gradient where p_S = p_T on K.
    """
    _, student_log_BTK, teacher_log_BTK = _gathered(
        student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT, temperature
    )
    return zero_masked(
        (student_log_BTK.exp() * (student_log_BTK.detach() - teacher_log_BTK)).sum(dim=-1), mask_BT
    )


def topk_reverse_kl_truncated(
    student_logits_BTV: torch.Tensor,
    topk_ids_BTK: torch.Tensor,
    teacher_topk_logprobs_BTK: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """L_t = Σ_{v∈K} p_S(v)·(log p_S(v) − log p_T(v)) — THE TRAP: the biased plain truncation of reverse KL.

    Direction: reverse, KL(student ‖ teacher) cut to K without renormalising or a tail. Its gradient carries
    the extra term ∇(Σ_K p_S(v)) (methods.md §5.1, §8): minimising it pushes probability out of K, which
    Many Faces ties to repetition and collapse; even at p_S = p_T its gradient is not zero. Kept for tests
    and ablations; train with :func:`topk_tail_reverse_kl`, :func:`topk_renorm_reverse_kl` or
    :func:`topk_reverse_kl_sg`.

    Args:
        student_logits_BTV: [B, T, V] student logits (or full log-probs), carry the gradient.
        topk_ids_BTK: [B, T, K] int64 distinct ids of the support K.
        teacher_topk_logprobs_BTK: [B, T, K] the teacher's full-vocabulary log-probs at those ids
            (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.
        temperature: the student logits are divided by it.

    Returns:
        [B, T], 0 where masked (can be negative).
    """
    _, student_log_BTK, teacher_log_BTK = _gathered(
        student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT, temperature
    )
    return zero_masked((student_log_BTK.exp() * (student_log_BTK - teacher_log_BTK)).sum(dim=-1), mask_BT)


def student_topk_ids(student_logits_BTV: torch.Tensor, *, k: int) -> torch.Tensor:
    """K_t = the ids of the k largest student logits per position: [B, T, V] → [B, T, k] int64, no gradient.

    For Many Faces' student-support variant: score these ids under the teacher and pass both to
    :func:`topk_reverse_kl_sg`.
    """
    if not 1 <= k <= student_logits_BTV.shape[-1]:
        raise ValueError(f"k must be in [1, V={student_logits_BTV.shape[-1]}], got {k}")
    return student_logits_BTV.detach().topk(k, dim=-1).indices


def topk_overlap(
    student_logits_BTV: torch.Tensor, topk_ids_BTK: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """o_t = |top-k(p_S) ∩ K_t| / k: the share of the support K inside the student's top-k (k = |K|).

    A diagnostic to log next to any top-k loss (methods.md pitfall 6): low overlap means the support misses
    much of the student's mass. Shapes: [B, T, V], [B, T, K], bool [B, T] → [B, T] in [0, 1], 0 where masked,
    no gradient.
    """
    check_mask(
        mask_BT, (student_logits_BTV.shape, "student_logits_BTV"), (topk_ids_BTK.shape, "topk_ids_BTK")
    )
    k = topk_ids_BTK.shape[-1]
    student_ids_BTK = student_topk_ids(student_logits_BTV, k=k)
    hits_BT = (student_ids_BTK.unsqueeze(-1) == topk_ids_BTK.unsqueeze(-2)).any(dim=-1).sum(dim=-1)
    return zero_masked(hits_BT.to(float_dtype(student_logits_BTV.dtype)) / k, mask_BT)
