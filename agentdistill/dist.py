"""Running the training loops as N processes under ``torchrun``: FSDP2 sharding and the global batch.

One process and N processes run the same loop code; this module is what differs, and every function is a
no-op (or the identity) in a single process::

    torchrun --nproc-per-node 2 --no-python agentdistill train algo=grpo out_dir=runs/grpo-2x

How the work is split (the shape prime-rl and TRL use: SPMD under torchrun, no extra control plane):

- **Weights**: the student is sharded with FSDP2 (``fully_shard`` on every decoder layer, then the root), over
  a 1-D mesh built explicitly on the model's device type ("cpu" with gloo, "cuda" with NCCL). The optimiser is
  built after sharding, so its state is sharded too.
- **Rollouts**: rank r rolls out every world-size-th task of the step (whole groups, so group statistics stay
  on one rank), then every rank gathers every episode in the single-process order. Sampling seeds depend only
  on (seed, step, task, sample, turn), so the gathered round is the single-process round. Sampling uses a
  full, unsharded replica of the weights per rank (refreshed by ``sync_sampler`` after each update), which
  keeps generation free of collectives: ranks generate different numbers of tokens.
- **Update**: every rank holds the same micro-batch list; rank r back-propagates micro-batches r, r+N, ...,
  each divided by the normaliser of the *whole* step, and FSDP sums (not averages) the gradients across ranks,
  so the step's gradient is the one-process gradient of the same global batch. Ranks with one micro-batch
  fewer run a zero-weight pass so the collectives of every rank match.
- **Logging, evaluation, plots**: rank 0 (the others wait at a barrier).
- **Checkpoints**: ``torch.distributed.checkpoint`` (DCP), sharded per rank; DCP reshards on load, so a run
  resumes on a different number of ranks, a single process included (see ``checkpoints.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 in a plain run)."""

    rank: int = 0
    world_size: int = 1
    mesh: Any = None
    """The 1-D ``DeviceMesh`` the student is sharded over (None in a single process)."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def world_size() -> int:
    """Processes in the job: the process group's size, else torchrun's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str | None) -> DistInfo:
    """Join the job torchrun started (gloo on CPU, NCCL on CUDA) and build the mesh; ``SINGLE`` without one.

    The mesh is built on ``device``'s type explicitly: the default follows the accelerator torch finds, and a
    gloo group under a CUDA mesh crashes. ``device`` None means CUDA where there is one, else the CPU.
    """
    if world_size() <= 1:
        return SINGLE
    device_type = torch.device(device).type if device else ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"distributed training runs on cpu (gloo) or cuda (nccl), not {device!r}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), mesh=mesh)


def shard(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Shard ``model`` with FSDP2: each decoder layer (the model's ``_no_split_modules`` classes) is one unit,
    the root (embeddings, final norm, a tied or untied head) another. Gradients are summed across ranks, since
    every rank's loss already divides by the global normaliser. The identity in a single process."""
    if not info.enabled:
        return model
    from torch.distributed.fsdp import fully_shard

    from agentdistill.models import decoder_layers

    units = decoder_layers(model)
    for unit in units:
        fully_shard(unit, mesh=info.mesh)
    fully_shard(model, mesh=info.mesh)
    for module in [*units, model]:
        module.set_gradient_divide_factor(1.0)  # type: ignore[operator]
        module.set_force_sum_reduction_for_comms(True)  # type: ignore[operator]  # gloo has no PREMUL_SUM
    return model


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights on every rank (a collective under FSDP: every rank must call it)."""
    if not is_distributed():
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state: dict[str, Any] = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return state


def my_share(items: Sequence[T], info: DistInfo) -> list[T]:
    """Items ``rank, rank + N, ...`` of ``items`` (all of them in a single process)."""
    return list(items[info.rank :: info.world_size])


def gather_shares(mine: Sequence[T], info: DistInfo) -> list[T]:
    """Every rank's ``my_share`` put back in the original order (a collective; the identity alone)."""
    if not info.enabled:
        return list(mine)
    shares: list[Any] = [None] * info.world_size
    dist.all_gather_object(shares, list(mine))
    out: list[T] = []
    for i in range(max(len(s) for s in shares)):
        out += [s[i] for s in shares if i < len(s)]
    return out


def broadcast(value: T, info: DistInfo) -> T:
    """Rank 0's ``value`` on every rank (the identity alone)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(value: float, info: DistInfo) -> float:
    """Σ over ranks of ``value`` (the value itself alone)."""
    if not info.enabled:
        return value
    device = info.mesh.device_type if info.mesh is not None else "cpu"  # NCCL reduces CUDA tensors only
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
