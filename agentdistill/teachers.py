"""Teachers: which weights score the teacher view (DESIGN §3.5). All are config choices, never code forks.

A teacher hands out a model to score with, always under ``torch.no_grad()``, and is told after every update
of the student so that copies can follow it. The papers disagree on which teacher works best (research
methods §9.11), so all of them are here:

- ``current``: the student's current weights under stop-gradient (π-Distill).
- ``frozen``: a copy of the initial weights, never updated (OPSD's frozen initial policy).
- ``adapter_disabled``: the student with its LoRA adapters off, i.e. the frozen base without a copy (OPSD).
- ``ema``: θ̄ ← decay·θ̄ + (1−decay)·θ after every update (SDPO: update rate 1−decay = 0.05).
- ``synced``: θ̄ ← θ at every refresh, once per iteration (Skill-SD).
- ``separate``: another model with the same tokenizer (the OPD baseline).

Copies live on the student's device: each costs one more set of weights there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Teacher(Protocol):
    """A way to score the teacher view.

    ``with teacher.model_for_scoring() as model:`` gives a causal LM to pass to ``scoring.score``, with grad
    mode off inside the block. ``refresh(student)`` is called whenever the student's weights have changed
    (after each optimizer step, or each iteration, as the algorithm defines); teachers that track the
    student (EMA, synced) update there, the others ignore it.
    """

    def model_for_scoring(self) -> AbstractContextManager[torch.nn.Module]: ...

    def refresh(self, student: torch.nn.Module) -> None: ...


class CurrentWeightsTeacher:
    """The student's own current weights under no_grad (π-Distill's stop-gradient teacher).

    Scores in eval mode (dropout off, e.g. LoRA dropout) and puts the model back in the mode it was in.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @contextmanager
    def model_for_scoring(self) -> Iterator[torch.nn.Module]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield self.model
        finally:
            self.model.train(was_training)

    def refresh(self, student: torch.nn.Module) -> None:
        """Nothing to do: the weights are the student's."""


class FrozenCopyTeacher:
    """A copy of the model made at construction and never updated (frozen initial policy), in eval mode."""

    def __init__(self, model: torch.nn.Module):
        self.model = _frozen_copy(model)

    @contextmanager
    def model_for_scoring(self) -> Iterator[torch.nn.Module]:
        with torch.no_grad():
            yield self.model

    def refresh(self, student: torch.nn.Module) -> None:
        """Nothing to do: a frozen teacher never follows the student."""


