"""The FSDP push test's worker: under ``torchrun --nproc-per-node 2``, shard the embedded SmolLM2 with FSDP2
(gloo), perturb it the way ``perturbed()`` does, and push it to the server through FOLDER. Each rank writes
what it did to OUT/rank<r>.json (the ranks' stdout interleaves).

    torchrun --standalone --nproc-per-node 2 tests/served_vllm/push_fsdp.py URL FOLDER OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from agentdistill import dist
from agentdistill.models import load_model
from agentdistill.serving.weight_sync import ServerWeightSync

MODEL = "smollm2-135m-instruct"


def perturbed() -> torch.nn.Module:
    """The embedded model with seeded noise (std 0.01) on every weight."""
    model, _ = load_model(MODEL, device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.01)
    return model


if __name__ == "__main__":
    url, folder, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    info = dist.init("cpu")
    model = dist.shard(perturbed(), info)
    sync = ServerWeightSync(url, folder)
    stats = sync.push(model)
    (out / f"rank{info.rank}.json").write_text(json.dumps({"rank": info.rank, "pushed": stats is not None,
                                                           "total_s": stats.total_s if stats else None}))
    sync.close()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
