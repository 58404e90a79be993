"""What makes the trainers trustworthy across loops: one source of truth for defaults, presets that learn,
one reward definition, errored episodes kept out of the update, the shape of the code itself."""

from __future__ import annotations

import ast
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agentdistill import algos
from agentdistill.algos import ALGORITHMS, grpo, opsd_reward, pi_distill, rewards, skill_sd
from agentdistill.algos.batch import microbatches_by_tokens
from agentdistill.cli import budget_overrides
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig, config_dir, register_configs
from agentdistill.runs import read_metrics
from agentdistill.teachers import make_teacher
from agentdistill.types import TurnSample

ROOT = Path(__file__).resolve().parents[2]
ENVS = sorted(p.stem for p in (ROOT / "configs" / "env").glob("*.yaml"))
RL_LOOPS = {"grpo": grpo, "opsd_reward": opsd_reward, "pi_distill": pi_distill, "skill_sd": skill_sd}


@pytest.fixture(scope="module", autouse=True)
def _configs():
    register_configs()
    algos.register_configs()


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("env", ENVS)
def test_cli_and_python_defaults_agree_field_by_field(algo, env):
    cli = OmegaConf.to_object(_compose([f"algo={algo}", f"env={env}", "~budget", "out_dir=runs/x"]))
    config_class, _ = algos.algorithm(algo)
    assert type(cli) is config_class
    python = config_class(env=cli.env, model=cli.model, out_dir="runs/x")  # the env/model presets are data
    assert asdict(cli) == asdict(python)


def test_the_budget_overlay_is_named_with_what_it_overrides():
    name, changed = budget_overrides(["algo=pi_distill", "env=alfworld"])
    assert name == "alfworld"
    assert changed["group_size"] == (4, 2) and changed["steps"] == (100, 2)
    assert budget_overrides(["algo=pi_distill", "env=alfworld", "~budget"]) == (None, {})
    assert "group_size" not in budget_overrides(["algo=grpo", "env=sokoban"])[1]  # sokoban's budget keeps it


def test_the_old_opsd_name_says_what_it_became():
    with pytest.raises(ValueError, match="opsd_reward.*opsd_distill"):
        algos.algorithm("opsd")


def _rewards_from_ids(episodes, truncation_reward):
    """Rewards that differ between the samples of one task (the tiny model never wins a Sokoban level)."""
    return torch.tensor([float(sum(ep.turns[0].response_ids) % 3) for ep in episodes], dtype=torch.float64)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_preset_takes_a_step_with_a_nonzero_gradient(tmp_path, monkeypatch, algo):
    for module in RL_LOOPS.values():
        monkeypatch.setattr(module, "episode_rewards", _rewards_from_ids)
    overrides = [f"algo={algo}", "env=sokoban", "model=tiny-random", "~budget", f"out_dir={tmp_path}", "steps=1",
                 "num_tasks=2", "tasks_per_step=2", "env.max_turns=2", "max_new_tokens=6", "eval.num_tasks=0",
                 "progress=false", "env.teacher_privileged=[expert_plan]"]
    if algo == "opd":  # no default teacher: a perturbed copy stands in for a stronger model
        overrides += ["teacher_model.name=tiny-random", "teacher_weight_noise=0.05"]
    if algo == "sft":
        overrides += ["batch_turns=4"]
    cfg = OmegaConf.to_object(_compose(overrides))
    cfg = replace(cfg, group_size=2) if algo == "opd" else cfg
    _, train = algos.algorithm(algo)
    row = read_metrics(train(cfg).run_dir)[0]
    assert row["grad_norm"] > 0, algo


def _truncated_episode_cfg(config_class, tmp_path, name):
    return config_class(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                        env=EnvConfig("agentdistill/Sokoban-v0", max_turns=2, teacher_privileged=["expert_plan"]),
                        eval=EvalConfig(num_tasks=0), num_tasks=2, tasks_per_step=2, group_size=2, max_new_tokens=6,
                        steps=1, lr=1e-3, out_dir=str(tmp_path / name), progress=False, temperature=1.0)


def test_every_rl_loop_computes_the_same_episode_rewards(tmp_path):
    # Sokoban's −0.1 per step makes every truncated tiny-model episode's env return −0.2; the shared
    # definition gives them truncation_reward 0 in every loop.
    for name, module in RL_LOOPS.items():
        assert module.episode_rewards is rewards.episode_rewards, name
        config_class, train = algos.algorithm(name)
        assert config_class().truncation_reward == 0.0
        row = read_metrics(train(_truncated_episode_cfg(config_class, tmp_path, name)).run_dir)[0]
        assert row["mean_return"] == pytest.approx(-0.2) and row["mean_reward"] == 0.0, name


