"""OPSD (the reward form and the distillation form, two loops): pinned first step, resume equivalence (EMA and
init_from-frozen teachers too), zero divergence for equal views, every registered divergence, config checks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from agentdistill.algos import opsd_distill, opsd_reward
from agentdistill.algos.distill import DivergenceSpec, dead_end, distill_token_loss
from agentdistill.checkpoints import latest_checkpoint
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig
from agentdistill.losses import LOSS_FAMILIES
from agentdistill.models import load_model
from agentdistill.policies.hf import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.runs import read_metrics
from agentdistill.teachers import make_teacher
from agentdistill.types import TurnSample

SOKOBAN = "agentdistill/Sokoban-v0"

# Recorded once with torch 2.13 CPU on the deterministic tiny-random model (2 tasks × 2 samples). The reward
# mode's first PPO loss is −token-mean(A) at ratio 1, ≈ 0 by group centring; its KL and gradient norm pin it.
# Re-pinned (issue 16): the reward form's zero-signal groups are now detected on env rewards (the tiny model's
# groups all have equal env rewards), so its pin keeps them (drop_zero_adv_groups=False) to train on the KL.
PINNED = {
    "reward": {"loss": 0.0, "mean_kl": 0.00281524658203125, "grad_norm": 0.006044615991413593},
    # mean_kl re-pinned: the distillation form now logs the per-token k3 mean of KL(π_S ‖ π_T) on the
    # scored tokens (it logged the reward form's episode-summed k1 before, which it does not use).
    "distill": {"loss": 1.4139529412204865e-05, "mean_kl": 1.0861986311283545e-05,
                "grad_norm": 0.007701735943555832},
}
TOLERANCE = 1e-4
RELATIVE = 2e-3


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a small shared CPU, more threads of this tiny model mostly wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(tmp_path, name: str, mode: str = "reward", **overrides):
    """A tiny config of the ``mode`` loop at temperature 1.0 (the pins' setting; the distill preset uses 1.1)."""
    shared = {"model": ModelConfig("tiny-random", device="cpu", dtype="float32"),
              "env": EnvConfig(SOKOBAN, max_turns=2, teacher_privileged=["expert_plan"]),
              "eval": EvalConfig(num_tasks=0), "num_tasks": 2, "tasks_per_step": 2, "group_size": 2,
              "max_new_tokens": 6, "steps": 2, "lr": 1e-3, "seed": 0, "max_tokens_per_microbatch": 2000,
              "out_dir": str(tmp_path / name), "checkpoint_every": 2, "progress": False, "temperature": 1.0}
    if mode == "reward":
        return replace(opsd_reward.OPSDRewardConfig(**shared, drop_zero_adv_groups=False), **overrides)
    return replace(opsd_distill.OPSDDistillConfig(**shared, ema_decay=0.95), **overrides)


def train(cfg):
    return (opsd_reward if isinstance(cfg, opsd_reward.OPSDRewardConfig) else opsd_distill).train(cfg)


def _weights(run_dir, step: int = 4) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / f"step_{step:06d}" / "model.pt", weights_only=True)


@pytest.mark.parametrize("mode", ["reward", "distill"])
def test_two_step_smoke_run_pins_the_first_step(tmp_path, mode):
    result = train(_cfg(tmp_path, mode, mode))
    rows = read_metrics(result.run_dir)
    assert result.final_step == 2 and [r["step"] for r in rows] == [1, 2]
    assert (result.run_dir / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert (result.run_dir / "run_info.json").exists()
    first = rows[0]
    for key, value in PINNED[mode].items():
        assert first[key] == pytest.approx(value, abs=TOLERANCE), key
        if key != "loss" or mode == "distill":  # these values are small: also pin them relatively
            assert first[key] == pytest.approx(value, rel=RELATIVE), key
    for key in ("success_rate", "mean_return", "mean_kl", "loss", "tokens_per_s", "grad_norm", "pi_leak_rate",
                "lr", "peak_rss_mb"):
        assert key in first
    assert first["response_tokens"] > 0 and first["trained_turns"] > 0
    if mode == "reward":
        assert {"clip_fraction", "zero_adv_fraction"} <= first.keys()
    else:
        assert first["loss"] > 0  # frozen teacher with PI vs student without: a real divergence


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["reward", "distill"])
def test_resume_reaches_the_same_state_as_a_straight_run(tmp_path, mode):
    straight = train(_cfg(tmp_path, "straight", mode, steps=4))
    assert train(_cfg(tmp_path, "resumed", mode, steps=2)).final_step == 2
    resumed = train(_cfg(tmp_path, "resumed", mode, steps=4))  # a fresh call: resumes from step 2
    assert resumed.final_step == 4
    _assert_same(_weights(straight.run_dir), _weights(resumed.run_dir))
    rows_a, rows_b = read_metrics(straight.run_dir), read_metrics(resumed.run_dir)
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows_b] == pytest.approx([r["loss"] for r in rows_a], abs=1e-6)


