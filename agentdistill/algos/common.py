"""Helpers shared by the training loops: run directory, metrics log, checkpoints, data cursor, micro-batches.

A run directory looks like::

    out_dir/
      run_info.json            resolved config, versions, git revision (agentdistill.runs.write_run_info)
      metrics.jsonl            one JSON object per optimiser step, each with a "step" field
      checkpoints/
        step_000004/           model.pt, optimizer.pt, rng.pt, extra.json (written whole, then renamed)
        latest                 the name of the newest complete checkpoint folder

Resuming (DESIGN invariant 6): load ``latest_checkpoint``, then ``truncate_metrics`` to its step, so metric
lines written after the checkpoint by a killed run are dropped and then written again exactly once.

Gradient accumulation keeps the gradient of one big batch: compute the global normaliser of the whole step
first, then call ``reduce_loss(..., normalizer=global)`` and ``backward`` per micro-batch::

    micro = microbatches_by_tokens(batch, max_tokens)
    loss = backward_microbatches(micro, lambda mb, n: my_loss(model, mb, normalizer=n), mode="token_mean")
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentdistill.config import LR_SCHEDULES, LoraConfig, TrainConfig, env_kwargs
from agentdistill.losses import normalizer_for
from agentdistill.losses.reduce import ReduceMode
from agentdistill.report import EVAL_FILE, METRICS_FILE, read_jsonl
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class RunResult:
    """What a finished ``train`` call returns."""

    final_step: int
    """The number of optimiser steps the run has taken (including those before a resume)."""
    metrics: dict[str, float]
    """The last step's logged metrics."""
    run_dir: Path


# ---------------------------------------------------------------- seeding


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- metrics


def append_metrics(run_dir: str | os.PathLike, metrics: dict[str, Any], name: str = METRICS_FILE) -> None:
    """Append one JSON line to ``run_dir/name`` and fsync it; ``metrics`` must hold a ``step``."""
    if "step" not in metrics:
        raise ValueError(f"a metrics line needs a 'step' field, got keys {sorted(metrics)}")
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All lines of a metrics file or a run directory's ``metrics.jsonl`` (a partial last line is skipped)."""
    path = Path(path)
    return read_jsonl(path / METRICS_FILE if path.is_dir() else path)


