"""The LOSSES registry: lookups, the clear error, and the shared contract checked on every registered loss."""

from __future__ import annotations

import pytest
import torch

from agentdistill import losses
from agentdistill.losses import KL_ESTIMATORS, LOSSES, get_loss, reduce_loss

F64 = torch.float64
B, T, V, H, K = 2, 4, 6, 5, 3


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _sampled(n_extra: int):
    def build():
        student = _rand(B, T, V, seed=0).log_softmax(-1)[..., 0].clone().requires_grad_(True)
        others = [_rand(B, T, V, seed=1 + i).log_softmax(-1)[..., 0] for i in range(n_extra)]
        return student, (student, *others)

    return build


def _logits():
    student = _rand(B, T, V, seed=0).requires_grad_(True)
    return student, (student, _rand(B, T, V, seed=1))


def _hidden():
    student = _rand(B, T, H, seed=0).requires_grad_(True)
    return student, (student, _rand(B, T, H, seed=1), _rand(V, H, seed=2))


def _topk():
    student = _rand(B, T, V, seed=0).requires_grad_(True)
    top = _rand(B, T, V, seed=1).log_softmax(-1).topk(K, dim=-1)
    return student, (student, top.indices, top.values)


def _surrogate():
    student = (_rand(B, T, seed=0) * 0.1).requires_grad_(True)
    return student, (student, _rand(B, T, seed=1) * 0.1, _rand(B, T, seed=2))


# How to call each registered loss: (tensor that carries the gradient, positional args before the mask).
BUILDERS = {
    "pg_reverse_kl": _sampled(1),
    "iw_k3": _sampled(2),
    "k2": _sampled(1),
    "k3": _sampled(1),
    "forward_kl": _logits,
    "reverse_kl": _logits,
    "generalized_jsd": _logits,
    "forward_kl_chunked": _hidden,
    "reverse_kl_chunked": _hidden,
    "generalized_jsd_chunked": _hidden,
    "topk_tail_reverse_kl": _topk,
    "topk_renorm_reverse_kl": _topk,
    "topk_reverse_kl_sg": _topk,
    "topk_reverse_kl_truncated": _topk,
    "ppo_clip": _surrogate,
    "is_clipped_student": _surrogate,
}
MASK = torch.tensor([[True, True, False, True], [False, True, True, False]])


def test_every_registered_loss_has_a_contract_test():
    assert set(BUILDERS) == set(LOSSES)


def test_registry_names_are_the_function_names_and_exported():
    for name, fn in {**LOSSES, **KL_ESTIMATORS}.items():
        assert fn.__name__ == name and getattr(losses, name) is fn
        assert fn.__doc__ and ("KL" in fn.__doc__ or "advantage" in fn.__doc__.lower())


def test_get_loss_returns_the_function():
    assert get_loss("iw_k3") is losses.iw_k3
    assert get_loss("generalized_jsd") is losses.generalized_jsd


def test_unknown_loss_error_lists_the_names_and_suggests_one():
    with pytest.raises(ValueError) as err:
        get_loss("reverse_kll")
    message = str(err.value)
    assert "'reverse_kll'" in message and "Did you mean 'reverse_kl'" in message
    for name in LOSSES:
        assert name in message


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_per_token_output_zero_where_masked_with_zero_gradient(name):
    leaf, args = BUILDERS[name]()
    out = get_loss(name)(*args, MASK)
    assert out.shape == (B, T) and torch.isfinite(out).all()
    assert (out[~MASK] == 0).all()
    (g,) = torch.autograd.grad(reduce_loss(out, MASK, mode="token_mean"), leaf)
    assert torch.isfinite(g).all() and (g[~MASK] == 0).all()
    assert g[MASK].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_all_masked_batch_reduces_to_zero_not_nan(name):
    leaf, args = BUILDERS[name]()
    none = torch.zeros(B, T, dtype=torch.bool)
    for mode in ("token_mean", "seq_mean_token_mean", "sum"):
        out = reduce_loss(get_loss(name)(*args, none), none, mode=mode)
        assert out.item() == 0.0
        (g,) = torch.autograd.grad(out, leaf)
        assert (g == 0).all()
