"""Shared training helpers: gradient accumulation, checkpoints, metrics truncation, data order, plots."""

from __future__ import annotations

import importlib.util
import json
import random

import pytest
import torch

from agentdistill.algos.batch import backward_microbatches, microbatches_by_tokens
from agentdistill.algos.common import batch_indices, make_optimizer, seed_everything
from agentdistill.algos.sft import nll_loss
from agentdistill.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from agentdistill.models import load_model
from agentdistill.report import plot_metrics
from agentdistill.runs import append_metrics, read_metrics, truncate_metrics
from agentdistill.types import TurnSample


def _samples(n: int, seed: int = 0) -> list[TurnSample]:
    rng = random.Random(seed)
    return [
        TurnSample(episode_id=f"e{i}", group_id="g", task_id="t", turn=0, message_index=2, response_text="r",
                   action="a", reward=0.0, terminated=False, truncated=False, invalid_action=False,
                   student_prompt_ids=tuple(rng.randrange(3, 200) for _ in range(rng.randrange(4, 20))),
                   response_ids=tuple(rng.randrange(3, 200) for _ in range(rng.randrange(1, 9))))
        for i in range(n)
    ]


def _fresh_model():
    model, _ = load_model("tiny-random", device="cpu", dtype="float32")
    return model.train()


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_microbatched_gradient_equals_one_big_batch():
    model, samples = _fresh_model(), _samples(7)
    def loss_fn(mb, n):
        return nll_loss(model, mb, normalizer=n)

    whole = backward_microbatches([samples], loss_fn, mode="token_mean")
    big = _grads(model)
    model.zero_grad(set_to_none=True)
    micro = microbatches_by_tokens(samples, 40)
    assert len(micro) >= 3 and [s for mb in micro for s in mb] == samples
    split = backward_microbatches(micro, loss_fn, mode="token_mean")
    assert split == pytest.approx(whole, abs=1e-5)
    for g_big, p in zip(big, model.parameters(), strict=False):
        torch.testing.assert_close(p.grad, g_big, atol=1e-6, rtol=1e-5)
    # Each micro-batch normalised by its own count gives a different gradient: the test can fail.
    model.zero_grad(set_to_none=True)
    for mb in micro:
        nll_loss(model, mb, normalizer=sum(len(s.response_ids) for s in mb)).backward()
    assert any(not torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(model.parameters(), big, strict=False))


def test_microbatches_respect_the_padded_budget():
    samples = _samples(10, seed=1)
    for mb in microbatches_by_tokens(samples, 60):
        longest = max(len(s.student_prompt_ids) + len(s.response_ids) for s in mb)
        assert len(mb) == 1 or len(mb) * longest <= 60
    assert microbatches_by_tokens(samples, None) == [samples]
    assert len(microbatches_by_tokens(samples, 1)) == len(samples)  # over-budget samples go alone
    with pytest.raises(ValueError, match="max_tokens"):
        microbatches_by_tokens(samples, 0)


def test_checkpoint_round_trip_restores_weights_optimizer_rng_and_extra(tmp_path):
    model = _fresh_model()
    optimizer = make_optimizer(model, lr=1e-3)
    nll_loss(model, _samples(2), normalizer=4).backward()
    optimizer.step()
    seed_everything(5)
    save_checkpoint(tmp_path, 3, model, optimizer, {"cursor": 12})
    expected = (random.random(), torch.rand(3))
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    other = _fresh_model()
    other_opt = make_optimizer(other, lr=1e-3)
    seed_everything(99)
    step, extra = load_checkpoint(tmp_path, other, other_opt)
    assert (step, extra) == (3, {"cursor": 12})
    assert (random.random(), torch.rand(3).tolist()) == (expected[0], expected[1].tolist())
    for k, v in other.state_dict().items():
        assert torch.equal(v, saved[k])
    assert other_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_leftover_temporary_checkpoint_is_ignored(tmp_path):
    model = _fresh_model()
    optimizer = make_optimizer(model, lr=1e-3)
    save_checkpoint(tmp_path, 2, model, optimizer, {"cursor": 8})
    # A run killed while writing step 4: a half-written hidden folder, and no pointer update.
    tmp = tmp_path / "checkpoints" / ".tmp-step_000004"
    tmp.mkdir()
    (tmp / "model.pt").write_bytes(b"half")
    assert latest_checkpoint(tmp_path).name == "step_000002"
    (tmp_path / "checkpoints" / "latest").unlink()  # even without the pointer
    assert latest_checkpoint(tmp_path).name == "step_000002"
    assert load_checkpoint(tmp_path, model, optimizer) == (2, {"cursor": 8})
    # The next save of that step replaces the leftover folder.
    save_checkpoint(tmp_path, 4, model, optimizer, {"cursor": 16})
    assert not tmp.exists() and latest_checkpoint(tmp_path).name == "step_000004"
    assert latest_checkpoint(tmp_path / "nothing") is None
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "nothing", model, optimizer)


