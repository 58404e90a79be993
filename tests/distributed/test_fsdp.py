"""GRPO and π-Distill under ``torchrun --nproc-per-node 2`` (FSDP2, gloo, CPU) against one process.

The 2-rank run splits each step's tasks and micro-batches across the ranks; with the global normaliser and
summed gradients it must reach the single-process parameters of the same global batch. Tolerance: 1e-5
absolute after 3 AdamW steps at lr 1e-3 (the parameters move by 3e-3; sharded reductions and the other
padding of rollout batches change the float rounding, measured at 1e-6–4e-6). A run killed after its step-1
checkpoint resumes from the DCP checkpoint to the uninterrupted run's state, on 2 ranks and on 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentdistill.checkpoints import load_weights
from agentdistill.models import load_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("run_loop.py")
TOLERANCE = 1e-5


def _run(algo: str, out: Path, *, ranks: int, extra: tuple[str, ...] = (), check: bool = True) -> int:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] \
        if ranks > 1 else [sys.executable]
    proc = subprocess.run([*launcher, str(SCRIPT), algo, str(out), *extra], env=env, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{algo} on {ranks} rank(s) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc.returncode


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model("tiny-random", device="cpu", dtype="float32")
    load_weights(model, run_dir)
    return model.state_dict()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _column(run_dir: Path, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def grpo_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("grpo")
    runs = {"single": root / "single", "two": root / "two"}
    _run("grpo", runs["single"], ranks=1)
    _run("grpo", runs["two"], ranks=2)
    return runs


def test_grpo_on_two_ranks_reaches_the_single_process_parameters(grpo_runs):
    single, two = _weights(grpo_runs["single"]), _weights(grpo_runs["two"])
    initial = load_model("tiny-random", device="cpu", dtype="float32")[0].state_dict()
    assert _max_diff(single, initial) > 1e-3  # the runs trained
    assert _max_diff(single, two) < TOLERANCE
    assert _column(grpo_runs["two"], "step") == [1, 2, 3]  # rank 0 logs each step once
    assert _column(grpo_runs["two"], "grad_norm") == pytest.approx(_column(grpo_runs["single"], "grad_norm"),
                                                                  rel=1e-5)
    assert (grpo_runs["two"] / "checkpoints" / "step_000003" / "dcp").is_dir()
    assert [json.loads(line)["step"] for line in (grpo_runs["two"] / "eval.jsonl").read_text().splitlines()] \
        == [0, 3]


def test_pi_distill_on_two_ranks_reaches_the_single_process_parameters(tmp_path):
    _run("pi_distill", tmp_path / "single", ranks=1)
    _run("pi_distill", tmp_path / "two", ranks=2)
    assert _max_diff(_weights(tmp_path / "single"), _weights(tmp_path / "two")) < TOLERANCE
    assert _column(tmp_path / "two", "loss") == pytest.approx(_column(tmp_path / "single", "loss"), rel=1e-5)


@pytest.mark.parametrize("resume_ranks", [2, 1])
def test_a_killed_two_rank_run_resumes_from_its_sharded_checkpoint(tmp_path, grpo_runs, resume_ranks):
    run_dir = tmp_path / "killed"
    assert _run("grpo", run_dir, ranks=2, extra=("--die-after", "1"), check=False) != 0
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_000001"
    _run("grpo", run_dir, ranks=resume_ranks)
    diff = _max_diff(_weights(run_dir), _weights(grpo_runs["two"]))
    assert diff == 0.0 if resume_ranks == 2 else diff < TOLERANCE
    assert _column(run_dir, "step") == [1, 2, 3]


def test_compiled_layers_under_fsdp_reach_the_eager_single_process_parameters(grpo_runs, tmp_path):
    """torch_compile=true on 2 ranks: each decoder layer is compiled, then sharded (FSDP's hooks run around
    the compiled forward); 3 steps reach the eager one-process parameters. Tolerance 1e-4: AdamW's first
    steps are ~lr·sign(g), so compiled rounding on a near-zero gradient shows (tests/algos/test_grpo.py)."""
    _run("grpo", tmp_path / "two", ranks=2, extra=("--compile",))
    diff = _max_diff(_weights(grpo_runs["single"]), _weights(tmp_path / "two"))
    assert diff < 1e-4, diff
    assert _column(tmp_path / "two", "grad_norm") == pytest.approx(_column(grpo_runs["single"], "grad_norm"),
                                                                  rel=1e-4)
