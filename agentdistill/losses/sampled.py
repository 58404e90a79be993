"""Sampled-token KL estimators: inputs are log-probs of the *sampled* response ids only (``_BT``).

Notation: y_t is the sampled token at position t, lp_S = log π_θ(y_t | ·) the student (trained) log-prob,
lp_T = log π_T(y_t | ·) the teacher log-prob (always under stop-gradient here), ℓ_t = lp_S − lp_T.
Every estimate is per position at a fixed prefix: none of them sees how a token changes later KL terms.

Which one to train with (§4.2 and §8 of ``research/methods.md``):

- ``pg_reverse_kl``  sg(ℓ)·lp_S   on-policy, expected gradient ∇KL(π_θ‖π_T)   (OPD / OPSD "tinker" loss)
- ``iw_k3``          ρ·k3         expected gradient ∇KL(π_θ‖π_T) for samples from π_old (Skill-SD)
- ``k2``             ½ℓ²          on-policy, expected gradient ∇KL(π_θ‖π_T)
- ``k3``             k3           THE TRAP: expected gradient ∇KL(π_T‖π_θ), the *forward* direction
- ``k1``             ℓ            expected gradient 0: a value estimate only

All functions return ``_BT`` tensors (zero where the mask is False); reduce them with
:func:`agentdistill.losses.reduce.reduce_loss`.
"""

from __future__ import annotations

import torch

from agentdistill.losses._common import as_float, check_mask, zero_masked


def _log_ratio(
    student_logprobs_BT: torch.Tensor, teacher_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """ℓ = lp_S − sg(lp_T), zero where masked (before any exp, so padding can never overflow or give NaN)."""
    check_mask(
        mask_BT,
        (student_logprobs_BT.shape, "student_logprobs_BT"),
        (teacher_logprobs_BT.shape, "teacher_logprobs_BT"),
    )
    if student_logprobs_BT.shape != mask_BT.shape or teacher_logprobs_BT.shape != mask_BT.shape:
        raise ValueError(
            f"sampled-token log-probs must be [B, T] like mask_BT {tuple(mask_BT.shape)}; got "
            f"{tuple(student_logprobs_BT.shape)} and {tuple(teacher_logprobs_BT.shape)}"
        )
    return zero_masked(as_float(student_logprobs_BT) - as_float(teacher_logprobs_BT).detach(), mask_BT)


def k1(
    student_logprobs_BT: torch.Tensor, teacher_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """k1_t = ℓ_t = log π_θ(y_t) − log π_T(y_t): unbiased value estimate of KL(π_θ ‖ π_T) for y_t ~ π_θ.

    Direction: reverse, KL(student ‖ teacher), when the student sampled (for teacher samples, −k1 estimates
    KL(π_T ‖ π_θ)). For logging. Its gradient ∇log π_θ(y_t) has expectation exactly 0 on-policy, so as a loss
    it only adds noise (it is the ``sg(lp_T) − lp_S`` term of the π-Distill code dump, sign flipped).

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids.
        teacher_logprobs_BT: [B, T] log π_T of the same ids (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.

    Returns:
        [B, T] per-token estimate; 0 where masked. Can be negative per token; 0 when the log-probs agree.
    """
    return _log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT)


def k2(
    student_logprobs_BT: torch.Tensor, teacher_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """k2_t = ½·ℓ_t²,  ℓ_t = log π_θ(y_t) − log π_T(y_t): a low-variance, biased estimate of KL(π_θ ‖ π_T).

    Direction: reverse, KL(student ‖ teacher). Its gradient ℓ_t·∇log π_θ(y_t) equals that of
    :func:`pg_reverse_kl`, so on-policy its expectation is ∇KL(π_θ ‖ π_T). Mostly for logging.

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids.
        teacher_logprobs_BT: [B, T] log π_T of the same ids (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.

    Returns:
        [B, T], ≥ 0, 0 where masked and where the log-probs agree.
    """
    ell_BT = _log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT)
    return 0.5 * ell_BT.square()


def k3(
    student_logprobs_BT: torch.Tensor, teacher_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """k3_t = e^{−ℓ_t} − 1 + ℓ_t,  ℓ_t = log π_θ(y_t) − log π_T(y_t).

    THE TRAP. As a *value*, k3 is an unbiased, non-negative estimate of the reverse KL(π_θ ‖ π_T) for
    y_t ~ π_θ — good for logging. As a *loss*, its gradient is (1 − π_T/π_θ)·∇log π_θ(y_t), whose on-policy
    expectation is ∇KL(π_T ‖ π_θ): the FORWARD direction (methods.md §4.2, §8, pitfall 5). Train with
    :func:`iw_k3` or :func:`pg_reverse_kl` when you mean reverse KL.

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids.
        teacher_logprobs_BT: [B, T] log π_T of the same ids (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.

    Returns:
        [B, T], ≥ 0, 0 where masked and where the log-probs agree.
    """
    ell_BT = _log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT)
    return torch.expm1(-ell_BT) + ell_BT


def iw_k3(
    student_logprobs_BT: torch.Tensor,
    teacher_logprobs_BT: torch.Tensor,
    old_logprobs_BT: torch.Tensor,
    mask_BT: torch.Tensor,
) -> torch.Tensor:
    """L_t = ρ_t·(e^{−ℓ_t} − 1 + ℓ_t),  ρ_t = exp(log π_θ(y_t) − sg(log π_old(y_t))),
    ℓ_t = log π_θ(y_t) − sg(log π_T(y_t)).

    Skill-SD's importance-weighted k3 (arXiv 2604.10674, Eq. 12; "K3++"). Direction: reverse,
    KL(π_θ ‖ π_T). The per-sample gradient is ρ_t·ℓ_t·∇log π_θ(y_t), so for y_t ~ π_old its expectation is
    E_{π_θ}[ℓ·∇log π_θ] = ∇KL(π_θ ‖ π_T) exactly — also off-policy, as long as π_old is the sampler. The
    value is an unbiased, non-negative estimate of the reverse KL. With π_old = π_θ (one update per batch)
    ρ = 1 in value but still carries the gradient.

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids (carries the gradient).
        teacher_logprobs_BT: [B, T] log π_T of the same ids (stop-gradient).
        old_logprobs_BT: [B, T] log-probs of the policy that sampled the ids (stop-gradient), at the same
            temperature.
        mask_BT: [B, T] bool, True = a response token the student produced.

    Returns:
        [B, T], ≥ 0, 0 where masked and where student and teacher log-probs agree.
    """
    ell_BT = _log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT)
    if old_logprobs_BT.shape != mask_BT.shape:
        raise ValueError(f"old_logprobs_BT must be [B, T] like mask_BT; got {tuple(old_logprobs_BT.shape)}")
    log_rho_BT = zero_masked(as_float(student_logprobs_BT) - as_float(old_logprobs_BT).detach(), mask_BT)
    return torch.exp(log_rho_BT) * (torch.expm1(-ell_BT) + ell_BT)


