"""Masked reductions of per-token losses: the only place in ``agentdistill.losses`` where reduction happens.

Every per-token loss returns ``loss_BT`` (unreduced, zero where ``mask_BT`` is False) and the caller turns it
into a scalar here. Under gradient accumulation, pass the *global* normaliser of the whole optimiser step
(sum ``normalizer_for`` over its micro-batches) so that splitting a batch does not change the gradient.
"""

from __future__ import annotations

from typing import Literal

import torch

ReduceMode = Literal["token_mean", "seq_mean_token_mean", "sum"]
REDUCE_MODES: tuple[str, ...] = ("token_mean", "seq_mean_token_mean", "sum")


def _check(loss_BT: torch.Tensor, mask_BT: torch.Tensor, mode: str) -> None:
    if mode not in REDUCE_MODES:
        raise ValueError(f"unknown reduction mode {mode!r}; choose one of {', '.join(REDUCE_MODES)}")
    if mask_BT.dtype != torch.bool:
        raise TypeError(f"mask_BT must be a bool tensor (True = a response token), got {mask_BT.dtype}")
    if loss_BT.shape != mask_BT.shape or loss_BT.dim() != 2:
        raise ValueError(
            f"loss_BT and mask_BT must both be [B, T]; got {tuple(loss_BT.shape)} and {tuple(mask_BT.shape)}"
        )


def normalizer_for(mask_BT: torch.Tensor, *, mode: ReduceMode) -> int:
    """The count this micro-batch contributes to the global ``normalizer`` of :func:`reduce_loss`.

    ``token_mean``: the number of True entries of ``mask_BT`` [B, T]. ``seq_mean_token_mean``: the number of
    rows with at least one True entry. ``sum`` takes no normaliser (returns 0). Sum the counts over all
    micro-batches (and ranks) of one optimiser step and pass the total to every ``reduce_loss`` call.
    """
    if mode not in REDUCE_MODES:
        raise ValueError(f"unknown reduction mode {mode!r}; choose one of {', '.join(REDUCE_MODES)}")
    if mode == "token_mean":
        return int(mask_BT.sum())
    if mode == "seq_mean_token_mean":
        return int(mask_BT.any(dim=1).sum())
    return 0


def reduce_loss(
    loss_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    mode: ReduceMode,
    normalizer: float | int | torch.Tensor | None = None,
) -> torch.Tensor:
    """L = Σ_{b,t} m_bt·loss_bt / N  (token_mean);
    L = (1/N)·Σ_b [Σ_t m_bt·loss_bt / Σ_t m_bt]  (seq_mean_token_mean);
    L = Σ_{b,t} m_bt·loss_bt  (sum).

    Args:
        loss_BT: [B, T] per-token loss. Entries where the mask is False are ignored (even NaN or inf there
            never reaches the value; their gradient is zero).
        mask_BT: [B, T] bool, True = a response token the student produced.
        mode: ``"token_mean"``: every response token of the batch weighs the same; N = ``mask_BT.sum()`` or
            the given global ``normalizer`` (total response tokens of the optimiser step).
            ``"seq_mean_token_mean"``: each sequence's token mean, averaged over sequences; N = the number
            of sequences with at least one response token, or the given global ``normalizer`` (that count
            over the whole step). Rows without response tokens contribute nothing.
            ``"sum"``: the plain masked sum; takes no normaliser.
        normalizer: the global N described above (see :func:`normalizer_for`); None uses this batch's own.

    Returns:
        A scalar tensor. A batch with no response token (or N = 0) gives exactly 0 with zero gradient,
        never NaN.
    """
    _check(loss_BT, mask_BT, mode)
    masked_BT = torch.where(mask_BT, loss_BT, torch.zeros((), dtype=loss_BT.dtype, device=loss_BT.device))
    if mode == "sum":
        if normalizer is not None:
            raise ValueError('mode="sum" takes no normalizer; use "token_mean" to divide by a global count')
        return masked_BT.sum()
    if normalizer is not None and float(normalizer) < normalizer_for(mask_BT, mode=mode):
        raise ValueError(
            f"normalizer {float(normalizer)} is smaller than this batch's own count "
            f"{normalizer_for(mask_BT, mode=mode)}; pass the total of normalizer_for(...) over every "
            "micro-batch of the step"
        )
    if mode == "token_mean":
        total = masked_BT.sum()
        count = mask_BT.sum() if normalizer is None else normalizer
    else:
        tokens_B = mask_BT.sum(dim=1)
        # A row without response tokens has a zero sum; clamping its count keeps 0/0 out of the graph.
        seq_mean_B = masked_BT.sum(dim=1) / tokens_B.clamp(min=1).to(masked_BT.dtype)
        total = seq_mean_B.sum()
        count = (tokens_B > 0).sum() if normalizer is None else normalizer
    count = torch.as_tensor(count, dtype=total.dtype, device=total.device)
    # N = 0 only when every entry is masked (checked above), so the sum is exactly 0 and stays 0.
    return total / count.clamp(min=1)