def test_resume_restores_the_ema_teacher(tmp_path):
    # Distill mode: the loss is the divergence to the teacher, so a teacher restarted from the resumed
    # weights (rather than restored) would change steps 3 and 4. decay 0.5 keeps it far from both ends.
    ema = {"teacher": "ema", "ema_decay": 0.5}
    straight = train(_cfg(tmp_path, "straight", "distill", steps=4, **ema))
    assert train(_cfg(tmp_path, "resumed", "distill", steps=2, **ema)).final_step == 2
    resumed = train(_cfg(tmp_path, "resumed", "distill", steps=4, **ema))
    assert resumed.final_step == 4
    assert latest_checkpoint(resumed.run_dir).name == "step_000004"
    for name in ("model.pt", "teacher.pt"):
        _assert_same(*(torch.load(latest_checkpoint(run.run_dir) / name, weights_only=True)
                       for run in (straight, resumed)))
    assert [r["loss"] for r in read_metrics(resumed.run_dir)] == pytest.approx(
        [r["loss"] for r in read_metrics(straight.run_dir)], abs=1e-6)


def test_frozen_teacher_is_the_init_from_weights_also_after_a_resume(tmp_path):
    warm = train(_cfg(tmp_path, "warm", "distill", steps=1)).run_dir
    distill = {"mode": "distill", "init_from": str(warm)}  # the distill form's default teacher is "frozen"
    current = read_metrics(train(_cfg(tmp_path, "current", teacher="current", steps=1, **distill)).run_dir)
    straight = train(_cfg(tmp_path, "straight", **distill))
    # Step 1 sees the same weights on both sides of the divergence for a frozen and a current teacher.
    assert read_metrics(straight.run_dir)[0]["loss"] == pytest.approx(current[0]["loss"], rel=1e-6)
    assert train(_cfg(tmp_path, "resumed", steps=1, **distill)).final_step == 1
    resumed = train(_cfg(tmp_path, "resumed", **distill))
    _assert_same(_weights(straight.run_dir, 2), _weights(resumed.run_dir, 2))
    assert [r["loss"] for r in read_metrics(resumed.run_dir)] == pytest.approx(
        [r["loss"] for r in read_metrics(straight.run_dir)], abs=1e-9)


@pytest.mark.parametrize("mode, overrides, match", [
    ("reward", {"env": EnvConfig(SOKOBAN)}, "teacher_privileged"),
    ("distill", {"env": EnvConfig(SOKOBAN)}, "teacher_privileged"),
    ("reward", {"ppo_epochs": 0}, "ppo_epochs"),
    ("distill", {"divergence": "ppo_clip"}, "cannot be used here"),
    ("distill", {"divergence": "forward_kll"}, "Did you mean 'forward_kl'"),
    ("reward", {"teacher": "separate"}, "teacher"),
])
def test_bad_configs_are_refused(tmp_path, mode, overrides, match):
    with pytest.raises(ValueError, match=match):
        train(_cfg(tmp_path, "bad", mode, **overrides))


def test_distill_divergence_is_zero_for_equal_views_and_current_teacher():
    model, tok = load_model("tiny-random", device="cpu", dtype="float32")
    result = rollout(SOKOBAN, HFPolicy(model, tok, temperature=1.0, max_new_tokens=6), seeds=[0, 1],
                     tokenizer=tok, teacher_privileged=["expert_plan"], max_turns=2, progress=False)
    samples = [t for ep in result.episodes for t in ep.turns]
    assert samples and all(t.teacher_prompt_ids != t.student_prompt_ids for t in samples)
    no_pi = [replace(t, teacher_prompt_ids=t.student_prompt_ids) for t in samples]
    current = make_teacher("current", model)
    divergences = [n for n, f in LOSS_FAMILIES.items() if f in opsd_distill.DISTILL_DIVERGENCE_FAMILIES]
    for divergence in divergences:
        spec = DivergenceSpec(divergence, temperature=1.1, clip_tau=0.05 if "topk" not in divergence else None)
        loss_BT, mask_BT = distill_token_loss(model, current, no_pi, spec, teacher_view="teacher")
        assert mask_BT.any()
        assert loss_BT.abs().max().item() < 1e-6, divergence
        with_pi, mask_BT = distill_token_loss(model, current, samples, spec, teacher_view="teacher")
        assert with_pi[mask_BT].abs().max().item() > 0, divergence


