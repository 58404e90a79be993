"""Full-vocabulary divergences: brute force on a tiny vocab, properties, JSD convention, chunked == plain."""

from __future__ import annotations

import math

import pytest
import torch

from agentdistill.losses import (
    forward_kl,
    forward_kl_chunked,
    generalized_jsd,
    generalized_jsd_chunked,
    reverse_kl,
    reverse_kl_chunked,
)

F64 = torch.float64


def rand(*shape: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def softmax_list(row: list[float], temperature: float) -> list[float]:
    m = max(x / temperature for x in row)
    e = [math.exp(x / temperature - m) for x in row]
    return [x / sum(e) for x in e]


def brute_force(kind: str, s_logits, t_logits, mask, *, beta=0.5, temperature=1.0, clip=None) -> torch.Tensor:
    """A plain-Python loop over positions and vocabulary entries."""
    B, T, V = s_logits.shape
    out = torch.zeros(B, T, dtype=F64)
    for b in range(B):
        for t in range(T):
            if not mask[b, t]:
                continue
            ps = softmax_list(s_logits[b, t].tolist(), temperature)
            pt = softmax_list(t_logits[b, t].tolist(), temperature)
            total = 0.0
            for v in range(V):
                if kind == "forward":
                    term = pt[v] * math.log(pt[v] / ps[v])
                elif kind == "reverse":
                    term = ps[v] * math.log(ps[v] / pt[v])
                else:
                    m = beta * pt[v] + (1 - beta) * ps[v]
                    term = beta * pt[v] * math.log(pt[v] / m) + (1 - beta) * ps[v] * math.log(ps[v] / m)
                total += term if clip is None else min(term, clip)
            out[b, t] = total
    return out


MASK = torch.tensor([[True, True, False, True], [False, True, True, True]])


@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("temperature", [1.0, 1.3])
def test_matches_brute_force(clip, temperature):
    s, t = rand(2, 4, 5, seed=0), rand(2, 4, 5, seed=1)
    torch.testing.assert_close(
        forward_kl(s, t, MASK, temperature=temperature, clip=clip),
        brute_force("forward", s, t, MASK, temperature=temperature, clip=clip),
    )
    torch.testing.assert_close(
        reverse_kl(s, t, MASK, temperature=temperature, clip=clip),
        brute_force("reverse", s, t, MASK, temperature=temperature, clip=clip),
    )
    for beta in (0.1, 0.5, 0.9):
        torch.testing.assert_close(
            generalized_jsd(s, t, MASK, beta=beta, temperature=temperature, clip=clip),
            brute_force("jsd", s, t, MASK, beta=beta, temperature=temperature, clip=clip),
        )


def all_divergences():
    return [
        ("forward", lambda s, t, m, **kw: forward_kl(s, t, m, **kw)),
        ("reverse", lambda s, t, m, **kw: reverse_kl(s, t, m, **kw)),
        ("jsd0.3", lambda s, t, m, **kw: generalized_jsd(s, t, m, beta=0.3, **kw)),
        ("jsd0.5", lambda s, t, m, **kw: generalized_jsd(s, t, m, beta=0.5, **kw)),
    ]


@pytest.mark.parametrize(("name", "fn"), all_divergences())
def test_zero_on_identical_inputs_and_non_negative(name, fn):
    s = rand(3, 6, 11, seed=2, scale=4.0)
    mask = torch.ones(3, 6, dtype=torch.bool)
    torch.testing.assert_close(fn(s, s.clone(), mask), torch.zeros(3, 6, dtype=F64), atol=1e-12, rtol=0)
    for seed in range(5):
        assert (
            fn(rand(3, 6, 11, seed=10 + seed, scale=5.0), rand(3, 6, 11, seed=20 + seed, scale=5.0), mask)
            >= -1e-12
        ).all()


def test_jsd_beta_zero_is_forward_kl_and_beta_one_is_reverse_kl():
    """TRL/GKD convention (methods.md pitfall 8): β=0 → KL(teacher ‖ student), β=1 → KL(student ‖ teacher)."""
    s, t = rand(2, 4, 7, seed=3), rand(2, 4, 7, seed=4)
    assert not torch.allclose(
        forward_kl(s, t, MASK), reverse_kl(s, t, MASK)
    )  # the two directions differ here
    torch.testing.assert_close(generalized_jsd(s, t, MASK, beta=0.0), forward_kl(s, t, MASK))
    torch.testing.assert_close(generalized_jsd(s, t, MASK, beta=1.0), reverse_kl(s, t, MASK))
    # The mixture formula vanishes at the endpoints but points the same way: JSD_β / β → KL(p_T ‖ p_S).
    beta = 1e-6
    torch.testing.assert_close(
        generalized_jsd(s, t, MASK, beta=beta) / beta, forward_kl(s, t, MASK), rtol=1e-4, atol=1e-9
    )
    torch.testing.assert_close(
        generalized_jsd(s, t, MASK, beta=1 - beta) / beta, reverse_kl(s, t, MASK), rtol=1e-4, atol=1e-9
    )


def test_jsd_half_is_symmetric_and_bounded_by_log_two():
    s, t = rand(2, 4, 7, seed=5, scale=6.0), rand(2, 4, 7, seed=6, scale=6.0)
    torch.testing.assert_close(generalized_jsd(s, t, MASK, beta=0.5), generalized_jsd(t, s, MASK, beta=0.5))
    assert (generalized_jsd(s, t, MASK, beta=0.5) <= math.log(2) + 1e-12).all()


@pytest.mark.parametrize(("name", "fn"), all_divergences())
def test_temperature_divides_both_logits(name, fn):
    s, t = rand(2, 4, 7, seed=7), rand(2, 4, 7, seed=8)
    torch.testing.assert_close(fn(s, t, MASK, temperature=1.7), fn(s / 1.7, t / 1.7, MASK))


@pytest.mark.parametrize(("name", "fn"), all_divergences())
def test_clipping_never_increases_the_loss(name, fn):
    s, t = rand(2, 4, 7, seed=9, scale=4.0), rand(2, 4, 7, seed=10, scale=4.0)
    full = fn(s, t, MASK)
    for clip in (1e-3, 0.05, 0.5):
        assert (fn(s, t, MASK, clip=clip) <= full + 1e-12).all()
    assert (fn(s, t, MASK, clip=1e-3) < full - 1e-6).any()  # the cap bites for these inputs
    torch.testing.assert_close(fn(s, t, MASK, clip=1e6), full)


def test_clipped_entries_get_no_gradient():
    s = rand(1, 1, 5, seed=11, scale=4.0).requires_grad_(True)
    t = rand(1, 1, 5, seed=12, scale=4.0)
    mask = torch.ones(1, 1, dtype=torch.bool)
    clip = 0.01
    (g,) = torch.autograd.grad(reverse_kl(s, t, mask, clip=clip).sum(), s)
    ls, lt = torch.log_softmax(s.detach(), -1), torch.log_softmax(t, -1)
    keep = ls.exp() * (ls - lt) <= clip  # the entries the cap leaves alone
    assert 0 < keep.sum() < keep.numel()
    s2 = s.detach().clone().requires_grad_(True)
    l2 = torch.log_softmax(s2, -1)
    (g_ref,) = torch.autograd.grad((l2.exp() * (l2 - lt) * keep).sum(), s2)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize(("name", "fn"), all_divergences())
def test_masked_positions_get_zero_value_and_gradient(name, fn):
    s = rand(2, 4, 7, seed=13).requires_grad_(True)
    t = rand(2, 4, 7, seed=14)
    out = fn(s, t, MASK)
    assert (out[~MASK] == 0).all()
    (g,) = torch.autograd.grad(out.sum(), s)
    assert (g[~MASK] == 0).all() and (g[MASK].abs().sum(-1) > 0).all()


def test_teacher_side_gets_no_gradient():
    s = rand(2, 4, 7, seed=15).requires_grad_(True)
    t = rand(2, 4, 7, seed=16).requires_grad_(True)
    for fn in (forward_kl, reverse_kl, generalized_jsd):
        out = fn(s, t, MASK)
        assert out.sum().grad_fn is not None
        g_s, g_t = torch.autograd.grad(out.sum(), (s, t), allow_unused=True)
        assert g_t is None and g_s is not None


def test_bf16_logits_are_computed_in_fp32():
    s, t = rand(2, 4, 7, seed=17).to(torch.bfloat16), rand(2, 4, 7, seed=18).to(torch.bfloat16)
    out = reverse_kl(s, t, MASK)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reverse_kl(s.float(), t.float(), MASK))


