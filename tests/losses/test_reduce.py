"""reduce_loss: honest modes, global normaliser under micro-batching, all-masked batches."""

from __future__ import annotations

import pytest
import torch

from agentdistill.losses import REDUCE_MODES, normalizer_for, reduce_loss, reverse_kl

F64 = torch.float64
LOSS = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]], dtype=F64)
MASK = torch.tensor([[True, True, False, False], [False, False, False, False], [True, True, True, False]])


def test_modes_match_hand_computation():
    assert reduce_loss(LOSS, MASK, mode="token_mean").item() == pytest.approx((1 + 2 + 9 + 10 + 11) / 5)
    assert reduce_loss(LOSS, MASK, mode="seq_mean_token_mean").item() == pytest.approx((1.5 + 10.0) / 2)
    assert reduce_loss(LOSS, MASK, mode="sum").item() == pytest.approx(33.0)
    assert reduce_loss(LOSS, MASK, mode="token_mean", normalizer=11).item() == pytest.approx(3.0)
    assert reduce_loss(LOSS, MASK, mode="seq_mean_token_mean", normalizer=4).item() == pytest.approx(11.5 / 4)
    assert normalizer_for(MASK, mode="token_mean") == 5
    assert normalizer_for(MASK, mode="seq_mean_token_mean") == 2


@pytest.mark.parametrize("mode", REDUCE_MODES)
def test_masked_entries_never_leak_even_if_nan(mode):
    poisoned = torch.where(MASK, LOSS, float("nan")).requires_grad_(True)
    out = reduce_loss(poisoned, MASK, mode=mode)
    assert out.item() == pytest.approx(reduce_loss(LOSS, MASK, mode=mode).item())
    (g,) = torch.autograd.grad(out, poisoned)
    assert (g[~MASK] == 0).all() and torch.isfinite(g).all()


@pytest.mark.parametrize(
    ("mode", "normalizer"),
    [
        ("token_mean", None),
        ("token_mean", 0),
        ("seq_mean_token_mean", None),
        ("seq_mean_token_mean", 0),
        ("sum", None),
    ],
)
def test_all_masked_gives_exact_zero_and_zero_gradient(mode, normalizer):
    loss = LOSS.clone().requires_grad_(True)
    out = reduce_loss(loss, torch.zeros_like(MASK), mode=mode, normalizer=normalizer)
    assert out.item() == 0.0 and not torch.isnan(out)
    (g,) = torch.autograd.grad(out, loss)
    assert (g == 0).all()


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean"])
def test_micro_batches_with_global_normalizer_give_the_full_batch_gradient(mode):
    g = torch.Generator().manual_seed(0)
    B, T, V = 5, 6, 9
    student = (torch.randn(B, T, V, generator=g, dtype=F64)).requires_grad_(True)
    teacher = torch.randn(B, T, V, generator=g, dtype=F64)
    lengths = torch.tensor([6, 1, 0, 4, 3])  # ragged, including an empty row
    mask = torch.arange(T)[None, :] < lengths[:, None]

    full = reduce_loss(reverse_kl(student, teacher, mask), mask, mode=mode)
    (g_full,) = torch.autograd.grad(full, student)

    splits = [slice(0, 2), slice(2, 3), slice(3, 5)]
    normalizer = sum(normalizer_for(mask[s], mode=mode) for s in splits)
    total, local_total = 0.0, 0.0
    for s in splits:
        total = total + reduce_loss(
            reverse_kl(student[s], teacher[s], mask[s]), mask[s], mode=mode, normalizer=normalizer
        )
        local_total = local_total + reduce_loss(
            reverse_kl(student[s], teacher[s], mask[s]), mask[s], mode=mode
        ) / len(splits)
    (g_micro,) = torch.autograd.grad(total, student)
    torch.testing.assert_close(total, full)
    torch.testing.assert_close(g_micro, g_full)
    # Averaging per-micro-batch means instead would change the gradient: the global normaliser matters.
    (g_local,) = torch.autograd.grad(local_total, student)
    assert not torch.allclose(g_local, g_full)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="token_mean"):
        reduce_loss(LOSS, MASK, mode="batchmean")
    with pytest.raises(TypeError, match="bool"):
        reduce_loss(LOSS, MASK.float(), mode="sum")
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        reduce_loss(LOSS[:, :2], MASK, mode="sum")
    with pytest.raises(ValueError, match="normalizer"):
        reduce_loss(LOSS, MASK, mode="sum", normalizer=3)
    with pytest.raises(ValueError, match="smaller than this batch's own count 5"):
        reduce_loss(LOSS, MASK, mode="token_mean", normalizer=4)
    with pytest.raises(ValueError, match="smaller than this batch's own count 2"):
        reduce_loss(LOSS, MASK, mode="seq_mean_token_mean", normalizer=0)
