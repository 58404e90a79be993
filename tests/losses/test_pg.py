"""PPO / IS-clipped surrogates, GRPO advantages, KL-in-reward shaping."""

from __future__ import annotations

import pytest
import torch

from agentdistill.losses import (
    grpo_advantages,
    is_clipped_student,
    kl_in_reward,
    per_episode_sum,
    ppo_clip,
    ppo_clipped,
    sequence_kl,
)

F64 = torch.float64


def one(logratio: float, adv: float, **kw):
    """(loss, d loss / d logprob, clipped?) for one token with log π_θ − log π_old = logratio."""
    lp = torch.tensor([[logratio]], dtype=F64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=F64)
    a = torch.tensor([[adv]], dtype=F64)
    mask = torch.ones(1, 1, dtype=torch.bool)
    loss = ppo_clip(lp, old, a, mask, **kw)
    (g,) = torch.autograd.grad(loss.sum(), lp)
    return loss.item(), g.item(), bool(ppo_clipped(lp, old, a, mask, **kw))


def test_ppo_at_ratio_one_is_the_policy_gradient():
    loss, g, clipped = one(0.0, 2.0)
    assert loss == pytest.approx(-2.0) and g == pytest.approx(-2.0) and not clipped


@pytest.mark.parametrize(
    ("ratio", "adv", "want_loss", "gradient", "clipped"),
    [
        (1.5, 1.0, -1.2, False, True),  # A > 0, ratio above 1 + ε: capped, no push further up
        (0.5, 1.0, -0.5, True, False),  # A > 0, ratio below 1 − ε: still pushed back up
        (0.5, -1.0, 0.8, False, True),  # A < 0, ratio below 1 − ε: capped
        (1.5, -1.0, 1.5, True, False),  # A < 0, ratio above 1 + ε: still pushed down
        (1.1, 1.0, -1.1, True, False),  # inside the range
    ],
)
def test_ppo_clip_behaviour(ratio, adv, want_loss, gradient, clipped):
    loss, g, was_clipped = one(torch.tensor(ratio).log().item(), adv)
    assert loss == pytest.approx(want_loss)
    assert (abs(g) > 0) == gradient
    if gradient:
        assert g == pytest.approx(-ratio * adv)
    assert was_clipped == clipped


def test_ppo_asymmetric_clip_range():
    loss, g, clipped = one(torch.tensor(1.25).log().item(), 1.0, clip_low=0.2, clip_high=0.28)
    assert loss == pytest.approx(-1.25) and g != 0 and not clipped
    loss, g, clipped = one(torch.tensor(1.3).log().item(), 1.0, clip_low=0.2, clip_high=0.28)
    assert loss == pytest.approx(-1.28) and g == 0 and clipped


def test_ppo_masked_positions_and_huge_ratios():
    lp = torch.tensor([[0.1, 50.0, float("nan")]], dtype=F64, requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 0.0]], dtype=F64)
    adv = torch.tensor([[1.0, -1.0, 3.0]], dtype=F64)
    mask = torch.tensor([[True, True, False]])
    loss = ppo_clip(lp, old, adv, mask)
    assert torch.isfinite(loss).all() and loss[0, 2] == 0
    (g,) = torch.autograd.grad(loss.sum(), lp)
    assert torch.isfinite(g).all() and g[0, 2] == 0


def test_is_clipped_student_uses_the_teacher_as_denominator():
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(3, 4, generator=g, dtype=F64) * 0.3).requires_grad_(True)
    t = torch.randn(3, 4, generator=g, dtype=F64) * 0.3
    a = torch.randn(3, 4, generator=g, dtype=F64)
    mask = torch.rand(3, 4, generator=g) > 0.3
    out = is_clipped_student(s, t, a, mask, clip_low=0.2, clip_high=0.2)
    ratio = (s - t).exp()
    want = torch.where(mask, -torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a), 0.0)
    torch.testing.assert_close(out, want)
    (g_s,) = torch.autograd.grad(out.sum(), s)
    assert (g_s[~mask] == 0).all()
    t_grad = t.clone().requires_grad_(True)
    out = is_clipped_student(s, t_grad, a, mask)
    assert torch.autograd.grad(out.sum(), t_grad, allow_unused=True)[0] is None  # sg(π_T)


def test_grpo_advantages_are_centred_per_group():
    rewards = torch.tensor([1.0, 0.0, 0.5, 2.0, 4.0, 3.0, 7.0])
    groups = torch.tensor([5, 5, 5, 2, 2, 9, 5])  # non-contiguous, unsorted, one singleton
    adv = grpo_advantages(rewards, groups)
    torch.testing.assert_close(adv, torch.tensor([1 - 2.125, -2.125, 0.5 - 2.125, -1.0, 1.0, 0.0, 7 - 2.125]))
    for gid in groups.unique():
        assert adv[groups == gid].sum().abs() < 1e-6
    assert not grpo_advantages(rewards.requires_grad_(True), groups).requires_grad


def test_grpo_std_scaling():
    rewards = torch.tensor([1.0, 0.0, 0.5, 2.0, 4.0, 3.0, 7.0], dtype=F64)
    groups = torch.tensor([5, 5, 5, 2, 2, 9, 5])
    adv = grpo_advantages(rewards, groups, scale_by_std=True, eps=0.0)
    for gid in (5, 2):
        sel = groups == gid
        torch.testing.assert_close(adv[sel], (rewards[sel] - rewards[sel].mean()) / rewards[sel].std())
        torch.testing.assert_close(adv[sel].std(), torch.tensor(1.0, dtype=F64))
    assert adv[groups == 9].item() == 0.0  # singleton group
    same = grpo_advantages(torch.ones(4), torch.zeros(4, dtype=torch.long), scale_by_std=True)
    assert (same == 0).all()  # all-equal group: no NaN, advantage 0


def test_sequence_kl_sums_tokens_and_episodes():
    s = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.1, -9.0], [-3.0, -1.0, -1.0]], dtype=F64)
    t = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -0.3, 0.0], [-1.0, -1.0, -2.0]], dtype=F64)
    mask = torch.tensor([[True, True, False], [True, True, False], [True, False, True]])
    per_turn = sequence_kl(s, t, mask)
    torch.testing.assert_close(per_turn, torch.tensor([0.5 - 1.0, 0.2 + 0.2, -2.0 + 1.0], dtype=F64))
    episodes = torch.tensor([7, 3, 7])
    torch.testing.assert_close(sequence_kl(s, t, mask, episodes), torch.tensor([-1.5, 0.4, -1.5], dtype=F64))
    torch.testing.assert_close(sequence_kl(s, t, mask, sampled_by="teacher"), -per_turn)
    with pytest.raises(ValueError, match="sampled_by"):
        sequence_kl(s, t, mask, sampled_by="both")
    torch.testing.assert_close(
        per_episode_sum(torch.tensor([1.0, 2.0, 3.0]), episodes), torch.tensor([4.0, 2.0, 4.0])
    )


def test_kl_in_reward_shapes_rewards_without_gradient():
    r = torch.tensor([1.0, 0.0, 1.0])
    kl = torch.tensor([0.4, 2.0, -0.2], requires_grad=True)
    out = kl_in_reward(r, kl, beta=0.25)
    torch.testing.assert_close(out, torch.tensor([0.9, -0.5, 1.05]))
    assert not out.requires_grad
    torch.testing.assert_close(kl_in_reward(r, kl, beta=0.0), r)
    with pytest.raises(ValueError, match="beta"):
        kl_in_reward(r, kl, beta=-1.0)
