"""Rollout throughput, side by side in one run: lockstep batched rollouts vs one episode at a time.

Both arms roll out the same model on the same Sokoban tasks with the same seeds; because sampling is seeded
per (task, sample, turn), both produce the same episodes, so the ratio compares equal work. A third table
row times the env alone (steps/s without and with the expert-plan solver).

    python benchmarks/rollout_throughput.py                     # SmolLM2-135M, 8 tasks, CPU defaults
    python benchmarks/rollout_throughput.py --model tiny-random --tasks 32 --max-turns 5

Prints a table, writes a JSON next to this file (or --out), and ends with headline lines `name: value`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from agentdistill import envs
from agentdistill.models import load_model
from agentdistill.policies import HFPolicy
from agentdistill.rollout import rollout
from agentdistill.views import ViewSpec

ENV_ID = "agentdistill/Sokoban-v0"


def time_rollout(policy, tokenizer, args, max_batch):
    result = rollout(
        ENV_ID, policy, seeds=range(args.tasks), tokenizer=tokenizer, max_turns=args.max_turns,
        view=ViewSpec(history_window=2), max_batch=max_batch, progress=False, run_seed=args.seed,
    )
    return result


def env_steps_per_s(privileged: list[str], steps: int) -> float:
    env = envs.make(ENV_ID, privileged=privileged, max_turns=10_000)
    _, info = env.reset(seed=0)
    start, done, seed = time.perf_counter(), 0, 0
    while done < steps:
        _, _, terminated, _, info = env.step(info["admissible_actions"][done % len(info["admissible_actions"])])
        done += 1
        if terminated:
            seed += 1
            _, info = env.reset(seed=seed)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    policy = HFPolicy(model, tokenizer, temperature=1.0, max_new_tokens=args.max_new_tokens)
    time_rollout(policy, tokenizer, argparse.Namespace(**{**vars(args), "tasks": 1, "max_turns": 1}), None)  # warm-up
    batched = time_rollout(policy, tokenizer, args, max_batch=None)
    serial = time_rollout(policy, tokenizer, args, max_batch=1)
    same = [e.messages for e in batched.episodes] == [e.messages for e in serial.episodes]

    rows = {
        "batched (one call per step)": batched.metrics,
        "one episode per call": serial.metrics,
    }
    print(f"{'arm':<30} {'episodes':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8}")
    for name, m in rows.items():
        print(f"{name:<30} {m.episodes:>8} {m.tokens_generated:>7} {m.wall_time_s:>8.2f} {m.tokens_per_s:>8.1f}")
    plain = env_steps_per_s([], args.env_steps)
    with_plan = env_steps_per_s(["expert_plan"], args.env_steps // 4)
    print(f"{'Sokoban env steps/s (no PI)':<30} {plain:>34.0f}")
    print(f"{'Sokoban env steps/s (expert_plan)':<30} {with_plan:>30.0f}")

    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
        "device": str(next(model.parameters()).device),
        "args": {k: str(v) for k, v in vars(args).items()},
        "batched_tokens_per_s": batched.metrics.tokens_per_s,
        "serial_tokens_per_s": serial.metrics.tokens_per_s,
        "batching_speedup": serial.metrics.wall_time_s / batched.metrics.wall_time_s,
        "same_episodes": same,
        "env_steps_per_s": plain,
        "env_steps_per_s_expert_plan": with_plan,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"batching_speedup: {result['batching_speedup']:.2f}")
    print(f"same_episodes: {float(same):.1f}")
    print(f"batched_tokens_per_s: {batched.metrics.tokens_per_s:.1f}")
    print(f"env_steps_per_s: {plain:.0f}")


if __name__ == "__main__":
    main()
