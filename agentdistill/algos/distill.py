"""Per-token distillation losses chosen by registry name: what OPD and OPSD's distill mode share.

Both loops sample from the student and descend a divergence between the student view and a teacher on the
student's own tokens; they differ in the teacher's weights and prompt (OPD: another model, the student's
prompt; OPSD: the student's own weights with PI, the teacher view). :func:`distill_token_loss` scores what the
chosen loss needs — and no more — and calls it from ``agentdistill.losses.LOSSES``:

========== ===================================== =====================================================
family     losses                                scored
========== ===================================== =====================================================
sampled    pg_reverse_kl, k2, k3 (trap)          sampled-token log-probs of both
sampled_iw iw_k3                                 the same, plus the sampler's log-probs
surrogate  ppo_clip                              PPO-clip with the per-token advantage −sg(ℓ_t) (Tinker)
full       forward_kl, reverse_kl, generalized_jsd  full-vocabulary logits of both (B·T·V floats each)
chunked    the three ``*_chunked``               hidden states + lm_head weights: O(chunk·V) memory
topk       topk_tail_reverse_kl, ...             student logits, teacher top-k log-probs
========== ===================================== =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentdistill import dist
from agentdistill.algos.batch import prompts_of, sampler_logprobs_BT
from agentdistill.losses import LOSS_FAMILIES, get_loss, k3, ppo_clip, ppo_clipped, reverse_kl_advantage
from agentdistill.scoring import score
from agentdistill.serving.teacher import ServerTeacher
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import TurnSample

DISTILL_FAMILIES = ("sampled", "sampled_iw", "surrogate", "full", "chunked", "topk")


@dataclass(frozen=True)
class DivergenceSpec:
    """Which registered loss and its scalars (each loop maps its config onto this)."""

    name: str
    """A name in ``agentdistill.losses.LOSSES`` of a distillation family (not ``is_clipped_student``)."""
    temperature: float = 1.0
    clip_tau: float | None = None
    """Cap on each vocabulary entry's term (full and chunked divergences)."""
    jsd_beta: float = 0.5
    """β of generalized_jsd(_chunked)."""
    top_k: int = 16
    """Teacher support size of the topk family."""
    kl_discount: float = 0.0
    """γ of ``reverse_kl_advantage`` (surrogate)."""
    clip_low: float = 0.2
    clip_high: float = 0.2


def dead_end(turn: TurnSample) -> bool:
    """True when the turn's PI says the task can no longer be completed from its state: PI was given and every
    kind of it is None (the env contract's value for "no solution from here", e.g. a Sokoban box in a corner).
    The teacher view then carries no action-level information, and what it says there is noise to distil."""
    pi = turn.privileged or {}
    return bool(pi) and all(value is None for value in pi.values())


def check_divergence(name: str, *, allowed: Sequence[str] = DISTILL_FAMILIES) -> str:
    """The family of loss ``name``; ValueError naming the choices when it is unknown or not a distillation
    loss of an ``allowed`` family."""
    get_loss(name)  # unknown names fail here, with a "did you mean"
    family = LOSS_FAMILIES[name]
    if family not in allowed:
        choices = sorted(n for n, f in LOSS_FAMILIES.items() if f in allowed)
        raise ValueError(f"loss {name!r} ({family}) cannot be used here; choose one of {', '.join(choices)}")
    if family == "chunked" and dist.world_size() > 1:
        raise ValueError(f"loss {name!r} reads the lm_head weight outside the forward pass, where FSDP keeps it "
                         f"sharded: under torchrun use its full form {name.removesuffix('_chunked')!r} or a top-k form")
    return family