def test_chunked_divergence_gives_the_full_divergence_loss_and_gradient():
    model, tok = load_model("tiny-random", device="cpu", dtype="float32")
    result = rollout(SOKOBAN, HFPolicy(model, tok, temperature=1.0, max_new_tokens=6), seeds=[0],
                     tokenizer=tok, teacher_privileged=["expert_plan"], max_turns=2, progress=False)
    samples = [t for ep in result.episodes for t in ep.turns]
    frozen = make_teacher("frozen", model)
    grads = []
    for name in ("forward_kl", "forward_kl_chunked"):
        model.zero_grad(set_to_none=True)
        loss_BT, mask_BT = distill_token_loss(model, frozen, samples, DivergenceSpec(name), teacher_view="teacher")
        loss_BT[mask_BT].sum().backward()
        grads.append((float(loss_BT[mask_BT].sum().detach()),
                      [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-5)
    for a, b in zip(grads[0][1], grads[1][1], strict=False):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


def test_chunked_divergences_are_refused_under_torchrun_with_the_full_form_named(monkeypatch):
    from agentdistill.algos.distill import check_divergence

    assert check_divergence("forward_kl_chunked") == "chunked"
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets before the process group exists
    with pytest.raises(ValueError, match="sharded: under torchrun use its full form 'forward_kl'"):
        check_divergence("forward_kl_chunked")
    assert check_divergence("forward_kl") == "full"


def test_lora_trains_only_the_adapters_and_the_disabled_adapter_is_the_base(tmp_path):
    pytest.importorskip("peft")
    from agentdistill.config import LoraConfig

    lora = LoraConfig(rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    cfg = _cfg(tmp_path, "lora", "distill", teacher="adapter_disabled", steps=2, lora=lora)
    result = train(cfg)
    first = read_metrics(result.run_dir)[0]
    assert first["mean_kl"] >= 0.0 and first["grad_norm"] > 0.0
    weights = torch.load(latest_checkpoint(result.run_dir) / "model.pt", weights_only=True)
    base, _ = load_model("tiny-random", device="cpu", dtype="float32")
    base_state = base.state_dict()
    adapters = [k for k in weights if ".lora_" in k]
    assert adapters and any(float(weights[k].abs().sum()) > 0 for k in adapters if "lora_B" in k)
    for key, value in weights.items():  # every base weight is untouched
        if ".lora_" not in key:
            plain = key.replace("base_model.model.", "", 1).replace(".base_layer", "")
            torch.testing.assert_close(value, base_state[plain], atol=0, rtol=0)
    with pytest.raises(ValueError, match="adapter_disabled"):
        train(_cfg(tmp_path, "lora-frozen", "distill", teacher="frozen", lora=lora))


def test_lora_resume_equals_a_straight_run(tmp_path):
    pytest.importorskip("peft")
    from agentdistill.config import LoraConfig

    lora = LoraConfig(rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    settings = {"mode": "distill", "teacher": "adapter_disabled", "lora": lora}
    straight = train(_cfg(tmp_path, "straight", steps=4, **settings))
    train(_cfg(tmp_path, "resumed", steps=2, **settings))
    resumed = train(_cfg(tmp_path, "resumed", steps=4, **settings))
    _assert_same(*(torch.load(latest_checkpoint(r.run_dir) / "model.pt", weights_only=True)
                   for r in (straight, resumed)))


def test_dead_end_is_a_turn_whose_every_pi_kind_is_none():
    turn = TurnSample("e", "g", "t", 0, 1, "Action: up", "up", 0.0, False, False, False)
    assert not dead_end(turn)  # no PI requested: nothing says the task is lost
    assert dead_end(replace(turn, privileged={"expert_plan": None}))
    assert not dead_end(replace(turn, privileged={"expert_plan": ["up", "left"]}))
    assert not dead_end(replace(turn, privileged={"expert_plan": None, "expert_trace": ["up"]}))
    assert not dead_end(replace(turn, privileged={"expert_plan": []}))  # solved: not lost


def test_skip_dead_ends_leaves_those_turns_out_of_the_loss(tmp_path, monkeypatch):
    """The loop trains on the other turns only and logs how many it left out (here: every first turn)."""
    monkeypatch.setattr(opsd_distill, "dead_end", lambda turn: turn.turn == 0)
    kept = read_metrics(train(_cfg(tmp_path, "skip", "distill", steps=1, skip_dead_ends=True)).run_dir)[0]
    monkeypatch.setattr(opsd_distill, "dead_end", lambda turn: False)
    every = read_metrics(train(_cfg(tmp_path, "all", "distill", steps=1)).run_dir)[0]
    assert kept["dead_end_turns"] == 4 and every["dead_end_turns"] == 0  # 2 tasks × 2 samples, one first turn each
    assert kept["trained_turns"] == every["trained_turns"] - 4 > 0
    assert kept["loss"] != every["loss"]
