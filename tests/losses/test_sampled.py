"""Sampled-token estimators: exact expected gradients on a tiny vocabulary (methods.md §8), values, masking.

The "batch" here enumerates every possible sampled token: row p is a position (its own prefix
distribution), column y the token sampled there. Weighting each per-token loss by the sampler's
probability of y and summing gives the exact expectation, so identities hold to float64 precision.
"""

from __future__ import annotations

import math

import pytest
import torch

from agentdistill.losses import iw_k3, k1, k2, k3, pg_reverse_kl, reverse_kl_advantage

F64 = torch.float64
P, V = 3, 7  # positions, vocabulary


def logits(seed: int, scale: float = 1.5) -> torch.Tensor:
    return torch.randn(P, V, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def reverse_kl_exact(z: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    ls, lt = torch.log_softmax(z, -1), torch.log_softmax(zt, -1)
    return (ls.exp() * (ls - lt)).sum()


def forward_kl_exact(z: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    ls, lt = torch.log_softmax(z, -1), torch.log_softmax(zt, -1)
    return (lt.exp() * (lt - ls)).sum()


def grad_of(value_fn, z: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(value_fn(z), z)
    return g


def expected(per_token, z: torch.Tensor, zt: torch.Tensor, z_old: torch.Tensor | None = None):
    """(E_{y~π_old}[L(y)], E_{y~π_old}[∇_z L(y)]) with the expectation taken exactly by enumeration."""
    z = z.clone().requires_grad_(True)
    student_BT = torch.log_softmax(z, -1)  # entry [p, y] = log π_θ(y | position p)
    teacher_BT = torch.log_softmax(zt, -1)
    old_BT = torch.log_softmax(z if z_old is None else z_old, -1).detach()
    mask_BT = torch.ones(P, V, dtype=torch.bool)
    value = (old_BT.exp() * per_token(student_BT, teacher_BT, old_BT, mask_BT)).sum()
    (g,) = torch.autograd.grad(value, z)
    return value.detach(), g


def test_reference_kl_gradients_match_finite_differences():
    z, zt = logits(0), logits(1)
    for exact in (reverse_kl_exact, forward_kl_exact):
        analytic = grad_of(lambda x, exact=exact: exact(x, zt), z)
        numeric = torch.zeros_like(z)
        h = 1e-6
        for i in range(P):
            for j in range(V):
                e = torch.zeros_like(z)
                e[i, j] = h
                numeric[i, j] = (exact(z + e, zt) - exact(z - e, zt)) / (2 * h)
        torch.testing.assert_close(analytic, numeric, atol=1e-8, rtol=1e-6)


def test_iw_k3_expected_gradient_is_reverse_kl_gradient():
    z, zt = logits(2), logits(3)
    value, g = expected(lambda s, t, o, m: iw_k3(s, t, o, m), z, zt)
    torch.testing.assert_close(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(value, reverse_kl_exact(z, zt), atol=1e-12, rtol=1e-10)


def test_iw_k3_stays_exact_when_samples_come_from_an_older_policy():
    z, zt, z_old = logits(4), logits(5), logits(6)
    value, g = expected(lambda s, t, o, m: iw_k3(s, t, o, m), z, zt, z_old)
    torch.testing.assert_close(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(value, reverse_kl_exact(z, zt), atol=1e-12, rtol=1e-10)


def test_plain_k3_expected_gradient_is_forward_kl_gradient_the_trap():
    z, zt = logits(7), logits(8)
    value, g = expected(lambda s, t, o, m: k3(s, t, m), z, zt)
    torch.testing.assert_close(g, grad_of(lambda x: forward_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)
    assert not torch.allclose(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-3)
    # ... while its *value* is an unbiased estimate of the reverse KL: fine for logging.
    torch.testing.assert_close(value, reverse_kl_exact(z, zt), atol=1e-12, rtol=1e-10)


def test_pg_form_expected_gradient_is_reverse_kl_gradient():
    z, zt = logits(9), logits(10)
    _, g = expected(lambda s, t, o, m: pg_reverse_kl(s, t, m), z, zt)
    torch.testing.assert_close(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)


def test_k2_expected_gradient_is_reverse_kl_gradient():
    z, zt = logits(11), logits(12)
    _, g = expected(lambda s, t, o, m: k2(s, t, m), z, zt)
    torch.testing.assert_close(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)


def test_sg_teacher_minus_student_has_zero_expected_gradient():
    """The extra term of the π-Distill dump, sg(lp_T) − lp_S = −k1: pure noise (methods.md §2.5)."""
    z, zt = logits(13), logits(14)
    value, g = expected(lambda s, t, o, m: -k1(s, t, m), z, zt)
    torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-12, rtol=0)
    torch.testing.assert_close(-value, reverse_kl_exact(z, zt), atol=1e-12, rtol=1e-10)  # k1 is unbiased


def test_advantage_surrogate_expected_gradient_is_reverse_kl_gradient():
    z, zt = logits(15), logits(16)

    def surrogate(s, t, o, m):
        return -reverse_kl_advantage(s, t, m) * s

    _, g = expected(surrogate, z, zt)
    torch.testing.assert_close(g, grad_of(lambda x: reverse_kl_exact(x, zt), z), atol=1e-12, rtol=1e-10)


def test_identical_inputs_give_zero_loss_and_zero_gradient():
    lp = torch.log_softmax(logits(17), -1).requires_grad_(True)
    mask = torch.ones(P, V, dtype=torch.bool)
    for fn in (k1, k2, k3, pg_reverse_kl):
        out = fn(lp, lp.detach(), mask)
        (g,) = torch.autograd.grad(out.sum(), lp, allow_unused=True)
        assert torch.equal(out.detach(), torch.zeros_like(out))
        if fn is not k1:  # k1's gradient is ∇lp_S itself, zero only in expectation
            torch.testing.assert_close(g, torch.zeros_like(g))
    out = iw_k3(lp, lp.detach(), lp.detach(), mask)
    assert torch.equal(out.detach(), torch.zeros_like(out))


def test_k2_k3_iw_k3_are_non_negative():
    g = torch.Generator().manual_seed(0)
    s, t, o = (torch.randn(4, 9, generator=g, dtype=F64) * 3 for _ in range(3))
    mask = torch.ones(4, 9, dtype=torch.bool)
    assert (k2(s, t, mask) >= 0).all()
    assert (k3(s, t, mask) >= 0).all()
    assert (iw_k3(s, t, o, mask) >= 0).all()


def test_values_match_hand_formulas():
    s = torch.tensor([[-0.5, -2.0, -1.0]], dtype=F64)
    t = torch.tensor([[-1.0, -0.3, -1.0]], dtype=F64)
    o = torch.tensor([[-0.7, -2.5, -0.2]], dtype=F64)
    mask = torch.tensor([[True, True, False]])
    expect_k3, expect_iw = [], []
    for j in range(2):
        ell = s[0, j].item() - t[0, j].item()
        expect_k3.append(math.exp(-ell) - 1 + ell)
        expect_iw.append(math.exp(s[0, j].item() - o[0, j].item()) * (math.exp(-ell) - 1 + ell))
    torch.testing.assert_close(k3(s, t, mask)[0], torch.tensor([*expect_k3, 0.0], dtype=F64))
    torch.testing.assert_close(iw_k3(s, t, o, mask)[0], torch.tensor([*expect_iw, 0.0], dtype=F64))
    torch.testing.assert_close(k1(s, t, mask)[0], torch.tensor([0.5, -1.7, 0.0], dtype=F64))
    torch.testing.assert_close(k2(s, t, mask)[0], torch.tensor([0.125, 1.445, 0.0], dtype=F64))


def test_masked_positions_with_infinite_log_probs_stay_finite_and_get_no_gradient():
    s = torch.tensor([[-0.5, -1.0, float("-inf")], [-0.2, float("nan"), -3.0]], dtype=F64, requires_grad=True)
    t = torch.tensor([[-1.0, float("-inf"), -1.0], [-0.4, -0.1, float("-inf")]], dtype=F64)
    o = torch.tensor([[-0.6, float("-inf"), 0.0], [-0.3, -0.2, -50.0]], dtype=F64)
    mask = torch.tensor([[True, False, False], [True, False, False]])
    for out in (
        k1(s, t, mask),
        k2(s, t, mask),
        k3(s, t, mask),
        iw_k3(s, t, o, mask),
        pg_reverse_kl(s, t, mask),
    ):
        assert torch.isfinite(out).all()
        assert (out[~mask] == 0).all()
        (g,) = torch.autograd.grad(out.sum(), s)
        assert torch.isfinite(g).all() and (g[~mask] == 0).all()


def test_advantage_discount_sums_future_rewards_skipping_masked_tokens():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(2, 6, generator=g, dtype=F64), torch.randn(2, 6, generator=g, dtype=F64)
    mask = torch.tensor([[True, True, False, True, True, False], [False, True, True, True, False, False]])
    gamma = 0.7
    got = reverse_kl_advantage(s, t, mask, discount=gamma)
    for b in range(2):
        for i in range(6):
            if not mask[b, i]:
                assert got[b, i] == 0
                continue
            steps = [j for j in range(i, 6) if mask[b, j]]
            want = sum(gamma**n * (t[b, j] - s[b, j]).item() for n, j in enumerate(steps))
            assert math.isclose(got[b, i].item(), want, rel_tol=1e-12, abs_tol=1e-12)
    torch.testing.assert_close(reverse_kl_advantage(s, t, mask), torch.where(mask, t - s, 0.0))
    assert not reverse_kl_advantage(s.requires_grad_(True), t, mask).requires_grad


def test_advantage_rejects_discount_outside_unit_interval():
    s = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="discount"):
        reverse_kl_advantage(s, s, torch.ones(1, 2, dtype=torch.bool), discount=1.5)


def test_non_bool_mask_is_rejected_with_a_clear_error():
    s = torch.zeros(1, 2)
    with pytest.raises(TypeError, match="bool"):
        k3(s, s, torch.ones(1, 2))
    with pytest.raises(ValueError, match="teacher_logprobs_BT"):
        k3(s, torch.zeros(1, 3), torch.ones(1, 2, dtype=torch.bool))