def distill_token_loss(
    model: torch.nn.Module,
    teacher: Teacher | ServerTeacher,
    samples: Sequence[TurnSample],
    spec: DivergenceSpec,
    *,
    teacher_view: str,
    stats: dict[str, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_BT, mask_BT) of ``spec.name`` between the student view (with grad) and ``teacher`` scoring the
    same response ids under ``teacher_view`` ("student": OPD's same prompt, "teacher": the PI view), no grad.

    ``stats`` (optional) accumulates ``tokens``, ``k3`` (a non-negative estimate of KL(π_S ‖ π_T) over the
    sampled tokens) and ``clipped`` (surrogate family).
    """
    family = check_divergence(spec.name)
    responses = [s.response_ids for s in samples]
    student_prompts, teacher_prompts = prompts_of(samples, "student"), prompts_of(samples, teacher_view)
    needs: dict[str, Any] = {
        "full_vocab": family in ("full", "topk"),
        "hidden": family == "chunked",
    }
    student = score(model, student_prompts, responses, temperature=spec.temperature, **needs)
    teacher_head = None
    if isinstance(teacher, ServerTeacher):  # a vllm serve scores: sampled-token and top-k families only
        tea = teacher.score(teacher_prompts, responses, temperature=spec.temperature,
                            top_k=spec.top_k if family == "topk" else None)
    else:
        with teacher.model_for_scoring() as teacher_model:
            tea = score(teacher_model, teacher_prompts, responses, temperature=spec.temperature,
                        full_vocab=family == "full", hidden=family == "chunked",
                        top_k=spec.top_k if family == "topk" else None)
            teacher_lm: Any = teacher_model  # a transformers causal LM
            teacher_head = teacher_lm.get_output_embeddings().weight.detach() if family == "chunked" else None
    tea = tea.to(student.logprobs_BT.device)
    lp_BT, mask_BT = student.logprobs_BT, student.mask_BT
    fn = get_loss(spec.name)
    if family == "sampled":
        loss_BT = fn(lp_BT, tea.logprobs_BT, mask_BT)
    elif family == "sampled_iw":
        loss_BT = fn(lp_BT, tea.logprobs_BT, sampler_logprobs_BT(samples, lp_BT), mask_BT)
    elif family == "surrogate":
        adv_BT = reverse_kl_advantage(lp_BT.detach(), tea.logprobs_BT, mask_BT, discount=spec.kl_discount)
        old_BT = sampler_logprobs_BT(samples, lp_BT)
        clip = {"clip_low": spec.clip_low, "clip_high": spec.clip_high}
        loss_BT = ppo_clip(lp_BT, old_BT, adv_BT, mask_BT, **clip)
        if stats is not None:
            stats["clipped"] = stats.get("clipped", 0.0) + float(ppo_clipped(lp_BT.detach(), old_BT, adv_BT,
                                                                             mask_BT, **clip).sum())
    elif family == "full":
        extra = {"beta": spec.jsd_beta} if spec.name == "generalized_jsd" else {}
        loss_BT = fn(student.logits_BTV, tea.logits_BTV, mask_BT, temperature=spec.temperature,
                     clip=spec.clip_tau, **extra)
    elif family == "chunked":
        extra = {"beta": spec.jsd_beta} if spec.name == "generalized_jsd_chunked" else {}
        student_lm: Any = model
        head = student_lm.get_output_embeddings().weight
        loss_BT = fn(student.hidden_BTH, tea.hidden_BTH, head, mask_BT,
                     teacher_lm_head_weight_VH=teacher_head.to(head.device) if teacher_head is not None else None,
                     temperature=spec.temperature, clip=spec.clip_tau, **extra)
    else:  # topk
        loss_BT = fn(student.logits_BTV, tea.topk_ids_BTK, tea.topk_logprobs_BTK, mask_BT,
                     temperature=spec.temperature)
    if stats is not None:
        with torch.no_grad():
            stats["tokens"] = stats.get("tokens", 0.0) + float(mask_BT.sum())
            stats["k3"] = stats.get("k3", 0.0) + float(k3(lp_BT.detach(), tea.logprobs_BT, mask_BT).sum())
    return loss_BT, mask_BT


# ---------------------------------------------------------------- self-distillation teachers across a resume

SELF_TEACHERS = ("current", "frozen", "ema", "synced", "adapter_disabled")
"""Teacher kinds built from the student's own weights ("separate" is OPD's)."""
COPY_TEACHERS = ("frozen", "ema", "synced")
"""Teachers holding their own copy of the weights (built before a resume restores the student)."""


def copy_teacher(kind: str, initial_model: torch.nn.Module, *, ema_decay: float) -> Teacher | None:
    """A copy-holding teacher built from the *initial* weights (``init_from``'s), before ``start_run`` resumes
    the student — so a frozen teacher stays the initial policy in a resumed run too; None for the kinds that
    are views of the student itself (current, adapter_disabled)."""
    if kind not in SELF_TEACHERS:
        raise ValueError(f"teacher must be one of {list(SELF_TEACHERS)}, got {kind!r}")
    if kind not in COPY_TEACHERS:
        return None
    return make_teacher(kind, initial_model, **({"decay": ema_decay} if kind == "ema" else {}))


def resumed_teacher(kind: str, teacher: Teacher | None, model: torch.nn.Module,
                    resumed_from: Any) -> tuple[Teacher, dict[str, torch.nn.Module] | None]:
    """(the teacher the run goes on with, the extra modules its checkpoints must keep).

    A synced teacher is re-synced to the resumed weights; an ema teacher's weights come from the checkpoint
    (``teacher.pt``); current and adapter_disabled are built on ``model`` (with LoRA, its PEFT wrapper).
    """
    from agentdistill.checkpoints import load_module_state

    if teacher is None:
        return make_teacher(kind, model), None
    if kind == "synced" and resumed_from is not None:
        teacher.refresh(model)
    if kind != "ema":
        return teacher, None
    ema_model: torch.nn.Module = teacher.model  # type: ignore[attr-defined]
    if resumed_from is not None:
        if not load_module_state(resumed_from, "teacher", ema_model):
            raise FileNotFoundError(f"{resumed_from} has no teacher.pt for the EMA teacher: resume from a "
                                    "checkpoint written with teacher=ema, or start a fresh run")
        teacher.reset_master()  # type: ignore[attr-defined]
    return teacher, {"teacher": ema_model}
