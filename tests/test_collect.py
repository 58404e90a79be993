"""`agentdistill collect` with the env's expert: traces that replay to wins, resume after a kill, PI use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentdistill import envs
from agentdistill.algos.pi_distill import PiDistillConfig, train
from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig, ModelConfig
from agentdistill.policies import RandomPolicy
from agentdistill.rollout import rollout
from agentdistill.traces import TraceFileError, load_traces

SOKOBAN = "agentdistill/Sokoban-v0"


def job(out: Path, **kwargs) -> CollectJobConfig:
    env = EnvConfig(SOKOBAN, kwargs={"dim_room": [6, 6], "num_boxes": 1}, max_turns=20)
    return CollectJobConfig(**{"env": env, "num_tasks": 10, "chunk_size": 3, "out_dir": str(out),
                               "progress": False, **kwargs})


def test_expert_traces_replay_to_wins(tmp_path):
    summary = collect(job(tmp_path))
    assert (summary.tasks, summary.solved, summary.new_tasks) == (10, 10, 10)
    traces = load_traces(tmp_path / "traces.jsonl", env_id=SOKOBAN)
    assert sorted(t.seed for t in traces.values()) == list(range(10))
    for trace in traces.values():  # action-only traces solve their task when replayed from the start
        env = envs.make(SOKOBAN, max_turns=50, dim_room=(6, 6), num_boxes=1)
        _, info = env.reset(seed=trace.seed)
        assert info["task_id"] == trace.task_id
        for action in trace.actions:
            _, _, terminated, _, info = env.step(action)
        assert terminated and info["won"]
    assert json.loads((tmp_path / "summary.json").read_text())["success_rate"] == 1.0
    demos = [json.loads(line) for line in (tmp_path / "demos.jsonl").read_text().splitlines()[1:]]
    assert len(demos) == sum(t.turns for t in traces.values())
    first = demos[0]
    assert first["demo_id"] == f"{first['task_id']}/0" and first["goal"] and first["observation"]
    assert first["action"] == traces[first["task_id"]].actions[0] and first["outcome"] != first["observation"]


def test_expert_demos_on_the_appworld_env(tmp_path):
    pytest.importorskip("agentdistill_appworld")
    cfg = job(tmp_path, env=EnvConfig("agentdistill/AppWorld-v0", kwargs={"split": "train"}, max_turns=30),
              num_tasks=2)
    assert collect(cfg).solved == 2
    demos = [json.loads(line) for line in (tmp_path / "demos.jsonl").read_text().splitlines()[1:]]
    assert demos and all(d["action"] for d in demos) and any("apis." in d["action"] for d in demos)
    assert all(d["goal"] in d["observation"] or d["step"] > 0 for d in demos)  # the first observation states it


def _cut(path: Path, complete_lines: int, partial: bool) -> None:
    """What a kill leaves: the first ``complete_lines`` lines, and maybe half of the next one."""
    lines = path.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:complete_lines]) + (lines[complete_lines][:17] if partial else b"")
    path.write_bytes(kept)


@pytest.mark.parametrize("traces_kept, attempts_kept, partial", [
    (4, 5, True),    # killed while writing a trace line (header + 3 traces + 4 attempts, then half a line)
    (4, 5, False),   # killed after an attempt line and before its trace line
    (4, 4, False),   # killed between two tasks
    (1, 1, False),   # killed before anything but the headers
])
def test_a_killed_collect_resumes_to_the_same_files(tmp_path, traces_kept, attempts_kept, partial):
    straight = tmp_path / "straight"
    collect(job(straight))
    killed = tmp_path / "killed"
    shutil.copytree(straight, killed)
    _cut(killed / "traces.jsonl", traces_kept, partial)
    _cut(killed / "attempts.jsonl", attempts_kept, partial=False)
    _cut(killed / "demos.jsonl", 1 + sum(_turns(straight, i) for i in range(traces_kept - 1)), partial)
    summary = collect(job(killed))
    assert summary.new_tasks == 10 - (attempts_kept - 1)
    for name in ("traces.jsonl", "attempts.jsonl", "demos.jsonl"):  # nothing lost or duplicated, same order
        assert (killed / name).read_bytes() == (straight / name).read_bytes()


def _turns(out: Path, index: int) -> int:
    """Steps of the index-th solved task (its demo lines)."""
    return json.loads((out / "traces.jsonl").read_text().splitlines()[1 + index])["turns"]


def test_another_job_in_the_same_out_dir_is_refused_and_nothing_changes(tmp_path):
    collect(job(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = job(tmp_path, env=EnvConfig(SOKOBAN, kwargs={"dim_room": [7, 7], "num_boxes": 1}))
    with pytest.raises(TraceFileError, match="written by another job.*choose another out_dir"):
        collect(other)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_bad_collect_options_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="unknown teacher 'gpt'"):
        collect(job(tmp_path, teacher="gpt"))
    with pytest.raises(ValueError, match="teacher=openai needs endpoint.model"):
        collect(job(tmp_path, teacher="openai"))
    with pytest.raises(FileNotFoundError, match="run `agentdistill collect` first"):
        load_traces(tmp_path / "nope.jsonl")


def test_collected_traces_are_the_teacher_views_pi(tmp_path):
    collect(job(tmp_path, num_tasks=3))
    traces = load_traces(tmp_path / "traces.jsonl")
    from agentdistill.models import load_tokenizer

    result = rollout(SOKOBAN, RandomPolicy(envs.default_interface(SOKOBAN)), seeds=[0, 1, 2, 7], max_turns=2,
                     tokenizer=load_tokenizer("tiny-random"), teacher_privileged=["expert_trace"],
                     env_kwargs={"dim_room": (6, 6), "num_boxes": 1}, pi_traces=traces, progress=False)
    for ep in result.episodes:
        expected = list(traces[ep.task_id].actions) if ep.seed < 3 else None  # seed 7 was not collected
        assert all(t.privileged == {"expert_trace": expected} for t in ep.turns)


def test_pi_distill_trains_on_collected_traces(tmp_path):
    collect(job(tmp_path / "traces", num_tasks=4))
    env = EnvConfig(SOKOBAN, kwargs={"dim_room": [6, 6], "num_boxes": 1}, max_turns=3,
                    teacher_privileged=["expert_trace"], pi_traces=str(tmp_path / "traces" / "traces.jsonl"))
    cfg = PiDistillConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"), env=env, num_tasks=4,
                          tasks_per_step=2, group_size=2, steps=1, max_new_tokens=8, out_dir=str(tmp_path / "run"),
                          progress=False)
    cfg.eval.num_tasks = 0
    result = train(cfg)
    assert result.final_step == 1
    with pytest.raises(ValueError, match=r"add it, e.g. env.teacher_privileged=\[expert_trace\]"):
        train(PiDistillConfig(model=cfg.model, out_dir=str(tmp_path / "run2"), env=EnvConfig(
            SOKOBAN, teacher_privileged=["expert_plan"], pi_traces=env.pi_traces)))
