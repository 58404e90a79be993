"""`agentdistill collect` with a local HTTP teacher (the real `vllm serve` of conftest.py), killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentdistill import envs
from agentdistill.traces import load_traces

from .conftest import SERVED_NAME

TASKS = 8


def start_collect(out: Path, base_url: str) -> subprocess.Popen:
    overrides = [
        f"hydra.run.dir={out}", "teacher=openai", f"endpoint.base_url={base_url}", f"endpoint.model={SERVED_NAME}",
        "endpoint.price_in=3", "endpoint.price_out=15", "env=sokoban", "env.max_turns=3", f"num_tasks={TASKS}",
        "chunk_size=1", "attempts=2", "temperature=1.0", "max_new_tokens=12", "progress=false",
    ]
    return subprocess.Popen([sys.executable, "-m", "agentdistill.cli", "collect", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_http_teacher_collect_survives_a_kill(server_url, tmp_path):
    out = tmp_path / "collect"
    proc = start_collect(out, server_url)
    deadline = time.monotonic() + 240
    while complete_lines(out / "attempts.jsonl") < 3:  # the header and two finished tasks
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "collect wrote nothing in 240 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {name: (out / name).read_bytes() for name in ("attempts.jsonl", "traces.jsonl")}
    done_before = complete_lines(out / "attempts.jsonl") - 1
    assert 2 <= done_before < TASKS, "the kill came too late to test a resume"

    resumed = start_collect(out, server_url)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    for name, old in before.items():  # what was written before the kill is kept, byte for byte
        old_complete = old[: old.rfind(b"\n") + 1]
        assert (out / name).read_bytes().startswith(old_complete)
    attempts = [json.loads(line) for line in (out / "attempts.jsonl").read_text().splitlines()[1:]]
    assert sorted(a["seed"] for a in attempts) == list(range(TASKS))  # every task exactly once
    traces = load_traces(out / "traces.jsonl")
    assert sorted(t.seed for t in traces.values()) == sorted(a["seed"] for a in attempts if a["solved"])
    for trace in traces.values():  # whatever the small model solved replays to a win
        env = envs.make("agentdistill/Sokoban-v0", max_turns=10, dim_room=(6, 6), num_boxes=1)
        env.reset(seed=trace.seed)
        for action in trace.actions:
            *_, info = env.step(action)
        assert info["won"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == TASKS and summary["new_tasks"] == TASKS - done_before
    assert summary["cost_usd"] > 0 and abs(summary["cost_usd"] - sum(a["cost_usd"] for a in attempts)) < 1e-12
    assert json.loads((out / "prices.json").read_text()) == {SERVED_NAME: {"input": 3.0, "output": 15.0,
                                                                           "cached_input": None}}
    assert "calls" in output and "retries" in output  # the endpoint's usage line
