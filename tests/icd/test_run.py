"""`agentdistill icd collect|run|report` end to end on the ALFWorld-style env with the tiny random student:
four arms on identical episodes, the report's arithmetic, resume after a kill, clear errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig, IcdJobConfig, ModelConfig
from agentdistill.icd.agent import priced_teacher
from agentdistill.icd.run import run_icd
from agentdistill.traces import TraceFileError

ALFWORLD = "agentdistill/ALFWorld-v0"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentdistill.cli", *args], capture_output=True, text=True)


def _env(max_turns: int) -> EnvConfig:
    return EnvConfig(ALFWORLD, max_turns=max_turns, kwargs={"split": "train", "difficulty": "small"},
                     eval_kwargs={"split": "valid_unseen"}, eval_seed_start=0)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("icd_demos")
    cfg = CollectJobConfig(env=_env(30), num_tasks=8, chunk_size=4, out_dir=str(out), progress=False,
                           price_as="claude-sonnet-4-5", model=ModelConfig("tiny-random"))
    collect(cfg, pricer=priced_teacher)  # what `agentdistill icd collect` passes
    return out / "demos.jsonl"


def job(out: Path, demos: Path, **kwargs) -> IcdJobConfig:
    return IcdJobConfig(**{"env": _env(4), "demos": str(demos), "model": ModelConfig("tiny-random", device="cpu"),
                           "embedder": "hashing", "num_tasks": 3, "max_new_tokens": 6, "chunk_size": 1,
                           "out_dir": str(out), "progress": False, "samples": 2, "temperature": 1.0, **kwargs})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


def test_demos_are_priced_as_the_teacher(demos):
    attempts = _lines(demos.with_name("attempts.jsonl"))
    assert all(a["solved"] and a["cost_usd"] > 0 for a in attempts)
    assert json.loads(demos.with_name("prices.json").read_text()) == {
        "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}


def test_four_arms_on_identical_episodes_and_the_report(tmp_path, demos):
    report = run_icd(job(tmp_path, demos))
    records = _lines(tmp_path / "episodes.jsonl")
    assert len(records) == 4 * 3
    tasks = {arm: sorted((r["seed"], r["task_id"]) for r in records if r["arm"] == arm)
             for arm in ("teacher", "student", "icd", "cascade")}
    assert len({tuple(v) for v in tasks.values()}) == 1  # the same three tasks for every arm
    arms = report["arms"]
    assert arms["teacher"]["deferral_rate"] == 1.0 and arms["teacher"]["student_usd_per_episode"] == 0
    assert arms["student"]["deferral_rate"] == 0.0 and arms["student"]["teacher_usd_per_episode"] == 0
    assert arms["icd"]["deferral_rate"] == 0.0
    assert arms["icd"]["student_usd_per_episode"] > arms["student"]["student_usd_per_episode"]  # demo tokens
    assert 0.0 < arms["cascade"]["deferral_rate"] <= 1.0
    for arm in arms:  # $/episode is the mean of the episodes' dollars, which are the sums of their calls
        mine = [r for r in records if r["arm"] == arm]
        assert arms[arm]["usd_per_episode"] == pytest.approx(sum(r["cost_usd"] for r in mine) / 3)
        for r in mine:
            calls = [c for s in r["step_records"] for c in s["calls"]]
            assert r["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls))
    # break-even and savings, by hand from the run's own figures
    header = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    c_demo = sum(a["cost_usd"] for a in _lines(demos.with_name("attempts.jsonl")))
    assert header["demo_cost_usd"] == pytest.approx(c_demo) and report["demo_cost_usd"] == pytest.approx(c_demo)
    c_teacher, c_icd = arms["teacher"]["usd_per_episode"], arms["icd"]["usd_per_episode"]
    assert arms["icd"]["break_even_episodes"] == pytest.approx(c_demo / (c_teacher - c_icd))
    assert arms["icd"]["savings_usd"]["1000"] == pytest.approx(1000 * (c_teacher - c_icd) - c_demo)
    assert arms["student"]["break_even_episodes"] == 0.0  # no demos to pay back
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["tasks"] == 3 and set(written["arms"]) == set(arms)
    if math.isinf(arms["cascade"]["break_even_episodes"]):
        assert written["arms"]["cascade"]["break_even_episodes"] is None
    assert (tmp_path / "pareto.png").stat().st_size > 5000
    md = (tmp_path / "report.md").read_text()
    assert "| cascade |" in md and "one_call" in md and "claude-sonnet-4-5" in md
    assert report["pareto"] and all(a in arms for a in report["pareto"])
    assert json.loads((tmp_path / "prices.json").read_text())["billing"] == {"samples": "one_call",
                                                                           "prompt_caching": False}


def test_a_killed_run_resumes_to_the_same_files(tmp_path, demos):
    whole = tmp_path / "whole"
    run_icd(job(whole, demos, arms=["student", "cascade"]))
    cut = tmp_path / "cut"
    cut.mkdir()
    lines = (whole / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    # a kill after the header, all of "student" and one cascade episode, half-way through the next line
    (cut / "episodes.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    run_icd(job(cut, demos, arms=["student", "cascade"]))
    assert (cut / "episodes.jsonl").read_bytes() == (whole / "episodes.jsonl").read_bytes()
    with pytest.raises(TraceFileError, match="written by another job"):  # other settings, same out_dir
        run_icd(job(cut, demos, arms=["student", "cascade"], samples=3))
    assert (cut / "episodes.jsonl").read_bytes() == (whole / "episodes.jsonl").read_bytes()


def test_bad_options_name_the_fix(tmp_path, demos):
    with pytest.raises(ValueError, match="arms must be distinct names"):
        run_icd(job(tmp_path, demos, arms=["teacher", "oracle"]))
    with pytest.raises(ValueError, match="need demos="):
        run_icd(job(tmp_path, "", arms=["icd"]))
    with pytest.raises(ValueError, match="temperature > 0"):
        run_icd(job(tmp_path, demos, temperature=0.0))
    with pytest.raises(ValueError, match="no price for model 'gpt-9'"):
        run_icd(job(tmp_path, demos, teacher_price="gpt-9"))
    with pytest.raises(FileNotFoundError, match="no attempts.jsonl beside"):
        run_icd(job(tmp_path, tmp_path / "elsewhere" / "demos.jsonl"))
    with pytest.raises(ValueError, match="teacher=openai needs teacher_endpoint.model"):
        run_icd(job(tmp_path, demos, teacher="openai"))
    assert not (tmp_path / "episodes.jsonl").exists()  # nothing was started


def test_the_cli(tmp_path, demos):
    out = tmp_path / "run"
    proc = run_cli("icd", "run", f"demos={demos}", "model=tiny-random", "embedder=hashing", "num_tasks=2",
                   "arms=[teacher,icd]", "env.kwargs.difficulty=small", "env.max_turns=3", "max_new_tokens=6",
                   "progress=false", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy[teacher]:" in proc.stdout and "usd_per_episode[icd]:" in proc.stdout
    again = run_cli("icd", "report", str(out))
    assert again.returncode == 0 and "ICD on agentdistill/ALFWorld-v0: 2 tasks" in again.stdout
    assert run_cli("icd", "report", str(tmp_path)).returncode != 0
    assert "no episodes.jsonl" in run_cli("icd", "report", str(tmp_path)).stderr
    assert "usage: agentdistill icd" in run_cli("icd", "serve").stderr
    bad = run_cli("icd", "run", "sampels=3")
    assert bad.returncode != 0 and "Did you mean 'samples'?" in bad.stderr


def test_a_local_model_as_the_teacher(tmp_path, demos):
    report = run_icd(job(tmp_path, demos, arms=["teacher"], teacher="hf",
                         teacher_model=ModelConfig("tiny-random", device="cpu"), num_tasks=1))
    record = _lines(tmp_path / "episodes.jsonl")[0]
    assert record["deferred_steps"] == record["steps"] == record["turns"] > 0
    calls = [c for s in record["step_records"] for c in s["calls"]]
    assert all(c["role"] == "teacher" and c["model"] == "claude-sonnet-4-5" and 0 < c["completion_tokens"] <= 6
               for c in calls)  # the sampled ids, at most max_new_tokens
    assert report["arms"]["teacher"]["usd_per_episode"] == pytest.approx(record["cost_usd"]) and record["cost_usd"] > 0
