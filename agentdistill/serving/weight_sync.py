"""Push a training model's weights into a running ``vllm serve`` through vLLM's weight-transfer API.

One ``push(model)`` is one round of the protocol (``disk_transfer`` describes the server side)::

    gather (FSDP: every rank)  →  write weights-….safetensors (rank 0)  →  [init, first push only]
    →  pause (drain requests, clear the prefix cache)  →  start  →  update {"path": …}  →  finish  →  resume

Pausing first matters: requests already queued finish on the old weights, and the prefix cache holds keys and
values computed with them, which the new weights must not reuse. Under FSDP every rank calls ``push`` (the
gather is a collective), rank 0 alone writes and talks to the server, and all ranks leave together, so no rank
samples from the server before its weights are the new ones.

The folder must be visible to the server at the same path (one host, or a shared filesystem; ``/dev/shm`` makes
the file a memory copy). Each push writes a new file and deletes the one before; ``close()`` deletes the last.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentdistill import dist
from agentdistill.serving.client import ServerClient, ServerError

log = logging.getLogger(__name__)

SERVER_FLAGS_HINT = ("start it with VLLM_SERVER_DEV_MODE=1, `--weight-transfer-config '{\"backend\": \"disk\"}'` "
                     "and agentdistill installed in the server's Python (its vllm.general_plugins entry point "
                     "registers the disk engine); agentdistill.serving.VLLMServer does all three")


@dataclass(frozen=True)
class PushStats:
    """What one ``push`` cost (rank 0)."""

    version: int
    """The weight version the server reports after this push (``GET /weight_info``)."""
    bytes: int
    """Size of the safetensors file written."""
    gather_s: float
    """Collecting the full state dict (an all-gather under FSDP)."""
    write_s: float
    """Writing the file."""
    server_s: float
    """Pause → start → update → finish → resume on the server (reading the file into the model)."""

    @property
    def total_s(self) -> float:
        return self.gather_s + self.write_s + self.server_s


class ServerWeightSync:
    """Trainer side of the ``disk`` weight transfer to one ``vllm serve``.

    Args:
        base_url: the server, ``http://host:port`` (a trailing ``/v1`` is accepted).
        folder: where weight files go; the server must see it at the same path.
        timeout_s: per-request timeout (loading the weights is one request).
    """

    def __init__(self, base_url: str, folder: str | os.PathLike, *, timeout_s: float = 600.0):
        self.client = ServerClient(base_url, timeout_s=timeout_s)
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.version = 0
        self.last: PushStats | None = None
        self._tag = uuid.uuid4().hex[:8]  # several syncs may share a folder
        self._initialised = False
        self._current: Path | None = None

    def push(self, model: torch.nn.Module) -> PushStats | None:
        """Send ``model``'s weights (a transformers model of the served architecture) to the server.

        Returns the timings on rank 0, None on the other ranks. Raises ``ServerError`` naming the fix when the
        server lacks dev mode or the disk engine.
        """
        start = time.perf_counter()
        state = dist.full_state_dict(model)  # a collective under FSDP: every rank gathers
        if not dist.is_distributed():
            return self._send(state, time.perf_counter() - start)
        stats = None
        try:
            if torch.distributed.get_rank() == 0:
                stats = self._send(state, time.perf_counter() - start)
        finally:
            torch.distributed.barrier()  # nobody samples from the server before it holds the new weights
        return stats

    def close(self) -> None:
        """Delete the last weight file and close the connection."""
        if self._current is not None:
            self._current.unlink(missing_ok=True)
            self._current = None
        self.client.close()

    def __enter__(self) -> ServerWeightSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, state: dict[str, torch.Tensor], gather_s: float) -> PushStats:
        tensors = _checkpoint_tensors(state)
        version = self.version + 1
        path = self.folder / f"weights-{self._tag}-{version:06d}.safetensors"
        started = time.perf_counter()
        _write(tensors, path)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            if not self._initialised:
                self._init()
            self._update(path, version)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        server_s = time.perf_counter() - started
        if self._current is not None:
            self._current.unlink(missing_ok=True)
        self._current, self.version = path, version
        self.last = PushStats(version=version, bytes=path.stat().st_size, gather_s=gather_s, write_s=write_s,
                              server_s=server_s)
        log.info("pushed weights v%d to %s: %.2fs (gather %.2fs, write %.2fs, server %.2fs)", version,
                 self.client.url, self.last.total_s, gather_s, write_s, server_s)
        return self.last

    def _init(self) -> None:
        probe = self.folder / f".probe-{self._tag}"
        probe.write_text("agentdistill disk weight transfer\n")
        try:
            self._call("/init_weight_transfer_engine",
                       {"init_info": {"folder": str(self.folder), "probe": probe.name}})
        finally:
            probe.unlink(missing_ok=True)
        self._initialised = True

    def _update(self, path: Path, version: int) -> None:
        self._call("/pause", mode="wait", clear_cache="true")
        try:
            self._call("/start_weight_update")
            try:
                self._call("/update_weights", {"update_info": {"path": str(path)}})
            except ServerError as e:
                raise ServerError(f"{e}\nThe server's weights may now be partly updated: push again, or restart "
                                  "the server", status=e.status, body=e.body) from None
            self._call("/finish_weight_update", {"weight_version": str(version)})
            # The pause cleared the cache already; this makes sure nothing cached with the old weights survives
            # (pause's clear_cache is deprecated upstream).
            reset = self.client.post("/reset_prefix_cache")
            if not (isinstance(reset, dict) and reset.get("success")):
                raise ServerError(f"{self.client.url} could not reset its prefix cache after the update ({reset}): "
                                  "its cached keys and values are the old weights'; push again")
        finally:
            self._call("/resume")

    def _call(self, route: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        try:
            return self.client.post(route, body, **params)
        except ServerError as e:
            if e.status == 404:
                raise ServerError(f"{self.client.url} has no {route} route (HTTP 404): it is not a vLLM server in "
                                  f"dev mode; {SERVER_FLAGS_HINT}", status=e.status, body=e.body) from None
            if "Weight transfer not configured" in e.body:
                raise ServerError(f"{self.client.url} was started without a weight-transfer engine; "
                                  f"{SERVER_FLAGS_HINT}", status=e.status, body=e.body) from None
            if "Invalid init_info" in e.body or "Invalid update_info" in e.body:
                raise ServerError(f"{self.client.url} runs a weight-transfer engine other than agentdistill's disk "
                                  f"engine ({e.body[:300]}); {SERVER_FLAGS_HINT}", status=e.status,
                                  body=e.body) from None
            raise


def _checkpoint_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors that share no storage (safetensors refuses shared storage).

    Tied weights are written under both names: vLLM's Llama loads ``lm_head.weight`` even when the embeddings
    are tied, and after a layerwise reload a head left out keeps its old (repacked) weights on a CPU.
    """
    if any("lora_" in name for name in state):
        raise ValueError("the model holds LoRA adapters: merge them (peft's merge_and_unload) into a copy and push "
                         "that; the server serves plain weights")
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(tensor.shape))
        cpu = tensor.detach().to("cpu").contiguous()
        out[name] = cpu.clone() if key in seen else cpu
        seen.add(key)
    return out


def _write(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write to a hidden name, then rename: the server never reads a half-written file."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
