"""Loss functions for distillation and RL: pure functions of tensors and a bool mask, chosen by name.

Each loss returns an unreduced per-token ``loss_BT`` (zero where ``mask_BT`` is False); the caller reduces
it with :func:`reduce_loss` and a global normaliser. Families (one file each):

- ``sampled``      sampled-token estimators from log-probs of the sampled ids [B, T]
- ``divergences``  full-vocabulary KL / JSD from logits [B, T, V], and chunked versions from hidden states
- ``topk``         reverse KL on a top-k support from student logits and teacher top-k log-probs
- ``pg``           PPO/IS-clipped surrogates over advantages, GRPO advantages, KL-in-reward shaping
- ``reduce``       ``reduce_loss``: the only place reduction happens

``LOSSES`` maps config names to the per-token loss functions (their signatures differ by family; each
docstring gives its formula, KL direction and shapes). ``KL_ESTIMATORS`` maps names to the sampled-token
KL value estimators used for logging.

This package imports torch only.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch

from agentdistill.losses.divergences import (
    forward_kl,
    forward_kl_chunked,
    generalized_jsd,
    generalized_jsd_chunked,
    reverse_kl,
    reverse_kl_chunked,
)
from agentdistill.losses.pg import (
    grpo_advantages,
    is_clipped_student,
    kl_in_reward,
    per_episode_sum,
    ppo_clip,
    ppo_clipped,
    sequence_kl,
    teacher_sample_pull,
)
from agentdistill.losses.reduce import REDUCE_MODES, normalizer_for, reduce_loss
from agentdistill.losses.sampled import iw_k3, k1, k2, k3, pg_reverse_kl, reverse_kl_advantage
from agentdistill.losses.topk import (
    student_topk_ids,
    topk_overlap,
    topk_renorm_reverse_kl,
    topk_reverse_kl_sg,
    topk_reverse_kl_truncated,
    topk_tail_reverse_kl,
)

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    # sampled-token estimators: (student_logprobs_BT, teacher_logprobs_BT, [old_logprobs_BT,] mask_BT)
    "pg_reverse_kl": pg_reverse_kl,
    "iw_k3": iw_k3,
    "k2": k2,
    "k3": k3,  # the forward-KL-gradient trap; kept for ablations
    # full vocabulary: (student_logits_BTV, teacher_logits_BTV, mask_BT)
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "generalized_jsd": generalized_jsd,
    # full vocabulary, chunked: (student_hidden_BTH, teacher_hidden_BTH, lm_head_weight_VH, mask_BT)
    "forward_kl_chunked": forward_kl_chunked,
    "reverse_kl_chunked": reverse_kl_chunked,
    "generalized_jsd_chunked": generalized_jsd_chunked,
    # top-k support: (student_logits_BTV, topk_ids_BTK, teacher_topk_logprobs_BTK, mask_BT)
    "topk_tail_reverse_kl": topk_tail_reverse_kl,
    "topk_renorm_reverse_kl": topk_renorm_reverse_kl,
    "topk_reverse_kl_sg": topk_reverse_kl_sg,
    "topk_reverse_kl_truncated": topk_reverse_kl_truncated,  # the biased truncation; kept for ablations
    # clipped surrogates: (logprobs_BT, old_or_teacher_logprobs_BT, advantages_BT, mask_BT)
    "ppo_clip": ppo_clip,
    "is_clipped_student": is_clipped_student,
}

LOSS_FAMILIES: dict[str, str] = {
    **dict.fromkeys(("pg_reverse_kl", "k2", "k3"), "sampled"),
    "iw_k3": "sampled_iw",
    **dict.fromkeys(("forward_kl", "reverse_kl", "generalized_jsd"), "full"),
    **dict.fromkeys(("forward_kl_chunked", "reverse_kl_chunked", "generalized_jsd_chunked"), "chunked"),
    **dict.fromkeys(("topk_tail_reverse_kl", "topk_renorm_reverse_kl", "topk_reverse_kl_sg",
                     "topk_reverse_kl_truncated"), "topk"),
    **dict.fromkeys(("ppo_clip", "is_clipped_student"), "surrogate"),
}
"""Each registered loss's family, i.e. what its caller must score: sampled-token log-probs (``sampled``, and
``sampled_iw`` with the sampler's log-probs too), full logits, hidden states for the chunked kernels, student
logits with the teacher's top-k, or a clipped surrogate over advantages."""

KL_ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {"k1": k1, "k2": k2, "k3": k3}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss registered as ``name`` in :data:`LOSSES`; a ValueError naming the choices otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), LOSSES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown loss {name!r}.{hint} Registered losses: {', '.join(sorted(LOSSES))}"
        ) from None


__all__ = [
    "KL_ESTIMATORS",
    "LOSSES",
    "LOSS_FAMILIES",
    "REDUCE_MODES",
    "forward_kl",
    "forward_kl_chunked",
    "generalized_jsd",
    "generalized_jsd_chunked",
    "get_loss",
    "grpo_advantages",
    "is_clipped_student",
    "iw_k3",
    "k1",
    "k2",
    "k3",
    "kl_in_reward",
    "normalizer_for",
    "per_episode_sum",
    "pg_reverse_kl",
    "ppo_clip",
    "teacher_sample_pull",
    "ppo_clipped",
    "reduce_loss",
    "reverse_kl",
    "reverse_kl_advantage",
    "reverse_kl_chunked",
    "sequence_kl",
    "student_topk_ids",
    "topk_overlap",
    "topk_renorm_reverse_kl",
    "topk_reverse_kl_sg",
    "topk_reverse_kl_truncated",
    "topk_tail_reverse_kl",
]
