"""The study: every method from the same warm start (one per seed) at equal budgets, several seeds, on held-out tasks.

Each (env, method, seed) is one training run under ``runs/study/<env>/<method>/seed<k>`` (a killed run resumes
from its checkpoints); when it finishes, one JSON line with its held-out curve and costs is appended to
``benchmarks/study.jsonl``, and runs that already have a line are skipped, so the study resumes run by run.
``--table`` rebuilds the tables (markdown, printed and written to ``docs/results_study.md``) and one figure of
held-out curves per env (``docs/figures/study_<env>.png``) from the JSON lines alone.

    python benchmarks/study.py                          # every env, method and seed still missing
    python benchmarks/study.py --envs sokoban --methods grpo pi_distill_a0.5 --seeds 0
    python benchmarks/study.py --table                  # tables and figures from study.jsonl

Every run of an env shares the env's settings (``ENVS``): the same warm start (SFT on expert traces under
both views, built once and cached by its settings hash), the same training tasks, steps, tasks per step,
group size and turn budget, and the same held-out tasks (``eval.num_tasks`` env seeds never trained on,
greedy). Continued SFT gets the same number of steps with ``batch_turns`` set to the turns the RL methods
sample per step (its expert turns cost no sampling). Method settings are the presets' (``METHODS``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("study.jsonl")
ROOT = Path(__file__).resolve().parents[1]

ENVS: dict[str, list[str]] = {
    "sokoban": ["env=sokoban"],  # configs/budget/sokoban.yaml: the main job's settings, warm start included
    "alfworld": ["~budget", "env=alfworld", "env.kwargs.difficulty=small", "env.max_turns=12",
                 "env.interface.pi_format=next_k", "env.interface.k=1",
                 "env.interface.prompt=compact", "num_tasks=256", "history_window=1",
                 "max_new_tokens=16", "steps=8", "tasks_per_step=2", "group_size=4", "lr=5e-5",
                 "eval.num_tasks=32", "eval.every=4", "eval.temperature=0.0", "warm_start.steps=12",
                 "rollout_engine=vllm", "checkpoint_every=4", "max_tokens_per_microbatch=4096"],
}
"""Per-env settings shared by every method (command-line overrides of ``agentdistill train``)."""

METHODS: dict[str, list[str]] = {
    "sft": ["algo=sft", "batch_turns=64"],
    "grpo": ["algo=grpo"],
    "opsd_distill": ["algo=opsd_distill"],
    "opsd_reward": ["algo=opsd_reward"],
    "pi_distill_a0": ["algo=pi_distill", "alpha=0.0"],
    "pi_distill_a0.5": ["algo=pi_distill", "alpha=0.5"],
    "pi_distill_a1": ["algo=pi_distill", "alpha=1.0"],
    "skill_sd": ["algo=skill_sd"],
}
"""Method → overrides: the presets' settings, except the env's learning rate (5e-5 for every method: the
presets' rates are meant for hundreds of steps, and 8 steps at them move nothing). Continued SFT takes 64
expert turns per step, about what the on-policy methods sample (2 tasks × 4 rollouts × up to 10 turns)."""


def run_dir(env: str, method: str, seed: int) -> Path:
    return ROOT / "runs" / "study" / env / method / f"seed{seed}"


def read_rows() -> list[dict[str, Any]]:
    """The finished runs' JSON lines."""
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def done_runs() -> set[tuple[str, str, int]]:
    return {(r["env"], r["method"], r["seed"]) for r in read_rows()}


def train_one(env: str, method: str, seed: int) -> dict[str, Any]:
    """Run (or resume) one training run and summarise it from its logs."""
    from agentdistill.runs import read_jsonl, read_metrics

    out = run_dir(env, method, seed)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "agentdistill.cli", "train", *ENVS[env], *METHODS[method],
           f"seed={seed}", f"hydra.run.dir={out}", "progress=false"]
    subprocess.run(cmd, check=True, cwd=ROOT)  # its own process: memory and the vLLM engine go with it
    wall = time.perf_counter() - started
    evals = read_jsonl(out / "eval.jsonl")
    steps = read_metrics(out)
    curve = {v: [(r["step"], r["success_rate"]) for r in evals if r["view"] == v] for v in ("student", "teacher")}
    last = {v: next((r for r in reversed(evals) if r["view"] == v), {}) for v in ("student", "teacher")}
    return {
        "env": env, "method": method, "seed": seed, "curve": curve,
        "student_success": last["student"].get("success_rate"), "teacher_success": last["teacher"].get("success_rate"),
        "start_student_success": curve["student"][0][1] if curve["student"] else None,
        "start_teacher_success": curve["teacher"][0][1] if curve["teacher"] else None,
        "pi_leak_rate": last["student"].get("pi_leak_rate"),
        "sampled_tokens": sum(r.get("tokens", 0.0) for r in steps),
        "wall_time_s": wall, "step_time_s": sum(r["step_time_s"] for r in steps),
        "peak_rss_mb": max((r["peak_rss_mb"] for r in steps), default=0.0),
        "overrides": ENVS[env] + METHODS[method],
    }