class EMATeacher(FrozenCopyTeacher):
    """An exponential moving average of the student: ``update`` does θ̄ ← decay·θ̄ + (1−decay)·θ.

    Weights in bf16 or fp16 are averaged in a float32 master copy that the scoring copy is rounded from: in
    bf16 itself an update (1−decay)·(θ − θ̄) below half a unit in the last place of θ̄ rounds away, which at
    decay 0.999 is nearly every update, and the teacher would never move.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.95):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay} (SDPO's rate 0.05 is decay 0.95)")
        super().__init__(model)
        self.decay = decay
        self.reset_master()

    def reset_master(self) -> None:
        """Rebuild the float32 master from the scoring copy (after its weights were loaded, e.g. on resume:
        the residue below the copy's rounding is lost once, not per update)."""
        tensors = dict(self.model.named_parameters()) | dict(self.model.named_buffers())
        self.master = {name: t.float() for name, t in tensors.items() if t.dtype in (torch.bfloat16, torch.float16)}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for name, mine, theirs in _matched_tensors(self.model, model):
            if name in self.master:
                mine.copy_(self.master[name].lerp_(theirs.float(), 1.0 - self.decay))
            elif mine.is_floating_point():
                mine.lerp_(theirs.to(mine.dtype), 1.0 - self.decay)  # θ̄ + (1−d)(θ − θ̄)
            else:
                mine.copy_(theirs)

    def refresh(self, student: torch.nn.Module) -> None:
        self.update(student)


class SyncedCopyTeacher(FrozenCopyTeacher):
    """A copy re-synced to the student by ``sync`` (θ̄ ← θ); Skill-SD syncs once per iteration."""

    @torch.no_grad()
    def sync(self, model: torch.nn.Module) -> None:
        for _, mine, theirs in _matched_tensors(self.model, model):
            mine.copy_(theirs)

    def refresh(self, student: torch.nn.Module) -> None:
        self.sync(student)


class SeparateModelTeacher(CurrentWeightsTeacher):
    """A different model (e.g. a larger one of the same family) that shares the student's tokenizer.

    Only the vocabulary size can be checked from the models; the caller must make sure the tokenizers are
    the same, since the teacher scores the student's token ids.
    """

    def __init__(self, model: torch.nn.Module, *, student: torch.nn.Module):
        teacher_vocab, student_vocab = _vocab_size(model), _vocab_size(student)
        if teacher_vocab != student_vocab:
            raise ValueError(
                f"the separate teacher's vocabulary has {teacher_vocab} entries but the student's has "
                f"{student_vocab}: a teacher must score the student's token ids with the same tokenizer. Use "
                "a teacher of the same model family, or a self-teacher (make_teacher('frozen'/'synced')).")
        super().__init__(model)


class AdapterDisabledTeacher(CurrentWeightsTeacher):
    """The student with its LoRA adapters disabled: its frozen base weights, without a copy (needs peft)."""

    def __init__(self, model: torch.nn.Module):
        if not callable(getattr(model, "disable_adapter", None)):
            raise ValueError(
                f"{type(model).__name__} has no LoRA adapters to disable (no disable_adapter()). Train with "
                "LoRA (pip install peft; peft.get_peft_model(model, LoraConfig(...))) or use the teacher "
                "kind 'frozen' (FrozenCopyTeacher), which keeps a copy of the initial weights instead.")
        super().__init__(model)

    @contextmanager
    def model_for_scoring(self) -> Iterator[torch.nn.Module]:
        peft_model: Any = self.model  # a peft.PeftModel (checked in __init__)
        with peft_model.disable_adapter(), torch.no_grad():
            yield self.model


TEACHER_KINDS = ("current", "frozen", "ema", "synced", "separate", "adapter_disabled")


def make_teacher(kind: str, model: torch.nn.Module, **kwargs: Any) -> Teacher:
    """Build a teacher for the student ``model`` from config.

    Args:
        kind: one of ``TEACHER_KINDS``.
        model: the student model.
        kwargs: ``decay`` for "ema"; ``teacher_model`` (required) for "separate".
    """
    if kind == "separate":
        if "teacher_model" not in kwargs:
            raise ValueError("make_teacher('separate', ...) needs teacher_model=<the teacher's causal LM>")
        return SeparateModelTeacher(kwargs.pop("teacher_model"), student=model, **kwargs)
    builders = {"current": CurrentWeightsTeacher, "frozen": FrozenCopyTeacher, "ema": EMATeacher,
                "synced": SyncedCopyTeacher, "adapter_disabled": AdapterDisabledTeacher}
    if kind not in builders:
        raise ValueError(f"unknown teacher kind {kind!r}; choose one of {', '.join(TEACHER_KINDS)}")
    builder: Any = builders[kind]
    teacher: Teacher = builder(model, **kwargs)
    return teacher


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(False)
        p.grad = None
    return clone.eval()


def _matched_tensors(
    target: torch.nn.Module, source: torch.nn.Module
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, target, source) of every parameter and buffer, matched by name; raises if the models differ."""
    mine = dict(target.named_parameters()) | dict(target.named_buffers())
    theirs = dict(source.named_parameters()) | dict(source.named_buffers())
    if mine.keys() != theirs.keys():
        missing, extra = sorted(theirs.keys() - mine.keys())[:5], sorted(mine.keys() - theirs.keys())[:5]
        raise ValueError(f"the teacher copy and the student have different tensors (student only: {missing}, "
                         f"teacher only: {extra}); build the teacher from this student")
    for name, tensor in mine.items():
        if tensor.shape != theirs[name].shape:
            raise ValueError(f"{name}: teacher shape {tuple(tensor.shape)} != student "
                             f"{tuple(theirs[name].shape)}")
        yield name, tensor, theirs[name]


def _vocab_size(model: torch.nn.Module) -> int:
    """Rows of the output embedding (the logits' last dim), else ``config.vocab_size``."""
    lm: Any = model  # a transformers causal LM: attributes typed loosely by torch.nn.Module
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return int(lm.config.vocab_size)
