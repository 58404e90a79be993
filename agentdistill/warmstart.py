"""The SFT warm start the distillation methods begin from, built once and cached by its settings' hash.

A 135M model writes no valid command zero-shot, so RL and on-policy distillation from it have nothing to
reinforce. ``TrainConfig.warm_start`` (``steps > 0``) runs SFT on the env's expert traces — under the student
view and, by default, the teacher view too, so the PI-conditioned view learns to read its PI block — and the
run starts from the result. The SFT run lives in ``<cache_dir>/<hash>/`` where the hash covers everything that
changes its weights (model, env and its PI, prompt rendering, SFT settings, seed): the study's runs and the
main job with the same settings build it once; a killed build resumes from its checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentdistill.config import EvalConfig, TrainConfig

logger = logging.getLogger(__name__)

VERSION = 2
"""Part of the hash: bump when the SFT recipe changes in a way its settings do not show (2: the env's
evaluation settings left the hash)."""
DONE_FILE = "warm_start.json"


def sft_config(cfg: TrainConfig) -> Any:
    """The SFT run that builds ``cfg``'s warm start (no evaluation: the run using it evaluates at step 0)."""
    from agentdistill.algos.sft import SFTConfig

    ws = cfg.warm_start
    return SFTConfig(
        model=cfg.model, env=cfg.env, eval=EvalConfig(num_tasks=0), num_tasks=ws.num_tasks,
        env_seed_start=cfg.env_seed_start, history_window=cfg.history_window, pi_placement=cfg.pi_placement,
        pi_template=cfg.pi_template, steps=ws.steps, batch_turns=ws.batch_turns, lr=ws.lr, views=list(ws.views),
        seed=cfg.seed, max_tokens_per_microbatch=cfg.max_tokens_per_microbatch, checkpoint_every=ws.steps,
        progress=cfg.progress, out_dir="")


NOT_HASHED = ("out_dir", "progress", "tensorboard", "eval", "env_workers", "server_url")
"""Where the SFT run is written and shown, and what only rollouts (which SFT does not sample) use."""
ENV_NOT_HASHED = ("eval_seed_start", "eval_kwargs")
"""The env's evaluation settings: the warm start collects expert episodes on training seeds only, so moving
evaluation to another split reuses it."""
HASHED_UNLESS_DEFAULT = {"packing": False, "mixed_precision": None, "torch_compile": False}
"""Settings added after caches were built: hashed only when they differ from their default, so a new field
does not orphan every cached warm start (``VERSION`` is the way to do that on purpose)."""


def settings_hash(sft: Any) -> str:
    """12 hex digits over the SFT settings that change its weights (not where it is written or shown)."""
    settings = {k: v for k, v in asdict(sft).items() if k not in NOT_HASHED
                and not (k in HASHED_UNLESS_DEFAULT and v == HASHED_UNLESS_DEFAULT[k])}
    settings["env"] = {k: v for k, v in settings["env"].items() if k not in ENV_NOT_HASHED}
    blob = json.dumps({"version": VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def warm_start(cfg: TrainConfig) -> Path:
    """The checkpoint folder of ``cfg``'s warm start, building it first unless the cache holds it."""
    from agentdistill.algos.sft import train as sft_train
    from agentdistill.checkpoints import latest_checkpoint

    if cfg.warm_start.steps < 1:
        raise ValueError(f"warm_start.steps must be >= 1 to build a warm start, got {cfg.warm_start.steps}")
    sft = sft_config(cfg)
    folder = Path(cfg.warm_start.cache_dir).expanduser() / settings_hash(sft)
    done = folder / DONE_FILE
    if done.exists():
        checkpoint = Path(json.loads(done.read_text())["checkpoint"])
        if (checkpoint / "model.pt").exists():
            logger.info("warm start: cached at %s", checkpoint)
            return checkpoint
    logger.info("warm start: SFT for %d steps on %s (views %s) into %s", sft.steps, cfg.env.id, sft.views, folder)
    sft.out_dir = str(folder)
    result = sft_train(sft)
    built = latest_checkpoint(result.run_dir)
    if built is None:
        raise RuntimeError(f"the warm-start SFT run in {folder} ended without a checkpoint")
    done.write_text(json.dumps({"checkpoint": str(built), "steps": result.final_step,
                                "final_loss": result.metrics.get("loss")}, indent=2) + "\n")
    return built


def initial_weights(cfg: TrainConfig) -> str | None:
    """Where a fresh run's weights come from: ``init_from``, else the warm start (built or cached) when
    ``warm_start.steps > 0``, else None (``model.name``'s own)."""
    if cfg.init_from:
        return cfg.init_from
    if cfg.warm_start.steps > 0:
        return str(warm_start(cfg))
    return None
