"""Run directories: what every job writes next to its results so a run can be understood and repeated."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

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
        "config": asdict(config) if is_dataclass(config) else config,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "argv": sys.argv,
    }
    path = out / "run_info.json"
    path.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return path
