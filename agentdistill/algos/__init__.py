"""Training loops, one file per algorithm, each exposing ``train(cfg) -> RunResult``.

- ``sft``           supervised fine-tuning on expert action traces (SFT without chain of thought)
- ``grpo``          GRPO on env reward (group-centred advantages, PPO clip, truncation reward 0)
- ``opd``           on-policy distillation from a separate teacher model (any registered divergence)
- ``opsd_reward``   the π-Distill paper's OPSD: GRPO on R − β·KL(student ‖ teacher view with PI)
- ``opsd_distill``  the Self-Distilled Reasoner's OPSD: per-token divergence to a frozen PI view, no reward
- ``pi_distill``    π-Distill: α·J_teacher + (1−α)·J_student, rollouts from the PI-conditioned view
- ``skill_sd``      Skill-SD: GRPO + λ·IW-k3 reverse KL to a teacher view conditioned on retrieved skills

Shared pieces: ``common`` (run set-up, micro-batches, logging, evaluation, sampling rounds), ``samplers``
(what samples: the training model, a replica per rank under FSDP, a vLLM engine or a ``vllm serve``, and
its weight sync), ``batch`` (micro-batches and gradient accumulation) and ``rewards`` (the one episode-reward
definition, group advantages, the zero-signal filter, errored episodes). Under ``torchrun`` the same loops run sharded
(``agentdistill/dist.py``). No loop imports another.

Import the loop you need from its module (``from agentdistill.algos.sft import SFTConfig, train``), or by
name with ``algorithm("sft")``; this package itself imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

ALGORITHMS: dict[str, tuple[str, str]] = {
    "sft": ("agentdistill.algos.sft", "SFTConfig"),
    "grpo": ("agentdistill.algos.grpo", "GRPOConfig"),
    "opd": ("agentdistill.algos.opd", "OPDConfig"),
    "opsd_reward": ("agentdistill.algos.opsd_reward", "OPSDRewardConfig"),
    "opsd_distill": ("agentdistill.algos.opsd_distill", "OPSDDistillConfig"),
    "pi_distill": ("agentdistill.algos.pi_distill", "PiDistillConfig"),
    "skill_sd": ("agentdistill.algos.skill_sd", "SkillSDConfig"),
}
"""Algorithm name (``algo=<name>`` on the command line) → (module, config class)."""

RENAMED = {"opsd": "OPSD is two algorithms: algo=opsd_reward (R − β·KL, was mode=reward) or "
                   "algo=opsd_distill (per-token divergence, was mode=distill)"}


def algorithm(name: str) -> tuple[type, Callable[[Any], Any]]:
    """(config class, ``train`` function) of the algorithm ``name``."""
    if name in RENAMED:
        raise ValueError(RENAMED[name])
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}: choose from {sorted(ALGORITHMS)}")
    module_name, config_name = ALGORITHMS[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), module.train


def algorithm_of(cfg: Any) -> str:
    """The name of the algorithm whose config class ``cfg`` is an instance of."""
    for name, (module_name, config_name) in ALGORITHMS.items():
        if type(cfg).__module__ == module_name and type(cfg).__name__ == config_name:
            return name
    raise ValueError(f"{type(cfg).__name__} is not the config of a known algorithm ({sorted(ALGORITHMS)})")


def register_configs() -> None:
    """Register every algorithm's config class in Hydra's ConfigStore as ``base_<name>`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name in ALGORITHMS:
        cs.store(name=f"base_{name}", node=algorithm(name)[0])
