"""One training step of Qwen-shaped students at multi-turn lengths: tokens/s, MFU and peak memory, per loop
and per path, side by side in one process. Random weights built from the shapes below (nothing to download).

A step is what the update of a loop costs once its round is sampled: the student scores every turn with grad
(``agentdistill.scoring.score``), the loop's loss (``agentdistill.losses``) is back-propagated one micro-batch
at a time with the step's global token normaliser, then one AdamW step. Loops:

- ``sft``:   token-mean NLL of the responses;
- ``grpo``:  PPO-clip surrogate with the sampler's log-probs as π_old and per-sequence advantages;
- ``opsd``:  the same ids scored by the teacher view (a longer prompt, no grad) and the student descends
             the sampled-token reverse KL (``pg_reverse_kl``) — OPSD distill, π-Distill's student term.

Paths (``--paths``): ``plain`` — weights in the dtype given (bf16 on CUDA), padded micro-batches with the
shared prefix run once; ``bf16_master`` — float32 weights and AdamW state, bf16 autocast
(``mixed_precision=bf16``); ``packed`` — ``plain`` with packed sequences (``packing=true``); ``ckpt`` —
``plain`` with gradient checkpointing; ``compiled`` — ``plain`` with the decoder layers compiled
(``torch_compile=true``; the warm-up step pays the compilation, the timed steps do not).

Model FLOPs per trained token (stated, PaLM appendix B style): 6·N + 12·L·d·S for the forward and backward
pass, where N is the parameter count without embeddings, L the layers, d the hidden size and S the mean
sequence length; a no-grad teacher pass costs a third of that per token. MFU = model FLOPs / (seconds ×
peak); peak ``--peak-tflops`` (default 989, the H100/H200 dense bf16 figure; not printed on a CPU).

    python benchmarks/train_step_gpu.py --shapes qwen2-0.5b qwen2-1.5b --loops sft grpo opsd   # on a GPU
    python benchmarks/train_step_gpu.py --shapes tiny                                        # CPU check

Ends with one ``<shape> <loop> <path>: tokens/s=…, MFU=…, peak GB=…`` line per run and ``best_mfu: X``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch

SHAPES = {  # (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings): the public configs' shapes
    "tiny": (64, 176, 2, 4, 2, 1024, True),
    "qwen2-0.5b": (896, 4864, 24, 14, 2, 151936, True),
    "qwen2-1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "qwen3-4b": (2560, 9728, 36, 32, 8, 151936, True),
    "qwen3-8b": (4096, 12288, 36, 32, 8, 151936, False),
}


def build(shape: str, dtype: torch.dtype, device: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, Qwen2Config

    hidden, inter, layers, heads, kv, vocab, tied = SHAPES[shape]
    config = Qwen2Config(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab,
                         tie_word_embeddings=tied, max_position_embeddings=32768, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.train()


def flops_per_token(model: torch.nn.Module, mean_len: float) -> float:
    """6·N + 12·L·d·S (forward + backward), N without the input embedding."""
    cfg = model.config
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    if cfg.tie_word_embeddings:
        n += cfg.vocab_size * cfg.hidden_size  # the tied head still multiplies
    return 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * mean_len


def batch(args: argparse.Namespace, vocab: int):
    """Multi-turn-like rows: a shared system prompt, per-turn history of varying length, a reply."""
    g = torch.Generator().manual_seed(0)
    system = torch.randint(100, vocab, (args.system,), generator=g).tolist()
    prompts, responses, pi = [], [], torch.randint(100, vocab, (args.pi,), generator=g).tolist()
    for _ in range(args.turns):
        history = int(torch.randint(0, args.history + 1, (1,), generator=g))
        prompts.append(system + torch.randint(100, vocab, (history,), generator=g).tolist())
        reply = int(torch.randint(args.response // 2, args.response + 1, (1,), generator=g))
        responses.append(torch.randint(100, vocab, (reply,), generator=g).tolist())
    teacher_prompts = [p[: args.system] + pi + p[args.system:] for p in prompts]
    return prompts, teacher_prompts, responses


def step(model, optimizer, loop: str, data, args, packed: bool, autocast: bool) -> None:
    from agentdistill.losses import pg_reverse_kl, ppo_clip, reduce_loss
    from agentdistill.scoring import microbatch_groups, packed_groups, packing, score

    prompts, teacher_prompts, responses = data
    n_tokens = sum(map(len, responses))
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    groups = (packed_groups if packed else microbatch_groups)(lengths, args.microbatch_tokens)
    device = next(model.parameters()).device.type
    optimizer.zero_grad(set_to_none=True)
    for group in groups:
        p, r, tp = [prompts[i] for i in group], [responses[i] for i in group], [teacher_prompts[i] for i in group]
        with packing(packed), torch.autocast(device, torch.bfloat16, enabled=autocast):
            student = score(model, p, r)
            if loop == "opsd":
                with torch.no_grad():
                    teacher = score(model, tp, r)
                loss_BT = pg_reverse_kl(student.logprobs_BT, teacher.logprobs_BT, student.mask_BT)
            elif loop == "grpo":
                adv_BT = torch.linspace(-1, 1, len(group), device=student.logprobs_BT.device)[:, None].expand_as(
                    student.logprobs_BT)
                loss_BT = ppo_clip(student.logprobs_BT, student.logprobs_BT.detach(), adv_BT, student.mask_BT)
            else:
                loss_BT = -student.logprobs_BT
            reduce_loss(loss_BT, student.mask_BT, mode="token_mean", normalizer=n_tokens).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def measure(shape: str, loop: str, path: str, args: argparse.Namespace) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if path == "bf16_master" or device == "cpu" else torch.bfloat16
    model = build(shape, dtype, device)
    if path == "ckpt":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if path == "compiled":
        from agentdistill.models import compile_layers

        compile_layers(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95), fused=device == "cuda")
    data = batch(args, model.config.vocab_size)
    packed, autocast = path == "packed", path == "bf16_master" and device == "cuda"
    step(model, optimizer, loop, data, args, packed, autocast)  # warm-up: allocator, kernels, AdamW state
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        step(model, optimizer, loop, data, args, packed, autocast)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    seconds = sorted(times)[len(times) // 2]
    prompts, teacher_prompts, responses = data
    tokens = sum(len(p) + len(r) for p, r in zip(prompts, responses, strict=True))
    mean_len = tokens / len(prompts)
    flops = flops_per_token(model, mean_len) * tokens
    if loop == "opsd":  # the teacher view's no-grad pass: a third of a trained token
        flops += flops_per_token(model, mean_len) / 3 * sum(len(p) + len(r) for p, r in zip(teacher_prompts,
                                                                                              responses, strict=True))
    out = {"shape": shape, "loop": loop, "path": path, "device": device, "tokens": tokens, "seconds": seconds,
           "tokens_per_s": tokens / seconds, "tflops": flops / seconds / 1e12,
           "mfu": flops / seconds / (args.peak_tflops * 1e12) if device == "cuda" else None,
           "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
    del model, optimizer
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["tiny"], choices=sorted(SHAPES))
    parser.add_argument("--loops", nargs="+", default=["sft", "grpo", "opsd"], choices=["sft", "grpo", "opsd"])
    parser.add_argument("--paths", nargs="+", default=["plain", "bf16_master", "packed", "ckpt", "compiled"])
    parser.add_argument("--turns", type=int, default=32, help="turns (sequences) in the step")
    parser.add_argument("--system", type=int, default=512, help="shared system-prompt tokens")
    parser.add_argument("--history", type=int, default=2048, help="most history tokens after it (uniform)")
    parser.add_argument("--response", type=int, default=256, help="most reply tokens (uniform from half)")
    parser.add_argument("--pi", type=int, default=256, help="PI tokens in the teacher view")
    parser.add_argument("--microbatch-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.shapes == ["tiny"]:  # CPU check: short rows
        args.system, args.history, args.response, args.pi = min(args.system, 64), min(args.history, 64), \
            min(args.response, 16), min(args.pi, 16)
    results = []
    for shape in args.shapes:
        for loop in args.loops:
            for path in args.paths:
                try:
                    results.append(measure(shape, loop, path, args))
                except torch.OutOfMemoryError:
                    results.append({"shape": shape, "loop": loop, "path": path, "error": "out of memory"})
                    gc.collect()
                    torch.cuda.empty_cache()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        if "error" in r:
            print(f"{r['shape']} {r['loop']} {r['path']}: {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        peak = f"{r['peak_gb']:.1f}" if r["peak_gb"] is not None else "n/a"
        print(f"{r['shape']} {r['loop']} {r['path']}: tokens/s={r['tokens_per_s']:.0f}, TFLOP/s={r['tflops']:.2f}, "
              f"MFU={mfu}, peak GB={peak}, step s={r['seconds']:.3f}")
    mfus = [r["mfu"] for r in results if r.get("mfu") is not None]
    print(f"best_mfu: {max(mfus):.3f}" if mfus else "best_mfu: n/a (no GPU)")


if __name__ == "__main__":
    main()
