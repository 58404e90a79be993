"""``agentdistill icd report RUN_DIR``: accuracy, dollars, deferrals, break-even and savings per arm, and the
cost–accuracy Pareto plot.

Every arm is scored on the tasks that *every* arm of the run has finished (identical episodes); tasks some
arm has not reached yet are left out and counted. Per arm: accuracy (won episodes), mean return and turns,
$/episode (student and teacher parts), deferral rate (steps handed to the teacher / steps), and against the
teacher-only arm (the deployment it replaces): the break-even number of episodes n* = C_demo / (c_teacher −
c_arm) — C_demo being what collecting the demos cost; the student-only arm used none — and the cumulative
savings n·(c_teacher − c_arm) − C_demo at each ``scale``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentdistill.icd.ledger import break_even_episodes, savings_after
from agentdistill.traces import read_jsonl

SCALE = (100, 1_000, 10_000, 100_000)
_DEMO_ARMS = ("icd", "cascade")


def icd_report(run_dir: str | Path, scale: tuple[int, ...] = SCALE) -> dict[str, Any]:
    """Write report.json, report.md and pareto.png into ``run_dir``; print the table; return the report."""
    run_dir = Path(run_dir)
    path = run_dir / "episodes.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no episodes.jsonl in {run_dir}: is it an `agentdistill icd run` directory?")
    records, _ = read_jsonl(path)
    if not records:
        raise ValueError(f"{path} is empty")
    header, episodes = records[0], records[1:]
    by_arm: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in episodes:
        by_arm[r["arm"]][r["seed"]] = r
    arms = [a for a in ("teacher", "student", "icd", "cascade") if a in by_arm]
    if not arms:
        raise ValueError(f"{path} holds no finished episode yet: run `agentdistill icd run` first")
    common = sorted(set.intersection(*(set(by_arm[a]) for a in arms)))
    demo_cost = header.get("demo_cost_usd") or 0.0
    rows = {arm: _arm_row([by_arm[arm][s] for s in common]) for arm in arms}
    teacher_cost = rows["teacher"]["usd_per_episode"] if "teacher" in rows else None
    for arm, row in rows.items():
        if teacher_cost is None or arm == "teacher":
            continue
        c_demo = demo_cost if arm in _DEMO_ARMS else 0.0
        row["demo_cost_usd"] = c_demo
        row["break_even_episodes"] = break_even_episodes(c_demo, teacher_cost, row["usd_per_episode"])
        row["savings_usd"] = {str(n): savings_after(n, c_demo, teacher_cost, row["usd_per_episode"]) for n in scale}
        row["cost_ratio_vs_teacher"] = teacher_cost / row["usd_per_episode"] if row["usd_per_episode"] > 0 else math.inf
        # savings mean little at lower accuracy: every table shows the accuracy given up beside them
        row["accuracy_vs_teacher"] = row["accuracy"] - rows["teacher"]["accuracy"]
    report = {"env_id": header["env_id"], "tasks": len(common),
              "tasks_left_out": sorted(set().union(*(set(v) for v in by_arm.values())) - set(common)),
              "student": header["student"], "teacher": header["teacher"],
              "prices": {"student": header["student_price"], "teacher": header["teacher_price"]},
              "billing": header["billing"], "samples": header["samples"], "agreement": header["agreement"],
              "demo_cost_usd": demo_cost, "arms": rows, "pareto": pareto_front(rows)}
    # JSON has no infinity: "never breaks even" is written as null
    (run_dir / "report.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    (run_dir / "report.md").write_text(render_markdown(report, scale))
    plot_pareto(rows, run_dir / "pareto.png", title=f"{header['env_id']}: {len(common)} tasks")
    _print(report, scale)
    return report


def _arm_row(records: list[dict]) -> dict[str, float]:
    n = max(len(records), 1)
    steps = sum(r["steps"] for r in records)
    return {"episodes": len(records), "accuracy": sum(r["won"] for r in records) / n,
            "mean_return": sum(r["return"] for r in records) / n, "mean_turns": sum(r["turns"] for r in records) / n,
            "usd_per_episode": sum(r["cost_usd"] for r in records) / n,
            "student_usd_per_episode": sum(r["student_usd"] for r in records) / n,
            "teacher_usd_per_episode": sum(r["teacher_usd"] for r in records) / n,
            "deferral_rate": sum(r["deferred_steps"] for r in records) / max(steps, 1),
            "errors": sum(r["error"] is not None for r in records)}


def pareto_front(rows: dict[str, dict]) -> list[str]:
    """Arms no other arm beats on both cost (lower) and accuracy (higher), cheapest first."""
    def point(arm: str) -> tuple[float, float]:
        return rows[arm]["usd_per_episode"], rows[arm]["accuracy"]

    def dominated(a: str) -> bool:
        return any(point(b)[0] <= point(a)[0] and point(b)[1] >= point(a)[1] and point(b) != point(a) for b in rows)
    return sorted((a for a in rows if not dominated(a)), key=lambda a: rows[a]["usd_per_episode"])


def plot_pareto(rows: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    front = pareto_front(rows)
    for arm, row in rows.items():  # a legend, not labels beside the points: arms often sit close together
        ax.scatter(row["usd_per_episode"], row["accuracy"], s=70, zorder=3, marker="o" if arm in front else "X",
                   label=f"{arm} (${row['usd_per_episode']:.4f}, {row['accuracy']:.0%})")
    ax.plot([rows[a]["usd_per_episode"] for a in front], [rows[a]["accuracy"] for a in front], "--", color="grey",
            zorder=2, label="Pareto front")
    ax.set_xlabel("$ per episode")
    ax.set_ylabel("accuracy (tasks won)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_markdown(report: dict[str, Any], scale: tuple[int, ...] = SCALE) -> str:
    billing = report["billing"]
    lines = [f"# ICD report: {report['env_id']}", "",
             f"{report['tasks']} tasks, the same for every arm. Student {report['student']} billed as "
             f"{report['prices']['student']}, teacher {report['teacher']} billed as {report['prices']['teacher']}; "
             f"N = {report['samples']} samples billed as {billing['samples']}, prompt caching "
             f"{'on' if billing['prompt_caching'] else 'off'}; demos cost ${report['demo_cost_usd']:.4f} to collect.",
             "", "| arm | accuracy | Δ accuracy vs teacher | $/episode | student $ | teacher $ | deferral rate "
             "| turns | break-even episodes | " + " | ".join(f"savings @{n:,}" for n in scale) + " |",
             "|---" * (9 + len(scale)) + "|"]
    for arm, r in report["arms"].items():
        savings = r.get("savings_usd", {})
        delta = f"{r['accuracy_vs_teacher']:+.3f}" if "accuracy_vs_teacher" in r else "–"
        lines.append(f"| {arm} | {r['accuracy']:.3f} | {delta} | {r['usd_per_episode']:.5f} | "
                     f"{r['student_usd_per_episode']:.5f} | "
                     f"{r['teacher_usd_per_episode']:.5f} | {r['deferral_rate']:.3f} | {r['mean_turns']:.1f} | "
                     f"{_fmt_episodes(r.get('break_even_episodes'))} | "
                     + " | ".join(f"{savings[str(n)]:.2f}" if str(n) in savings else "–" for n in scale) + " |")
    lines += ["", f"Pareto front (cheapest first): {', '.join(report['pareto'])}.", "", "![pareto](pareto.png)", ""]
    return "\n".join(lines)


def _fmt_episodes(n: float | None) -> str:
    if n is None:
        return "–"
    return "never" if math.isinf(n) else f"{n:,.1f}"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and math.isinf(value) else value


def _print(report: dict[str, Any], scale: tuple[int, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ICD on {report['env_id']}: {report['tasks']} tasks")
    for col in ("arm", "accuracy", "Δ acc", "$/episode", "deferral", "break-even", f"savings @{scale[-1]:,}"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, r in report["arms"].items():
        saving = r.get("savings_usd", {}).get(str(scale[-1]))
        delta = f"{r['accuracy_vs_teacher']:+.3f}" if "accuracy_vs_teacher" in r else "–"
        table.add_row(arm, f"{r['accuracy']:.3f}", delta, f"{r['usd_per_episode']:.5f}", f"{r['deferral_rate']:.3f}",
                      _fmt_episodes(r.get("break_even_episodes")), "–" if saving is None else f"{saving:.2f}")
    Console(width=max(Console().width, 110)).print(table)
    for arm, r in report["arms"].items():
        print(f"accuracy[{arm}]: {r['accuracy']:.3f}")
        print(f"usd_per_episode[{arm}]: {r['usd_per_episode']:.6f}")
