"""`agentdistill probe`: PI utility and the initial teacher–student divergence, on every env with PI, from the
command line and from Python; the paper's reading of the figures."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from agentdistill.algos.pi_distill import PiDistillConfig
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.probe import PROBE_FILE, probe, reading

ENVS = {
    "sokoban": EnvConfig("agentdistill/Sokoban-v0", max_turns=2, teacher_privileged=["expert_plan"],
                         eval_seed_start=1_000_000),
    "alfworld": EnvConfig("agentdistill/ALFWorld-v0", max_turns=2, teacher_privileged=["expert_plan"],
                          kwargs={"difficulty": "small"}, eval_kwargs={"split": "valid_unseen"},
                          interface={"pi_format": "next_k", "k": 1}),
    "appworld": EnvConfig("agentdistill/AppWorld-v0", max_turns=2, teacher_privileged=["plan"],
                          eval_kwargs={"split": "test_normal"}),
    "textworld": EnvConfig("agentdistill/TextWorld-v0", max_turns=2, teacher_privileged=["expert_plan"],
                           kwargs={"kind": "cooking", "difficulty": 1, "num_games": 1},
                           eval_kwargs={"split": "test", "num_games": 1}),
}


def _cfg(tmp_path, env: str, **kw) -> PiDistillConfig:
    env_cfg = copy.deepcopy(ENVS[env])
    if env == "textworld":  # games are generated once into the test's own cache
        cache = str(tmp_path.parent / "textworld-cache")
        env_cfg = EnvConfig(**{**env_cfg.__dict__, "kwargs": {**env_cfg.kwargs, "cache_dir": cache},
                               "eval_kwargs": {**env_cfg.eval_kwargs, "cache_dir": cache}})
    settings = dict(eval=EvalConfig(num_tasks=2, temperature=0.0), num_tasks=4, tasks_per_step=2, group_size=2,
                    max_new_tokens=6, history_window=0, out_dir=str(tmp_path / "probe"), progress=False)
    return PiDistillConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"), env=env_cfg,
                           **{**settings, **kw})


@pytest.mark.parametrize("env", list(ENVS))
def test_probe_measures_utility_and_divergence_on_every_env_with_pi(tmp_path, env):
    result = probe(_cfg(tmp_path, env))
    saved = json.loads((tmp_path / "probe" / PROBE_FILE).read_text())
    assert saved == json.loads(json.dumps(result))
    assert result["pi_utility"] == pytest.approx(result["teacher_success"] - result["student_success"])
    assert result["eval_episodes"] == 2 and result["kl_turns"] > 0 and result["kl_tokens"] > 0
    assert result["kl_k3_per_token"] >= 0.0 and 0.0 <= result["clip_fraction"] <= 1.0
    # every turn of these envs carries a PI block, so the two views are different prompts
    assert result["turns_with_pi"] == result["kl_turns"]
    assert result["kl_k3_per_token"] > 0.0  # the PI block changes a random model's next-token distribution
    assert "Δ" in result["reading"]


def test_the_divergence_is_the_mean_over_response_tokens_of_the_views_log_ratio(tmp_path, tiny):
    """k1 and k3 recomputed by hand from the two views' scores of the same rollouts."""
    from agentdistill.algos.batch import prompts_of
    from agentdistill.algos.common import rollout_seed, task_seeds, view_spec
    from agentdistill.envs import default_interface
    from agentdistill.policies.hf import HFPolicy
    from agentdistill.probe import initial_divergence
    from agentdistill.rollout import rollout
    from agentdistill.scoring import score

    model, tokenizer = tiny
    cfg = _cfg(tmp_path, "sokoban")
    interface = default_interface(cfg.env.id)
    got = initial_divergence(cfg, model, tokenizer, interface, view_spec(cfg), None, clip_eps=0.2)
    policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                      batch_size=cfg.rollout_batch)
    out = rollout(cfg.env.id, policy, seeds=task_seeds(cfg, 0), group_size=cfg.group_size, interface=interface,
                  tokenizer=tokenizer, teacher_privileged=["expert_plan"], view=view_spec(cfg),
                  max_turns=cfg.env.max_turns, run_seed=rollout_seed(cfg.seed, 0), progress=False)
    turns = [t for ep in out.episodes for t in ep.turns]
    with torch.no_grad():
        kw = dict(max_tokens_per_microbatch=cfg.max_tokens_per_microbatch, temperature=cfg.temperature)
        s = score(model, prompts_of(turns, "student"), [t.response_ids for t in turns], **kw)
        t = score(model, prompts_of(turns, "teacher"), [t.response_ids for t in turns], **kw)
    log_ratio = [a - b for i in range(len(turns)) for a, b in
                 zip(s.logprobs_BT[i][s.mask_BT[i]].tolist(), t.logprobs_BT[i][t.mask_BT[i]].tolist(), strict=True)]
    assert got["kl_tokens"] == len(log_ratio)
    assert got["kl_k1_per_token"] == pytest.approx(sum(log_ratio) / len(log_ratio), abs=1e-5)
    k3 = [torch.tensor(-x).exp().item() - 1 + x for x in log_ratio]
    assert got["kl_k3_per_token"] == pytest.approx(sum(k3) / len(k3), abs=1e-5)


def _figures(delta: float, clip: float, se: float = 0.05) -> dict:
    return {"pi_utility": delta, "pi_utility_se": se, "clip_fraction": clip}


def test_the_reading_follows_the_papers_findings():
    assert "nothing to distil" in reading(_figures(-0.1, 0.1)) and "α = 0 fails" in reading(_figures(0.0, 0.1))
    low = reading(_figures(0.3, 0.1))
    assert "α = 0 (student only) works" in low and "within two standard errors" not in low
    high = reading(_figures(0.3, 0.9))
    assert "train the teacher too" in high and "α = 0.5" in high
    assert "within two standard errors" in reading(_figures(0.05, 0.1, se=0.05))


def test_an_env_without_pi_is_refused_with_the_fix(tmp_path):
    cfg = _cfg(tmp_path, "sokoban")
    cfg.env.teacher_privileged = []
    with pytest.raises(ValueError, match=r"env.teacher_privileged=\[...\]"):
        probe(cfg)
    cfg = _cfg(tmp_path, "sokoban", eval=EvalConfig(num_tasks=0))
    with pytest.raises(ValueError, match="eval.num_tasks >= 1"):
        probe(cfg)


def test_probe_command_prints_the_figures_and_saves_them_in_the_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "agentdistill.cli", "probe", "env=sokoban", "~budget",
                           "model=tiny-random", "env.max_turns=2", "max_new_tokens=4", "eval.num_tasks=2",
                           "tasks_per_step=1", "group_size=2", "progress=false", f"hydra.run.dir={out}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pi_utility:" in proc.stdout and "reading:" in proc.stdout and "initial_kl:" in proc.stdout
    saved = json.loads((out / PROBE_FILE).read_text())
    assert f"pi_utility: {saved['pi_utility']:.3f}" in proc.stdout
