"""Env worker pool vs the in-process loop, side by side on the same tasks, seeds and policy.

The env is the real TextWorld engine (``agentdistill/TextWorld-v0``, cooking games; a few ms a step and ~25 ms a
reset, where the AppWorld-style env steps in well under 1 ms once its ~170 ms reset is done), played by a
seeded random policy over the admissible commands (``--policy expert`` follows the env's expert plan; the
AppWorld-style env, which lists no admissible actions, always does): no model, so env time is nearly all of
the wall time.
Two pairs of arms, each pair on the same tasks, and each pair's episodes checked equal:

- serial / pool: ``rollout`` with envs in this process, then in an ``EnvPool`` of ``--workers`` processes.
- serial+gen / pool+gen: the same policy behind a fixed latency per call (``--gen-latency-ms``, a stand-in for
  a model's generation time) with chunks of ``--max-batch`` episodes, so the pool's overlap of one chunk's
  env steps with the next chunk's generation shows.

    python benchmarks/env_pool.py                        # 24 tasks x 2 samples, 2 workers: about a minute
    python benchmarks/env_pool.py --workers 4 --tasks 64 --repeats 5
    python benchmarks/env_pool.py --env appworld         # the AppWorld-style env instead

The pool is started once (its start-up is reported apart) and warmed by one rollout, as a training run reuses
one pool for every round. Walls are medians over ``--repeats`` interleaved runs. Prints a table, writes a JSON
next to this file (or --out), and ends with headline lines ``name: value``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdistill import envs
from agentdistill.envpool import EnvPool
from agentdistill.policies import Completion, ExpertPolicy, Prompt, RandomPolicy
from agentdistill.rollout import RolloutResult, rollout

ENVS = {"textworld": "agentdistill/TextWorld-v0", "appworld": "agentdistill/AppWorld-v0"}


class Timed:
    """A policy behind a fixed latency per call (a stand-in for generation), with the time spent in its calls."""

    def __init__(self, inner: Any, latency_s: float):
        self.inner, self.latency_s = inner, latency_s
        self.name, self.sees_privileged = inner.name, inner.sees_privileged
        self.needs_privileged = inner.needs_privileged
        self.seconds = 0.0

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        start = time.perf_counter()
        time.sleep(self.latency_s)
        completions = self.inner.act(prompts)
        self.seconds += time.perf_counter() - start
        return completions


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.env != "textworld":
        return {}
    from agentdistill_textworld import prepare, spec_for

    prepare([spec_for(args.kind, 1, "train", i) for i in range(args.games)], workers=2)  # generated once, cached
    return {"kind": args.kind, "num_games": args.games}


def run(args: argparse.Namespace, pool: EnvPool | None, latency_s: float, max_batch: int | None,
        tasks: int | None = None) -> tuple[RolloutResult, float]:
    env_id = ENVS[args.env]
    scripted = ExpertPolicy if args.policy == "expert" else RandomPolicy
    policy = Timed(scripted(envs.default_interface(env_id)), latency_s)
    result = rollout(env_id, policy, seeds=range(tasks or args.tasks), group_size=args.group_size,
                     max_turns=args.max_turns, env_kwargs=args.kwargs, max_batch=max_batch, run_seed=args.seed,
                     env_pool=pool, progress=False)
    return result, policy.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(ENVS), default="textworld")
    parser.add_argument("--policy", choices=["random", "expert"], default="random")
    parser.add_argument("--kind", default="cooking", help="TextWorld game kind")
    parser.add_argument("--games", type=int, default=8, help="TextWorld games the tasks cycle through")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--group-size", type=int, default=2)
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--gen-latency-ms", type=float, default=20.0, help="per policy call, in the +gen arms")
    parser.add_argument("--max-batch", type=int, default=8, help="episodes per policy call in the +gen arms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    if args.env == "appworld":
        args.policy = "expert"
    args.kwargs = env_kwargs(args)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    with EnvPool(args.workers) as pool:
        pool_start_s = time.perf_counter() - start
        for warm in (None, pool):  # imports (textworld, jericho) and caches, in this process and in each worker
            run(args, warm, 0.0, None, tasks=2 * args.workers)
        arms = {"serial": (None, 0.0, None), "pool": (pool, 0.0, None),
                "serial+gen": (None, args.gen_latency_ms / 1000, args.max_batch),
                "pool+gen": (pool, args.gen_latency_ms / 1000, args.max_batch)}
        walls: dict[str, list[float]] = {name: [] for name in arms}
        policy_s: dict[str, list[float]] = {name: [] for name in arms}
        results: dict[str, RolloutResult] = {}
        for _ in range(args.repeats):
            for name, (host, latency_s, max_batch) in arms.items():
                results[name], seconds = run(args, host, latency_s, max_batch)
                walls[name].append(results[name].metrics.wall_time_s)
                policy_s[name].append(seconds)
    identical = (results["pool"].episodes == results["serial"].episodes
                 and results["pool+gen"].episodes == results["serial+gen"].episodes)
    if not identical:
        raise SystemExit("the pool's episodes differ from the serial loop's: a bug, not a benchmark result")

    wall = {name: statistics.median(ws) for name, ws in walls.items()}
    steps = sum(ep.num_turns for ep in results["serial"].episodes)
    print(f"{args.env}: {args.tasks} tasks x {args.group_size} samples, {steps} env steps, {args.policy} policy, "
          f"{args.workers} workers, median of {args.repeats}")
    print(f"{'arm':<12} {'wall s':>8} {'policy s':>9} {'env+loop s':>11} {'steps/s':>9}")
    for name in arms:
        policy = statistics.median(policy_s[name])
        print(f"{name:<12} {wall[name]:>8.2f} {policy:>9.2f} {wall[name] - policy:>11.2f} {steps / wall[name]:>9.1f}")
    speedup = wall["serial"] / wall["pool"]
    overlap_speedup = wall["serial+gen"] / wall["pool+gen"]
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "load_average_1min_before": load_before,
        "args": {k: str(v) for k, v in vars(args).items()},
        "env_steps": steps,
        "wall_s": wall,
        "walls_s": walls,
        "policy_s": {name: statistics.median(s) for name, s in policy_s.items()},
        "pool_start_s": pool_start_s,
        "identical": identical,
        "speedup": speedup,
        "overlap_speedup": overlap_speedup,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"pool_start_s: {pool_start_s:.2f}")
    print(f"identical: {int(identical)}")
    print(f"overlap_speedup: {overlap_speedup:.2f}")
    print(f"speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
