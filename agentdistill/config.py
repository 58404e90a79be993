"""Hydra structured configs: typed dataclasses registered in the ConfigStore.

Every YAML preset under ``configs/`` starts its defaults list from one of these schemas (``base_rollout``,
``env/base_env``, ``model/base_model``), so a typo or a wrong type fails when the config is composed.
Below ``cli.py`` only these plain dataclasses travel, never a ``DictConfig``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class EnvConfig:
    """Which environment to run and how."""

    id: str = "agentdistill/Sokoban-v0"
    """A registered env id (see `agentdistill envs`)."""
    max_turns: Optional[int] = None
    """Turn budget per episode (truncation); null uses the env's default."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """The env constructor's own knobs, e.g. {dim_room: [6, 6], num_boxes: 1} for Sokoban."""
    teacher_privileged: List[str] = field(default_factory=list)
    """PI kinds rendered into a teacher view of every turn (stored as teacher_prompt_ids)."""


@dataclass
class ModelConfig:
    """Which model to load (never downloaded: a local folder, a cached hub name, or an embedded name)."""

    name: str = "smollm2-135m-instruct"
    """smollm2-135m-instruct (embedded), tiny-random, a local HF folder, or an already-cached hub name."""
    device: Optional[str] = None
    """cpu or cuda; null picks cuda when available."""
    dtype: Optional[str] = None
    """float32 / bfloat16 / float16; null gives float32 on CPU and bfloat16 on CUDA."""


@dataclass
class SamplingConfig:
    """How the model policy samples replies."""

    temperature: float = 0.7
    """Sampling temperature; 0 is greedy."""
    max_new_tokens: int = 16
    """Token budget per reply; a reply cut here has finish_reason 'length'."""
    batch_size: int = 32
    """Most prompts per forward batch."""


@dataclass
class RolloutJobConfig:
    """`agentdistill rollout`: roll out one or more policies on the same tasks and compare them."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    policies: List[str] = field(default_factory=lambda: ["hf", "expert"])
    """Policies to run, each on the same tasks: hf (the model), expert (the env's optimal plan), random."""
    n: int = 8
    """Tasks (env seeds seed, seed+1, ..., seed+n-1)."""
    group_size: int = 1
    """Samples per task."""
    seed: int = 0
    """First env seed; also seeds sampling."""
    history_window: Optional[int] = 2
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    out_dir: str = "${hydra:runtime.output_dir}"
    """Where episodes, metrics and the resolved config are written."""
    progress: bool = True
    """Show progress bars."""


def config_dir() -> Path:
    """The YAML presets: ``configs/`` of a checkout, or the copy packaged inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "rollout.yaml").exists():
            return candidate
    raise FileNotFoundError(f"no configs/ folder next to {here}: reinstall agentdistill")


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_rollout", node=RolloutJobConfig)
    cs.store(group="env", name="base_env", node=EnvConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
