"""The command line: `agentdistill rollout` end to end, and every YAML preset composes against its schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agentdistill.config import RolloutJobConfig, config_dir, register_configs
from agentdistill.types import load_episodes


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentdistill.cli", *args], capture_output=True, text=True)


def test_rollout_command_prints_a_table_and_saves_episodes(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "rollout", "model=tiny-random", "policies=[hf,expert,random]", "n=2", "env.max_turns=3",
        "sampling.max_new_tokens=6", "progress=false", f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "success_rate[expert]: 1.000" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"hf", "expert", "random"} and metrics["hf"]["tokens_generated"] > 0
    for name in metrics:
        episodes = load_episodes(out / name / "episodes.jsonl")
        assert len(episodes) == 2 and all(e.turns[0].teacher_prompt_ids for e in episodes)
    info = json.loads((out / "run_info.json").read_text())
    assert info["config"]["model"]["name"] == "tiny-random" and info["versions"]["torch"]


def test_bad_overrides_fail_with_a_clear_message(tmp_path):
    proc = run_cli("rollout", "policies=[hf,oracle]", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "unknown policies ['oracle']" in proc.stderr
    proc = run_cli("rollout", "n=many", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "n" in proc.stderr
    proc = run_cli("rollout", "env.id=agentdistill/Nope-v0", "policies=[random]", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "pip install -e envs/" in proc.stderr
    proc = run_cli("train")
    assert proc.returncode != 0 and "unknown command" in proc.stderr


def test_envs_command_lists_sokoban():
    proc = run_cli("envs")
    assert proc.returncode == 0 and "agentdistill/Sokoban-v0" in proc.stdout


@pytest.mark.parametrize(
    "overrides",
    [[]] + [[f"{group.name}={p.stem}"] for group in sorted(config_dir().iterdir()) if group.is_dir()
            for p in sorted(group.glob("*.yaml"))],
)
def test_every_preset_composes_against_its_schema(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="rollout", overrides=[*overrides, "out_dir=/tmp/x"])
    job = OmegaConf.to_object(cfg)
    assert isinstance(job, RolloutJobConfig)


def test_configs_are_found_from_the_package():
    assert (config_dir() / "rollout.yaml").exists() and Path(config_dir()).is_dir()
