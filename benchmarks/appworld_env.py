"""AppWorld-style env latency: reset, a step that runs plain Python, a step that makes one API call, and a
whole scripted-expert episode; plus the raw API call without the sandbox, side by side.

    python benchmarks/appworld_env.py            # a few seconds on 2 cores
    python benchmarks/appworld_env.py --repeats 200

Prints a table, writes a JSON next to this file (or --out), and ends with headline lines `name: value`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from agentdistill import envs
from agentdistill_appworld.env import ENV_ID, tasks_of
from agentdistill_appworld.world import WorldSpec, build_world


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()

    env = envs.make(ENV_ID, max_turns=10_000)
    env.reset(seed=0)  # warm: scenario variants and reference traces are cached per process
    reset_ms = median_ms(lambda: env.reset(seed=0), max(args.repeats // 10, 5))
    env.step("x = 0")
    python_ms = median_ms(lambda: env.step("x += 1"), args.repeats)
    api_ms = median_ms(lambda: env.step("apis.supervisor.show_profile()"), args.repeats)
    ctx = build_world(WorldSpec())
    raw_ms = median_ms(lambda: ctx.apps["supervisor"].call("show_profile", {}), args.repeats * 10)
    world_ms = median_ms(lambda: build_world(WorldSpec()), max(args.repeats // 10, 5))
    env.close()

    expert = envs.default_interface(ENV_ID)
    n_tasks = len(tasks_of("train"))
    start = time.perf_counter()
    steps = 0
    for seed in range(n_tasks):
        e = envs.make(ENV_ID, max_turns=50, privileged=["expert_plan"])
        _, info = e.reset(seed=seed)
        done = False
        while not done:
            code = expert.parse_action(expert.format_action(info["privileged"]["expert_plan"][0]))
            _, _, done, truncated, info = e.step(code)
            steps += 1
            done = done or truncated
        e.close()
    episode_s = (time.perf_counter() - start) / n_tasks

    rows = {"reset (world + sandbox start)": reset_ms, "step: plain Python": python_ms,
            "step: one API call": api_ms, "API call without the sandbox": raw_ms, "build_world": world_ms}
    print(f"{'what':<34} {'median ms':>10}")
    for name, ms in rows.items():
        print(f"{name:<34} {ms:>10.2f}")
    print(f"{'expert episode (train split)':<34} {episode_s * 1000:>10.1f}  ({steps / n_tasks:.1f} steps)")
    result = {"machine": f"{platform.machine()} {platform.processor()}".strip(), "reset_ms": reset_ms,
              "step_python_ms": python_ms, "step_api_ms": api_ms, "raw_api_ms": raw_ms, "build_world_ms": world_ms,
              "expert_episode_s": episode_s, "expert_steps_per_episode": steps / n_tasks,
              "sandbox_overhead_per_api_call": api_ms / raw_ms}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"step_api_ms: {api_ms:.2f}")
    print(f"reset_ms: {reset_ms:.1f}")
    print(f"sandbox_overhead_per_api_call: {api_ms / raw_ms:.1f}")


if __name__ == "__main__":
    main()
