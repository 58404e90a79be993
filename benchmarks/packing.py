"""Packed against padded scoring of one training step's turns: the forward and backward pass of the loss's
scoring, values and gradients compared, side by side in one process.

- padded: today's default — each micro-batch left-padded, its shared prefix (the system prompt) run once;
- packed: ``scoring.packing(True)`` — each micro-batch's sequences end to end in one row, no padding.

The turns are a real round: ``--tasks`` tasks × ``--group-size`` HF rollouts of ``--model`` on ``--env`` with
the given history window (0: each prompt is the system prompt and the current observation, the main job's
setting; 2 or more: prompts of different lengths, where padding costs). Timings are medians of ``--repeats``.

    python benchmarks/packing.py                                    # SmolLM2-135M, Sokoban, history 0
    python benchmarks/packing.py --history-window 4 --env alfworld  # long, uneven prompts
    python benchmarks/packing.py --model tiny-random                # seconds: correctness only

Ends with ``packed_speedup: X`` (padded time over packed time; > 1 means packing is faster here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

ENVS = {"sokoban": "agentdistill/Sokoban-v0", "alfworld": "agentdistill/ALFWorld-v0"}


def step(model, turns, packed: bool, budget: int):
    """One scoring forward + backward (sum of log-probs) over ``turns``, a backward per micro-batch as in the
    loops: (seconds, log-probs per turn, flat gradient)."""
    from agentdistill.scoring import microbatch_groups, packed_groups, packing, score

    model.zero_grad(set_to_none=True)
    lengths = [len(t.student_prompt_ids) + len(t.response_ids) for t in turns]
    groups = (packed_groups if packed else microbatch_groups)(lengths, budget)
    logprobs = []
    started = time.perf_counter()
    for group in groups:
        with packing(packed):
            scored = score(model, [turns[i].student_prompt_ids for i in group], [turns[i].response_ids for i in group])
        scored.logprobs_BT.sum().backward()
        logprobs += [row[mask] for row, mask in zip(scored.logprobs_BT.detach(), scored.mask_BT, strict=True)]
    seconds = time.perf_counter() - started
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return seconds, torch.cat(logprobs), grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--env", choices=sorted(ENVS), default="sokoban")
    parser.add_argument("--history-window", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--budget", type=int, default=4096, help="max_tokens_per_microbatch of the padded arm")
    parser.add_argument("--packed-budget", type=int, default=1024,
                        help="max_tokens_per_microbatch of the packed arm: SDPA materialises an N × N block-diagonal "
                             "mask and attention matrix per head and layer, so N = 4096 runs out of 24 GB here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from agentdistill import envs
    from agentdistill.models import load_model
    from agentdistill.policies import HFPolicy
    from agentdistill.rollout import rollout
    from agentdistill.views import ViewSpec

    torch.manual_seed(0)
    model, tok = load_model(args.model, device="cpu", dtype="float32")
    env_id = ENVS[args.env]
    result = rollout(env_id, HFPolicy(model, tok, temperature=1.0, max_new_tokens=args.max_new_tokens),
                     seeds=range(args.tasks), group_size=args.group_size, interface=envs.default_interface(env_id),
                     tokenizer=tok, max_turns=args.max_turns, progress=False,
                     env_kwargs={"difficulty": "small"} if args.env == "alfworld" else {},
                     view=ViewSpec(history_window=args.history_window))
    turns = [t for ep in result.episodes for t in ep.turns if t.response_ids]
    lengths = [len(t.student_prompt_ids) + len(t.response_ids) for t in turns]
    model.train()
    step(model, turns[:2], True, args.packed_budget)  # warm-up
    runs: dict[str, list] = {"padded": [], "packed": []}
    for _ in range(args.repeats):
        for arm in runs:
            packed = arm == "packed"
            runs[arm].append(step(model, turns, packed, args.packed_budget if packed else args.budget))
    seconds = {arm: statistics.median(r[0] for r in rs) for arm, rs in runs.items()}
    (_, lp_padded, g_padded), (_, lp_packed, g_packed) = runs["padded"][0], runs["packed"][0]
    report = {
        "model": args.model, "env": args.env, "history_window": args.history_window, "turns": len(turns),
        "budget": args.budget, "packed_budget": args.packed_budget,
        "tokens": sum(lengths), "longest": max(lengths), "shortest": min(lengths),
        "padded_s": seconds["padded"], "packed_s": seconds["packed"],
        "logprob_max_abs_diff": float((lp_packed - lp_padded).abs().max()),
        "grad_rel_diff": float((g_packed - g_padded).norm() / g_padded.norm()),
        "packed_speedup": seconds["padded"] / seconds["packed"],
    }
    for key, value in report.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
