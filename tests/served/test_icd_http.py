"""`agentdistill icd run` with an HTTP teacher (the real `vllm serve` of conftest.py behind the fault proxy):
a transient failure is retried inside the run; an outage that outlasts the retries stops the run with a clear
error, and rerunning resumes without losing or repeating a finished episode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig
from agentdistill.icd.agent import priced_teacher

from .conftest import SERVED_NAME

TASKS = 6


def start_run(out: Path, demos: Path, base_url: str) -> subprocess.Popen:
    overrides = [
        f"hydra.run.dir={out}", f"demos={demos}", "arms=[cascade]", "model=tiny-random", "embedder=hashing",
        "teacher=openai", f"teacher_endpoint.base_url={base_url}", f"teacher_endpoint.model={SERVED_NAME}",
        "teacher_endpoint.price_in=0", "teacher_endpoint.price_out=0", "teacher_endpoint.max_retries=2",
        "env=sokoban", "env.max_turns=3", f"num_tasks={TASKS}", "chunk_size=1", "samples=2", "temperature=1.0",
        "max_new_tokens=8", "progress=false",
    ]
    return subprocess.Popen([sys.executable, "-m", "agentdistill.cli", "icd", "run", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_teacher_outage_stops_the_run_and_a_rerun_loses_nothing(proxy, tmp_path):
    demos_dir = tmp_path / "demos"
    env = EnvConfig("agentdistill/Sokoban-v0", kwargs={"dim_room": [6, 6], "num_boxes": 1}, max_turns=10)
    collect(CollectJobConfig(env=env, num_tasks=4, out_dir=str(demos_dir), progress=False,
                             price_as="claude-sonnet-4-5"), pricer=priced_teacher)
    out = tmp_path / "run"
    proxy.fail_next(500)  # a transient failure: retried inside the run
    proc = start_run(out, demos_dir / "demos.jsonl", proxy.url)
    deadline = time.monotonic() + 300
    while lines(out / "episodes.jsonl") < 3:  # the header and two finished episodes
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "icd run finished no episode in 300 s"
        time.sleep(0.2)
    proxy.fail_next(503, times=10_000)  # the teacher goes down for longer than the client retries
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "failed 3 times" in output and "HTTP 503" in output and "raise max_retries/timeout_s" in output
    assert "retry 1/2" in output  # the transient 500 was retried, logged
    before = (out / "episodes.jsonl").read_bytes()
    finished = before.count(b"\n") - 1
    assert 2 <= finished < TASKS

    proxy.faults.clear()  # the teacher is back
    resumed = start_run(out, demos_dir / "demos.jsonl", proxy.url)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    after = (out / "episodes.jsonl").read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # every line written before is kept as it was
    records = [json.loads(line) for line in after.decode().splitlines()[1:]]
    assert sorted(r["seed"] for r in records) == list(range(1_000_000, 1_000_000 + TASKS))  # each exactly once
    assert any(r["deferred_steps"] for r in records)  # the teacher did act
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == TASKS and report["arms"]["cascade"]["episodes"] == TASKS
    assert "accuracy[cascade]:" in output



def test_an_http_student_is_billed_the_tokens_the_server_counted(server_url, tmp_path):
    from agentdistill import envs
    from agentdistill.icd.agent import IcdAgent
    from agentdistill.icd.ledger import Ledger
    from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, load_demos
    from agentdistill.models import load_tokenizer
    from agentdistill.policies import ExpertPolicy
    from agentdistill.policies.openai import OpenAIClient, OpenAIPolicy, Price, load_prices
    from agentdistill.rollout import rollout
    from agentdistill.views import encode, render_text

    sokoban, kwargs = "agentdistill/Sokoban-v0", {"dim_room": (6, 6), "num_boxes": 1}
    collect(CollectJobConfig(env=EnvConfig(sokoban, kwargs=dict(kwargs), max_turns=10), num_tasks=3,
                             out_dir=str(tmp_path), progress=False))
    sent = []

    class Recording(OpenAIPolicy):
        def act(self, prompts):
            sent.extend(prompts)
            return super().act(prompts)

    tokenizer = load_tokenizer("smollm2-135m-instruct")  # the served model's own tokenizer
    interface = envs.default_interface(sokoban)
    client = OpenAIClient(base_url=server_url, model=SERVED_NAME, price=Price(0.0, 0.0))
    agent = IcdAgent(student=Recording(client, temperature=1.0, max_new_tokens=8), teacher=ExpertPolicy(interface),
                     interface=interface, tokenizer=tokenizer, ledger=Ledger(load_prices()),
                     student_model="gpt-4.1-mini", teacher_model="claude-sonnet-4-5",
                     index=DemoIndex(load_demos(tmp_path / "demos.jsonl"), HashingEmbedder()), samples=2)
    episode = rollout(sokoban, agent, seeds=[100], tokenizer=tokenizer, max_turns=2, env_kwargs=kwargs,
                      progress=False, on_error="raise").episodes[0]
    steps = agent.take(episode.episode_id)
    assert len(sent) == 2 * len(steps) == 4  # two samples per step, each its own request
    for j, step in enumerate(steps):
        student = next(c for c in step.calls if c["role"] == "student")
        prompt = sent[2 * j]
        assert "[Example 1]" in prompt.messages[0].content  # the demos were sent
        # the server's count of what was sent equals our template's: the ledger bills what went over the wire
        assert student["prompt_tokens"] == len(encode(tokenizer, render_text(tokenizer, prompt.messages)))
        assert student["samples"] == 2 and 0 < student["completion_tokens"] <= 16
