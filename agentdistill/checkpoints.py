"""Checkpoints of a training run: weights, optimiser, RNG states and the loop's JSON state, written atomically.

::

    out_dir/checkpoints/
      step_000004/           model.pt, optimizer.pt, rng.pt, extra.json (+ <name>.pt of extra modules)
      latest                 the name of the newest complete checkpoint folder

A run under ``torchrun`` (FSDP2) writes ``dcp/`` (model and optimiser, sharded by
``torch.distributed.checkpoint``) and ``rng_rank<r>.pt`` in place of the three ``.pt`` files. DCP reshards on
load, so such a checkpoint resumes on any number of ranks, one process included, and ``load_weights`` and
``export_model`` read it like the others.

A checkpoint is written into a hidden temporary folder and renamed into place once complete; the ``latest``
pointer is replaced after that. A crash at any point leaves the previous checkpoint as ``latest``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
_TMP_PREFIX = ".tmp-"
_RESERVED = ("model", "optimizer", "rng")


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
    """Write ``checkpoints/step_{step:06d}/`` atomically and point ``latest`` at it; returns the folder.

    ``extra`` is the loop's JSON state (the data cursor, ...); ``modules`` are more weights to keep, each
    saved as ``<name>.pt`` (e.g. an EMA teacher's; read one back with ``load_module_state``).
    Under ``torchrun`` every rank must call it (the sharded save is a collective); rank 0 publishes.
    """
    from agentdistill.dist import is_distributed

    root = Path(run_dir) / CHECKPOINTS_DIR
    name = f"step_{step:06d}"
    tmp = root / f"{_TMP_PREFIX}{name}"
    if is_distributed():
        return _save_sharded(root, name, step, model, optimizer, extra, modules)
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _fsync_save(model.state_dict(), tmp / "model.pt")
    _fsync_save(optimizer.state_dict(), tmp / "optimizer.pt")
    _fsync_save(_rng_state(), tmp / "rng.pt")
    for key, module in (modules or {}).items():
        if key in _RESERVED:
            raise ValueError(f"checkpoint module name {key!r} is reserved")
        _fsync_save(module.state_dict(), tmp / f"{key}.pt")
    return _publish(root, name, step, extra)


def _publish(root: Path, name: str, step: int, extra: dict[str, Any]) -> Path:
    """Write ``extra.json`` into the complete temporary folder, rename it into place, point ``latest`` at it."""
    tmp = root / f"{_TMP_PREFIX}{name}"
    (tmp / "extra.json").write_text(json.dumps({"step": step, **extra}, indent=2) + "\n")
    final = root / name
    if final.exists():  # a checkpoint of the same step from a run that was later truncated
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / (LATEST_FILE + ".tmp")
    pointer.write_text(name + "\n")
    os.replace(pointer, root / LATEST_FILE)
    return final


def _save_sharded(root: Path, name: str, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  extra: dict[str, Any], modules: dict[str, torch.nn.Module] | None) -> Path:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    if modules:
        raise ValueError(f"saving extra modules ({', '.join(modules)}) under FSDP is not supported yet: run this "
                         "loop in one process")
    rank = dist.get_rank()
    tmp = root / f"{_TMP_PREFIX}{name}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    dist.barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp / "dcp")
    _fsync_save(_rng_state(), tmp / f"rng_rank{rank}.pt")
    dist.barrier()
    final = _publish(root, name, step, extra) if rank == 0 else root / name
    dist.barrier()
    return final


def _is_checkpoint(path: Path) -> bool:
    """True for one checkpoint folder (either layout), False for a run directory."""
    return (path / "model.pt").exists() or (path / "dcp").is_dir()


def _load_sharded(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Read a DCP checkpoint into ``model`` (and ``optimizer``), sharded or not, on any number of ranks."""
    with warnings.catch_warnings():  # DCP warns that a single process loads alone: that is the intent here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        _load_dcp(checkpoint, model, optimizer)


def _load_dcp(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from agentdistill.dist import is_distributed

    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

        model_state = get_model_state_dict(model)
        dcp.load({"model": model_state}, checkpoint_id=checkpoint / "dcp", no_dist=not is_distributed())
        set_model_state_dict(model, model_state)
        return
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=checkpoint / "dcp", no_dist=not is_distributed())
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None. Temporary folders are never returned."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    pointer = root / LATEST_FILE
    if pointer.exists():
        target = root / pointer.read_text().strip()
        if (target / "extra.json").exists():
            return target
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
    from agentdistill.dist import is_distributed

    if (checkpoint / "dcp").is_dir():
        _load_sharded(checkpoint, model, optimizer)
        rank = torch.distributed.get_rank() if is_distributed() else 0
        rng = checkpoint / f"rng_rank{rank}.pt"  # a rank the writing run did not have takes rank 0's
        rng = rng if rng.exists() else checkpoint / "rng_rank0.pt"
    elif is_distributed():
        raise ValueError(f"{checkpoint} was written by a single process: resume it in one process (or start a "
                         "fresh run directory under torchrun)")
    else:
        device = next(model.parameters()).device
        model.load_state_dict(torch.load(checkpoint / "model.pt", map_location=device, weights_only=True))
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True))
        rng = checkpoint / "rng.pt"
    # Our own file: numpy's RNG state is a tuple holding an ndarray, which weights_only refuses.
    _set_rng_state(torch.load(rng, weights_only=False))
    extra = json.loads((checkpoint / "extra.json").read_text())
    return int(extra.pop("step")), extra


