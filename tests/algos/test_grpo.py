"""GRPO on tiny Sokoban: smoke run, pinned first step, resume equivalence, advantages and truncation reward."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from agentdistill.algos import grpo
from agentdistill.algos.grpo import GRPOConfig, train
from agentdistill.algos.rewards import episode_reward, episode_rewards, group_advantages, zero_signal_groups
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.runs import read_metrics
from agentdistill.types import Episode

SOKOBAN = "agentdistill/Sokoban-v0"

# Recorded once with torch 2.13 CPU on the deterministic tiny-random model, with the response-dependent
# reward below (the tiny model never wins, so Sokoban's own rewards are all equal within a group). The
# first PPO epoch has ratio 1, so its loss is −Σ Â·n_tokens / N ≈ 0; the gradient norm is the real pin.
PINNED_FIRST_LOSS = 4.470348358154297e-08
PINNED_FIRST_GRAD_NORM = 1.5163310766220093
TOLERANCE = 1e-4


def _rewards_from_ids(episodes, truncation_reward: float | None) -> torch.Tensor:
    """A deterministic reward that differs between samples of one task (sum of the first reply's ids mod 3)."""
    return torch.tensor([float(sum(ep.turns[0].response_ids) % 3) for ep in episodes], dtype=torch.float64)


@pytest.fixture()
def varied_reward(monkeypatch):
    monkeypatch.setattr(grpo, "episode_rewards", _rewards_from_ids)


def _cfg(tmp_path, name: str, **overrides) -> GRPOConfig:
    base = GRPOConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                      env=EnvConfig(SOKOBAN, max_turns=2), eval=EvalConfig(num_tasks=0), num_tasks=4,
                      tasks_per_step=2, group_size=2, max_new_tokens=6, steps=2, lr=1e-3,
                      max_tokens_per_microbatch=2000, seed=0, out_dir=str(tmp_path / name), checkpoint_every=2,
                      progress=False)
    return replace(base, **overrides)


def _weights(run_dir, step: int) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / f"step_{step:06d}" / "model.pt", weights_only=True)


def test_two_step_smoke_run_pins_the_first_step(tmp_path, varied_reward):
    result = train(_cfg(tmp_path, "smoke"))
    rows = read_metrics(result.run_dir)
    assert result.final_step == 2 and [r["step"] for r in rows] == [1, 2]
    assert rows[0]["loss"] == pytest.approx(PINNED_FIRST_LOSS, abs=TOLERANCE)
    assert rows[0]["grad_norm"] == pytest.approx(PINNED_FIRST_GRAD_NORM, abs=TOLERANCE)
    for key in ("success_rate", "mean_return", "clip_fraction", "entropy", "zero_adv_fraction", "tokens_per_s"):
        assert key in rows[0]
    assert rows[0]["trained_turns"] > 0 and rows[0]["entropy"] > 0
    assert (result.run_dir / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert (result.run_dir / "run_info.json").exists()


def test_env_rewards_of_the_tiny_model_give_zero_advantage_groups_that_are_dropped(tmp_path):
    # Every episode is cut by the 2-turn budget without a win: truncation reward 0 for all → all groups
    # zero-advantage → nothing trained, parameters unchanged.
    result = train(_cfg(tmp_path, "zero", steps=1, checkpoint_every=1))
    row = read_metrics(result.run_dir)[0]
    assert row["zero_adv_fraction"] == 1.0 and row["trained_turns"] == 0 and row["loss"] == 0.0
    assert row["mean_reward"] == 0.0 and row["mean_return"] < 0  # env return −0.2, replaced by 0


def test_resume_reaches_the_same_state_as_a_straight_run(tmp_path, varied_reward):
    straight = train(_cfg(tmp_path, "straight", steps=4))
    assert train(_cfg(tmp_path, "resumed", steps=2)).final_step == 2
    resumed = train(_cfg(tmp_path, "resumed", steps=4))  # a fresh call: resumes from step 2
    assert resumed.final_step == 4
    a, b = _weights(straight.run_dir, 4), _weights(resumed.run_dir, 4)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)
    rows_a, rows_b = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert [r["grad_norm"] for r in rows_b] == pytest.approx([r["grad_norm"] for r in rows_a], abs=1e-6)


def _episode(eid: str, gid: str, reward: float, *, won=False, truncated=False, terminated=False) -> Episode:
    from agentdistill.types import TurnSample

    turn = TurnSample(episode_id=eid, group_id=gid, task_id="t", turn=0, message_index=2, response_text="x",
                      action=None, reward=reward, terminated=terminated, truncated=truncated,
                      invalid_action=True)
    return Episode(episode_id=eid, group_id=gid, task_id="t", env_id=SOKOBAN, task="t", seed=0, messages=(),
                   turns=(turn,), final_observation="", won=won, terminated=terminated, truncated=truncated,
                   policy="p", error=None, metadata={})