def truncate_metrics(run_dir: str | os.PathLike, step: int, name: str = METRICS_FILE) -> None:
    """Keep only lines of ``run_dir/name`` with ``step <= step`` (rewritten atomically); call on resume."""
    path = Path(run_dir) / name
    if not path.exists():
        return
    kept = [row for row in read_metrics(path) if row["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_save(obj: Any, path: Path) -> None:
    with path.open("wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    modules: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Write ``checkpoints/step_{step:06d}/`` (model, optimiser, RNG states, ``extra`` as JSON) atomically.

    ``modules`` are more weights to keep, each saved as ``<name>.pt`` (e.g. an EMA teacher's); read one
    back with ``load_module_state``.

    Files go to a hidden temporary folder that is renamed into place once complete, then the ``latest``
    pointer is replaced; a crash at any point leaves the previous checkpoint as ``latest``. ``extra`` holds
    the loop's JSON state (the data cursor, ...). Returns the checkpoint folder.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f"{_TMP_PREFIX}{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _fsync_save(model.state_dict(), tmp / "model.pt")
    _fsync_save(optimizer.state_dict(), tmp / "optimizer.pt")
    _fsync_save(_rng_state(), tmp / "rng.pt")
    for key, module in (modules or {}).items():
        if key in ("model", "optimizer", "rng"):
            raise ValueError(f"checkpoint module name {key!r} is reserved")
        _fsync_save(module.state_dict(), tmp / f"{key}.pt")
    (tmp / "extra.json").write_text(json.dumps({"step": step, **extra}, indent=2) + "\n")
    final = root / name
    if final.exists():  # a checkpoint of the same step from a run that was later truncated
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / (LATEST_FILE + ".tmp")
    pointer.write_text(name + "\n")
    os.replace(pointer, root / LATEST_FILE)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None. Temporary folders are never returned."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    pointer = root / LATEST_FILE
    if pointer.exists():
        target = root / pointer.read_text().strip()
        if (target / "extra.json").exists():
            return target
    # No (valid) pointer: the newest complete step folder, if any.
    done = sorted(p for p in root.glob("step_*") if (p / "extra.json").exists())
    return done[-1] if done else None


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, Any]]:
    """Restore model, optimiser and RNG states; returns ``(step, extra)``.

    ``path`` is a run directory (its ``latest_checkpoint`` is loaded) or one checkpoint folder.
    """
    checkpoint = Path(path) if (Path(path) / "extra.json").exists() else latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"no complete checkpoint under {path}: start the run fresh, not resumed")
    device = next(model.parameters()).device
    model.load_state_dict(torch.load(checkpoint / "model.pt", map_location=device, weights_only=True))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True))
    # Our own file: numpy's RNG state is a tuple holding an ndarray, which weights_only refuses.
    _set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=False))
    extra = json.loads((checkpoint / "extra.json").read_text())
    return int(extra.pop("step")), extra


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Load the model weights of a checkpoint (a run directory's latest, or one checkpoint folder)."""
    path = Path(path)
    checkpoint = path if (path / "model.pt").exists() else latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint with model.pt under {path}: pass a training run directory or "
                                "a checkpoints/step_* folder")
    device = next(model.parameters()).device
    state = torch.load(checkpoint / "model.pt", map_location=device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lora_saved = any(".lora_A." in k for k in state)
        raise ValueError(
            f"{checkpoint} does not fit this model ({'a LoRA' if lora_saved else 'a full'} checkpoint into "
            f"{'a LoRA' if _is_peft(model) else 'a full'} model?): use the same model.name and lora.rank "
            f"as the run that wrote it. {str(e).splitlines()[0]}") from None
    return checkpoint


def load_module_state(checkpoint: Path | None, name: str, module: torch.nn.Module) -> bool:
    """Load ``<name>.pt`` of ``checkpoint`` into ``module``; False (nothing loaded) when there is none."""
    if checkpoint is None or not (checkpoint / f"{name}.pt").exists():
        return False
    device = next(module.parameters()).device
    module.load_state_dict(torch.load(checkpoint / f"{name}.pt", map_location=device, weights_only=True))
    return True


# ---------------------------------------------------------------- optimiser and data


def make_optimizer(
    model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad (one group: the same decay everywhere)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))


def batch_indices(n_items: int, batch_size: int, cursor: int, seed: int) -> list[int]:
    """Items ``cursor .. cursor + batch_size − 1`` of an endless stream of seeded shuffles of ``range(n)``.

    Epoch ``e`` covers stream positions ``[e·n, (e+1)·n)`` in the order ``random.Random(f"{seed}-{e}")``
    shuffles; a batch may span two epochs. Stateless: the cursor alone fixes the batch, so saving it in a
    checkpoint is enough to resume the data order.
    """
    if n_items <= 0:
        raise ValueError("no training items: the data set is empty")
    out = []
    for pos in range(cursor, cursor + batch_size):
        epoch, i = divmod(pos, n_items)
        order = list(range(n_items))
        random.Random(f"{seed}-{epoch}").shuffle(order)
        out.append(order[i])
    return out


def microbatches_by_tokens(samples: Sequence[TurnSample], max_tokens: int | None) -> list[list[TurnSample]]:
    """Split ``samples`` (in order) into micro-batches whose padded size stays within ``max_tokens``.

    The padded size of a micro-batch is rows × its longest ``len(student_prompt_ids) + len(response_ids)``,
    which is what one forward pass holds in memory. A single sample over the budget goes alone. None
    keeps everything in one micro-batch.
    """
    if not samples:
        return []
    from agentdistill.scoring import _microbatches

    lengths = [len(s.student_prompt_ids) + len(s.response_ids) for s in samples]
    return [[samples[i] for i in group] for group in _microbatches(lengths, max_tokens)]


