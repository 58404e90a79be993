"""π-Distill's objective on a toy vocabulary: which way each term moves the teacher–student KL.

Two categorical "views" over V = 6 tokens stand for the student and teacher streams of one model; episodes
are single tokens sampled from the teacher, the env reward is 0 everywhere, so only the β terms act. The loss
is the loop's own ``pi_distill_terms`` with advantages built exactly as the loop builds them.
"""

from __future__ import annotations

import pytest
import torch

from agentdistill.algos.pi_distill import pi_distill_terms
from agentdistill.losses import grpo_advantages, is_clipped_student, kl_in_reward, ppo_clip, sequence_kl

V, GROUPS, G, BETA, STEPS = 6, 4, 8, 0.25, 200


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Exact KL(p ‖ q) of two categorical distributions given by logits."""
    lp, lq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return float((lp.exp() * (lp - lq)).sum())


def _train(path: str, form: str) -> tuple[float, float]:
    """(KL(S‖T) before, after) 200 Adam steps of the ``path`` ("teacher" or "student") term in ``form``."""
    gen = torch.Generator().manual_seed(0)
    theta_T = (0.3 * torch.randn(V, generator=gen)).requires_grad_(path == "teacher")
    theta_S = (theta_T.detach() + 0.2 * torch.randn(V, generator=gen)).requires_grad_(path == "student")
    before = _kl(theta_S.detach(), theta_T.detach())
    optimizer = torch.optim.Adam([theta_T if path == "teacher" else theta_S], lr=0.02)
    group_B = torch.arange(GROUPS).repeat_interleave(G)
    mask_BT = torch.ones(GROUPS * G, 1, dtype=torch.bool)
    for _ in range(STEPS):
        with torch.no_grad():  # the rollout: tokens from the teacher view, its log-probs as π^T_old
            y_B = torch.multinomial(theta_T.softmax(-1), GROUPS * G, replacement=True, generator=gen)
            sampler_BT = theta_T.log_softmax(-1)[y_B][:, None]
            kl_B = sequence_kl(theta_S.log_softmax(-1)[y_B][:, None], sampler_BT, mask_BT, sampled_by="teacher")
            teacher_adv_B = grpo_advantages(kl_in_reward(torch.zeros(GROUPS * G), kl_B, beta=BETA), group_B)
            env_adv_B = grpo_advantages(torch.zeros(GROUPS * G), group_B)
        student_adv_B = env_adv_B if form == "pull" else teacher_adv_B
        terms = pi_distill_terms(theta_T.log_softmax(-1)[y_B][:, None], theta_S.log_softmax(-1)[y_B][:, None],
                                 sampler_BT, teacher_adv_B[:, None], student_adv_B[:, None], mask_BT,
                                 torch.ones(GROUPS * G, dtype=torch.bool), alpha=1.0 if path == "teacher" else 0.0,
                                 pull=BETA if form == "pull" else 0.0, clip_low=0.2, clip_high=0.2, clip_ratio_c=3.0)
        optimizer.zero_grad()
        terms.loss_BT.mean().backward()
        optimizer.step()
    return before, _kl(theta_S.detach(), theta_T.detach())


@pytest.mark.parametrize("form", ["pull", "alg1"])
def test_teacher_path_descends_the_kl_with_zero_env_reward(form):
    before, after = _train("teacher", form)
    assert after < 0.25 * before


def test_student_pull_attracts_the_student_to_the_teacher_with_zero_env_reward():
    before, after = _train("student", "pull")
    assert after < 0.1 * before


def test_student_alg1_form_does_not_reduce_the_kl_with_zero_env_reward():
    # Alg. 1 reuses the teacher's KL-shaped advantage: a policy gradient ascending β·KL(π_S ‖ π_T).
    before, after = _train("student", "alg1")
    assert after > before


def test_dual_clip_bounds_a_negative_advantage_on_a_large_student_ratio():
    student_BT = torch.tensor([[0.0, 0.0]], requires_grad=True)  # log π_S = 0 on both tokens
    teacher_BT = torch.tensor([[-5.0, -0.1]])  # ρ = e^5 ≈ 148 on the first token, ≈ 1.1 on the second
    adv_BT, mask_BT = torch.tensor([[-1.0, -1.0]]), torch.ones(1, 2, dtype=torch.bool)
    plain = is_clipped_student(student_BT, teacher_BT, adv_BT, mask_BT, clip_ratio_c=None)
    dual = is_clipped_student(student_BT, teacher_BT, adv_BT, mask_BT, clip_ratio_c=3.0)
    assert float(plain[0, 0].detach()) == pytest.approx(float(torch.tensor(5.0).exp()), rel=1e-5)  # unbounded
    assert float(dual[0, 0].detach()) == pytest.approx(3.0)
    assert float(dual[0, 1].detach()) == pytest.approx(float(plain[0, 1].detach()))
    dual.sum().backward()
    assert student_BT.grad is not None and float(student_BT.grad[0, 0]) == 0.0  # capped: no gradient
    assert float(student_BT.grad[0, 1]) != 0.0
    # Positive advantages and the default PPO path are untouched.
    pos = torch.tensor([[1.0, 1.0]])
    torch.testing.assert_close(is_clipped_student(student_BT, teacher_BT, pos, mask_BT, clip_ratio_c=3.0),
                               ppo_clip(student_BT, teacher_BT, pos, mask_BT))
    with pytest.raises(ValueError, match="clip_ratio_c"):
        is_clipped_student(student_BT, teacher_BT, adv_BT, mask_BT, clip_ratio_c=1.0)
