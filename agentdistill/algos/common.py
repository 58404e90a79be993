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
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentdistill.losses import normalizer_for
from agentdistill.losses.reduce import ReduceMode
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
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


def append_metrics(run_dir: str | os.PathLike, metrics: dict[str, float]) -> None:
    """Append one JSON line to ``run_dir/metrics.jsonl`` and fsync it; ``metrics`` must hold a ``step``."""
    if "step" not in metrics:
        raise ValueError(f"a metrics line needs a 'step' field, got keys {sorted(metrics)}")
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All lines of a metrics file (a partial last line, left by a killed writer, is skipped)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:  # no trailing newline: the writer died mid-line
                break
            raise ValueError(f"{path}:{i + 1} is not a JSON line; remove or repair it") from None
    return rows


def truncate_metrics(run_dir: str | os.PathLike, step: int) -> None:
    """Keep only metric lines with ``step <= step`` (rewritten atomically); call on resume from ``step``."""
    path = Path(run_dir) / METRICS_FILE
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
) -> Path:
    """Write ``checkpoints/step_{step:06d}/`` (model, optimiser, RNG states, ``extra`` as JSON) atomically.

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
    if max_tokens is None:
        return [list(samples)] if samples else []
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0 or None, got {max_tokens}")
    groups: list[list[TurnSample]] = []
    longest = 0
    for s in samples:
        n = len(s.student_prompt_ids) + len(s.response_ids)
        if groups and (len(groups[-1]) + 1) * max(longest, n) <= max_tokens:
            groups[-1].append(s)
            longest = max(longest, n)
        else:
            groups.append([s])
            longest = n
    return groups


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


# ---------------------------------------------------------------- plots


def plot_metrics(
    metrics_path: str | os.PathLike, out_png: str | os.PathLike, keys: Sequence[str]
) -> Path | None:
    """Plot ``keys`` of a metrics file against ``step``, one panel each, as a PNG.

    Returns the PNG path, or None (with a logged warning) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no learning-curve plot written (pip install matplotlib)")
        return None
    rows = read_metrics(metrics_path)
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.5 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_ylabel(key)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


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
