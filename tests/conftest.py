"""Shared fixtures: the toy env, the tiny random model (built locally, no downloads)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets gymnasium import `toy_env:ToyEnv`

import toy_env  # noqa: E402

toy_env.register()


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random Llama: deterministic weights, byte-level tokenizer."""
    from agentdistill.models import load_model

    return load_model("tiny-random", device="cpu", dtype="float32")


@pytest.fixture()
def toy_interface():
    return toy_env.ToyInterface()