def is_peft(model: torch.nn.Module) -> bool:
    """True for a PEFT-wrapped model (one with LoRA adapters that can be switched off)."""
    return callable(getattr(model, "disable_adapter", None))


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Load the model weights of a checkpoint (a run directory's latest, or one checkpoint folder)."""
    path = Path(path)
    checkpoint = path if _is_checkpoint(path) else latest_checkpoint(path)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint with model.pt under {path}: pass a training run directory or "
                                "a checkpoints/step_* folder")
    if (checkpoint / "dcp").is_dir():
        _load_sharded(checkpoint, model, None)
        return checkpoint
    device = next(model.parameters()).device
    state = torch.load(checkpoint / "model.pt", map_location=device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lora_saved = any(".lora_A." in k for k in state)
        raise ValueError(
            f"{checkpoint} does not fit this model ({'a LoRA' if lora_saved else 'a full'} checkpoint into "
            f"{'a LoRA' if is_peft(model) else 'a full'} model?): use the same model.name and lora.rank "
            f"as the run that wrote it. {str(e).splitlines()[0]}") from None
    return checkpoint


def load_module_state(checkpoint: Path | None, name: str, module: torch.nn.Module) -> bool:
    """Load ``<name>.pt`` of ``checkpoint`` into ``module``; False (nothing loaded) when there is none."""
    if checkpoint is None or not (checkpoint / f"{name}.pt").exists():
        return False
    device = next(module.parameters()).device
    module.load_state_dict(torch.load(checkpoint / f"{name}.pt", map_location=device, weights_only=True))
    return True


def export_model(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, model_name: str | None = None) -> Path:
    """Write a run's weights as a plain Hugging Face model folder (``save_pretrained``) that ``model.name=``,
    vLLM (``vllm serve <out_dir>``) and transformers load like any other model.

    ``checkpoint`` is a run directory (its latest checkpoint) or one checkpoint folder; ``model_name`` is the
    base model the run trained (default: read from the run's ``run_info.json``). LoRA runs are merged into the
    base weights. Returns ``out_dir``.
    """
    from agentdistill.models import load_model
    from agentdistill.runs import read_run_config

    path = Path(checkpoint)
    run_dir = path.parent.parent if _is_checkpoint(path) else path
    config = read_run_config(run_dir)
    name = model_name or config.get("model", {}).get("name")
    if not name:
        raise ValueError(f"{run_dir} has no run_info.json naming its model: pass the base model (--model NAME)")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose a new folder (nothing was written)")
    base, tokenizer = load_model(name, device="cpu", dtype="float32")
    model: Any = base
    lora = config.get("lora") or {}
    if lora.get("rank", 0) > 0:
        from agentdistill.algos.common import with_lora
        from agentdistill.config import LoraConfig

        model = with_lora(model, LoraConfig(**lora))
    load_weights(model, path)
    if is_peft(model):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