def test_bad_arguments_raise_clear_errors():
    s = rand(2, 4, 7, seed=19)
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(s, s, MASK, beta=1.5)
    with pytest.raises(ValueError, match="temperature"):
        forward_kl(s, s, MASK, temperature=0.0)
    with pytest.raises(ValueError, match="same"):
        reverse_kl(s, rand(2, 4, 8, seed=0), MASK)
    with pytest.raises(TypeError, match="bool"):
        reverse_kl(s, s, MASK.long())


# --- chunked == plain -------------------------------------------------------------------------------------

CHUNKED = [
    ("forward", forward_kl, forward_kl_chunked, {}),
    ("reverse", reverse_kl, reverse_kl_chunked, {}),
    ("jsd0.3", generalized_jsd, generalized_jsd_chunked, {"beta": 0.3}),
    ("jsd1", generalized_jsd, generalized_jsd_chunked, {"beta": 1.0}),
    ("reverse_clip_temp", reverse_kl, reverse_kl_chunked, {"clip": 0.05, "temperature": 1.3}),
    ("forward_clip_temp", forward_kl, forward_kl_chunked, {"clip": 0.05, "temperature": 0.7}),
]


@pytest.mark.parametrize("separate_teacher_head", [False, True])
@pytest.mark.parametrize(("name", "plain", "chunked", "kw"), CHUNKED)
def test_chunked_equals_plain_values_and_gradients(name, plain, chunked, kw, separate_teacher_head):
    B, T, H, V = 2, 5, 8, 11
    mask = torch.tensor([[True, True, False, True, True], [False, True, True, True, False]])
    hs = rand(B, T, H, seed=20).requires_grad_(True)
    ht = rand(B, T, H, seed=21)
    w = rand(V, H, seed=22, scale=0.7).requires_grad_(True)
    wt = rand(V, H, seed=23, scale=0.7) if separate_teacher_head else w

    ref = plain(hs @ w.T, ht @ wt.T, mask, **kw)
    g_ref = torch.autograd.grad((ref * rand(B, T, seed=24)).sum(), (hs, w))
    for chunk_size in (1, 3, 64):
        out = chunked(
            hs,
            ht,
            w,
            mask,
            chunk_size=chunk_size,
            teacher_lm_head_weight_VH=None if not separate_teacher_head else wt,
            **kw,
        )
        torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
        g_out = torch.autograd.grad((out * rand(B, T, seed=24)).sum(), (hs, w))
        for a, b in zip(g_out, g_ref, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_chunked_teacher_side_gets_no_gradient_and_all_masked_is_zero():
    B, T, H, V = 2, 3, 4, 6
    hs, ht = rand(B, T, H, seed=25).requires_grad_(True), rand(B, T, H, seed=26).requires_grad_(True)
    w = rand(V, H, seed=27).requires_grad_(True)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    out = reverse_kl_chunked(hs, ht, w, mask, chunk_size=2)
    g_hs, g_ht = torch.autograd.grad(out.sum(), (hs, ht), allow_unused=True)
    assert g_ht is None and (g_hs[~mask] == 0).all()
    none = torch.zeros(B, T, dtype=torch.bool)
    out = forward_kl_chunked(hs, ht, w, none)
    assert out.shape == (B, T) and (out == 0).all()
    (g,) = torch.autograd.grad(out.sum(), hs)
    assert (g == 0).all()
