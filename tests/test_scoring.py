"""Scoring: response ids line up under any prompt; padding and micro-batching change nothing; grads reach
only the student."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from toy_env import TOY_ID, ToyInterface

from agentdistill.policies import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.scoring import (
    Extras,
    microbatch_groups,
    packed_groups,
    packing,
    prefix_sharing,
    score,
    score_turns,
    shared_prefix_length,
)
from agentdistill.teachers import CurrentWeightsTeacher, FrozenCopyTeacher
from agentdistill.types import TurnSample

ATOL = 1e-5  # fp32: a left-padded batch and an unpadded pass differ only by summation order


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def fresh_logprobs_TV(model, prompt_ids, response_ids, temperature=1.0):
    """log_softmax(logits / T) at the positions predicting each response id: one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[*prompt_ids, *response_ids]])).logits[0].float()
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[start : start + len(response_ids)] / temperature, dim=-1)


def fresh_logprobs_T(model, prompt_ids, response_ids, temperature=1.0):
    logprobs_TV = fresh_logprobs_TV(model, prompt_ids, response_ids, temperature)
    return logprobs_TV.gather(-1, torch.tensor(response_ids)[:, None])[:, 0]


@pytest.fixture()
def batch(tiny):
    """Prompts of very different lengths (2 … 80 tokens) and responses of different lengths (1 … 11)."""
    _, tok = tiny
    prompts = [encode(tok, "hi"), encode(tok, "a much longer prompt about pushing boxes onto targets " * 2),
               encode(tok, "count to three please")]
    responses = [encode(tok, "inc wait"), encode(tok, "x"), encode(tok, "wait then inc")]
    return prompts, responses


def turn(student_ids, teacher_ids, response_ids, **kw) -> TurnSample:
    return TurnSample(episode_id="e", group_id="g", task_id="t", turn=0, message_index=2, response_text="",
                      action=None, reward=0.0, terminated=False, truncated=False, invalid_action=False,
                      student_prompt_ids=tuple(student_ids), teacher_prompt_ids=teacher_ids,
                      response_ids=tuple(response_ids), **kw)


def toy_rollout(tiny, temperature=1.0, teacher_privileged=()):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=temperature, max_new_tokens=8)
    result = rollout(TOY_ID, policy, seeds=[0, 1], interface=ToyInterface(), tokenizer=tok, max_turns=3,
                     teacher_privileged=teacher_privileged, progress=False)
    return [t for ep in result.episodes for t in ep.turns]


def test_logprobs_equal_unpadded_forward_passes_one_by_one(tiny, batch):
    model, tok = tiny
    prompts, responses = batch
    with torch.no_grad():
        scored = score(model, prompts, responses, pad_token_id=tok.pad_token_id)
    T = max(map(len, responses))
    assert scored.logprobs_BT.shape == scored.mask_BT.shape == (3, T)
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        assert scored.mask_BT[b].tolist() == [t < len(r) for t in range(T)]
        close(scored.logprobs_BT[b, : len(r)], fresh_logprobs_T(model, p, r))
        assert torch.all(scored.logprobs_BT[b, len(r) :] == 0)


def test_padding_never_shifts_positions_of_an_absolute_position_model(tiny, batch):
    """RoPE is blind to a constant shift of positions; GPT-2's learned absolute positions are not."""
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = tiny
    prompts, responses = batch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                            bos_token_id=None, eos_token_id=None)
        model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        scored = score(model, prompts, responses, pad_token_id=tok.pad_token_id)
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        close(scored.logprobs_BT[b, : len(r)], fresh_logprobs_T(model, p, r))


def test_longer_teacher_prompts_line_up_with_the_same_response_ids(tiny):
    model, tok = tiny
    samples = [s for s in toy_rollout(tiny, teacher_privileged=["expert_plan"]) if s.response_ids][:6]
    assert all(len(s.teacher_prompt_ids) > len(s.student_prompt_ids) for s in samples)
    student, teacher = score_turns(model, CurrentWeightsTeacher(model), samples, temperature=1.0)
    for b, s in enumerate(samples):
        n = len(s.response_ids)
        assert teacher.mask_BT[b].sum() == student.mask_BT[b].sum() == n
        expected_teacher = fresh_logprobs_T(model, s.teacher_prompt_ids, s.response_ids)
        expected_student = fresh_logprobs_T(model, s.student_prompt_ids, s.response_ids)
        close(teacher.logprobs_BT[b, :n], expected_teacher)
        close(student.logprobs_BT[b, :n].detach(), expected_student)
    assert not torch.allclose(teacher.logprobs_BT, student.logprobs_BT.detach())  # the PI block matters


