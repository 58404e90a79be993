"""`agentdistill collect` with the env's expert: traces that replay to wins, resume after a kill, PI use."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agentdistill import collect as collect_module
from agentdistill import envs
from agentdistill.algos.pi_distill import PiDistillConfig, train
from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig, ModelConfig, config_dir, register_configs
from agentdistill.icd.agent import priced_teacher
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


def test_the_generic_collector_imports_nothing_from_the_icd_package():
    """collect.py serves every consumer of its files; ICD supplies its pricing through the pricer hook."""
    source = Path(collect_module.__file__).read_text()
    imported = []
    for node in ast.walk(ast.parse(source)):  # module level and inside functions alike
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported += [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    assert imported and not [m for m in imported if m == "agentdistill.icd" or m.startswith("agentdistill.icd.")]
    assert "agentdistill.icd" not in source


def test_price_as_without_a_pricer_names_the_fix_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"price_as='claude-sonnet-4-5' needs a pricer.*icd collect"):
        collect(job(tmp_path / "out", price_as="claude-sonnet-4-5"))
    assert not (tmp_path / "out").exists()


def test_collect_price_as_on_the_command_line_bills_as_the_library_with_the_icd_ledger(tmp_path):
    overrides = ["env=sokoban", "model=tiny-random", "num_tasks=2", "chunk_size=2", "env.max_turns=20",
                 "price_as=claude-sonnet-4-5", "progress=false"]
    proc = subprocess.run([sys.executable, "-m", "agentdistill.cli", "collect", *overrides,
                           f"hydra.run.dir={tmp_path / 'cli'}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = OmegaConf.to_object(compose(config_name="collect", overrides=[*overrides, f"out_dir={tmp_path / 'lib'}"]))
    collect(cfg, pricer=priced_teacher)  # what `agentdistill collect` runs, called from Python
    attempts = [json.loads(line) for line in (tmp_path / "cli" / "attempts.jsonl").read_text().splitlines()[1:]]
    assert len(attempts) == 2 and all(a["cost_usd"] > 0 for a in attempts)
    for name in ("attempts.jsonl", "traces.jsonl", "demos.jsonl", "prices.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()