def run_study(envs: list[str], methods: list[str], seeds: list[int]) -> None:
    for seed in seeds:  # all methods of seed 0 first: a partial study still compares every method
        for env in envs:
            for method in methods:
                if (env, method, seed) in done_runs():
                    continue
                print(f"== {env} / {method} / seed {seed}", flush=True)
                row = train_one(env, method, seed)
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"   held-out student {row['start_student_success']:.3f} → {row['student_success']:.3f} "
                      f"in {row['wall_time_s']:.0f} s", flush=True)


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown tables, one per env: held-out student success (mean ± std over seeds, and per seed), teacher
    view, PI leak, tokens and wall time."""
    out = []
    for env in sorted({r["env"] for r in rows}):
        mine = [r for r in rows if r["env"] == env]
        starts = {r["seed"]: (r["start_student_success"], r["start_teacher_success"]) for r in mine}
        listed = "; ".join(f"seed {k}: student {st:.3f}, teacher view {te:.3f}"
                           for k, (st, te) in sorted(starts.items()) if st is not None and te is not None)
        out += [f"### {env}", "", f"Warm start (step 0; SFT is seeded, so one per seed): {listed}",
                "", "| method | student success (mean ± std) | per seed | teacher view | PI leak | tokens / run | "
                "wall min / run |", "|---|---|---|---|---|---|---|"]
        for method in METHODS:
            runs = sorted((r for r in mine if r["method"] == method), key=lambda r: r["seed"])
            if not runs:
                continue
            student = [r["student_success"] for r in runs]
            teacher = [r["teacher_success"] for r in runs if r["teacher_success"] is not None]
            out.append(f"| {method} | {mean_std(student)} | {', '.join(f'{x:.3f}' for x in student)} | "
                       f"{mean_std(teacher)} | {statistics.mean(r['pi_leak_rate'] or 0 for r in runs):.3f} | "
                       f"{statistics.mean(r['sampled_tokens'] for r in runs):,.0f} | "
                       f"{statistics.mean(r['wall_time_s'] for r in runs) / 60:.1f} |")
        out.append("")
    return "\n".join(out)


def figures(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for env in sorted({r["env"] for r in rows}):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method in METHODS:
            runs = [r for r in rows if r["env"] == env and r["method"] == method]
            if not runs:
                continue
            steps = [s for s, _ in runs[0]["curve"]["student"]]
            per_step = [[dict(r["curve"]["student"]).get(s) for r in runs] for s in steps]
            means = [statistics.mean(v for v in vals if v is not None) for vals in per_step]
            ax.plot(steps, means, marker="o", label=f"{method} (n={len(runs)})")
        ax.set(xlabel="optimiser step", ylabel="held-out success (student view)", title=f"{env}: the study")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = folder / f"study_{env}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--table", action="store_true", help="only rebuild the tables and figures")
    args = parser.parse_args()
    if not args.table:
        run_study(args.envs, args.methods, args.seeds)
    rows = read_rows()
    if not rows:
        sys.exit(f"no finished runs in {RESULTS} yet")
    text = table(rows)
    print(text)
    (ROOT / "docs" / "results_study.md").write_text("<!-- rebuilt by benchmarks/study.py --table -->\n" + text)
    for path in figures(rows, ROOT / "docs" / "figures"):
        print(f"figure: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
