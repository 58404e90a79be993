"""OPD from a separate teacher on tiny Sokoban: one step per loss kind (pinned), resume, identical teacher → 0."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agentdistill.algos.opd import OPDConfig, train
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.runs import read_metrics

# Recorded with torch 2.13 CPU: tiny-random student, the same weights plus seeded N(0, 0.05²) noise as teacher.
# Losses are registry names now (issue 16): sampled+ppo → ppo_clip, full → reverse_kl, topk → topk_tail_reverse_kl.
PINNED_FIRST_LOSS = {"ppo_clip": 0.1077095028012991, "reverse_kl": 0.09382264316082001,
                     "topk_tail_reverse_kl": 0.025477638468146324}
TOLERANCE = 1e-4


def _cfg(tmp_path, name: str, **overrides) -> OPDConfig:
    base = OPDConfig(model=ModelConfig("tiny-random", device="cpu", dtype="float32"),
                     teacher_model=ModelConfig("tiny-random"), teacher_weight_noise=0.05,
                     env=EnvConfig("agentdistill/Sokoban-v0", max_turns=2), eval=EvalConfig(num_tasks=0),
                     num_tasks=4, tasks_per_step=2, group_size=2, max_new_tokens=6, steps=1, lr=1e-3,
                     max_tokens_per_microbatch=2000, seed=0, out_dir=str(tmp_path / name), checkpoint_every=1,
                     progress=False)
    return replace(base, **overrides)


@pytest.mark.parametrize("loss", sorted(PINNED_FIRST_LOSS))
def test_first_step_loss_is_pinned(tmp_path, loss):
    result = train(_cfg(tmp_path, loss, loss=loss))
    metrics = read_metrics(result.run_dir)
    assert [m["step"] for m in metrics] == [1]
    assert metrics[0]["loss"] == pytest.approx(PINNED_FIRST_LOSS[loss], abs=TOLERANCE)
    assert (result.run_dir / "checkpoints").is_dir()


def test_resume_continues_where_it_stopped(tmp_path):
    straight = train(_cfg(tmp_path, "straight", steps=3))
    train(_cfg(tmp_path, "resumed", steps=2))
    resumed = train(_cfg(tmp_path, "resumed", steps=3))
    steps = [m["step"] for m in read_metrics(resumed.run_dir)]
    assert steps == [1, 2, 3]
    assert read_metrics(resumed.run_dir)[-1]["loss"] == pytest.approx(read_metrics(straight.run_dir)[-1]["loss"],
                                                                       abs=1e-6)


def test_a_teacher_with_the_students_weights_is_refused_naming_the_fix(tmp_path):
    # Same weights, ids and dtype: every log-ratio and every gradient would be 0 — a run that learns nothing.
    with pytest.raises(ValueError, match="teacher_init_from"):
        train(_cfg(tmp_path, "same", teacher_weight_noise=0.0))
    assert not (tmp_path / "same" / "checkpoints").exists()


def test_no_teacher_is_refused_naming_the_fix(tmp_path):
    with pytest.raises(ValueError, match="teacher_model.name"):
        train(_cfg(tmp_path, "none", teacher_model=ModelConfig("")))


def test_a_fine_tuned_teacher_from_a_run_directory_is_accepted(tmp_path):
    warm = train(_cfg(tmp_path, "warm"))  # a student trained one step: its checkpoint differs from tiny-random
    result = train(_cfg(tmp_path, "student", teacher_weight_noise=0.0, teacher_init_from=str(warm.run_dir)))
    assert read_metrics(result.run_dir)[0]["grad_norm"] > 0
