"""What samples for a training run: the training model itself, a full replica per rank under FSDP, a
colocated vLLM engine holding a copy of the weights, or a separate ``vllm serve`` (``rollout_engine=server``),
and how each gets the updated weights."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from agentdistill import dist
from agentdistill.algos.batch import prompts_of, score_temperature
from agentdistill.policies.base import Policy
from agentdistill.rollout import RolloutResult
from agentdistill.scoring import score

if TYPE_CHECKING:
    from agentdistill.algos.common import Run

logger = logging.getLogger(__name__)


def sampling_policy(run: Run, name: str) -> Policy:
    """The model as a sampling policy at the training temperature and token budget: the training model
    itself (``rollout_engine=hf``), the run's vLLM engine (``vllm``) or its server (``server``)."""
    cfg = run.cfg
    if cfg.rollout_engine == "hf":
        from agentdistill.policies.hf import HFPolicy

        return HFPolicy(sampling_model(run), run.tokenizer, temperature=cfg.temperature,
                        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.rollout_batch, name=name)
    return separate_sampler(run).variant(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, name=name)


def eval_policy(run: Run) -> Policy | None:
    """For a sampler with its own copy of the weights (vllm, server): a variant at the evaluation temperature,
    given the current weights (under FSDP a collective: every rank calls it). None for rollout_engine=hf."""
    if run.cfg.rollout_engine == "hf":
        return None
    engine = separate_sampler(run)
    engine.load_weights(run.model)
    return engine.variant(temperature=run.cfg.eval.temperature, max_new_tokens=run.cfg.max_new_tokens, name="eval")


def separate_sampler(run: Run) -> Any:
    """The run's vLLM engine or server policy (by ``rollout_engine``), built on first use."""
    return vllm_engine(run) if run.cfg.rollout_engine == "vllm" else server_policy(run)


def sampling_model(run: Run) -> torch.nn.Module:
    """The model HF sampling runs on: the training model itself, or under FSDP a full replica per rank built
    on first use (generation on shards would need every rank to run the same number of forward passes)."""
    if not run.dist.enabled:
        return run.model
    if "replica" not in run.engines:
        from agentdistill.models import load_model

        replica, _ = load_model(run.cfg.model.name, device=run.cfg.model.device, dtype=run.cfg.model.dtype)
        for p in replica.parameters():
            p.requires_grad_(False)
        run.engines["replica"] = replica.eval()
    replica = run.engines["replica"]
    replica.load_state_dict(dist.full_state_dict(run.model))
    return replica


def vllm_engine(run: Run) -> Any:
    """The run's colocated vLLM engine, started on first use with the training model's current weights."""
    if "vllm" not in run.engines:
        from agentdistill.models import model_folder
        from agentdistill.policies.vllm import VLLMPolicy

        cfg = run.cfg
        if cfg.lora.rank > 0:
            raise ValueError("rollout_engine=vllm with LoRA is not supported yet (the engine would need the "
                             "merged weights every step): use rollout_engine=hf or lora.rank=0")
        dtype = str(next(run.model.parameters()).dtype).removeprefix("torch.")
        engine = VLLMPolicy(model_folder(cfg.model.name), temperature=cfg.temperature,
                            max_new_tokens=cfg.max_new_tokens, dtype=dtype, seed=cfg.seed, name="vllm")
        engine.load_weights(run.model)  # init_from or resumed weights, not the folder's
        run.engines["vllm"] = engine
    return run.engines["vllm"]


def server_policy(run: Run) -> Any:
    """The run's ``ServerPolicy``: on ``server_url``, or on a ``vllm serve`` that rank 0 starts for the run
    (stopped by ``close_samplers``); it holds the training model's current weights once built. Weight files
    go through ``<run>/server_weights`` (the server must see that path)."""
    if "server" not in run.engines:
        from agentdistill.models import eos_token_ids, model_folder
        from agentdistill.policies.server import ServerPolicy

        cfg = run.cfg
        url = cfg.server_url
        if not url and run.dist.is_main:
            from agentdistill.serving.launch import VLLMServer

            launched = VLLMServer(model_folder(cfg.model.name), seed=cfg.seed,
                                  log_path=run.run_dir / "vllm_server.log").start()
            run.engines["server_process"], url = launched, launched.url
            logger.info("vllm serve for rollouts at %s (started in %.0f s)", url, launched.start_s or 0.0)
        url = str(dist.broadcast(url, run.dist))
        policy = ServerPolicy(url, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                              stop_token_ids=eos_token_ids(run.tokenizer), weight_folder=run.run_dir / "server_weights",
                              name="server")
        policy.load_weights(run.model)  # init_from, warm start or resumed weights, not the folder's
        run.engines["server"] = policy
    return run.engines["server"]


def close_samplers(run: Run) -> None:
    """Close the server clients and stop the servers started for the run (rollouts' and OPD's teacher's); the
    colocated vLLM engine ends with the process."""
    for key in ("server", "teacher"):
        if key in run.engines:
            run.engines.pop(key).close()
    for key in ("server_process", "teacher_process"):
        if key in run.engines:
            run.engines.pop(key).stop()


def sync_sampler(policy: Policy, model: torch.nn.Module) -> None:
    """Give a sampler that holds its own copy of the weights (vLLM) the updated ones; HF samples from
    ``model`` itself and needs nothing."""
    load = getattr(policy, "load_weights", None)
    if callable(load):
        load(model)


@torch.no_grad()
def sampler_gap(run: Run, result: RolloutResult, act_on: str) -> dict[str, float]:
    """|log π_sampler − log π_hf| over the round's sampled tokens, scored in the view that sampled them
    (rollout_engine=vllm or server with ``log_prob_gap``; one extra no-grad forward pass); {} otherwise."""
    from agentdistill.policies.vllm import log_prob_gap

    if run.cfg.rollout_engine == "hf" or not run.cfg.log_prob_gap:
        return {}

    turns = [t for ep in result.episodes for t in ep.turns if t.response_ids and t.sampler_logprobs]
    if not turns:
        return {"logprob_gap_mean": 0.0, "logprob_gap_max": 0.0}
    prompts = prompts_of(turns, act_on)
    scored = score(run.model, prompts, [t.response_ids for t in turns],
                   temperature=score_temperature(run.cfg.temperature),
                   max_tokens_per_microbatch=run.cfg.max_tokens_per_microbatch)
    return log_prob_gap([t.sampler_logprobs or () for t in turns], scored.logprobs_BT, scored.mask_BT)