def test_equal_reward_group_has_zero_advantage_and_is_detected():
    eps = [_episode("a0", "a", 1.0), _episode("a1", "a", 1.0), _episode("b0", "b", 1.0), _episode("b1", "b", 0.0)]
    rewards = episode_rewards(eps, None)
    assert group_advantages(eps, rewards, scale_by_std=False).tolist() == [0.0, 0.0, 0.5, -0.5]
    assert zero_signal_groups(eps, rewards) == {"a"}
    std = group_advantages(eps, rewards, scale_by_std=True)
    assert std[0] == 0.0 and std[2] == pytest.approx(0.5 / (0.5**0.5), rel=1e-4)


def test_near_equal_float_rewards_count_as_zero_advantage():
    # 0.1 + 0.2 and 0.3 differ in the last bit: centring them gives ±1e-17, not 0; still no signal.
    eps = [_episode("a0", "a", 0.1 + 0.2), _episode("a1", "a", 0.3), _episode("a2", "a", 0.3)]
    rewards = episode_rewards(eps, None)
    assert group_advantages(eps, rewards, scale_by_std=False).abs().max() > 0
    assert zero_signal_groups(eps, rewards) == {"a"}


def test_truncation_reward_applies_only_to_episodes_cut_without_a_win():
    cut = _episode("c", "g", -0.3, truncated=True)
    assert episode_reward(cut, 0.0) == 0.0
    assert episode_reward(cut, -1.0) == -1.0
    assert episode_reward(cut, None) == pytest.approx(-0.3)
    assert episode_reward(_episode("w", "g", 1.0, won=True, truncated=True), 0.0) == 1.0
    assert episode_reward(_episode("d", "g", -0.5, terminated=True), 0.0) == -0.5


def test_packing_takes_the_padded_run_s_steps(tmp_path, varied_reward):
    """packing=true scores the update's micro-batches packed: the same first-step grad norm (the pin) and, after
    two steps, the same weights up to 1e-4, a tenth of one AdamW step at lr 1e-3: its first steps are ~lr·sign(g),
    so a flipped gradient shows as 1e-3, while rounding on a gradient near Adam's eps moves an entry by a little
    (measured on one x86 machine: 1 of 2,048 entries, 1.3e-5; 0 on another)."""
    padded = train(_cfg(tmp_path, "padded"))
    packed = train(_cfg(tmp_path, "packed", packing=True))
    rows = read_metrics(packed.run_dir)
    assert rows[0]["grad_norm"] == pytest.approx(PINNED_FIRST_GRAD_NORM, abs=TOLERANCE)
    for a, b in zip(read_metrics(padded.run_dir), rows, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"],
                                                                                                  rel=1e-5)
    a, b = _weights(padded.run_dir, 2), _weights(packed.run_dir, 2)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=0)


def test_torch_compile_takes_the_eager_run_s_steps(tmp_path, varied_reward):
    """torch_compile=true compiles the decoder layers for training (dynamo captures graphs, without hitting
    its recompile limit) and gives the eager run's steps: the same loss and grad norm (1e-5 relative) and,
    after two steps, the same weights up to 1e-4 — a tenth of one AdamW step at lr 1e-3, whose first steps are
    ~lr·sign(g), so rounding on a near-zero gradient shows (measured: 1 of 8,192 entries of one matrix, 4e-5)."""
    from torch._dynamo.utils import counters

    eager = train(_cfg(tmp_path, "eager"))
    counters.clear()
    compiled = train(_cfg(tmp_path, "compiled", torch_compile=True))
    assert 0 < counters["stats"]["unique_graphs"] < torch._dynamo.config.recompile_limit  # measured: 4
    for a, b in zip(read_metrics(eager.run_dir), read_metrics(compiled.run_dir), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"],
                                                                                                  rel=1e-5)
    a, b = _weights(eager.run_dir, 2), _weights(compiled.run_dir, 2)
    assert a.keys() == b.keys()  # compiled in place: no _orig_mod. prefixes in checkpoints
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=0)


def test_bf16_mixed_precision_keeps_float32_master_weights_and_the_fp32_step(tmp_path, varied_reward):
    """mixed_precision=bf16: the update's passes run under bf16 autocast, the weights stay float32. Loss and
    grad norm agree with the fp32 run to bf16's precision (2e-2 relative; measured in the message), and a
    half-precision model is refused (its weights would round small updates away)."""
    fp32 = read_metrics(train(_cfg(tmp_path, "fp32", steps=1, checkpoint_every=1)).run_dir)[0]
    run = train(_cfg(tmp_path, "bf16", steps=1, checkpoint_every=1, mixed_precision="bf16"))
    bf16 = read_metrics(run.run_dir)[0]
    rel = abs(bf16["grad_norm"] - fp32["grad_norm"]) / fp32["grad_norm"]
    assert rel < 2e-2, (bf16["grad_norm"], fp32["grad_norm"])
    assert bf16["grad_norm"] != fp32["grad_norm"]  # autocast did run in bf16
    assert all(v.dtype == torch.float32 for v in _weights(run.run_dir, 1).values())
    with pytest.raises(ValueError, match="model.dtype=float32"):
        train(_cfg(tmp_path, "half", mixed_precision="bf16",
                   model=ModelConfig("tiny-random", device="cpu", dtype="bfloat16")))
