"""Full-vocabulary reverse KL side by side in one run: chunked (logits a chunk at a time) vs plain [B, T, V].

Both arms compute KL(p_S ‖ p_T) for the same response tokens from the same hidden states and lm_head weight
(self-distillation: one weight, two views), reduce it with ``token_mean`` and run backward. Each arm runs in
a fresh child process, and its peak memory is the child's peak resident set (``ru_maxrss``) after the
step minus its resident set just before it (inputs built, warm-up done), so the arms cannot pollute each
other. The children also
report the loss and gradients, which must agree.

    python benchmarks/kl_memory.py                         # SmolLM2 and Qwen vocabularies, 2,048 tokens
    python benchmarks/kl_memory.py --vocab 151936 --tokens 4096 --chunk-size 512

Prints a table, writes a JSON next to this file (or --out), and ends with headline lines `name: value`.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from agentdistill.losses import reduce_loss, reverse_kl, reverse_kl_chunked

ARMS = ("plain", "chunked")
PROBE = 512  # gradient entries sent back for the agreement check


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def resident_mib() -> float:
    """The current resident set (not the high-water mark), for a sanity check of the baseline."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return float("nan")
    return int(statm.read_text().split()[1]) * resource.getpagesize() / 2**20


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def make_inputs(tokens: int, vocab: int, hidden: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    student_hidden = torch.randn(1, tokens, hidden, generator=g).requires_grad_(True)
    # The teacher view sees the same response with a different prompt: nearby, not equal, hidden states.
    teacher_hidden = torch.randn(1, tokens, hidden, generator=g).mul_(0.5).add_(student_hidden.detach())
    # Scaled in place: a temporary [V, H] copy would lift the high-water mark above the memory in use.
    lm_head = torch.randn(vocab, hidden, generator=g).mul_(2.0 / hidden**0.5).requires_grad_(True)
    mask = torch.ones(1, tokens, dtype=torch.bool)
    return student_hidden, teacher_hidden, lm_head, mask


def step(arm: str, student_hidden, teacher_hidden, lm_head, mask, chunk_size: int) -> torch.Tensor:
    """One forward + backward of the token-mean reverse KL; returns the loss."""
    if arm == "plain":
        with torch.no_grad():
            teacher_logits = teacher_hidden @ lm_head.T
        loss_BT = reverse_kl(student_hidden @ lm_head.T, teacher_logits, mask)
    else:
        loss_BT = reverse_kl_chunked(student_hidden, teacher_hidden, lm_head, mask, chunk_size=chunk_size)
    loss = reduce_loss(loss_BT, mask, mode="token_mean")
    loss.backward()
    return loss.detach()


def child(args: argparse.Namespace) -> None:
    """Run one arm in this (fresh) process and print one JSON line."""
    # Warm-up on tiny inputs so lazy allocations (thread pools, kernels) land in the baseline; tiny, so
    # that its own high-water mark stays below the baseline taken after the real inputs exist.
    step(args.child, *make_inputs(8, min(args.vocab, 1024), args.hidden, args.seed + 1), args.chunk_size)
    inputs = make_inputs(args.tokens, args.vocab, args.hidden, args.seed)
    student_hidden, teacher_hidden, lm_head, mask = inputs
    highwater_before, resident_before = peak_rss_mib(), resident_mib()
    # The step's peak lies above anything before it, so (high-water after) − (resident before) is its peak.
    baseline = highwater_before if math.isnan(resident_before) else resident_before  # NaN off Linux
    times = []
    for _ in range(args.repeats):
        student_hidden.grad, lm_head.grad = None, None
        start = time.perf_counter()
        loss = step(args.child, student_hidden, teacher_hidden, lm_head, mask, args.chunk_size)
        times.append(time.perf_counter() - start)
    result = {
        "arm": args.child,
        "peak_mib": peak_rss_mib() - baseline,
        "baseline_mib": baseline,
        "highwater_before_mib": highwater_before,
        "time_s": min(times),
        "loss": loss.item(),
        "grad_hidden_norm": student_hidden.grad.norm().item(),
        "grad_lm_head_norm": lm_head.grad.norm().item(),
        "grad_hidden_probe": student_hidden.grad.flatten()[:PROBE].tolist(),
        "grad_lm_head_probe": lm_head.grad.flatten()[:PROBE].tolist(),
    }
    print(json.dumps(result))


def run_arm(arm: str, vocab: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--child", arm, "--vocab", str(vocab), "--tokens", str(args.tokens),
        "--hidden", str(args.hidden), "--chunk-size", str(args.chunk_size), "--repeats", str(args.repeats),
        "--seed", str(args.seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {arm} arm (vocab {vocab}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_rel_diff(a: dict, b: dict) -> float:
    """Largest relative difference between the two arms' loss, gradient norms and gradient probes."""
    scalars = ("loss", "grad_hidden_norm", "grad_lm_head_norm")
    diffs = [abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in scalars]
    for key in ("grad_hidden_probe", "grad_lm_head_probe"):
        x, y = torch.tensor(a[key]), torch.tensor(b[key])
        diffs.append(((x - y).abs().max() / x.abs().max().clamp(min=1e-30)).item())
    return max(diffs)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--vocab", type=int, nargs="+", default=[49152, 151936], help="SmolLM2, Qwen")
    parser.add_argument("--tokens", type=int, default=2048, help="response tokens (B = 1)")
    parser.add_argument("--hidden", type=int, default=576, help="hidden size (SmolLM2-135M: 576)")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per arm; the fastest is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.vocab = args.vocab[0]
        child(args)
        return

    print(f"{'vocab':>7} {'arm':<8} {'peak MiB':>9} {'time s':>7} {'loss':>10}")
    rows = {}
    for vocab in args.vocab:
        arms = {arm: run_arm(arm, vocab, args) for arm in ARMS}
        for arm, r in arms.items():
            print(f"{vocab:>7} {arm:<8} {r['peak_mib']:>9.0f} {r['time_s']:>7.2f} {r['loss']:>10.6f}")
        plain, chunked = arms["plain"], arms["chunked"]
        rows[vocab] = {
            "plain_peak_mib": plain["peak_mib"],
            "chunked_peak_mib": chunked["peak_mib"],
            "plain_time_s": plain["time_s"],
            "chunked_time_s": chunked["time_s"],
            "memory_ratio": chunked["peak_mib"] / plain["peak_mib"],
            "time_ratio": chunked["time_s"] / plain["time_s"],
            "max_rel_diff": max_rel_diff(plain, chunked),
            "loss": plain["loss"],
            "baseline_mib": {arm: r["baseline_mib"] for arm, r in arms.items()},
            "highwater_before_mib": {arm: r["highwater_before_mib"] for arm, r in arms.items()},
        }

    result = {
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items() if k != "child"},
        "note": "peak = child ru_maxrss after the step minus its resident set before; ratio = chunked/plain",
        "results": {str(v): r for v, r in rows.items()},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for vocab, r in rows.items():
        print(f"memory_ratio_v{vocab}: {r['memory_ratio']:.3f}")
    for vocab, r in rows.items():
        print(f"time_ratio_v{vocab}: {r['time_ratio']:.2f}")
    print(f"max_rel_diff: {max(r['max_rel_diff'] for r in rows.values()):.1e}")


if __name__ == "__main__":
    main()