def response_mask_BT(samples: Sequence[TurnSample]) -> torch.Tensor:
    """[B, T] bool, True on each sample's response tokens (right-padded, as ``scoring.score`` returns)."""
    T = max((len(s.response_ids) for s in samples), default=0)
    lengths_B = torch.tensor([len(s.response_ids) for s in samples])
    return torch.arange(T)[None, :] < lengths_B[:, None]


def backward_microbatches(
    micro: Sequence[Sequence[TurnSample]],
    loss_fn: Callable[[Sequence[TurnSample], int], torch.Tensor],
    *,
    mode: ReduceMode,
) -> float:
    """Accumulate the gradient of one optimiser step over micro-batches; returns the step's loss.

    The global normaliser N = Σ ``normalizer_for(response mask, mode)`` over all micro-batches is computed
    first; ``loss_fn(microbatch, N)`` must reduce with ``reduce_loss(..., mode=mode, normalizer=N)``. Each
    micro-batch loss is back-propagated at once (freeing its graph), and since every part divides by the
    same N, the summed gradients and losses equal those of one big batch.
    """
    normalizer = sum(normalizer_for(response_mask_BT(mb), mode=mode) for mb in micro)
    total = 0.0
    for mb in micro:
        loss = loss_fn(mb, normalizer)
        loss.backward()
        total += float(loss.detach())
    return total


# ---------------------------------------------------------------- rollout rounds (shared by the RL loops)


def task_seeds(num_tasks: int, tasks_per_step: int, cursor: int, seed: int, env_seed_start: int) -> list[int]:
    """Env reset seeds of one sampling round: positions ``cursor ..`` of a seeded stream over the tasks."""
    return [env_seed_start + i for i in batch_indices(num_tasks, tasks_per_step, cursor, seed)]


def rollout_seed(seed: int, step: int) -> int:
    """The ``run_seed`` of the sampling round before optimiser step ``step + 1`` (fixed by seed and step)."""
    return seed * 1_000_003 + step


def sampler_logprobs_BT(samples, lp_BT: torch.Tensor) -> torch.Tensor:
    """[B, T] each sample's ``sampler_logprobs`` (the current log-probs, detached, for a sample that has none)."""
    old_BT = torch.zeros_like(lp_BT)
    for b, s in enumerate(samples):
        n = len(s.response_ids)
        old_BT[b, :n] = (torch.tensor(s.sampler_logprobs, dtype=lp_BT.dtype, device=lp_BT.device)
                         if s.sampler_logprobs is not None else lp_BT[b, :n].detach())
    return old_BT


