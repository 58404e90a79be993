"""The command line: `agentdistill rollout` end to end, and every YAML preset composes against its schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agentdistill import algos
from agentdistill.algos import ALGORITHMS, algorithm_of
from agentdistill.config import (
    CollectJobConfig,
    EnvConfig,
    EvalJobConfig,
    IcdJobConfig,
    ModelConfig,
    RolloutJobConfig,
    TrainConfig,
    config_dir,
    register_configs,
)
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
    proc = run_cli("fly")
    assert proc.returncode != 0 and "unknown command" in proc.stderr


def test_envs_command_lists_sokoban():
    proc = run_cli("envs")
    assert proc.returncode == 0 and "agentdistill/Sokoban-v0" in proc.stdout


PRESETS = [(group.name, p.stem) for group in sorted(config_dir().iterdir()) if group.is_dir()
           for p in sorted(group.glob("*.yaml"))]
JOBS = {"rollout": RolloutJobConfig, "eval": EvalJobConfig, "train": TrainConfig, "collect": CollectJobConfig,
        "icd": IcdJobConfig, "icd_collect": CollectJobConfig}


def _compose(command: str, overrides: list[str]):
    register_configs()
    algos.register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name=command, overrides=[*overrides, "out_dir=/tmp/x"]))


@pytest.mark.parametrize("command", sorted(JOBS))
@pytest.mark.parametrize("preset", [None, *PRESETS], ids=lambda p: "defaults" if p is None else "=".join(p))
def test_every_preset_composes_against_its_schema(command, preset):
    group, name = preset or (None, None)
    if group in ("algo", "budget") and command != "train":
        pytest.skip(f"{group} presets belong to `agentdistill train`")
    job = _compose(command, [f"{group}={name}"] if group else [])
    assert isinstance(job, JOBS[command])
    if command == "train":
        assert algorithm_of(job) == (name if group == "algo" else "opsd_distill")
        assert isinstance(job.env, EnvConfig) and isinstance(job.model, ModelConfig)


def test_every_yaml_file_is_a_preset_or_a_job():
    files = {p.relative_to(config_dir()).as_posix() for p in config_dir().rglob("*.yaml")}
    known = {f"{g}/{n}.yaml" for g, n in PRESETS} | {f"{c}.yaml" for c in JOBS}
    assert files == known | {"prices.yaml"}  # the price table is data, not a Hydra config
    assert {n for g, n in PRESETS if g == "algo"} == set(ALGORITHMS)
    assert {n for g, n in PRESETS if g == "budget"} <= {n for g, n in PRESETS if g == "env"}


def test_train_presets_set_the_algorithm_hyperparameters():
    main_job = _compose("train", [])
    assert algorithm_of(main_job) == "opsd_distill" and main_job.env.id == "agentdistill/Sokoban-v0"
    assert main_job.warm_start.steps == 12 and main_job.rollout_engine == "vllm" and main_job.eval.num_tasks == 32
    pi = _compose("train", ["algo=pi_distill", "env=alfworld"])
    assert (pi.alpha, pi.beta, pi.clip_low, pi.clip_high, pi.temperature) == (0.5, 0.25, 0.2, 0.2, 0.75)
    assert pi.env.id == "agentdistill/ALFWorld-v0" and pi.env.eval_kwargs == {"split": "valid_unseen"}
    opsd = _compose("train", ["algo=opsd_distill", "env=sokoban", "lr=3e-6"])
    assert opsd.divergence == "forward_kl" and opsd.lr == 3e-6 and opsd.env.eval_seed_start == 1_000_000


@pytest.mark.parametrize(
    "override, names",
    [("alpah=0.3", ["'alpah'", "top level", "alpha", "Did you mean 'alpha'"]),
     ("env.max_turn=3", ["'env.max_turn'", "under 'env'", "max_turns", "teacher_privileged"]),
     ("eval.evry=2", ["'eval.evry'", "under 'eval'", "every", "num_tasks"])],
)
def test_a_typo_in_an_override_names_the_valid_keys(override, names):
    proc = run_cli("train", "algo=pi_distill", "model=tiny-random", override)
    assert proc.returncode != 0
    for name in names:
        assert name in proc.stderr, proc.stderr


def test_an_option_of_another_algorithm_is_refused_with_this_ones_keys():
    proc = run_cli("train", "algo=grpo", "alpha=0.3")
    assert proc.returncode != 0 and "'alpha'" in proc.stderr and "scale_by_std" in proc.stderr


def test_train_eval_and_report_end_to_end(tmp_path):
    out = tmp_path / "run"
    common = ["algo=pi_distill", "env=sokoban", "~budget", "model=tiny-random", "env.max_turns=2", "max_new_tokens=4",
              "eval.num_tasks=2", "tasks_per_step=2", "group_size=2", "progress=false", "model.device=cpu"]
    proc = run_cli("train", *common, "steps=2", "lr=1e-3", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert "pi_distill: 2 steps" in proc.stdout
    assert "held-out success [student view]: 0.000 (step 0)" in proc.stdout
    assert "held-out success [teacher view]" in proc.stdout
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [(r["step"], r["view"]) for r in rows] == [(0, "student"), (0, "teacher"), (2, "student"),
                                                      (2, "teacher")]
    assert (out / "plots" / "learning_curves.png").exists() and (out / "plots" / "eval.png").exists()
    # resuming a finished run is a no-op that keeps every line exactly once
    proc = run_cli("train", *common, "steps=2", "lr=1e-3", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert len((out / "eval.jsonl").read_text().splitlines()) == 4

    proc = run_cli("report", str(out))
    assert proc.returncode == 0 and "held-out success [student view]" in proc.stdout
    proc = run_cli("report", str(tmp_path / "nowhere"))
    assert proc.returncode != 0 and "pass a training run directory" in proc.stderr

    ev = tmp_path / "eval"
    proc = run_cli("eval", "env=sokoban", "model=tiny-random", "eval.num_tasks=2", "env.max_turns=2",
                   "max_new_tokens=4", f"checkpoint={out}", f"hydra.run.dir={ev}")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((ev / "metrics.json").read_text())
    assert set(metrics) == {"student view", "teacher view"} and "step_000002" in proc.stdout
    proc = run_cli("eval", "env=sokoban", "model=tiny-random", f"checkpoint={tmp_path / 'nowhere'}",
                   f"hydra.run.dir={ev}")
    assert proc.returncode != 0 and "no checkpoint with model.pt" in proc.stderr


def test_eval_command_prints_the_real_number_of_env_errors(tmp_path, monkeypatch, capsys):
    import toy_env

    from agentdistill import cli, envs
    from agentdistill.config import EvalConfig

    # the toy env ships no plugin interface; the command is otherwise run as `agentdistill eval` runs it
    monkeypatch.setattr(envs, "default_interface", lambda env_id, **kwargs: toy_env.ToyInterface())
    env = EnvConfig(toy_env.TOY_ID, max_turns=2, kwargs={"fail_at_turn": 1, "fail_on_seeds": [0, 2]},
                    eval_seed_start=0)
    cfg = EvalJobConfig(env=env, model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                        eval=EvalConfig(num_tasks=4), views=["student"], max_new_tokens=2, out_dir=str(tmp_path))
    table = cli.eval_command(cfg)
    out = capsys.readouterr().out
    assert "errors[student view]: 2 (error_rate 0.500)" in out and "error_traceback" in out
    saved = json.loads((tmp_path / "metrics.json").read_text())["student view"]
    assert (saved["errors"], saved["error_rate"]) == (2, 0.5) == (table["student view"]["errors"], 0.5)
    episodes = load_episodes(tmp_path / "student" / "episodes.jsonl")
    assert [ep.seed for ep in episodes if ep.error_traceback] == [0, 2]


def test_configs_are_found_from_the_package():
    assert (config_dir() / "rollout.yaml").exists() and Path(config_dir()).is_dir()
