"""Policy-gradient surrogates over per-token advantages, and the sequence-level KL-in-reward shaping.

- :func:`ppo_clip`            PPO clipped surrogate with ratio π_θ/π_old (GRPO, OPSD-as-penalty, Skill-SD)
- :func:`is_clipped_student`  π-Distill's student term: the same with ratio π_S/sg(π_T) on teacher samples,
                              dual-clipped (the ratio is not near 1 by construction)
- :func:`teacher_sample_pull` π-Distill's β pull of the student onto teacher samples (Eq. 3's −β·KL(sg π_T‖π_S))
- :func:`grpo_advantages`     group-centred (optionally std-scaled) advantages from sequence rewards
- :func:`sequence_kl`, :func:`kl_in_reward`   R − β·KL̂ with the KL summed over a turn or a whole episode

Per-token functions return ``loss_BT`` (zero where the mask is False); reduce with
:func:`agentdistill.losses.reduce.reduce_loss`.
"""

from __future__ import annotations

from typing import Literal

import torch

from agentdistill.losses._common import as_float, check_mask, zero_masked

# exp(20) ≈ 4.9e8: a larger ratio is already far outside any clip range, and capping it keeps exp() finite so
# the unselected branch of the min cannot turn the gradient into NaN (verl caps the log-ratio the same way).
_MAX_LOG_RATIO = 20.0