def test_truncate_metrics_drops_lines_after_the_checkpoint_step(tmp_path):
    for step in range(1, 6):
        append_metrics(tmp_path, {"step": step, "loss": 1.0 / step})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "lo')  # a writer killed mid-line
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    truncate_metrics(tmp_path, 3)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    append_metrics(tmp_path, {"step": 4, "loss": 0.0})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="step"):
        append_metrics(tmp_path, {"loss": 1.0})


def test_batch_indices_are_seeded_epoch_shuffles():
    first_epoch = batch_indices(10, 10, 0, seed=1)
    assert sorted(first_epoch) == list(range(10)) and first_epoch != list(range(10))
    assert batch_indices(10, 4, 8, seed=1) == first_epoch[8:] + batch_indices(10, 2, 10, seed=1)
    assert batch_indices(10, 10, 10, seed=1) != first_epoch  # a new order each epoch
    assert batch_indices(10, 10, 0, seed=2) != first_epoch
    with pytest.raises(ValueError, match="empty"):
        batch_indices(0, 1, 0, seed=0)


def test_make_optimizer_skips_frozen_parameters():
    model = _fresh_model()
    model.get_input_embeddings().weight.requires_grad_(False)
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.1, betas=(0.9, 0.99))
    params = optimizer.param_groups[0]["params"]
    assert all(p.requires_grad for p in params)
    assert len(params) == sum(p.requires_grad for p in model.parameters())
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)


def test_plot_metrics_writes_a_png_or_says_why_not(tmp_path, caplog):
    for step in range(1, 4):
        append_metrics(tmp_path, {"step": step, "loss": 3.0 - step})
    out = plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "plots" / "curves.png", ["loss"])
    if importlib.util.find_spec("matplotlib") is None:
        assert out is None and "matplotlib is not installed" in caplog.text
    else:
        assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"


def test_lr_schedules_warm_up_then_follow_their_shape():
    from agentdistill.algos.common import lr_at
    from agentdistill.config import TrainConfig

    const = TrainConfig(lr=1.0, steps=10, warmup_steps=2)
    assert [lr_at(const, s) for s in (1, 2, 3, 10)] == [0.5, 1.0, 1.0, 1.0]
    linear = TrainConfig(lr=1.0, steps=10, warmup_steps=2, lr_schedule="linear")
    assert [lr_at(linear, s) for s in (2, 6, 10)] == pytest.approx([1.0, 0.5, 0.0])
    cosine = TrainConfig(lr=1.0, steps=10, lr_schedule="cosine")
    assert [lr_at(cosine, s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        lr_at(TrainConfig(lr_schedule="step"), 1)


def test_load_weights_names_the_fix_when_there_is_no_checkpoint(tmp_path):
    from agentdistill.checkpoints import load_weights

    model, _ = load_model("tiny-random", device="cpu", dtype="float32")
    with pytest.raises(FileNotFoundError, match="pass a training run directory"):
        load_weights(model, tmp_path)
    optimizer = make_optimizer(model, lr=1e-3)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(tmp_path, 3, model, optimizer, {"cursor": 0})
    fresh, _ = load_model("tiny-random", device="cpu", dtype="float32")
    assert load_weights(fresh, tmp_path).name == "step_000003"
    torch.testing.assert_close(next(fresh.parameters()), next(model.parameters()))
