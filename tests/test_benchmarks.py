"""The GPU step benchmark runs on CPU at the tiny shape (its correctness check; the figures need a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_step_benchmark_runs_every_loop_and_path_on_cpu(tmp_path):
    out = tmp_path / "step.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step_gpu.py"), "--shapes", "tiny",
                           "--turns", "4", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    loops, paths = ("sft", "grpo", "opsd"), ("plain", "bf16_master", "packed", "ckpt", "compiled")
    assert {(r["loop"], r["path"]) for r in rows} == {(loop, path) for loop in loops for path in paths}
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is None for r in rows)
    assert proc.stdout.strip().splitlines()[-1] == "best_mfu: n/a (no GPU)"