def test_empty_pi_block_gives_identical_teacher_and_student_logprobs(tiny):
    model, _ = tiny
    samples = toy_rollout(tiny, teacher_privileged=[])
    assert all(s.teacher_prompt_ids is None for s in samples)
    samples = [replace(s, teacher_prompt_ids=s.student_prompt_ids) for s in samples]
    for teacher in (CurrentWeightsTeacher(model), FrozenCopyTeacher(model)):
        student, scored = score_turns(model, teacher, samples, temperature=0.9,
                                      student_extras=Extras(top_k=3), teacher_extras=Extras(top_k=3))
        assert torch.equal(student.mask_BT, scored.mask_BT)
        assert torch.equal(student.logprobs_BT.detach(), scored.logprobs_BT)
        assert torch.equal(student.topk_ids_BTK, scored.topk_ids_BTK)


def test_temperature_tempers_the_logits(tiny, batch):
    model, tok = tiny
    prompts, responses = batch
    with torch.no_grad():
        scored = score(model, prompts, responses, temperature=0.7, top_k=4, entropy=True,
                       pad_token_id=tok.pad_token_id)
        plain = score(model, prompts, responses, temperature=1.0, pad_token_id=tok.pad_token_id)
    assert scored.temperature == 0.7
    assert not torch.allclose(scored.logprobs_BT, plain.logprobs_BT)
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        logprobs_TV = fresh_logprobs_TV(model, p, r, temperature=0.7)
        n = len(r)
        close(scored.logprobs_BT[b, :n], logprobs_TV.gather(-1, torch.tensor(r)[:, None])[:, 0])
        close(scored.topk_logprobs_BTK[b, :n], logprobs_TV.topk(4).values)
        entropy_T = -(logprobs_TV.exp() * logprobs_TV).sum(-1)
        close(scored.entropy_BT[b, :n], entropy_T)


def test_sampler_logprobs_equal_scored_logprobs_at_the_sampling_temperature(tiny):
    model, tok = tiny
    samples = toy_rollout(tiny, temperature=0.8)
    assert all(s.sampler_logprobs is not None for s in samples)
    with torch.no_grad():
        scored = score(model, [s.student_prompt_ids for s in samples], [s.response_ids for s in samples],
                       temperature=0.8, pad_token_id=tok.pad_token_id)
    for b, s in enumerate(samples):
        n = len(s.response_ids)
        # 1e-4 as in tests/policies/test_hf.py: the sampler decodes with a KV cache, one token at a time
        close(scored.logprobs_BT[b, :n], torch.tensor(s.sampler_logprobs), atol=1e-4)


