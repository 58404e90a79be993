"""OpenAIClient / OpenAIPolicy against a real ``vllm serve`` on loopback (see conftest.py)."""

from __future__ import annotations

import time

import pytest

from agentdistill.models import load_tokenizer
from agentdistill.policies.openai import (
    ChatRequest,
    EndpointError,
    OpenAIClient,
    OpenAIPolicy,
    Price,
    load_prices,
    price_for,
)
from agentdistill.rollout import rollout

from .conftest import SERVED_NAME, free_port

PRICE = Price(input=3.0, output=15.0)
HELLO = ({"role": "user", "content": "Say hello in five words."},)


def client(url: str, **kwargs) -> OpenAIClient:
    return OpenAIClient(url, SERVED_NAME, PRICE, **{"backoff_s": 0.01, **kwargs})


def test_a_chat_completion_and_its_usage_accounting(server_url):
    c = client(server_url)
    messages = ({"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a fruit."})
    first = c.chat(ChatRequest(messages=messages, temperature=0.0, max_tokens=12))
    second = c.chat(ChatRequest(messages=HELLO, temperature=0.7, max_tokens=12, seed=3, n=2))
    assert first.texts[0].strip() and len(second.texts) == 2
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    expected_prompt = len(tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"])
    assert first.prompt_tokens == expected_prompt  # the server counts the same template we render
    assert 0 < first.completion_tokens <= 12 and 0 < second.completion_tokens <= 24  # n=2: both choices
    assert first.cost_usd == pytest.approx((first.prompt_tokens * 3.0 + first.completion_tokens * 15.0) / 1e6)
    u = c.usage
    assert (u.calls, u.retries, u.failures) == (2, 0, 0)
    assert u.prompt_tokens == first.prompt_tokens + second.prompt_tokens
    assert u.completion_tokens == first.completion_tokens + second.completion_tokens
    assert u.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)


def test_the_same_seed_gives_the_same_sample(server_url):
    c = client(server_url)
    request = ChatRequest(messages=HELLO, temperature=1.0, max_tokens=16, seed=1234)
    assert c.chat(request).texts == c.chat(request).texts


@pytest.mark.parametrize("status, headers", [(503, {}), (500, {}), (429, {"Retry-After": "0"})])
def test_injected_server_errors_are_retried(proxy, status, headers):
    c = client(proxy.url)
    proxy.fail_next(status, times=2, headers=headers)
    reply = c.chat(ChatRequest(messages=HELLO, max_tokens=8))
    assert reply.texts[0] and reply.attempts == 3
    assert (c.usage.calls, c.usage.retries, c.usage.failures) == (1, 2, 0)
    assert proxy.seen["/v1/chat/completions"] == 3


def test_a_timeout_is_retried(proxy):
    c = client(proxy.url, timeout_s=1.0)
    proxy.delay_next(3.0)
    reply = c.chat(ChatRequest(messages=HELLO, max_tokens=8))
    assert reply.attempts == 2 and c.usage.retries == 1


def test_retries_run_out_with_an_error_naming_the_endpoint(proxy):
    c = client(proxy.url, max_retries=2)
    proxy.fail_next(502, times=3)
    with pytest.raises(EndpointError, match=r"127\.0\.0\.1.*failed 3 times.*HTTP 502.*max_retries"):
        c.chat(ChatRequest(messages=HELLO, max_tokens=8))
    assert (c.usage.calls, c.usage.retries, c.usage.failures) == (0, 2, 1)


def test_a_request_the_server_rejects_is_not_retried(proxy):
    c = client(proxy.url)
    with pytest.raises(EndpointError, match="HTTP 400.*rejected the request"):
        c.chat(ChatRequest(messages=HELLO, max_tokens=100_000))  # beyond the 4096-token context
    assert proxy.seen["/v1/chat/completions"] == 1 and c.usage.retries == 0


def test_wrong_base_urls_fail_at_once_naming_the_fix(server_url):
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(EndpointError, match=rf"nothing answers at {nobody}.*start the server.*or fix base_url"):
        client(nobody)
    assert time.monotonic() - start < 10  # no retry loop on a URL that was never right
    with pytest.raises(EndpointError, match=r"HTTP 404.*serve under /v1"):
        client(server_url.removesuffix("/v1"))
    with pytest.raises(EndpointError, match=r"does not serve model 'gpt-9'; it serves \['smollm2'\]"):
        OpenAIClient(server_url, "gpt-9", PRICE)


def test_concurrency_is_bounded(proxy):
    c = client(proxy.url, max_concurrency=2)
    replies = c.chat_many([ChatRequest(messages=HELLO, max_tokens=16, seed=i) for i in range(6)])
    assert len(replies) == 6 and c.usage.calls == 6
    assert proxy.max_in_flight == 2


def test_policy_plays_an_env_through_rollout(server_url):
    policy = OpenAIPolicy(client(server_url), temperature=0.7, max_new_tokens=16)
    result = rollout("agentdistill/Sokoban-v0", policy, seeds=[0, 1], max_turns=2, progress=False)
    assert len(result.episodes) == 2 and all(ep.num_turns >= 1 for ep in result.episodes)
    assert policy.usage.calls == sum(ep.num_turns for ep in result.episodes)
    assert policy.usage.cost_usd > 0
    assert sum(ep.metadata["cost_usd"] for ep in result.episodes) == pytest.approx(policy.usage.cost_usd)


def test_price_table():
    prices = load_prices()
    assert price_for("gpt-4.1-mini", prices) == Price(input=0.40, output=1.60, cached_input=0.10)
    # cached prompt tokens are billed at the cached price: 1000 prompt tokens, 400 of them cached
    cost = Price(1.0, 2.0, 0.25).cost(1000, 100, cached_tokens=400)
    assert cost == pytest.approx((600 * 1.0 + 400 * 0.25 + 200) / 1e6)
    assert Price(1.0, 2.0).cost(1000, 100, cached_tokens=400) == pytest.approx((1000 + 200) / 1e6)
    with pytest.raises(ValueError, match="no price for model 'my-model'.*price_in/price_out"):
        price_for("my-model", prices)
