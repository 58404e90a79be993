"""A ``disk`` weight-transfer engine for vLLM: the trainer writes safetensors to a shared folder, the server's
workers read them into the running model.

vLLM's native weight transfer (``vllm/distributed/weight_transfer``) moves a trainer's weights into a running
``vllm serve`` in four phases, each an HTTP route of the server (dev mode, ``VLLM_SERVER_DEV_MODE=1``) that
every worker runs on its engine:

1. ``POST /init_weight_transfer_engine {"init_info": {"folder": F, "probe": P}}`` — once: the worker checks
   that it sees the trainer's folder ``F`` by reading the probe file ``F/P`` the trainer just wrote there
   (a server on another machine without the shared filesystem fails here, not on the first update).
2. ``POST /start_weight_update`` — vLLM's layerwise reload: every layer gets back the loaders of checkpoint
   (HF) format, so HF names (q/k/v, gate/up) map onto the fused layers again.
3. ``POST /update_weights {"update_info": {"path": W}}`` — ``W`` is one ``.safetensors`` file or a folder of
   them, inside ``F``; the tensors stream into ``model.load_weights``.
4. ``POST /finish_weight_update`` — the reload ends: layers re-process their weights (the CPU backend repacks
   them for its kernels).

Why a file and not NCCL: on a CPU, vLLM's NCCL engine reports success while moving nothing (PyNccl disables
itself off CUDA) and CUDA IPC does not exist; a file works on any device, and on one host ``/dev/shm`` makes it
a memory copy. ``agentdistill.serving.weight_sync.ServerWeightSync`` is the trainer side.

The engine reaches a stock ``vllm serve`` as a vLLM *general plugin*: the entry point
``vllm.general_plugins: agentdistill_disk = agentdistill.serving.disk_transfer:register`` runs ``register`` in
every vLLM process (API server, engine core, workers), and the server is started with
``--weight-transfer-config '{"backend": "disk"}'``. This module imports vLLM: only servers import it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

log = logging.getLogger(__name__)

BACKEND = "disk"


@dataclass
class DiskInitInfo(WeightTransferInitInfo):
    folder: str
    """The folder the trainer writes weights into; every update's path must lie inside it."""
    probe: str | None = None
    """A file the trainer wrote into ``folder`` just before: reading it proves the folder is shared."""


@dataclass
class DiskUpdateInfo(WeightTransferUpdateInfo):
    path: str
    """A ``.safetensors`` file, or a folder of them (loaded in name order), inside the init folder."""


class DiskWeightTransferEngine(WeightTransferEngine[DiskInitInfo, DiskUpdateInfo]):
    """Worker side: load checkpoint-format safetensors from a shared folder into the served model in place."""

    init_info_cls = DiskInitInfo
    update_info_cls = DiskUpdateInfo

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder: Path | None = None

    def init_transfer_engine(self, init_info: DiskInitInfo) -> None:
        folder = Path(init_info.folder).resolve()
        if not folder.is_dir():
            raise ValueError(f"disk weight transfer: the server cannot see the folder {folder}: the trainer and "
                             "the server need a shared filesystem (or run them on one host)")
        if init_info.probe is not None and not (folder / init_info.probe).is_file():
            raise ValueError(f"disk weight transfer: {folder} exists on the server but is not the trainer's "
                             f"folder (its probe file {init_info.probe} is missing): share the folder itself")
        self.folder = folder

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def update_weights(self, update_info: dict[str, Any]) -> None:
        # The base class ends with torch.accelerator.synchronize(), which raises on a CPU-only host; loading
        # from a file is synchronous there anyway.
        self.receive_weights(self.parse_update_info(update_info))
        if torch.accelerator.is_available():
            torch.accelerator.synchronize()

    def receive_weights(self, update_info: DiskUpdateInfo) -> None:
        from vllm.model_executor.model_loader.mtp_validation import disable_mtp_completeness_check

        files = self._files(update_info.path)
        model: Any = self.model  # a vLLM model: nn.Module plus load_weights(iterable of (name, tensor))
        with disable_mtp_completeness_check():
            model.load_weights(_tensors(files, str(self.device)))

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)

    def shutdown(self) -> None:
        self.folder = None

    def _files(self, path: str) -> list[Path]:
        if self.folder is None:
            raise RuntimeError("disk weight transfer: update before init: POST /init_weight_transfer_engine "
                               "first (ServerWeightSync does it on its first push)")
        target = Path(path).resolve()
        if not target.is_relative_to(self.folder):
            raise ValueError(f"disk weight transfer: {target} is outside the folder given at init ({self.folder})")
        files = sorted(target.glob("*.safetensors")) if target.is_dir() else [target]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"disk weight transfer: no safetensors at {target}")
        return files


def _tensors(files: list[Path], device: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs one file at a time, each read (onto the worker's device) when the loader asks."""
    for file in files:
        with safe_open(str(file), framework="pt", device=device) as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, f.get_tensor(name)


def register() -> None:
    """vLLM general-plugin entry point: make ``backend="disk"`` available to ``--weight-transfer-config``.

    vLLM runs general plugins once in each of its processes; a second call (the entry point seen twice) is a
    no-op. A ``disk`` engine that vLLM itself or another plugin registered first is left in place.
    """
    registry = WeightTransferEngineFactory._registry
    if BACKEND in registry:
        try:
            ours = registry[BACKEND]() is DiskWeightTransferEngine
        except (ImportError, AttributeError):  # another plugin's lazy entry that does not import: not ours
            ours = False
        if not ours:  # a plugin must not raise here: vLLM calls it unguarded at start-up
            log.warning("a %r weight-transfer engine is already registered; agentdistill's is not used, and "
                        "ServerWeightSync may not speak its protocol", BACKEND)
        return
    WeightTransferEngineFactory.register_engine(BACKEND, DiskWeightTransferEngine)