def _ratio_terms(
    logprobs_BT: torch.Tensor,
    ref_logprobs_BT: torch.Tensor,
    advantages_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ratio r, clipped ratio, advantages), all [B, T], with masked positions neutral (r = 1, A = 0)."""
    check_mask(
        mask_BT,
        (logprobs_BT.shape, "logprobs_BT"),
        (ref_logprobs_BT.shape, "old/teacher logprobs_BT"),
        (advantages_BT.shape, "advantages_BT"),
    )
    if not (logprobs_BT.shape == ref_logprobs_BT.shape == advantages_BT.shape == mask_BT.shape):
        raise ValueError(
            f"log-probs, advantages and mask must all be [B, T]; got {tuple(logprobs_BT.shape)}, "
            f"{tuple(ref_logprobs_BT.shape)}, {tuple(advantages_BT.shape)}, {tuple(mask_BT.shape)}"
        )
    if not (0.0 <= clip_low < 1.0 and clip_high >= 0.0):
        raise ValueError(
            f"need 0 <= clip_low < 1 and clip_high >= 0; got clip_low={clip_low}, clip_high={clip_high}"
        )
    log_ratio_BT = zero_masked(as_float(logprobs_BT) - as_float(ref_logprobs_BT).detach(), mask_BT)
    ratio_BT = torch.exp(log_ratio_BT.clamp(max=_MAX_LOG_RATIO))
    clipped_BT = ratio_BT.clamp(1.0 - clip_low, 1.0 + clip_high)
    return ratio_BT, clipped_BT, zero_masked(as_float(advantages_BT).detach(), mask_BT)


def ppo_clip(
    logprobs_BT: torch.Tensor,
    old_logprobs_BT: torch.Tensor,
    advantages_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float | None = None,
) -> torch.Tensor:
    """L_t = −min(r_t·A_t, clip(r_t, 1−ε_low, 1+ε_high)·A_t),  r_t = exp(log π_θ(y_t) − sg(log π_old(y_t))).

    With ``clip_ratio_c = c`` (dual clip, Ye et al. 2020; verl's ``clip_ratio_c``), a token with A_t < 0 costs
    at most −c·A_t: L_t = min(L_t, −c·A_t), and its gradient is 0 beyond r_t > c. Without it, a negative
    advantage times a huge ratio is unbounded.

    The PPO clipped surrogate (GRPO's token loss; asymmetric ε as in DAPO/Skill-SD). No KL direction of its
    own: with OPD advantages (:func:`agentdistill.losses.sampled.reverse_kl_advantage`) it descends the
    reverse KL(π_θ ‖ π_T). At r = 1 the gradient is −A_t·∇log π_θ(y_t); once r leaves the clip range on the
    side the advantage favours, the gradient is 0 (see :func:`ppo_clipped`). Log-ratios above 20 are capped.

    Args:
        logprobs_BT: [B, T] log π_θ of the sampled ids (carries the gradient), at the sampling temperature.
        old_logprobs_BT: [B, T] log-probs of the sampling policy (stop-gradient).
        advantages_BT: [B, T] advantages (stop-gradient); broadcast sequence advantages with
            ``A_B[:, None].expand_as(mask_BT)``.
        mask_BT: [B, T] bool, True = a response token the student produced.
        clip_low: ε_low, the ratio is clipped below at 1 − ε_low.
        clip_high: ε_high, the ratio is clipped above at 1 + ε_high.
        clip_ratio_c: c > 1 of the dual clip on negative advantages; None: no dual clip.

    Returns:
        [B, T] surrogate loss, 0 where masked; equals −A_t when r_t = 1.
    """
    ratio_BT, clipped_BT, adv_BT = _ratio_terms(
        logprobs_BT, old_logprobs_BT, advantages_BT, mask_BT, clip_low, clip_high
    )
    loss_BT = -torch.minimum(ratio_BT * adv_BT, clipped_BT * adv_BT)
    if clip_ratio_c is None:
        return loss_BT
    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (verl uses 3), got {clip_ratio_c}")
    return torch.where(adv_BT < 0, torch.minimum(loss_BT, -clip_ratio_c * adv_BT), loss_BT)


def ppo_clipped(
    logprobs_BT: torch.Tensor,
    old_logprobs_BT: torch.Tensor,
    advantages_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> torch.Tensor:
    """c_t = [A_t > 0 ∧ r_t > 1+ε_high] ∨ [A_t < 0 ∧ r_t < 1−ε_low]: where the clip is active (zero gradient).

    Same arguments as :func:`ppo_clip` (or :func:`is_clipped_student` with the teacher's log-probs as
    ``old_logprobs_BT``). Returns a bool [B, T], False where masked; its token mean is the clip fraction
    (π-Distill logs ``actor/student_clip_frac``, methods.md pitfall 12).
    """
    ratio_BT, _, adv_BT = _ratio_terms(
        logprobs_BT, old_logprobs_BT, advantages_BT, mask_BT, clip_low, clip_high
    )
    clipped_BT = ((adv_BT > 0) & (ratio_BT > 1.0 + clip_high)) | ((adv_BT < 0) & (ratio_BT < 1.0 - clip_low))
    return clipped_BT & mask_BT


def is_clipped_student(
    student_logprobs_BT: torch.Tensor,
    teacher_logprobs_BT: torch.Tensor,
    advantages_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float | None = 3.0,
) -> torch.Tensor:
    """L_t = −min(ρ_t·A_t, clip(ρ_t, 1−ε_low, 1+ε_high)·A_t),  ρ_t = π_S(y_t|s) / sg(π_T(y_t|s, I)),
    dual-clipped: for A_t < 0, L_t ≤ −c·A_t (``clip_ratio_c``, default 3 as verl's).

    π-Distill's student term J_S (arXiv 2602.04942, Eq. 3 / Alg. 1): the rollouts come from the teacher view
    (with privileged information I), and the student view is importance-weighted onto them. Clip range
    [0.8, 1.2] in the paper. The denominator is the teacher's log-prob of the same ids — the current one
    under stop-gradient as in the code dump, or the sampler's (π^T_old) as in Alg. 1: the caller chooses by
    what it passes. When student and teacher are far apart most ratios leave the clip range and stop
    contributing; log :func:`ppo_clipped` with the same arguments. Unlike PPO's ratio, ρ is not near 1 by
    construction (two different contexts), so a negative advantage on a token the student over-weights would
    be unbounded: the dual clip caps it.

    Args:
        student_logprobs_BT: [B, T] student-view log-probs of the teacher-sampled ids (carry the gradient).
        teacher_logprobs_BT: [B, T] teacher-view log-probs of the same ids (stop-gradient).
        advantages_BT: [B, T] advantages (stop-gradient), e.g. group-centred R − β·KL̂ per sequence.
        mask_BT: [B, T] bool, True = a response token the teacher view produced and the student is trained on.
        clip_low, clip_high: ε_low, ε_high.
        clip_ratio_c: the dual clip's c (> 1); None turns it off.

    Returns:
        [B, T] surrogate loss, 0 where masked.
    """
    return ppo_clip(
        student_logprobs_BT,
        teacher_logprobs_BT,
        advantages_BT,
        mask_BT,
        clip_low=clip_low,
        clip_high=clip_high,
        clip_ratio_c=clip_ratio_c,
    )


def teacher_sample_pull(student_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """L_t = −log π_S(y_t | s) on ids y_t sampled from the teacher view π_T(·|s, I).

    The sampled-token estimator of KL(sg π_T ‖ π_S) up to a constant: E_{y∼π_T}[−∇log π_S(y)] =
    ∇KL(π_T ‖ π_S) with the teacher held fixed. Weighted by β, it is π-Distill Eq. 3's −β·KL(sg π_T ‖ π_S) in
    the student objective: it *attracts* the student to what the teacher view samples (an SFT-like pull),
    whereas putting −β·KL̂ into the student term's advantage (Alg. 1) ascends KL(π_S ‖ π_T) in expectation.

    Args:
        student_logprobs_BT: [B, T] student-view log-probs of teacher-sampled ids (carry the gradient).
        mask_BT: [B, T] bool, True = a response token the teacher view produced.

    Returns:
        [B, T] loss, 0 where masked.
    """
    check_mask(mask_BT, (student_logprobs_BT.shape, "student_logprobs_BT"))
    return zero_masked(-as_float(student_logprobs_BT), mask_BT)


def grpo_advantages(
    rewards_B: torch.Tensor,
    group_ids_B: torch.Tensor,
    *,
    scale_by_std: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """A_i = R_i − mean_{j∈g(i)} R_j, divided by (std_{j∈g(i)} R_j + eps) when ``scale_by_std``.

    Group-relative advantages of GRPO. π-Distill centres without std scaling (the default here); DeepSeek's
    GRPO and TRL's ``scale_rewards="group"`` also divide by the group's (unbiased) standard deviation.
    A group of one sample gets advantage 0. No gradient.

    Args:
        rewards_B: [B] one scalar reward per sequence (after any KL shaping, see :func:`kl_in_reward`).
        group_ids_B: [B] integer ids; sequences with equal ids belong to one group (the G samples of one
            task). Ids need not be contiguous or sorted.
        scale_by_std: also divide by the group std.
        eps: added to the std before dividing.

    Returns:
        [B] advantages; they sum to 0 within each group.
    """
    if rewards_B.dim() != 1 or group_ids_B.shape != rewards_B.shape:
        raise ValueError(
            f"rewards_B and group_ids_B must both be [B]; got {tuple(rewards_B.shape)} and "
            f"{tuple(group_ids_B.shape)}"
        )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if group_ids_B.is_floating_point() or group_ids_B.dtype == torch.bool:
        raise TypeError(f"group_ids_B must hold integer ids, got {group_ids_B.dtype}")
    rewards_B = as_float(rewards_B).detach()
    _, group_B = torch.unique(group_ids_B, return_inverse=True)
    n_groups = int(group_B.max()) + 1 if group_B.numel() else 0
    counts_G = torch.zeros(n_groups, dtype=rewards_B.dtype, device=rewards_B.device).index_add(
        0, group_B, torch.ones_like(rewards_B)
    )
    means_G = torch.zeros_like(counts_G).index_add(0, group_B, rewards_B) / counts_G
    centred_B = rewards_B - means_G[group_B]
    if not scale_by_std:
        return centred_B
    var_G = torch.zeros_like(counts_G).index_add(0, group_B, centred_B.square()) / (counts_G - 1).clamp(min=1)
    scale_B = var_G.sqrt()[group_B] + eps
    # A group whose rewards are all equal has std 0 and centred rewards exactly 0: keep 0 even at eps = 0.
    return torch.where(scale_B > 0, centred_B / scale_B.clamp(min=torch.finfo(scale_B.dtype).tiny), 0.0)


def per_episode_sum(values_B: torch.Tensor, episode_ids_B: torch.Tensor) -> torch.Tensor:
    """s_i = Σ_{j: e_j = e_i} v_j: each row gets the total of all rows of its episode. [B], int [B] → [B]."""
    if values_B.dim() != 1 or episode_ids_B.shape != values_B.shape:
        raise ValueError(
            f"values_B and episode_ids_B must both be [B]; got {tuple(values_B.shape)} and "
            f"{tuple(episode_ids_B.shape)}"
        )
    _, episode_B = torch.unique(episode_ids_B, return_inverse=True)
    n_episodes = int(episode_B.max()) + 1 if episode_B.numel() else 0
    totals_E = torch.zeros(n_episodes, dtype=values_B.dtype, device=values_B.device).index_add(
        0, episode_B, values_B
    )
    return totals_E[episode_B]


def sequence_kl(
    student_logprobs_BT: torch.Tensor,
    teacher_logprobs_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    episode_ids_B: torch.Tensor | None = None,
    *,
    sampled_by: Literal["student", "teacher"] = "student",
) -> torch.Tensor:
    """KL̂_b = Σ_t m_bt·(log π_S(y_bt) − log π_T(y_bt))  (student samples),
    KL̂_b = Σ_t m_bt·(log π_T(y_bt) − log π_S(y_bt))  (teacher samples).

    The sampled-token (k1) estimate of a sequence's KL, summed over its response tokens, and over all turns
    of its episode when ``episode_ids_B`` is given (π-Distill's code subtracts the episode total from every
    turn). Direction: KL(sampler ‖ other) — reverse KL(π_S ‖ π_T) for OPSD (student samples), KL(π_T ‖ π_S)
    for π-Distill (teacher samples) — chosen by ``sampled_by`` so the sign cannot be mixed up. For a
    Rao-Blackwellised full-vocabulary variant, sum the divergence in the sampler's direction over tokens and
    use :func:`per_episode_sum`: π-Distill's KL(π_T ‖ π_S) (App. E.1) is
    :func:`~agentdistill.losses.divergences.forward_kl` (student logits, teacher logits) — the teacher is the
    first argument of that KL; OPSD's KL(π_S ‖ π_T) is :func:`~agentdistill.losses.divergences.reverse_kl`.
    No gradient: it is a reward term.

    Args:
        student_logprobs_BT: [B, T] student-view log-probs of the sampled ids.
        teacher_logprobs_BT: [B, T] teacher-view log-probs of the same ids.
        mask_BT: [B, T] bool, True = a response token.
        episode_ids_B: [B] integer episode ids (one row per turn), or None for per-row sums.
        sampled_by: which view produced the ids.

    Returns:
        [B] KL estimates (each turn carries its episode's total when ids are given).
    """
    if sampled_by not in ("student", "teacher"):
        raise ValueError(f"sampled_by must be 'student' or 'teacher', got {sampled_by!r}")
    check_mask(
        mask_BT,
        (student_logprobs_BT.shape, "student_logprobs_BT"),
        (teacher_logprobs_BT.shape, "teacher_logprobs_BT"),
    )
    ell_BT = zero_masked(as_float(student_logprobs_BT) - as_float(teacher_logprobs_BT), mask_BT).detach()
    kl_B = ell_BT.sum(dim=1) if sampled_by == "student" else -ell_BT.sum(dim=1)
    return kl_B if episode_ids_B is None else per_episode_sum(kl_B, episode_ids_B)


def kl_in_reward(rewards_B: torch.Tensor, kl_per_seq_B: torch.Tensor, *, beta: float) -> torch.Tensor:
    """R'_b = R_b − β·sg(KL̂_b).

    Sequence-level KL shaping of π-Distill's teacher term J_T (and of its student term in the paper's Alg. 1
    form, which repels the student: see :func:`teacher_sample_pull`) and of OPSD's reward mode (Alg. 2):
    subtract the KL before computing group advantages (:func:`grpo_advantages`). β is tuned for this sequence-summed
    scale (π-Distill 0.25–0.5); do not reuse it for token-mean losses (methods.md pitfall 7).

    Args:
        rewards_B: [B] environment rewards per sequence.
        kl_per_seq_B: [B] KL estimates per sequence, e.g. from :func:`sequence_kl`.
        beta: β ≥ 0; 0 leaves the rewards unchanged.

    Returns:
        [B] shaped rewards, no gradient.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if rewards_B.shape != kl_per_seq_B.shape or rewards_B.dim() != 1:
        raise ValueError(
            f"rewards_B and kl_per_seq_B must both be [B]; got {tuple(rewards_B.shape)} and "
            f"{tuple(kl_per_seq_B.shape)}"
        )
    return as_float(rewards_B).detach() - beta * as_float(kl_per_seq_B).detach()
