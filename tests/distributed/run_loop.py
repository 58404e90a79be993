"""Run GRPO or π-Distill on tiny-random Sokoban, in one process or under torchrun (the FSDP tests' worker).

    python tests/distributed/run_loop.py grpo OUT_DIR [--steps 3] [--die-after 1] [--compile]
    torchrun --standalone --nproc-per-node 2 tests/distributed/run_loop.py grpo OUT_DIR

``--die-after K`` kills every process (``os._exit``) right after the checkpoint of step K is written: a run
killed mid-way, for the resume tests. GRPO's env reward is replaced by one that differs between the samples of
a task (the tiny model never wins Sokoban, so the real rewards carry no signal and nothing would train).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from agentdistill.algos import grpo, pi_distill
from agentdistill.config import EnvConfig, EvalConfig, ModelConfig


def _rewards_from_ids(episodes, truncation_reward):
    return torch.tensor([float(sum(ep.turns[0].response_ids) % 3) for ep in episodes], dtype=torch.float64)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("algo", choices=["grpo", "pi_distill"])
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch_compile=true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    module = grpo if args.algo == "grpo" else pi_distill
    shared = dict(model=ModelConfig("tiny-random", device="cpu", dtype="float32"), eval=EvalConfig(num_tasks=2),
                  num_tasks=6, tasks_per_step=3, group_size=2, max_new_tokens=6, steps=args.steps, lr=1e-3,
                  max_tokens_per_microbatch=400, seed=0, out_dir=args.out_dir, checkpoint_every=1,
                  progress=False, torch_compile=args.compile)
    if args.algo == "grpo":
        grpo.episode_rewards = _rewards_from_ids  # type: ignore[assignment]
        cfg = grpo.GRPOConfig(env=EnvConfig("agentdistill/Sokoban-v0", max_turns=2), **shared)
    else:
        cfg = pi_distill.PiDistillConfig(
            env=EnvConfig("agentdistill/Sokoban-v0", max_turns=2, teacher_privileged=["expert_plan"]),
            drop_zero_adv_groups=False, **shared)
    if args.die_after is not None:
        save = module.save_checkpoint

        def save_then_die(run_dir, step, *a, **kw):
            out = save(run_dir, step, *a, **kw)
            if step == args.die_after:
                os._exit(3)
            return out

        module.save_checkpoint = save_then_die  # type: ignore[assignment]
    module.train(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
