"""One full training step (rollout + scoring + update) and one held-out evaluation: today's path against the
fast path, side by side in one run, each arm in its own process (so peak memory is that arm's).

- today: ``rollout_engine=hf`` with shared-prefix forwards off (every row runs its whole prompt), which is
  how the loops ran before this benchmark existed;
- fast:  ``rollout_engine=vllm`` (a colocated engine with prefix caching samples rollouts and evaluations;
  weights are copied in after each update) and shared-prefix forwards in scoring and HF sampling (the system
  prompt every turn opens with runs once per micro-batch).

Both arms run the same loop (``--algo``, default OPSD distill, the main job's) from the same weights
(``--init-from``: a warm start, else the model's own) on the same tasks for ``--steps`` steps, then evaluate
both views on ``--eval-tasks`` held-out tasks. vLLM samples with its own random numbers, so the two arms'
episodes differ; what the maths says must be identical is checked on equal inputs and printed: shared-prefix
scoring of one round's turns against plain scoring (log-probs and the parameter gradient), and HF sampling
with and without the shared prefix (same episodes).

    python benchmarks/train_step.py --init-from ~/.cache/agentdistill/warm_start/<hash>   # the main job's step
    python benchmarks/train_step.py                       # SmolLM2-135M, Sokoban, from the raw model
    python benchmarks/train_step.py --model tiny-random   # seconds: correctness only (no vLLM arm)

Prints a table, writes a JSON next to this file (or --out), and ends with the headline lines
``step_speedup: X`` and ``eval_speedup: Y`` (tokens/s, fast over today: a step's tokens are its turns'
student-view prompt + reply tokens, as the loops log them; an evaluation's are the tokens it generated).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ENVS = {"sokoban": "agentdistill/Sokoban-v0", "alfworld": "agentdistill/ALFWorld-v0"}


def arm_config(args: argparse.Namespace, arm: str, out_dir: Path):
    from agentdistill.algos import algorithm
    from agentdistill.config import EnvConfig, EvalConfig, ModelConfig

    env = EnvConfig(ENVS[args.env], max_turns=args.max_turns, teacher_privileged=[args.pi],
                    eval_seed_start=0 if args.env == "alfworld" else 1_000_000,
                    kwargs={"difficulty": "small"} if args.env == "alfworld" else {},
                    eval_kwargs={"split": "valid_unseen"} if args.env == "alfworld" else {},
                    interface={"pi_format": "next_k", "k": 1} if args.env == "alfworld" else {})
    config_class, _ = algorithm(args.algo)
    return config_class(
        model=ModelConfig(args.model, device="cpu", dtype="float32"), env=env,
        eval=EvalConfig(num_tasks=args.eval_tasks, every=0, before=False, temperature=0.0),
        steps=args.steps, tasks_per_step=args.tasks_per_step, group_size=args.group_size, num_tasks=64,
        max_new_tokens=args.max_new_tokens, history_window=args.history_window, out_dir=str(out_dir),
        checkpoint_every=10_000, progress=False, seed=args.seed, init_from=args.init_from,
        max_tokens_per_microbatch=4096,  # the Sokoban budget's (configs/budget/sokoban.yaml)
        rollout_engine="vllm" if arm == "fast" else "hf")


def run_arm(args: argparse.Namespace) -> dict:
    """Child process: train ``--steps`` steps and evaluate once; return timings from the run's own logs."""
    from agentdistill.algos import algorithm
    from agentdistill.runs import read_jsonl, read_metrics
    from agentdistill.scoring import prefix_sharing

    with tempfile.TemporaryDirectory() as tmp, prefix_sharing(args.arm == "fast"):
        cfg = arm_config(args, args.arm, Path(tmp) / "run")
        result = algorithm(args.algo)[1](cfg)
        steps = read_metrics(result.run_dir)
        evals = read_jsonl(result.run_dir / "eval.jsonl")
    return {
        "arm": args.arm,
        "step_time_s": [r["step_time_s"] for r in steps],
        "step_tokens": [r.get("tokens", 0.0) for r in steps],
        "eval_time_s": sum(r["wall_time_s"] for r in evals),
        "eval_tokens": sum(r["tokens_generated"] for r in evals),
        "eval_success": {r["view"]: r["success_rate"] for r in evals},
        "peak_rss_mb": max(r["peak_rss_mb"] for r in steps),
    }


