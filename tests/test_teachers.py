"""Teachers: which weights score the teacher view, and how each follows (or ignores) the student."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from agentdistill.scoring import score
from agentdistill.teachers import (
    TEACHER_KINDS,
    AdapterDisabledTeacher,
    CurrentWeightsTeacher,
    EMATeacher,
    FrozenCopyTeacher,
    SeparateModelTeacher,
    SyncedCopyTeacher,
    Teacher,
    make_teacher,
)

PROMPTS, RESPONSES = [[10, 11, 12, 13], [20, 21]], [[30, 31, 32], [40]]


@pytest.fixture()
def student(tiny):
    """A private copy of the tiny model that tests may train."""
    return copy.deepcopy(tiny[0]).train()


def sgd_step(model: torch.nn.Module) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    score(model, PROMPTS, RESPONSES).logprobs_BT.sum().neg().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def teacher_logprobs(teacher: Teacher) -> torch.Tensor:
    with teacher.model_for_scoring() as model:
        assert not torch.is_grad_enabled()
        return score(model, PROMPTS, RESPONSES).logprobs_BT


def scored(model: torch.nn.Module) -> torch.Tensor:
    return score(model, PROMPTS, RESPONSES).logprobs_BT.detach()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    theirs = dict(b.named_parameters())
    return all(torch.equal(p, theirs[n]) for n, p in a.named_parameters())


def small_llama(vocab_size: int) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, intermediate_size=64))


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_every_teacher_scores_under_no_grad_and_meets_the_protocol(student):
    other = LlamaForCausalLM(student.config)
    for teacher in (CurrentWeightsTeacher(student), FrozenCopyTeacher(student), EMATeacher(student, 0.9),
                    SyncedCopyTeacher(student), SeparateModelTeacher(other, student=student)):
        assert isinstance(teacher, Teacher)
        assert not teacher_logprobs(teacher).requires_grad
    assert torch.is_grad_enabled()


def test_frozen_copy_is_unchanged_by_student_updates(student):
    before = params(student)
    teacher = FrozenCopyTeacher(student)
    scores_before = teacher_logprobs(teacher)
    sgd_step(student)
    teacher.refresh(student)  # a no-op for a frozen teacher
    assert any(not torch.equal(p, before[n]) for n, p in student.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in teacher.model.named_parameters())
    assert torch.equal(teacher_logprobs(teacher), scores_before)
    assert not any(p.requires_grad for p in teacher.model.parameters()) and not teacher.model.training


def test_current_weights_teacher_follows_the_student(student):
    teacher = CurrentWeightsTeacher(student)
    before = teacher_logprobs(teacher)
    sgd_step(student)
    after = teacher_logprobs(teacher)
    assert not torch.allclose(after, before)
    assert torch.equal(after, scored(student))


def test_ema_update_blends_the_weights(student):
    theta0 = params(student)
    teacher = EMATeacher(student, decay=0.9)
    sgd_step(student)
    theta1 = params(student)
    teacher.update(student)
    for name, p in teacher.model.named_parameters():
        torch.testing.assert_close(p, 0.9 * theta0[name] + 0.1 * theta1[name], atol=1e-6, rtol=1e-6)
    teacher.refresh(student)  # refresh == update: a second blend towards θ1
    for name, p in teacher.model.named_parameters():
        torch.testing.assert_close(p, 0.81 * theta0[name] + 0.19 * theta1[name], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(student, decay=1.5)


def test_ema_of_bf16_weights_keeps_small_updates_in_a_float32_master(student):
    """A bf16 student at decay 0.999: every blend moves θ̄ by 1e-3·(θ − θ̄), below half a bf16 ulp of most
    weights, so averaging in bf16 itself never moves (checked below); the teacher averages in a float32 master
    and its bf16 weights are that master rounded — after 100 blends θ̄ = θ1 + 0.999¹⁰⁰·(θ0 − θ1)."""
    student = student.to(torch.bfloat16)
    theta0 = {k: v.float() for k, v in params(student).items()}
    teacher = EMATeacher(student, decay=0.999)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01 * torch.sign(torch.randn_like(p)))
    theta1 = {k: v.float() for k, v in params(student).items()}
    naive = {k: v.to(torch.bfloat16) for k, v in theta0.items()}  # what an in-bf16 average would hold
    for _ in range(100):
        teacher.update(student)
        for k in naive:
            naive[k].lerp_(theta1[k].to(torch.bfloat16), 1e-3)
    name = "model.layers.0.mlp.up_proj.weight"
    expected = theta1[name] + 0.999**100 * (theta0[name] - theta1[name])
    got = dict(teacher.model.named_parameters())[name]
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.to(torch.bfloat16).float(), atol=0, rtol=8e-3)
    assert (naive[name].float() == theta0[name]).float().mean() > 0.75  # bf16 itself: 84% of weights never move


def test_synced_copy_equals_the_student_after_sync(student):
    teacher = SyncedCopyTeacher(student)
    sgd_step(student)
    assert not torch.allclose(teacher_logprobs(teacher), scored(student))
    teacher.sync(student)
    assert same_weights(teacher.model, student)
    sgd_step(student)
    teacher.refresh(student)
    assert same_weights(teacher.model, student)
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_copies_refuse_a_different_student(student):
    other = small_llama(student.config.vocab_size)
    with pytest.raises(ValueError, match="build the teacher from this student|shape"):
        SyncedCopyTeacher(student).sync(other)


def test_separate_model_needs_the_same_vocabulary(student):
    with pytest.raises(ValueError, match="vocabulary has 266 entries but the student's has 259"):
        SeparateModelTeacher(small_llama(student.config.vocab_size + 7), student=student)
    other = small_llama(student.config.vocab_size)
    teacher = make_teacher("separate", student, teacher_model=other)
    assert torch.equal(teacher_logprobs(teacher), scored(other))


class FakeLora(torch.nn.Module):
    """Duck-types a peft model: a logit offset (the "adapter") that ``disable_adapter()`` switches off."""

    def __init__(self, base: torch.nn.Module):
        super().__init__()
        self.base, self.enabled = base, True
        self.offset = torch.nn.Parameter(torch.linspace(-2, 2, base.config.vocab_size))

    @contextmanager
    def disable_adapter(self):
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def forward(self, **kwargs):
        out = self.base(**kwargs)
        if self.enabled:
            out.logits = out.logits + self.offset
        return out


def test_adapter_disabled_teacher_scores_the_base_weights(student):
    lora = FakeLora(student)
    teacher = make_teacher("adapter_disabled", lora)
    base = scored(student)
    assert torch.equal(teacher_logprobs(teacher), base)
    assert lora.enabled and not torch.allclose(scored(lora), base)


def test_adapter_disabled_teacher_without_adapters_names_the_fix(student):
    with pytest.raises(ValueError, match="pip install peft.*'frozen'"):
        AdapterDisabledTeacher(student)


def test_make_teacher_builds_each_kind_and_rejects_unknown_ones(student):
    other = LlamaForCausalLM(student.config)
    expected = {"current": CurrentWeightsTeacher, "frozen": FrozenCopyTeacher, "ema": EMATeacher,
                "synced": SyncedCopyTeacher, "separate": SeparateModelTeacher,
                "adapter_disabled": AdapterDisabledTeacher}
    assert set(expected) == set(TEACHER_KINDS)
    for kind, cls in expected.items():
        model = FakeLora(student) if kind == "adapter_disabled" else student
        extra = {"teacher_model": other} if kind == "separate" else {}
        assert type(make_teacher(kind, model, **extra)) is cls
    assert make_teacher("ema", student, decay=0.5).decay == 0.5
    with pytest.raises(ValueError, match="unknown teacher kind 'lora'.*current, frozen, ema, synced, sep"):
        make_teacher("lora", student)
    with pytest.raises(ValueError, match="teacher_model"):
        make_teacher("separate", student)
    with pytest.raises(TypeError, match="decay"):
        make_teacher("frozen", student, decay=0.5)