def pg_reverse_kl(
    student_logprobs_BT: torch.Tensor, teacher_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor
) -> torch.Tensor:
    """L_t = sg(ℓ_t)·log π_θ(y_t),  ℓ_t = log π_θ(y_t) − log π_T(y_t).

    The policy-gradient form of on-policy distillation (Thinking Machines / Tinker OPD; OPSD
    ``--use_tinker_loss``; SDPO's non-full-logit mode): REINFORCE with per-token reward −ℓ_t. Direction:
    reverse; for y_t ~ π_θ, E[∇L_t] = E_{π_θ}[ℓ·∇log π_θ] = ∇KL(π_θ ‖ π_T). The *value* is not a KL (use
    :func:`k3` or :func:`k1` to log one). For samples from an older policy use :func:`iw_k3`, or feed
    :func:`reverse_kl_advantage` to a clipped surrogate.

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids (carries the gradient).
        teacher_logprobs_BT: [B, T] log π_T of the same ids (stop-gradient).
        mask_BT: [B, T] bool, True = a response token the student produced.

    Returns:
        [B, T] surrogate, 0 where masked and where student and teacher agree (zero gradient there too).
    """
    ell_BT = _log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT)
    return ell_BT.detach() * zero_masked(as_float(student_logprobs_BT), mask_BT)


def reverse_kl_advantage(
    student_logprobs_BT: torch.Tensor,
    teacher_logprobs_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    discount: float = 0.0,
) -> torch.Tensor:
    """A_t = Σ_{t' ≥ t} γ^{n(t,t')}·(−ℓ_{t'}),  ℓ = log π_θ(y) − log π_T(y),
    n(t,t') = the number of response tokens in (t, t'].

    The per-token advantage of on-policy distillation, under stop-gradient: the reward of token t is
    −ℓ_t = log π_T(y_t) − log π_θ(y_t). Direction: reverse; a policy-gradient surrogate −A_t·log π_θ(y_t)
    (or :func:`agentdistill.losses.pg.ppo_clip` with these advantages) has expected gradient
    ∇KL(π_θ ‖ π_T) when γ = 0. γ > 0 also credits a token with the discounted KL of later tokens (as
    Tinker's ``kl_discount_factor``); masked positions are skipped: they add no reward and count no step.

    Args:
        student_logprobs_BT: [B, T] log π_θ of the sampled ids.
        teacher_logprobs_BT: [B, T] log π_T of the same ids.
        mask_BT: [B, T] bool, True = a response token the student produced.
        discount: γ ∈ [0, 1]. 0 (default) → A_t = −ℓ_t; 1 → the undiscounted sum of the remaining rewards.

    Returns:
        [B, T] advantages without gradient, 0 where masked.
    """
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    reward_BT = -_log_ratio(student_logprobs_BT, teacher_logprobs_BT, mask_BT).detach()
    if discount == 0.0:
        return reward_BT
    advantage_BT = torch.zeros_like(reward_BT)
    running_B = torch.zeros_like(reward_BT[:, 0])
    for t in range(reward_BT.shape[1] - 1, -1, -1):
        running_B = torch.where(mask_BT[:, t], reward_BT[:, t] + discount * running_B, running_B)
        advantage_BT[:, t] = zero_masked(running_B, mask_BT[:, t])
    return advantage_BT