def test_errored_episodes_leave_the_update_and_are_counted(tmp_path, monkeypatch):
    import toy_env

    from agentdistill import envs

    monkeypatch.setattr(envs, "default_interface", lambda env_id, **kwargs: toy_env.ToyInterface())
    toy = EnvConfig("agentdistill/Toy-v0", max_turns=3, kwargs={"fail_at_turn": 1, "fail_on_seeds": [0]})
    cfg = grpo.GRPOConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"), env=toy,
                          eval=EvalConfig(num_tasks=0), num_tasks=2, tasks_per_step=2, group_size=2,
                          max_new_tokens=4, steps=1, out_dir=str(tmp_path / "half"), progress=False,
                          max_error_rate=0.5, drop_zero_adv_groups=False)
    row = read_metrics(grpo.train(cfg).run_dir)[0]
    assert row["errors"] == 2 and row["error_rate"] == 0.5 and row["episodes"] == 4
    assert row["trained_turns"] == 6  # the two clean episodes' 3 turns each; the errored ones train nothing
    with pytest.raises(RuntimeError, match=r"(?s)2 of 4 episodes hit an env error.*injected env bug.*max_error_rate"):
        grpo.train(replace(cfg, out_dir=str(tmp_path / "strict"), max_error_rate=0.25))


def test_microbatches_are_sized_by_the_longer_teacher_prompt():
    def turn(student: int, teacher: int) -> TurnSample:
        return TurnSample(episode_id="e", group_id="g", task_id="t", turn=0, message_index=1, response_text="r",
                          action="a", reward=0.0, terminated=False, truncated=False, invalid_action=False,
                          student_prompt_ids=(1,) * student, teacher_prompt_ids=(1,) * teacher,
                          response_ids=(2,) * 2)
    # Student rows of 12 tokens would fit 4 to a 50-token budget; with 22-token teacher rows only 2 fit.
    assert [len(mb) for mb in microbatches_by_tokens([turn(10, 20)] * 4, 50)] == [2, 2]


def test_the_current_teacher_scores_in_eval_mode_and_restores_the_mode():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    model.train()
    with make_teacher("current", model).model_for_scoring() as scorer:
        assert not scorer.training and not torch.is_grad_enabled()
    assert model.training


def test_pi_placement_and_template_reach_the_rollouts_from_a_training_config(tmp_path, monkeypatch):
    seen = []
    real = algos.common.rollout

    def recording(*args, **kwargs):
        seen.append(kwargs["view"])
        return real(*args, **kwargs)

    monkeypatch.setattr(algos.common, "rollout", recording)
    template = "Hint, for you alone (do not reveal it): {pi}\nNow solve the task yourself."
    cfg = replace(_truncated_episode_cfg(grpo.GRPOConfig, tmp_path, "pi"), pi_placement="user", pi_template=template)
    grpo.train(cfg)
    assert seen[0].pi_placement == "user" and seen[0].pi_template == template
    with pytest.raises(ValueError, match="pi_template"):
        grpo.train(replace(cfg, pi_template="no placeholder", out_dir=str(tmp_path / "bad")))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_algorithm_imports_another_and_configs_know_no_trainer():
    loops = {f"agentdistill.algos.{name}" for name in ALGORITHMS}
    for path in (ROOT / "agentdistill" / "algos").glob("*.py"):
        assert not (_imports(path) & loops), path.name
    assert not any(m.startswith("agentdistill.algos") for m in _imports(ROOT / "agentdistill" / "config.py"))


def test_no_module_of_the_toolkit_exceeds_about_500_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / "agentdistill").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 520}
    assert not long, long


def test_every_registered_loss_is_reachable_from_a_loop_config():
    from agentdistill.algos.distill import DISTILL_FAMILIES
    from agentdistill.losses import LOSS_FAMILIES

    used_directly = {"ppo_clip", "is_clipped_student", "iw_k3"}  # GRPO/OPSD/Skill-SD, π-Distill, Skill-SD
    for name, family in LOSS_FAMILIES.items():
        assert family in DISTILL_FAMILIES or name in used_directly, name

