"""The examples run (on the tiny random model, so they take seconds)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["rollout_sokoban.py", "distill_step.py", "train_pi_distill.py", "icd_agent.py"])
def test_example_runs(script, tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "tiny-random"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
