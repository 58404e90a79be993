"""Run directories: the names of their files, their JSON-lines logs, and what every job writes next to its
results (``run_info.json``) so a run can be understood and repeated.

A training run directory looks like::

    out_dir/
      run_info.json            resolved config, versions, git revision (write_run_info)
      metrics.jsonl            one JSON object per optimiser step, each with a "step" field
      eval.jsonl               one JSON object per held-out evaluation and view
      checkpoints/             see agentdistill.checkpoints
      plots/                   learning_curves.png, eval.png (agentdistill.report)

Resuming (DESIGN invariant 6): load the latest checkpoint, then ``truncate_metrics`` to its step, so lines a
killed run wrote after the checkpoint are dropped and then written again exactly once.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"

TRACKED_PACKAGES = ("agentdistill", "torch", "transformers", "gymnasium", "hydra-core", "vllm", "agentdistill-sokoban",
                    "agentdistill-alfworld")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def write_run_info(out_dir: str | Path, config: Any) -> Path:
    """Write ``run_info.json`` (resolved config, package versions, git revision, command line)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "config": asdict(config) if is_dataclass(config) and not isinstance(config, type) else config,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "argv": sys.argv,
    }
    path = out / "run_info.json"
    path.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return path


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config ``write_run_info`` kept in ``run_dir`` (empty when the run has no run_info.json)."""
    info = Path(run_dir) / "run_info.json"
    return json.loads(info.read_text()).get("config", {}) if info.exists() else {}


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a JSONL log (a partial last line, left by a killed writer, is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:  # no trailing newline: the writer died mid-line
                break
            raise ValueError(f"{path}:{i + 1} is not a JSON line; remove or repair it") from None
    return rows


def append_metrics(run_dir: str | os.PathLike, metrics: dict[str, Any], name: str = METRICS_FILE) -> None:
    """Append one JSON line to ``run_dir/name`` and fsync it; ``metrics`` must hold a ``step``."""
    if "step" not in metrics:
        raise ValueError(f"a metrics line needs a 'step' field, got keys {sorted(metrics)}")
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All lines of a metrics file or a run directory's ``metrics.jsonl`` (a partial last line is skipped)."""
    path = Path(path)
    return read_jsonl(path / METRICS_FILE if path.is_dir() else path)


def truncate_metrics(run_dir: str | os.PathLike, step: int, name: str = METRICS_FILE) -> None:
    """Keep only lines of ``run_dir/name`` with ``step <= step`` (rewritten atomically); call on resume."""
    path = Path(run_dir) / name
    if not path.exists():
        return
    kept = [row for row in read_metrics(path) if row["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