def equality_checks(args: argparse.Namespace) -> dict:
    """On equal inputs: HF rollouts with and without the shared prefix, and scoring (values and gradient)."""
    from agentdistill import envs
    from agentdistill.models import load_model
    from agentdistill.policies import HFPolicy
    from agentdistill.rollout import rollout
    from agentdistill.scoring import prefix_sharing, score
    from agentdistill.views import ViewSpec

    model, tok = load_model(args.model, device="cpu", dtype="float32")
    env_id = ENVS[args.env]
    kwargs = {"difficulty": "small"} if args.env == "alfworld" else {}
    interface = envs.default_interface(env_id)
    rounds = {}
    for shared in (False, True):
        with prefix_sharing(shared):
            policy = HFPolicy(model, tok, temperature=1.0, max_new_tokens=args.max_new_tokens)
            rounds[shared] = rollout(env_id, policy, seeds=range(2), group_size=2, interface=interface,
                                     tokenizer=tok, max_turns=2, env_kwargs=kwargs, progress=False,
                                     view=ViewSpec(history_window=args.history_window), run_seed=args.seed)
    same = [t.response_ids for e in rounds[False].episodes for t in e.turns] == \
           [t.response_ids for e in rounds[True].episodes for t in e.turns]
    turns = [t for e in rounds[False].episodes for t in e.turns]
    grads, logprobs = {}, {}
    for shared in (False, True):
        model.zero_grad(set_to_none=True)
        with prefix_sharing(shared):
            scored = score(model, [t.student_prompt_ids for t in turns], [t.response_ids for t in turns])
        scored.logprobs_BT.sum().backward()
        logprobs[shared] = scored.logprobs_BT.detach()
        grads[shared] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return {
        "same_episodes_shared_prefix": float(same),
        "score_max_abs_diff": float((logprobs[True] - logprobs[False]).abs().max()),
        "grad_rel_diff": float((grads[True] - grads[False]).norm() / grads[False].norm()),
    }


def tokens_per_s(tokens: float, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--env", choices=sorted(ENVS), default="sokoban")
    parser.add_argument("--algo", default="opsd_distill")
    parser.add_argument("--init-from", default=None, help="start both arms from these weights (a warm start)")
    parser.add_argument("--pi", default="expert_plan", help="PI kind for the teacher view")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tasks-per-step", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--history-window", type=int, default=0)
    parser.add_argument("--eval-tasks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=["today", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    if args.arm:  # child
        print("ARM " + json.dumps(run_arm(args)))
        return
    arms = ["today"] + (["fast"] if args.model != "tiny-random" else [])
    results = {}
    for arm in arms:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--arm", arm]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = [x for x in done.stdout.splitlines() if x.startswith("ARM ")]
        if done.returncode != 0 or not line:
            sys.exit(f"the {arm} arm failed:\n{done.stderr[-4000:]}")
        results[arm] = json.loads(line[-1][4:])
    checks = equality_checks(args)
    report(args, results, checks)


def report(args: argparse.Namespace, results: dict, checks: dict) -> None:
    print(f"{args.algo} on {args.env}, {args.model}: {args.tasks_per_step} tasks × {args.group_size} samples, "
          f"{args.max_turns} turns, {args.steps} steps; eval {args.eval_tasks} tasks × 2 views")
    print(f"{'arm':<7} {'step s (median)':>16} {'step tok/s':>11} {'eval s':>8} {'eval tok/s':>11} "
          f"{'peak RSS MB':>12} {'eval success s/t':>17}")
    speeds = {}
    for arm, r in results.items():
        step_s = statistics.median(r["step_time_s"])
        step_tps = tokens_per_s(sum(r["step_tokens"]), sum(r["step_time_s"]))
        eval_tps = tokens_per_s(r["eval_tokens"], r["eval_time_s"])
        speeds[arm] = (step_tps, eval_tps)
        succ = r["eval_success"]
        print(f"{arm:<7} {step_s:>16.1f} {step_tps:>11.1f} {r['eval_time_s']:>8.1f} {eval_tps:>11.1f} "
              f"{r['peak_rss_mb']:>12.0f} {succ.get('student', 0):>8.3f}/{succ.get('teacher', 0):.3f}")
    out = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads", "args": vars(args),
           "arms": results, **checks}
    if "fast" in speeds:
        out["step_speedup"] = speeds["fast"][0] / speeds["today"][0]
        out["eval_speedup"] = speeds["fast"][1] / speeds["today"][1]
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    for key, value in checks.items():
        print(f"{key}: {value:.3g}")
    if "fast" in speeds:
        print(f"step_speedup: {out['step_speedup']:.2f}")
        print(f"eval_speedup: {out['eval_speedup']:.2f}")


if __name__ == "__main__":
    main()
