"""A deployable ICD agent from Python: the expert's demos, then a cheap student that acts with retrieved demos
and defers a step to the teacher when its samples disagree; every call priced.

    python examples/icd_agent.py                 # the embedded SmolLM2-135M-Instruct, a few minutes on 2 CPU cores
    python examples/icd_agent.py tiny-random     # a random 2-layer model, seconds
"""

import sys

from agentdistill import envs
from agentdistill.collect import collect
from agentdistill.config import CollectJobConfig, EnvConfig
from agentdistill.icd import BillingModel, DemoIndex, HashingEmbedder, IcdAgent, Ledger, load_demos
from agentdistill.models import load_model
from agentdistill.policies import ExpertPolicy, HFPolicy
from agentdistill.policies.openai import load_prices
from agentdistill.rollout import rollout
from agentdistill.views import ViewSpec

ENV_ID = "agentdistill/ALFWorld-v0"
SMALL = {"split": "train", "difficulty": "small"}

if __name__ == "__main__":
    # 1. The teacher's demos: the env's expert on 20 train tasks (its solved steps go to demos.jsonl).
    collect(CollectJobConfig(env=EnvConfig(ENV_ID, kwargs=SMALL, max_turns=30), num_tasks=20,
                             out_dir="runs/example/icd_demos", progress=False))
    demos = load_demos("runs/example/icd_demos/demos.jsonl")
    print(f"{len(demos)} demo steps")

    # 2. The agent: student = a local model sampled 3 times per step, teacher = the expert, billed as the
    #    ICD paper's pair (gpt-4.1-mini student, claude-sonnet-4-5 teacher) with one n=3 call per step.
    model, tokenizer = load_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
    interface = envs.default_interface(ENV_ID)
    ledger = Ledger(load_prices(), BillingModel(samples="one_call"))
    agent = IcdAgent(student=HFPolicy(model, tokenizer, temperature=0.7, max_new_tokens=16),
                     teacher=ExpertPolicy(interface), interface=interface, tokenizer=tokenizer, ledger=ledger,
                     student_model="gpt-4.1-mini", teacher_model="claude-sonnet-4-5",
                     index=DemoIndex(demos, HashingEmbedder()), samples=3)  # MiniLMEmbedder() for real runs

    # 3. Deploy it on held-out tasks like any policy.
    episodes = rollout(ENV_ID, agent, seeds=range(3), tokenizer=tokenizer, view=ViewSpec(history_window=1),
                       max_turns=8, env_kwargs={**SMALL, "split": "valid_unseen"}, progress=False).episodes
    for ep in episodes:
        steps = agent.take(ep.episode_id)
        deferred = sum(s.deferred for s in steps)
        print(f"{ep.task_id}: won={ep.won}, {len(steps)} steps, {deferred} deferred to the teacher, "
              f"${ep.metadata['cost_usd']:.5f} (demos from {sorted({t for s in steps for t in s.demo_tasks})[:2]} ...)")
    print(f"ledger: {len(ledger.calls)} calls, student ${ledger.total('student'):.5f}, "
          f"teacher ${ledger.total('teacher'):.5f}")
