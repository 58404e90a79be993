"""Plots and tables of a training run directory (``agentdistill report RUN_DIR``).

Reads ``metrics.jsonl`` (one row per optimiser step) and ``eval.jsonl`` (one row per held-out evaluation
and view) and writes ``plots/learning_curves.png`` and ``plots/eval.png``. Torch-free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdistill.runs import EVAL_FILE, METRICS_FILE, read_jsonl

logger = logging.getLogger(__name__)

CURVE_KEYS = (
    "loss", "success_rate", "mean_return", "mean_kl", "entropy", "zero_adv_fraction", "clip_fraction",
    "teacher_clip_frac", "student_clip_frac", "alpha", "loss_sdl", "skill_coverage", "bank_size",
    "bank_mean_usefulness", "summaries_failed", "pi_leak_rate", "grad_norm", "lr", "tokens_per_s",
)
"""Metrics drawn in the learning curves, in this order, when a run logs them."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no plot written (pip install matplotlib)")
        return None
    return plt


def plot_metrics(
    metrics_path: str | os.PathLike, out_png: str | os.PathLike, keys: Sequence[str] | None = None
) -> Path | None:
    """Plot ``keys`` (default: the ``CURVE_KEYS`` the log holds) of a metrics file against ``step``.

    One panel per key, three to a row. Returns the PNG path, or None when there is nothing to plot or matplotlib
    is missing.
    """
    rows = read_jsonl(Path(metrics_path) / METRICS_FILE if Path(metrics_path).is_dir() else metrics_path)
    logged = {k for r in rows for k in r}
    keys = [k for k in (keys if keys is not None else CURVE_KEYS) if k in logged]
    plt = _pyplot()
    if plt is None or not keys:
        return None
    ncols = min(3, len(keys))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 30 else None)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, plt, out_png)


def plot_eval(eval_path: str | os.PathLike, out_png: str | os.PathLike) -> Path | None:
    """Held-out success rate (and PI-leak rate) against step, one line per view."""
    rows = read_jsonl(eval_path)
    plt = _pyplot()
    if plt is None or not rows:
        return None
    fig, axes = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
    for view in sorted({r["view"] for r in rows}):
        mine = [r for r in rows if r["view"] == view]
        for ax, key in zip(axes, ("success_rate", "pi_leak_rate"), strict=False):
            ax.plot([r["step"] for r in mine], [r[key] for r in mine], marker="o", label=f"{view} view")
            ax.set_ylabel(f"held-out {key}")
            ax.grid(alpha=0.3)
    axes[0].legend()
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    return _save(fig, plt, out_png)


def _save(fig: Any, plt: Any, out_png: str | os.PathLike) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def write_plots(run_dir: str | os.PathLike) -> list[Path]:
    """``plots/learning_curves.png`` and ``plots/eval.png`` of a run (those it has data for)."""
    run_dir = Path(run_dir)
    made = [plot_metrics(run_dir / METRICS_FILE, run_dir / "plots" / "learning_curves.png"),
            plot_eval(run_dir / EVAL_FILE, run_dir / "plots" / "eval.png")]
    return [p for p in made if p is not None]


def eval_table(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The evaluation rows of a run, in step order."""
    return sorted(read_jsonl(Path(run_dir) / EVAL_FILE), key=lambda r: (r["step"], r["view"]))


def print_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Print the evaluation table and the before → after lines; write the plots. Returns the summary."""
    from rich.console import Console
    from rich.table import Table

    run_dir = Path(run_dir)
    if not (run_dir / METRICS_FILE).exists() and not (run_dir / EVAL_FILE).exists():
        raise FileNotFoundError(f"{run_dir} has no {METRICS_FILE} or {EVAL_FILE}: pass a training run directory")
    rows = eval_table(run_dir)
    steps = read_jsonl(run_dir / METRICS_FILE)
    table = Table(title=f"held-out evaluation: {run_dir}")
    columns = [("step", "step"), ("view", "view"), ("success", "success_rate"), ("return", "mean_return"),
               ("turns", "mean_turns"), ("invalid", "invalid_action_rate"), ("PI leak", "pi_leak_rate"),
               ("wall s", "wall_time_s")]
    for header, _ in columns:
        table.add_column(header, justify="left" if header == "view" else "right")
    for r in rows:
        table.add_row(*(_fmt(r.get(key, "")) for _, key in columns))
    console = Console(width=max(Console().width, 110))
    console.print(table)
    summary: dict[str, Any] = {"steps": steps[-1]["step"] if steps else 0}
    for view in ("student", "teacher"):
        mine = [r for r in rows if r["view"] == view]
        if mine:
            first, last = mine[0], mine[-1]
            summary[view] = {"before_step": first["step"], "before": first["success_rate"],
                             "after_step": last["step"], "after": last["success_rate"]}
            print(f"held-out success [{view} view]: {first['success_rate']:.3f} (step {first['step']}) → "
                  f"{last['success_rate']:.3f} (step {last['step']})")
    for path in write_plots(run_dir):
        print(f"plot: {path}")
    return summary


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
