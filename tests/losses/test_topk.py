"""Top-k reverse KL: the truncation bias is exactly ∇(top-k mass); the corrected forms remove it."""

from __future__ import annotations

import math

import pytest
import torch

from agentdistill.losses import (
    reverse_kl,
    student_topk_ids,
    topk_overlap,
    topk_renorm_reverse_kl,
    topk_reverse_kl_sg,
    topk_reverse_kl_truncated,
    topk_tail_reverse_kl,
)

F64 = torch.float64
B, T, V, K = 2, 3, 7, 3
MASK = torch.tensor([[True, False, True], [True, True, True]])
CORRECTED = [topk_tail_reverse_kl, topk_renorm_reverse_kl, topk_reverse_kl_sg]
EXACT = [topk_tail_reverse_kl, topk_renorm_reverse_kl]


def rand(*shape: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def teacher_topk(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a top-k teacher endpoint returns: its k best ids and their full-vocabulary log-probs."""
    logprobs = torch.log_softmax(teacher_logits, -1)
    top = logprobs.topk(k, dim=-1)
    return top.indices, top.values


def grad(fn, s: torch.Tensor, *args, **kw) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(s, *args, **kw).sum(), s)
    return g


def test_truncated_minus_sg_gradient_is_the_gradient_of_topk_mass():
    s, t = rand(B, T, V, seed=0), rand(B, T, V, seed=1)
    ids, lt = teacher_topk(t, K)

    def topk_mass(x, ids, lt, mask):
        return torch.where(mask, torch.log_softmax(x, -1).gather(-1, ids).exp().sum(-1), 0.0)

    bias = grad(topk_reverse_kl_truncated, s, ids, lt, MASK) - grad(topk_reverse_kl_sg, s, ids, lt, MASK)
    torch.testing.assert_close(bias, grad(topk_mass, s, ids, lt, MASK), atol=1e-13, rtol=1e-11)
    assert bias.abs().max() > 1e-3


def test_at_matching_distributions_only_the_truncation_still_pushes():
    s = rand(B, T, V, seed=2)
    ids, lt = teacher_topk(s, K)  # the teacher *is* the student
    for fn in CORRECTED:
        torch.testing.assert_close(
            grad(fn, s, ids, lt, MASK), torch.zeros(B, T, V, dtype=F64), atol=1e-14, rtol=0
        )
    for fn in EXACT:
        torch.testing.assert_close(fn(s, ids, lt, MASK), torch.zeros(B, T, dtype=F64), atol=1e-14, rtol=0)
    assert grad(topk_reverse_kl_truncated, s, ids, lt, MASK)[MASK].abs().max() > 1e-3


def test_sg_gradient_is_the_restricted_reverse_kl_gradient():
    """∇L_sg = Σ_K ∇p_S·(log p_S − log p_T) (Many Faces), for any support K (here: the student's top-k)."""
    s, t = rand(B, T, V, seed=3), rand(B, T, V, seed=4)
    ids = student_topk_ids(s, k=K)
    lt = torch.log_softmax(t, -1).gather(-1, ids)
    ls_fixed = torch.log_softmax(s, -1).gather(-1, ids)
    x = s.clone().requires_grad_(True)
    p = torch.log_softmax(x, -1).gather(-1, ids).exp()
    (g_ref,) = torch.autograd.grad(torch.where(MASK, (p * (ls_fixed - lt)).sum(-1), 0.0).sum(), x)
    torch.testing.assert_close(grad(topk_reverse_kl_sg, s, ids, lt, MASK), g_ref)


@pytest.mark.parametrize("fn", EXACT)
def test_exact_forms_are_non_negative(fn):
    for seed in range(5):
        s, t = rand(B, T, V, seed=10 + seed, scale=5.0), rand(B, T, V, seed=20 + seed, scale=5.0)
        for k in (1, K, V - 1):
            ids, lt = teacher_topk(t, k)
            assert (fn(s, ids, lt, MASK) >= -1e-12).all()


@pytest.mark.parametrize("fn", [*EXACT, topk_reverse_kl_sg, topk_reverse_kl_truncated])
def test_full_support_equals_full_reverse_kl(fn):
    s, t = rand(B, T, V, seed=5), rand(B, T, V, seed=6)
    ids, lt = teacher_topk(t, V)
    torch.testing.assert_close(fn(s, ids, lt, MASK), reverse_kl(s, t, MASK), atol=1e-13, rtol=1e-11)
    # with K = V the top-k mass is constant 1, so even the truncation has no bias
    torch.testing.assert_close(
        grad(fn, s, ids, lt, MASK), grad(reverse_kl, s, t, MASK), atol=1e-13, rtol=1e-11
    )


def test_tail_and_renorm_match_brute_force():
    s, t = rand(B, T, V, seed=7), rand(B, T, V, seed=8)
    ids, lt = teacher_topk(t, K)
    tail, renorm = topk_tail_reverse_kl(s, ids, lt, MASK), topk_renorm_reverse_kl(s, ids, lt, MASK)
    for b in range(B):
        for i in range(T):
            if not MASK[b, i]:
                assert tail[b, i] == 0 and renorm[b, i] == 0
                continue
            e = [math.exp(x) for x in s[b, i].tolist()]
            ps = [x / sum(e) for x in e]
            pt = [math.exp(x) for x in torch.log_softmax(t[b, i], -1).tolist()]
            k_ids = ids[b, i].tolist()
            ps_k, pt_k = [ps[v] for v in k_ids], [pt[v] for v in k_ids]
            ps_tail, pt_tail = 1 - sum(ps_k), 1 - sum(pt_k)
            on_k = sum(a * math.log(a / c) for a, c in zip(ps_k, pt_k, strict=True))
            want_tail = on_k + ps_tail * math.log(ps_tail / pt_tail)
            qs, qt = [a / sum(ps_k) for a in ps_k], [c / sum(pt_k) for c in pt_k]
            want_renorm = sum(a * math.log(a / c) for a, c in zip(qs, qt, strict=True))
            assert math.isclose(tail[b, i].item(), want_tail, rel_tol=1e-10, abs_tol=1e-12)
            assert math.isclose(renorm[b, i].item(), want_renorm, rel_tol=1e-10, abs_tol=1e-12)


@pytest.mark.parametrize("fn", [*CORRECTED, topk_reverse_kl_truncated])
def test_masked_positions_get_zero_value_and_gradient(fn):
    s, t = rand(B, T, V, seed=9), rand(B, T, V, seed=10)
    ids, lt = teacher_topk(t, K)
    lt = torch.where(MASK.unsqueeze(-1), lt, float("-inf"))  # padding may hold anything
    out = fn(s, ids, lt, MASK)
    assert torch.isfinite(out).all() and (out[~MASK] == 0).all()
    g = grad(fn, s, ids, lt, MASK)
    assert torch.isfinite(g).all() and (g[~MASK] == 0).all()


@pytest.mark.parametrize("fn", [*CORRECTED, topk_reverse_kl_truncated])
def test_student_temperature_divides_logits(fn):
    s, t = rand(B, T, V, seed=11), rand(B, T, V, seed=12)
    ids, lt = teacher_topk(t / 1.5, K)
    torch.testing.assert_close(fn(s, ids, lt, MASK, temperature=1.5), fn(s / 1.5, ids, lt, MASK))


def test_full_log_probs_work_as_student_input():
    s, t = rand(B, T, V, seed=13), rand(B, T, V, seed=14)
    ids, lt = teacher_topk(t, K)
    for fn in (*CORRECTED, topk_reverse_kl_truncated):
        torch.testing.assert_close(fn(torch.log_softmax(s, -1), ids, lt, MASK), fn(s, ids, lt, MASK))


def test_overlap_and_student_topk_ids():
    s = rand(B, T, V, seed=15)
    ids, _ = teacher_topk(s, K)
    torch.testing.assert_close(topk_overlap(s, ids, MASK), MASK.to(F64))
    assert set(student_topk_ids(s, k=K)[0, 0].tolist()) == set(ids[0, 0].tolist())
    far = (-s).topk(K, dim=-1).indices  # the student's bottom-k: disjoint from its top-k when 2K <= V
    assert (topk_overlap(s, far, MASK) == 0).all()


def test_bad_arguments_raise_clear_errors():
    s, t = rand(B, T, V, seed=16), rand(B, T, V, seed=17)
    ids, lt = teacher_topk(t, K)
    with pytest.raises(TypeError, match="int64"):
        topk_tail_reverse_kl(s, ids.int(), lt, MASK)
    with pytest.raises(ValueError, match=r"\[B, T, K\]"):
        topk_tail_reverse_kl(s, ids, lt[..., :2], MASK)
    with pytest.raises(ValueError, match="k must be"):
        student_topk_ids(s, k=V + 1)