def padded_BT(rows: Sequence[Sequence[float]], like_BT: torch.Tensor) -> torch.Tensor:
    """Right-pad per-row values to ``like_BT``'s [B, T] shape (zeros), on its device, float32."""
    out = torch.zeros(like_BT.shape, dtype=torch.float32, device=like_BT.device)
    for b, r in enumerate(rows):
        if r:
            out[b, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out


# ---------------------------------------------------------------- learning-rate schedule


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (1-based): linear warm-up, then constant/linear/cosine.

    Stateless (a function of the step alone), so a resumed run follows the same schedule exactly.
    """
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
    if cfg.warmup_steps > 0 and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - progress)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- the life of a run (set-up, step, end)


@dataclass
class Run:
    """What ``start_run`` sets up for a training loop; the loop advances ``step`` itself."""

    cfg: TrainConfig
    run_dir: Path
    model: torch.nn.Module
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    interface: Any
    """The env's AgentInterface (``env.interface`` kwargs applied)."""
    step: int
    """Optimiser steps taken so far (restored on resume)."""
    state: dict[str, Any]
    """The loop's own resumable JSON state (data cursor, ...), restored from the checkpoint."""
    resumed_from: Path | None = None
    """The checkpoint folder this run resumed from (for ``load_module_state``), or None."""
    step_started: float = 0.0
    last_eval_step: int = -1
    tb: Any = None
    sampler: Any = None
    """The sampling policy ``sampling_policy`` built (a VLLMPolicy gets the weights after every step)."""
    sampler_gap: dict[str, float] | None = None
    """The last round's vLLM-vs-HF log-prob gap (rollout_engine=vllm)."""
    pi_traces: dict[str, Any] | None = None
    """Collected traces by task id (``env.pi_traces``), served as the expert_trace PI kind in rollouts."""


def start_run(cfg: TrainConfig, *, state: dict[str, Any], model: torch.nn.Module | None = None,
              tokenizer: Any = None) -> Run:
    """Check ``cfg``, seed, load the model (unless given), build AdamW, resume from the latest checkpoint,
    and evaluate the untrained model on held-out tasks (a fresh run with ``eval.before``).

    ``state`` is the loop's initial resumable state; a checkpoint replaces it. Metric and evaluation lines
    written after the checkpoint by a killed run are dropped, so each step is logged exactly once.
    """
    from agentdistill import envs
    from agentdistill.models import load_model
    from agentdistill.runs import write_run_info

    _check_train_config(cfg)
    run_dir = Path(cfg.out_dir)
    write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    if model is None:
        model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    model.train()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None and cfg.init_from:
        load_weights(model, cfg.init_from)
        logger.info("initial weights from %s", cfg.init_from)
    model = with_lora(model, cfg.lora)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
    interface = envs.default_interface(cfg.env.id, **cfg.env.interface)
    step = 0
    if checkpoint is not None:
        step, state = load_checkpoint(checkpoint, model, optimizer)
        logger.info("resumed from %s (step %d)", checkpoint, step)
    truncate_metrics(run_dir, step)
    truncate_metrics(run_dir, step, EVAL_FILE)
    run = Run(cfg=cfg, run_dir=run_dir, model=model, tokenizer=tokenizer, optimizer=optimizer,
              interface=interface, step=step, state=dict(state), resumed_from=checkpoint)
    if cfg.env.pi_traces:
        from agentdistill.traces import load_traces

        run.pi_traces = load_traces(cfg.env.pi_traces, env_id=cfg.env.id)
    if cfg.tensorboard:
        run.tb = _tensorboard_writer(run_dir)
    if step == 0 and cfg.eval.before:
        evaluate_run(run)
    return run


def with_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    """``model`` with LoRA adapters (a ``peft.PeftModel``; only the adapters train), or as is for rank 0."""
    if lora.rank <= 0 or _is_peft(model):
        return model
    try:
        import peft
    except ImportError:
        raise ImportError("lora.rank > 0 needs PEFT: pip install peft (or pip install 'agentdistill[lora]'), "
                          "or set lora.rank=0 for full fine-tuning") from None
    spec = peft.LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                           target_modules=list(lora.target_modules), bias="none")
    return peft.get_peft_model(model, spec)


def _is_peft(model: torch.nn.Module) -> bool:
    return callable(getattr(model, "disable_adapter", None))


