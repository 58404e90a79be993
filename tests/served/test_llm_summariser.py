"""The LLM summariser against the real `vllm serve` of conftest.py (JSON-schema constrained output)."""

from __future__ import annotations

from agentdistill import envs
from agentdistill.policies import ExpertPolicy, RandomPolicy
from agentdistill.policies.openai import OpenAIClient, Price
from agentdistill.rollout import rollout
from agentdistill.skills import LLMSummariser, SkillDraft, SkillWorker

from .conftest import SERVED_NAME

SOKOBAN = "agentdistill/Sokoban-v0"


def episodes():
    interface = envs.default_interface(SOKOBAN)
    return (rollout(SOKOBAN, ExpertPolicy(interface), seeds=[3], max_turns=10, progress=False).episodes
            + rollout(SOKOBAN, RandomPolicy(interface), seeds=[3], max_turns=2, progress=False).episodes)


def test_llm_summariser_writes_a_skill_through_a_real_server(server_url):
    client = OpenAIClient(server_url, SERVED_NAME, Price(1.0, 2.0), backoff_s=0.01)
    draft = LLMSummariser(client, max_tokens=1200).summarise("sokoban", episodes())
    assert isinstance(draft, SkillDraft)  # the schema forces the three fields, whatever the model writes
    assert client.usage.calls == 1 and client.usage.prompt_tokens > 200 and client.usage.cost_usd > 0


def test_summaries_survive_server_errors_through_the_worker(proxy):
    client = OpenAIClient(proxy.url, SERVED_NAME, Price(0, 0), backoff_s=0.01, max_retries=1)
    worker = SkillWorker(LLMSummariser(client, max_tokens=1200), asynchronous=True, max_attempts=2,
                         retry_delay_s=0.0)
    proxy.fail_next(500, times=2)  # the first attempt's request and its one client retry both fail
    worker.submit("sokoban", episodes(), step=0)
    worker.wait(timeout_s=120)
    done = worker.drain()
    assert len(done) == 1 and done[0].attempts == 2  # the worker's second attempt got through
    assert worker.stats.failed_attempts == 1 and "HTTP 500" in worker.stats.errors[0]
    assert client.usage.retries == 1 and client.usage.failures == 1
    worker.close()
