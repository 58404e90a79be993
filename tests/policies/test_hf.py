"""HFPolicy: exact sampled ids, log-probs that match a fresh forward pass, batch-independent sampling."""

import torch

from agentdistill.policies import HFPolicy

# fp32 on CPU: a KV-cached, left-padded decode and a fresh unpadded forward pass agree to ~1e-6.
LOGPROB_ATOL = 1e-4


def prompts(tok):
    texts = ["count to three", "a much longer prompt about pushing boxes onto targets", "hi"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def fresh_logprobs(model, prompt_ids, response_ids, temperature):
    ids = torch.tensor([list(prompt_ids) + list(response_ids)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    start = len(prompt_ids) - 1
    positions = torch.arange(start, start + len(response_ids))
    return logprobs[positions, torch.tensor(response_ids)]


def test_logprobs_equal_a_fresh_forward_pass_over_the_sampled_ids(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=0.8, max_new_tokens=24)
    batch = prompts(tok)
    completions = policy.generate(batch, seeds=[1, 2, 3])
    for prompt_ids, comp in zip(batch, completions, strict=True):
        assert len(comp.token_ids) == len(comp.logprobs) > 0
        expected = fresh_logprobs(model, prompt_ids, comp.token_ids, 0.8)
        torch.testing.assert_close(torch.tensor(comp.logprobs), expected, atol=LOGPROB_ATOL, rtol=0)


def test_batched_sampling_equals_one_by_one(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=1.0, max_new_tokens=16)
    batch = prompts(tok)
    together = policy.generate(batch, seeds=[11, 12, 13])
    alone = [policy.generate([p], seeds=[s])[0] for p, s in zip(batch, [11, 12, 13], strict=True)]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=LOGPROB_ATOL, rtol=0)


def test_seed_decides_the_sample(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=1.0, max_new_tokens=12)
    p = prompts(tok)[0]
    a, b, c = (policy.generate([p], seeds=[s])[0].token_ids for s in (5, 5, 6))
    assert a == b and a != c


def test_greedy_picks_the_argmax(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok, temperature=0.0, max_new_tokens=6)
    p = prompts(tok)[2]
    comp = policy.generate([p], seeds=[0])[0]
    ids = list(p)
    for token in comp.token_ids:
        with torch.no_grad():
            nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        assert token == nxt
        ids.append(nxt)


def test_eos_stops_a_row_and_is_kept(tiny):
    model, tok = tiny
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    # Make EOS overwhelmingly likely by biasing the LM head, so every row stops after one token.
    bias = torch.zeros(model.config.vocab_size)
    bias[eos] = 1e4
    handle = model.lm_head.register_forward_hook(lambda mod, inp, out: out + bias)
    try:
        comps = HFPolicy(model, tok, temperature=1.0, max_new_tokens=8).generate(prompts(tok), seeds=[1, 2, 3])
    finally:
        handle.remove()
    assert all(c.token_ids == (eos,) and c.finish_reason == "stop" and c.text == "" for c in comps)
    capped = HFPolicy(model, tok, temperature=1.0, max_new_tokens=3).generate(prompts(tok)[:1], seeds=[4])[0]
    assert len(capped.token_ids) == 3 or capped.token_ids[-1] == eos
    assert capped.finish_reason == ("stop" if capped.token_ids[-1] == eos else "length")


def test_a_shared_system_prompt_samples_the_same_replies(tiny):
    """Prefill of the prompts' common prefix once (then the rest per row) samples what the plain batch does."""
    from agentdistill.scoring import prefix_sharing

    model, tok = tiny
    system = tok("You are playing Sokoban. Push every box onto a target, one move per turn. ",
                 add_special_tokens=False)["input_ids"]
    batch = [system + p for p in prompts(tok)]
    policy = HFPolicy(model, tok, temperature=1.0, max_new_tokens=16)
    shared = policy.generate(batch, seeds=[11, 12, 13])
    with prefix_sharing(False):
        plain = policy.generate(batch, seeds=[11, 12, 13])
    assert [c.token_ids for c in shared] == [c.token_ids for c in plain]
    for a, b in zip(shared, plain, strict=True):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=LOGPROB_ATOL, rtol=0)