def _check_train_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.steps < 1:
        problems.append(f"steps must be >= 1, got {cfg.steps}")
    if cfg.checkpoint_every < 1:
        problems.append(f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        problems.append(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
    if cfg.rollout_engine not in ("hf", "vllm"):
        problems.append(f"rollout_engine must be 'hf' or 'vllm', got {cfg.rollout_engine!r}")
    if cfg.num_tasks < 1 or cfg.tasks_per_step < 1 or cfg.group_size < 1:
        problems.append("num_tasks, tasks_per_step and group_size must be >= 1")
    if cfg.eval.num_tasks < 0 or cfg.eval.every < 0:
        problems.append("eval.num_tasks and eval.every must be >= 0")
    if cfg.env.pi_traces and "expert_trace" not in cfg.env.teacher_privileged:
        problems.append("env.pi_traces serves the expert_trace PI kind: add it, e.g. "
                        "env.teacher_privileged=[expert_trace]")
    if problems:
        raise ValueError("bad training config: " + "; ".join(problems))


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("tensorboard=true needs the tensorboard package: pip install tensorboard "
                          "(or set tensorboard=false; metrics.jsonl is always written)") from None
    return SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=None)


def start_step(run: Run) -> float:
    """Begin optimiser step ``run.step + 1``: set its learning rate, start its clock; returns the lr."""
    lr = lr_at(run.cfg, run.step + 1)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    run.step_started = time.perf_counter()
    return lr


def end_step(run: Run, metrics: dict[str, float], state: dict[str, Any],
             modules: dict[str, torch.nn.Module] | None = None) -> dict[str, float]:
    """Log step ``run.step`` (adding lr, wall time, tokens/s, peak memory), evaluate when due, then
    checkpoint when due with the loop's ``state`` (and extra ``modules``, e.g. an EMA teacher). Returns the
    logged row.

    Order matters for resume: a crash after logging but before the checkpoint is undone by ``start_run``
    (it truncates both logs to the checkpoint's step).
    """
    if callable(getattr(run.sampler, "load_weights", None)):
        run.sampler.load_weights(run.model)  # the next round samples from the updated weights
    elapsed = time.perf_counter() - run.step_started
    row = {"step": run.step, **metrics, "lr": run.optimizer.param_groups[0]["lr"], "step_time_s": elapsed}
    if "tokens" in metrics:
        row["tokens_per_s"] = metrics["tokens"] / elapsed if elapsed > 0 else 0.0
    row.update(peak_memory_mb())
    append_metrics(run.run_dir, row)
    if run.tb is not None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                run.tb.add_scalar(f"train/{key}", value, run.step)
        run.tb.flush()
    cfg = run.cfg
    last = run.step >= cfg.steps
    if last or (cfg.eval.every > 0 and run.step % cfg.eval.every == 0):
        evaluate_run(run)
    if last or run.step % cfg.checkpoint_every == 0:
        save_checkpoint(run.run_dir, run.step, run.model, run.optimizer, state, modules)
    return row


def peak_memory_mb() -> dict[str, float]:
    """Peak CUDA memory of this step (on CUDA) and the process's peak resident memory, in MiB."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def evaluate_run(run: Run) -> list[dict[str, Any]]:
    """Evaluate the current weights on held-out tasks (student view, and the teacher view when the env has
    PI and ``eval.teacher_view``); append one ``eval.jsonl`` row per view. Sampling is seeded by the run's
    seed only, so every evaluation sees the same tasks and the same random numbers."""
    from agentdistill.eval import evaluate

    cfg = run.cfg
    if cfg.eval.num_tasks == 0 or run.last_eval_step == run.step:
        return []
    views = ["student"] + (["teacher"] if cfg.eval.teacher_view and cfg.env.teacher_privileged else [])
    logger.info("step %d: evaluating on %d held-out tasks (%s view)", run.step, cfg.eval.num_tasks,
                " and ".join(views))
    results = evaluate(run.model, run.tokenizer, cfg.env, cfg.eval, views=views,
                       max_new_tokens=cfg.max_new_tokens, history_window=cfg.history_window,
                       seed=cfg.seed, interface=run.interface, batch_size=cfg.rollout_batch)
    rows = []
    for r in results:
        row = {"step": run.step, "view": r.view, **r.metrics}
        append_metrics(run.run_dir, row, EVAL_FILE)
        if run.tb is not None:
            for key, value in r.metrics.items():
                run.tb.add_scalar(f"eval_{r.view}/{key}", value, run.step)
        rows.append(row)
        logger.info("step %d held-out %s view: success %.3f", run.step, r.view, r.metrics["success_rate"])
    run.last_eval_step = run.step
    return rows


def finish_run(run: Run, metrics: dict[str, float]) -> RunResult:
    """Write the plots, close TensorBoard, and return the run's result."""
    from agentdistill.report import write_plots

    write_plots(run.run_dir)
    if run.tb is not None:
        run.tb.close()
    return RunResult(final_step=run.step, metrics=metrics, run_dir=run.run_dir)


# ---------------------------------------------------------------- sampling rounds


def sampling_policy(run: Run, name: str):
    """The model as a sampling policy at the training temperature and token budget: the training model
    itself (``rollout_engine=hf``) or a vLLM engine holding a copy of its weights (``vllm``)."""
    cfg = run.cfg
    if cfg.rollout_engine == "hf":
        from agentdistill.policies.hf import HFPolicy

        run.sampler = HFPolicy(run.model, run.tokenizer, temperature=cfg.temperature,
                               max_new_tokens=cfg.max_new_tokens, batch_size=cfg.rollout_batch, name=name)
    elif cfg.rollout_engine == "vllm":
        from agentdistill.models import model_folder
        from agentdistill.policies.vllm import VLLMPolicy

        if cfg.lora.rank > 0:
            raise ValueError("rollout_engine=vllm with LoRA is not supported yet (the engine would need the "
                             "merged weights every step): use rollout_engine=hf or lora.rank=0")
        dtype = str(next(run.model.parameters()).dtype).removeprefix("torch.")
        run.sampler = VLLMPolicy(model_folder(cfg.model.name), temperature=cfg.temperature,
                                 max_new_tokens=cfg.max_new_tokens, dtype=dtype, seed=cfg.seed, name=name)
        run.sampler.load_weights(run.model)  # init_from or resumed weights, not the folder's
    else:
        raise ValueError(f"rollout_engine must be 'hf' or 'vllm', got {cfg.rollout_engine!r}")
    return run.sampler


def rollout_round(run: Run, policy, seeds: Sequence[int], *, privileged: Sequence[str] = (),
                  act_on: str = "student"):
    """Roll ``policy`` out on training tasks ``seeds`` × ``group_size``, seeded by (seed, step).

    ``privileged`` PI kinds are rendered into each turn's teacher view; ``act_on="teacher"`` samples from
    that view (π-Distill). The model is in eval mode while sampling.
    """
    from agentdistill.rollout import rollout
    from agentdistill.views import ViewSpec

    cfg = run.cfg
    kwargs = env_kwargs(cfg.env.kwargs)
    run.model.eval()
    try:
        result = rollout(cfg.env.id, policy, seeds=seeds, group_size=cfg.group_size, interface=run.interface,
                         tokenizer=run.tokenizer, teacher_privileged=list(privileged),
                         view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.env.max_turns,
                         env_kwargs=kwargs, run_seed=rollout_seed(cfg.seed, run.step), progress=False,
                         act_on=act_on, pi_traces=run.pi_traces)
        if cfg.rollout_engine == "vllm" and cfg.log_prob_gap:
            run.sampler_gap = _sampler_gap(run, result, act_on)
    finally:
        run.model.train()
    return result


@torch.no_grad()
def _sampler_gap(run: Run, result, act_on: str) -> dict[str, float]:
    """|log π_sampler − log π_hf| over the round's sampled tokens, scored in the view that sampled them."""
    from agentdistill.policies.vllm import log_prob_gap
    from agentdistill.scoring import score

    turns = [t for ep in result.episodes for t in ep.turns if t.response_ids and t.sampler_logprobs]
    if not turns:
        return {"logprob_gap_mean": 0.0, "logprob_gap_max": 0.0}
    prompts = [t.teacher_prompt_ids if act_on == "teacher" else t.student_prompt_ids for t in turns]
    scored = score(run.model, prompts, [t.response_ids for t in turns],
                   temperature=run.cfg.temperature if run.cfg.temperature > 0 else 1.0,
                   max_tokens_per_microbatch=run.cfg.max_tokens_per_microbatch)
    return log_prob_gap([t.sampler_logprobs for t in turns], scored.logprobs_BT, scored.mask_BT)


def rollout_metrics(run: Run, result) -> dict[str, float]:
    """Success, return, turns, invalid actions, PI-leak rate and token counts of one sampling round."""
    from agentdistill.eval import pi_leak_rate

    m = result.metrics
    tokens = sum(len(t.student_prompt_ids) + len(t.response_ids) for ep in result.episodes for t in ep.turns)
    return {"success_rate": m.success_rate, "mean_return": m.mean_return, "mean_turns": m.mean_turns,
            "invalid_action_rate": m.invalid_action_rate, "truncation_rate": m.truncation_rate,
            "episodes": len(result.episodes), "pi_leak_rate": pi_leak_rate(result.episodes, run.tokenizer),
            "rollout_tokens_per_s": m.tokens_per_s, "tokens": tokens, **(run.sampler_gap or {})}


def clip_gradients(model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the global gradient norm to ``max_norm`` (None: no clipping); returns the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm is not None else float("inf"))
