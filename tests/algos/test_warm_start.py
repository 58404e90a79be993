"""The SFT warm start: both views trained, built once per settings hash, reused from the cache, and the run
that asks for it starts from exactly its weights."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from agentdistill.algos.grpo import GRPOConfig
from agentdistill.algos.grpo import train as grpo_train
from agentdistill.algos.sft import SFTConfig, view_samples
from agentdistill.algos.sft import train as sft_train
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig, WarmStartConfig
from agentdistill.runs import read_metrics
from agentdistill.warmstart import DONE_FILE, settings_hash, sft_config, warm_start

SOKOBAN = "agentdistill/Sokoban-v0"
PINNED_HASH = "09c91fc3f988"  # _grpo(...)'s warm start since VERSION 2 (the env's evaluation settings left the hash)


def _grpo(tmp_path, name, **warm) -> GRPOConfig:
    return GRPOConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                      env=EnvConfig(SOKOBAN, max_turns=2, teacher_privileged=["expert_plan"]),
                      eval=EvalConfig(num_tasks=0), num_tasks=2, tasks_per_step=1, group_size=2, steps=1,
                      max_new_tokens=4, history_window=0, out_dir=str(tmp_path / name), progress=False,
                      warm_start=WarmStartConfig(**{"steps": 2, "batch_turns": 2, "num_tasks": 2, "lr": 1e-3,
                                                    "cache_dir": str(tmp_path / "cache"), **warm}))


def test_teacher_view_samples_carry_the_pi_block_and_double_the_step(tmp_path):
    cfg = SFTConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                    env=EnvConfig(SOKOBAN, max_turns=4, teacher_privileged=["expert_plan"]),
                    eval=EvalConfig(num_tasks=0), num_tasks=2, steps=1, batch_turns=3, lr=1e-3,
                    views=["student", "teacher"], out_dir=str(tmp_path / "sft"), progress=False)
    result = sft_train(cfg)
    (row,) = read_metrics(result.run_dir)
    student_only = sft_train(replace(cfg, views=["student"], out_dir=str(tmp_path / "student")))
    (student_row,) = read_metrics(student_only.run_dir)
    assert row["tokens"] > student_only.metrics["tokens"] * 2 - 1  # 6 samples, the teacher's prompts longer
    assert row["response_tokens"] == 2 * student_row["response_tokens"]
    from agentdistill.algos.sft import EXPERT_EPISODES_FILE
    from agentdistill.types import load_episodes

    turns = [t for ep in load_episodes(result.run_dir / EXPERT_EPISODES_FILE) for t in ep.turns]
    samples = view_samples(turns[:2], ["student", "teacher"])
    assert [s.student_prompt_ids for s in samples[1::2]] == [t.teacher_prompt_ids for t in turns[:2]]
    assert all(len(t.teacher_prompt_ids) > len(t.student_prompt_ids) for t in turns)
    with pytest.raises(ValueError, match="env.teacher_privileged"):
        sft_train(replace(cfg, env=EnvConfig(SOKOBAN, max_turns=4), out_dir=str(tmp_path / "nopi")))


def test_warm_start_is_built_once_and_the_run_starts_from_its_weights(tmp_path):
    first = grpo_train(_grpo(tmp_path, "a"))
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1 and (folders[0] / DONE_FILE).exists()
    checkpoint = json.loads((folders[0] / DONE_FILE).read_text())["checkpoint"]
    assert len(read_metrics(folders[0])) == 2  # the two SFT steps

    # a second run with the same settings reuses it (no new SFT step is logged) and starts from its weights
    cfg = _grpo(tmp_path, "b")
    assert warm_start(cfg) == warm_start(cfg)
    second = grpo_train(cfg)
    assert len(read_metrics(folders[0])) == 2 and len(list((tmp_path / "cache").iterdir())) == 1
    assert second.metrics["loss"] == pytest.approx(first.metrics["loss"], abs=1e-6)
    from agentdistill.algos.common import load_initial_model

    model, _ = load_initial_model(cfg)
    saved = torch.load(f"{checkpoint}/model.pt", weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name

    # other settings, another warm start; init_from wins over the warm start
    assert settings_hash(sft_config(_grpo(tmp_path, "c", lr=5e-4))) != settings_hash(sft_config(cfg))
    assert settings_hash(sft_config(replace(cfg, out_dir="elsewhere", progress=True))) == \
        settings_hash(sft_config(cfg))
    from agentdistill.warmstart import initial_weights

    assert initial_weights(replace(cfg, init_from="somewhere")) == "somewhere"


def test_settings_added_later_keep_existing_caches_and_count_when_set(tmp_path):
    """The hash of a config is pinned: a field added to TrainConfig must not change it at its default (every
    cached warm start would be rebuilt), rollout-only settings never change it, and weight-changing ones do."""
    cfg = _grpo(tmp_path, "pin")
    assert settings_hash(sft_config(cfg)) == PINNED_HASH
    assert settings_hash(sft_config(replace(cfg, env_workers=4, server_url="http://127.0.0.1:1"))) == PINNED_HASH
    validation = replace(cfg.env, eval_seed_start=2_000_000, eval_kwargs={"split": "valid_seen"})
    assert settings_hash(sft_config(replace(cfg, env=validation))) == PINNED_HASH  # SFT plays training seeds only
    sft = sft_config(cfg)  # the warm start itself scores padded in fp32; an SFT run that does not is another
    assert settings_hash(replace(sft, mixed_precision="bf16")) != PINNED_HASH
    assert settings_hash(replace(sft, packing=True)) != PINNED_HASH
    assert settings_hash(replace(sft, torch_compile=True)) != PINNED_HASH
