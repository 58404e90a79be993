"""Small helpers shared by the loss files: dtype promotion, input checks, masking."""

from __future__ import annotations

import torch


def float_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least fp32: bf16/fp16 become fp32, fp64 stays fp64 (tests use it for exact identities)."""
    return torch.promote_types(dtype, torch.float32)


def as_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(float_dtype(x.dtype))


def check_mask(mask_BT: torch.Tensor, *shapes: tuple[torch.Size, str]) -> None:
    """Raise a clear error unless ``mask_BT`` is a bool [B, T] tensor matching every given leading shape."""
    if mask_BT.dtype != torch.bool:
        raise TypeError(f"mask_BT must be a bool tensor (True = a response token), got {mask_BT.dtype}")
    if mask_BT.dim() != 2:
        raise ValueError(f"mask_BT must be [B, T], got shape {tuple(mask_BT.shape)}")
    for shape, name in shapes:
        if tuple(shape[:2]) != tuple(mask_BT.shape):
            raise ValueError(
                f"{name} has shape {tuple(shape)}; its first two dims must match "
                f"mask_BT {tuple(mask_BT.shape)}"
            )


def zero_masked(x: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """``x`` where the mask is True, exactly 0 elsewhere (also when ``x`` holds NaN/inf at masked entries)."""
    return torch.where(mask_BT, x, torch.zeros((), dtype=x.dtype, device=x.device))