def test_microbatching_gives_the_same_values_and_gradients(tiny, batch):
    model, tok = tiny
    prompts, responses = batch
    prompts, responses = prompts + prompts[:2], responses + responses[::-1][:2]
    generator = torch.Generator().manual_seed(0)
    weights_BT = torch.randn(len(prompts), max(map(len, responses)), generator=generator)
    kw = dict(temperature=0.9, top_k=3, entropy=True, full_vocab=True, hidden=True,
              pad_token_id=tok.pad_token_id)

    def run(budget):
        model.zero_grad(set_to_none=True)
        scored = score(model, prompts, responses, max_tokens_per_microbatch=budget, **kw)
        ((scored.logprobs_BT * weights_BT).sum() + scored.entropy_BT.sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        return scored, grads

    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    budget = 100  # several micro-batches, one of two rows, and the longest rows alone over budget
    groups = microbatch_groups(lengths, budget)
    assert len(groups) > 2 and max(map(len, groups)) > 1 and max(lengths) > budget
    whole, whole_grads = run(None)
    parts, parts_grads = run(budget)
    for name in ("logprobs_BT", "entropy_BT", "topk_logprobs_BTK", "logits_BTV", "hidden_BTH"):
        torch.testing.assert_close(getattr(parts, name), getattr(whole, name), atol=ATOL, rtol=0, msg=name)
    assert torch.equal(parts.mask_BT, whole.mask_BT) and torch.equal(parts.topk_ids_BTK, whole.topk_ids_BTK)
    for name, grad in whole_grads.items():
        torch.testing.assert_close(parts_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_microbatches_respect_the_padded_token_budget():
    assert microbatch_groups([3, 3, 3, 10, 2, 2], 9) == [[0, 1, 2], [3], [4, 5]]
    assert microbatch_groups([4, 1, 1], 8) == [[0, 1], [2]]  # 3 rows × 4 tokens = 12 > 8
    assert microbatch_groups([5, 5], None) == [[0, 1]]
    with pytest.raises(ValueError, match="max_tokens_per_microbatch"):
        microbatch_groups([1], 0)


def test_topk_full_vocab_hidden_and_masked_zeros(tiny, batch):
    model, tok = tiny
    prompts, responses = batch
    with torch.no_grad():
        scored = score(model, prompts, responses, temperature=1.3, top_k=5, full_vocab=True, hidden=True,
                       entropy=True, pad_token_id=tok.pad_token_id)
        logits_BTV = model.lm_head(scored.hidden_BTH)
    mask_BT = scored.mask_BT
    close(logits_BTV[mask_BT], scored.logits_BTV[mask_BT])
    logprobs_BTV = torch.log_softmax(scored.logits_BTV / 1.3, dim=-1)
    top = logprobs_BTV.topk(5, dim=-1)
    assert torch.equal(scored.topk_ids_BTK[mask_BT], top.indices[mask_BT])
    close(scored.topk_logprobs_BTK[mask_BT], top.values[mask_BT])
    targets_BT = torch.zeros_like(scored.topk_ids_BTK[..., 0])
    for b, r in enumerate(responses):
        targets_BT[b, : len(r)] = torch.tensor(r)
    picked_BT = logprobs_BTV.gather(-1, targets_BT[..., None])[..., 0]
    close(scored.logprobs_BT[mask_BT], picked_BT[mask_BT])
    entropy_BT = -(logprobs_BTV.exp() * logprobs_BTV).sum(-1)
    close(scored.entropy_BT[mask_BT], entropy_BT[mask_BT])
    assert (~mask_BT).any()
    names = ("logprobs_BT", "entropy_BT", "topk_ids_BTK", "topk_logprobs_BTK", "logits_BTV", "hidden_BTH")
    for name in names:
        assert torch.all(getattr(scored, name)[~mask_BT] == 0), name


def test_gradient_flows_to_the_student_and_not_to_the_teacher(tiny):
    model, tok = tiny
    p, r = encode(tok, "count: 0 of 3"), encode(tok, "inc")
    samples = [turn(p, tuple(encode(tok, "plan: inc inc\n") + p), r), turn(p[:5], tuple(p), r[:2])]
    model.zero_grad(set_to_none=True)
    student, teacher = score_turns(model, CurrentWeightsTeacher(model), samples, temperature=1.0)
    assert student.logprobs_BT.requires_grad and not teacher.logprobs_BT.requires_grad
    assert teacher.logprobs_BT.grad_fn is None
    student.logprobs_BT.sum().backward()
    grads = [q.grad for q in model.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


def test_bad_input_raises_clear_errors(tiny):
    model, tok = tiny
    p, r = encode(tok, "hello"), encode(tok, "inc")
    teacher = CurrentWeightsTeacher(model)
    with pytest.raises(ValueError, match="teacher_prompt_ids"):
        score_turns(model, teacher, [turn(p, None, r)], temperature=1.0)
    with pytest.raises(ValueError, match="tokenizer"):
        score_turns(model, teacher, [turn(p, tuple(p), ())], temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        score(model, [p], [r], temperature=0.0)
    with pytest.raises(ValueError, match="at least one token"):
        score(model, [[]], [r])
    with pytest.raises(ValueError, match="as many prompts"):
        score(model, [p, p], [r])


def test_a_shared_system_prompt_runs_once_and_changes_no_value_or_gradient(tiny):
    """Rows opening with the same 40+ tokens (a system prompt) score alike with and without prefix sharing:
    values, top-k, entropy, hidden states and parameter gradients (the prefix's repeated cache sums them)."""
    model, tok = tiny
    system = encode(tok, "You are playing Sokoban. Push every box onto a target, one move per turn. ")
    assert len(system) >= 40
    prompts = [system + encode(tok, q) for q in ("up?", "a longer question about the left box", "go")]
    responses = [encode(tok, "Action: up"), encode(tok, "x"), encode(tok, "Action: left then right")]
    assert shared_prefix_length(prompts, min(map(len, prompts)) - 1) == len(system)
    weights_BT = torch.randn(3, max(map(len, responses)), generator=torch.Generator().manual_seed(0))

    def run(shared):
        model.zero_grad(set_to_none=True)
        with prefix_sharing(shared):
            scored = score(model, prompts, responses, temperature=0.9, top_k=3, entropy=True, hidden=True,
                           pad_token_id=tok.pad_token_id)
        ((scored.logprobs_BT * weights_BT).sum() + scored.entropy_BT.sum()).backward()
        return scored, {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, plain_grads = run(False)
    shared, shared_grads = run(True)
    for name in ("logprobs_BT", "entropy_BT", "topk_logprobs_BTK", "hidden_BTH"):
        torch.testing.assert_close(getattr(shared, name), getattr(plain, name), atol=ATOL, rtol=0, msg=name)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    for b in range(3):  # and both equal an unpadded pass of the row alone
        close(shared.logprobs_BT[b, : len(responses[b])], fresh_logprobs_T(model, prompts[b], responses[b], 0.9))


def test_the_shared_prefix_stops_before_the_token_that_predicts_the_response():
    rows = [[7] * 30 + [1], [7] * 30 + [2, 3], [7] * 30]
    assert shared_prefix_length(rows, min(map(len, rows)) - 1) == 29  # the last prompt token stays per row
    assert shared_prefix_length([[7] * 30, [7] * 10 + [1] * 20], 29) == 0  # under MIN_SHARED_PREFIX
    assert shared_prefix_length([[7] * 30], 29) == 0  # one row: nothing to share
    with prefix_sharing(False):
        assert shared_prefix_length(rows, 29) == 0


def test_packed_sequences_score_like_the_padded_batch_values_and_gradients(tiny):
    """packing(True): the rows laid end to end in one row, positions restarting per sequence, no mask — every
    result (log-probs, entropy, top-k, full logits, hidden states, an empty response's row) and every parameter
    gradient equals the padded batch's, alone and split into packed micro-batches."""
    model, tok = tiny
    system = encode(tok, "You are playing Sokoban. Push every box onto a target, one move per turn. ")
    prompts = [system + encode(tok, q) for q in ("up?", "a longer question about the left box", "go", "why")]
    responses = [encode(tok, "Action: up"), encode(tok, "x"), encode(tok, "Action: left then right"), []]
    weights_BT = torch.randn(4, max(map(len, responses)), generator=torch.Generator().manual_seed(0))

    def run(packed, budget=None):
        model.zero_grad(set_to_none=True)
        with packing(packed):
            scored = score(model, prompts, responses, temperature=0.9, top_k=3, entropy=True, hidden=True,
                           full_vocab=True, pad_token_id=tok.pad_token_id, max_tokens_per_microbatch=budget)
        ((scored.logprobs_BT * weights_BT).sum() + scored.entropy_BT.sum()).backward()
        return scored, {n: p.grad.clone() for n, p in model.named_parameters()}

    padded, padded_grads = run(False)
    for budget in (None, 40):  # 40 tokens: several packed micro-batches, one row alone over the budget
        packed, packed_grads = run(True, budget)
        assert torch.equal(packed.mask_BT, padded.mask_BT) and torch.equal(packed.topk_ids_BTK, padded.topk_ids_BTK)
        for name in ("logprobs_BT", "entropy_BT", "topk_logprobs_BTK", "logits_BTV", "hidden_BTH"):
            torch.testing.assert_close(getattr(packed, name), getattr(padded, name), atol=ATOL, rtol=0, msg=name)
        for name, grad in padded_grads.items():
            torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_packed_micro_batches_count_tokens_not_padding():
    assert packed_groups([10, 20, 5, 30, 1], 35) == [[0, 1, 2], [3, 4]]
    assert packed_groups([50, 3], 35) == [[0], [1]]  # a sequence over the budget runs alone
    assert packed_groups([4, 4], None) == [[0, 1]]
    with pytest.raises(ValueError, match="must be > 0"):
        packed_groups([4], 0)



def test_gradient_checkpointing_scores_like_the_plain_pass_and_skips_the_prefix_cache(tiny):
    """A model training with gradient checkpointing has no KV cache to share a prefix through: scoring runs
    every row whole and gives the plain pass's values and gradients (it used to fail on the missing cache)."""
    model, tok = tiny
    system = encode(tok, "You are playing Sokoban. Push every box onto a target, one move per turn. ")
    prompts = [system + encode(tok, q) for q in ("up?", "left or right", "go")]
    responses = [encode(tok, "Action: up"), encode(tok, "x"), encode(tok, "Action: left")]

    def run():
        model.zero_grad(set_to_none=True)
        scored = score(model, prompts, responses, pad_token_id=tok.pad_token_id)
        scored.logprobs_BT.sum().backward()
        return scored.logprobs_BT.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    was_training = model.training
    model.train()
    try:
        plain, plain_grads = run()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        checkpointed, checkpointed_grads = run()
    finally:
        model.gradient_checkpointing_disable()
        model.train(was_training)
    close(checkpointed, plain)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
