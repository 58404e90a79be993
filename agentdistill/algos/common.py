"""What two or more training loops share: run set-up, sampling rounds, micro-batched updates, logging.

Every loop reads top to bottom with the same explicit steps; none of these helpers keeps state between calls
or writes a field another helper reads::

    run = start_run(cfg, state={"cursor": 0})                  # seed, model, optimiser, resume
    if run.first_step == 0 and cfg.eval.before:
        evaluate(run, 0)
    policy = sampling_policy(run, "student")
    for step in range(run.first_step + 1, cfg.steps + 1):
        started = begin_step(run, step)                        # learning rate of this step, its clock
        result = rollout_round(run, policy, seeds, step=step)  # sampling seeded by (seed, step)
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)   # errored ones leave the update
        ...                                                    # advantages, loss
        loss, grad_norm = update(run, micro, loss_fn)          # one optimiser step over all micro-batches
        sync_sampler(policy, model)                            # a vLLM sampler gets the new weights
        log_step(run, step, metrics, started)
        if eval_due(cfg, step): evaluate(run, step)
        if checkpoint_due(cfg, step): save_checkpoint(run.run_dir, step, model, run.optimizer, state)
    return finish_run(run, step, metrics)

Gradient accumulation keeps the gradient of one big batch: ``backward_microbatches`` computes the global
normaliser of the whole step first, and every micro-batch's loss divides by it.
"""

from __future__ import annotations

import logging
import math
import random
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agentdistill import dist, envs
from agentdistill.algos.batch import backward_microbatches, clip_gradients
from agentdistill.algos.samplers import close_samplers, eval_policy, sampler_gap, sampling_model
from agentdistill.checkpoints import is_peft, latest_checkpoint, load_checkpoint, load_weights
from agentdistill.config import LR_SCHEDULES, LoraConfig, TrainConfig, env_kwargs
from agentdistill.losses.reduce import ReduceMode
from agentdistill.policies.base import Policy
from agentdistill.rollout import RolloutResult, rollout, summarize
from agentdistill.runs import EVAL_FILE, append_metrics, truncate_metrics, write_run_info
from agentdistill.scoring import packing
from agentdistill.types import Episode, TurnSample
from agentdistill.views import DEFAULT_PI_TEMPLATE, ViewSpec

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a finished ``train`` call returns."""

    final_step: int
    """The number of optimiser steps the run has taken (including those before a resume)."""
    metrics: dict[str, float]
    """The last step's logged metrics."""
    run_dir: Path


@dataclass(frozen=True)
class Run:
    """What ``start_run`` set up; the loop owns the step counter and its resumable state."""

    cfg: TrainConfig
    run_dir: Path
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    optimizer: torch.optim.Optimizer
    interface: envs.AgentInterface
    """The env's AgentInterface (``env.interface`` kwargs applied)."""
    view: ViewSpec
    """How prompts are rendered (history window, PI placement and template), in training and evaluation."""
    first_step: int
    """Optimiser steps taken before this call (restored on resume; 0 for a fresh run)."""
    state: Mapping[str, Any]
    """The loop's resumable JSON state at ``first_step`` (data cursor, ...)."""
    resumed_from: Path | None
    """The checkpoint folder this run resumed from (for ``load_module_state``), or None."""
    tb: SummaryWriter | None
    pi_traces: Mapping[str, Any] | None
    """Collected traces by task id (``env.pi_traces``), served as the expert_trace PI kind in rollouts."""
    engines: dict[str, Any] = field(default_factory=dict)
    """The colocated vLLM engine (``rollout_engine=vllm``), or under FSDP the full replica the ranks sample
    from; built on first use and shared by rollouts and evaluation."""
    dist: dist.DistInfo = dist.SINGLE
    """This process's rank and the job's size (``torchrun``); rank 0 of 1 in a plain run."""
    env_pool: Any = None
    """The ``EnvPool`` hosting rollout and evaluation envs (``env_workers`` > 0), else None (in-process)."""


# ---------------------------------------------------------------- set-up


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def view_spec(cfg: TrainConfig) -> ViewSpec:
    """The ViewSpec of a training config (one place, so rollouts, re-rendering and evaluation agree)."""
    return ViewSpec(history_window=cfg.history_window, pi_placement=cfg.pi_placement,  # type: ignore[arg-type]
                    pi_template=cfg.pi_template or DEFAULT_PI_TEMPLATE)


def start_run(cfg: TrainConfig, *, state: Mapping[str, Any], model: torch.nn.Module | None = None,
              tokenizer: Any = None) -> Run:
    """Check ``cfg``, seed, load the model (unless given), add LoRA, build AdamW and resume from the latest
    checkpoint. ``state`` is the loop's initial resumable state; a checkpoint replaces it.

    Metric and evaluation lines written after the checkpoint by a killed run are dropped, so each step is
    logged exactly once.
    """
    from agentdistill.models import compile_layers, load_model

    check_train_config(cfg)
    info = dist.init(cfg.model.device)
    if info.enabled:
        check_distributed_config(cfg)
    spec = view_spec(cfg)
    run_dir = Path(dist.broadcast(cfg.out_dir, info))  # ranks may resolve a timed hydra dir a second apart
    if info.is_main:
        write_run_info(run_dir, cfg)
    seed_everything(cfg.seed)
    if model is None:
        model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    model.train()
    if cfg.gradient_checkpointing:
        lm: Any = model  # a transformers model: torch.nn.Module types its attributes as Tensor | Module
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpoint = latest_checkpoint(run_dir)
    from agentdistill.warmstart import initial_weights

    initial = None
    if checkpoint is None:
        if not info.is_main:  # rank 0 builds an uncached warm start alone; the others then read its cache
            dist.barrier(info)
        initial = initial_weights(cfg)
        if info.is_main:
            dist.barrier(info)
    if initial:
        load_weights(model, initial)
        logger.info("initial weights from %s", initial)
    model = with_lora(model, cfg.lora)
    model = dist.shard(compile_layers(model) if cfg.torch_compile else model, info)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
    interface = envs.default_interface(cfg.env.id, **cfg.env.interface)
    step = 0
    if checkpoint is not None:
        step, state = load_checkpoint(checkpoint, model, optimizer)
        logger.info("resumed from %s (step %d)", checkpoint, step)
    if info.is_main:
        truncate_metrics(run_dir, step)
        truncate_metrics(run_dir, step, EVAL_FILE)
    pi_traces = None
    if cfg.env.pi_traces:
        from agentdistill.traces import load_traces

        pi_traces = load_traces(cfg.env.pi_traces, env_id=cfg.env.id)
    tb = _tensorboard_writer(run_dir) if cfg.tensorboard and info.is_main else None
    from agentdistill.envpool import EnvPool

    pool = EnvPool(cfg.env_workers) if cfg.env_workers else None
    return Run(cfg=cfg, run_dir=run_dir, model=model, tokenizer=tokenizer, optimizer=optimizer, interface=interface,
               view=spec, first_step=step, state=dict(state), resumed_from=checkpoint, tb=tb, pi_traces=pi_traces,
               dist=info, env_pool=pool)


def load_initial_model(cfg: TrainConfig) -> tuple[torch.nn.Module, Any]:
    """The model with its initial weights (``initial_weights``): what a copy-teacher must be built from before
    ``start_run`` resumes the student, so a frozen teacher stays the initial policy in a resumed run too."""
    from agentdistill.models import load_model
    from agentdistill.warmstart import initial_weights

    model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    initial = initial_weights(cfg)
    if initial:
        load_weights(model, initial)
    return model, tokenizer


def with_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    """``model`` with LoRA adapters (a ``peft.PeftModel``; only the adapters train), or as is for rank 0."""
    if lora.rank <= 0 or is_peft(model):
        return model
    try:
        import peft
    except ImportError:
        raise ImportError("lora.rank > 0 needs PEFT: pip install peft (or pip install 'agentdistill[lora]'), "
                          "or set lora.rank=0 for full fine-tuning") from None
    spec = peft.LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,  # type: ignore[arg-type]
                           target_modules=list(lora.target_modules), bias="none")
    return peft.get_peft_model(model, spec)


def check_train_config(cfg: TrainConfig) -> None:
    """Raise one ValueError listing every problem of the shared fields (each loop checks its own)."""
    problems = [f"{name} must be >= {low}, got {getattr(cfg, name)}"
                for name, low in (("steps", 1), ("checkpoint_every", 1), ("env_workers", 0))
                if getattr(cfg, name) < low]
    if cfg.lr_schedule not in LR_SCHEDULES:
        problems.append(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
    if cfg.rollout_engine not in ("hf", "vllm", "server"):
        problems.append(f"rollout_engine must be 'hf', 'vllm' or 'server', got {cfg.rollout_engine!r}")
    if cfg.num_tasks < 1 or cfg.tasks_per_step < 1 or cfg.group_size < 1:
        problems.append("num_tasks, tasks_per_step and group_size must be >= 1")
    if cfg.eval.num_tasks < 0 or cfg.eval.every < 0:
        problems.append("eval.num_tasks and eval.every must be >= 0")
    if not 0.0 <= cfg.max_error_rate <= 1.0:
        problems.append(f"max_error_rate must be in [0, 1], got {cfg.max_error_rate}")
    if cfg.mixed_precision not in (None, "bf16") or (cfg.mixed_precision and cfg.model.dtype != "float32"):
        problems.append(f"mixed_precision must be null or bf16 with model.dtype=float32 (the master weights), got "
                        f"{cfg.mixed_precision} with model.dtype={cfg.model.dtype}")
    if cfg.pi_placement not in ("system", "user"):
        problems.append(f"pi_placement must be 'system' or 'user', got {cfg.pi_placement!r}")
    if cfg.pi_template is not None and "{pi}" not in cfg.pi_template:
        problems.append("pi_template must contain '{pi}' (where the PI text goes)")
    if cfg.env.pi_traces and "expert_trace" not in cfg.env.teacher_privileged:
        problems.append("env.pi_traces serves the expert_trace PI kind: add it, e.g. "
                        "env.teacher_privileged=[expert_trace]")
    if problems:
        raise ValueError("bad training config: " + "; ".join(problems))


def check_distributed_config(cfg: TrainConfig) -> None:
    """Raise a ValueError naming the fix for what a run under ``torchrun`` does not support yet."""
    if cfg.rollout_engine == "vllm":
        raise ValueError("under torchrun, a colocated vLLM engine per rank is not supported: set "
                         "rollout_engine=server (one vllm serve for all ranks) or hf (a replica per rank)")
    if cfg.lora.rank > 0:
        raise ValueError("LoRA under FSDP is not supported yet: set lora.rank=0, or run in one process")
    teacher = getattr(cfg, "teacher", None)  # the OPSD/Skill-SD copy teachers that follow θ
    if teacher in ("ema", "synced"):
        raise ValueError(f"teacher={teacher} follows the sharded student, which is not supported "
                         "under FSDP yet: use teacher=frozen (or current), or run in one process")


def _tensorboard_writer(run_dir: Path) -> SummaryWriter:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("tensorboard=true needs the tensorboard package: pip install tensorboard "
                          "(or set tensorboard=false; metrics.jsonl is always written)") from None
    return SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=None)


def make_optimizer(
    model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0, betas: tuple[float, ...] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad (one group: the same decay everywhere)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    beta1, beta2 = betas
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


# ---------------------------------------------------------------- data order and schedule


def batch_indices(n_items: int, batch_size: int, cursor: int, seed: int) -> list[int]:
    """Items ``cursor .. cursor + batch_size − 1`` of an endless stream of seeded shuffles of ``range(n)``.

    Epoch ``e`` covers stream positions ``[e·n, (e+1)·n)`` in the order ``random.Random(f"{seed}-{e}")``
    shuffles; a batch may span two epochs. Stateless: the cursor alone fixes the batch, so saving it in a
    checkpoint is enough to resume the data order.
    """
    if n_items <= 0:
        raise ValueError("no training items: the data set is empty")
    out = []
    for pos in range(cursor, cursor + batch_size):
        epoch, i = divmod(pos, n_items)
        order = list(range(n_items))
        random.Random(f"{seed}-{epoch}").shuffle(order)
        out.append(order[i])
    return out


def task_seeds(cfg: TrainConfig, cursor: int) -> list[int]:
    """Env reset seeds of one sampling round: positions ``cursor ..`` of a seeded stream over the tasks."""
    return [cfg.env_seed_start + i for i in batch_indices(cfg.num_tasks, cfg.tasks_per_step, cursor, cfg.seed)]


def rollout_seed(seed: int, step: int) -> int:
    """The ``run_seed`` of the sampling round of optimiser step ``step`` (fixed by seed and step)."""
    return seed * 1_000_003 + step - 1


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (1-based): linear warm-up, then constant/linear/cosine.

    Stateless (a function of the step alone), so a resumed run follows the same schedule exactly.
    """
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
    if cfg.warmup_steps > 0 and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - progress)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def begin_step(run: Run, step: int) -> float:
    """Set the learning rate of optimiser step ``step`` and return its start time (``time.perf_counter``)."""
    lr = lr_at(run.cfg, step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return time.perf_counter()


# ---------------------------------------------------------------- sampling rounds


def rollout_round(run: Run, policy: Policy, seeds: Sequence[int], *, step: int, privileged: Sequence[str] = (),
                  act_on: str = "student") -> RolloutResult:
    """Roll ``policy`` out on training tasks ``seeds`` × ``group_size``, sampling seeded by (seed, step).

    ``privileged`` PI kinds are rendered into each turn's teacher view; ``act_on="teacher"`` samples from
    that view (π-Distill). The model is in eval mode while sampling.

    Under ``torchrun`` each rank rolls out its share of the tasks (whole groups) and every rank returns the
    whole round, in the single-process order.
    """
    cfg = run.cfg
    run.model.eval()
    try:
        result = rollout(cfg.env.id, policy, seeds=dist.my_share(seeds, run.dist), group_size=cfg.group_size,
                         interface=run.interface, tokenizer=run.tokenizer, teacher_privileged=list(privileged),
                         view=run.view, max_turns=cfg.env.max_turns, env_kwargs=env_kwargs(cfg.env.kwargs),
                         run_seed=rollout_seed(cfg.seed, step), progress=False,
                         act_on=act_on,  # type: ignore[arg-type]
                         pi_traces=run.pi_traces, env_pool=run.env_pool)
    finally:
        run.model.train()
    if not run.dist.enabled:
        return result
    groups = dist.gather_shares([result.episodes[i:i + cfg.group_size]
                                 for i in range(0, len(result.episodes), cfg.group_size)], run.dist)
    episodes = [ep for group in groups for ep in group]
    tokens = int(dist.all_sum(result.metrics.tokens_generated, run.dist))
    # the ranks sampled side by side: this rank's wall time stands for the round's
    return RolloutResult(episodes=episodes, metrics=summarize(episodes, tokens, result.metrics.wall_time_s))


def usable_episodes(episodes: Sequence[Episode], max_error_rate: float) -> list[Episode]:
    """The episodes without an env error — the only ones that train or enter group statistics.

    Raises RuntimeError with the first error's traceback when more than ``max_error_rate`` of the round
    errored: a broken env must stop the run, not become a stream of zero-reward "failures".
    """
    errored = [ep for ep in episodes if ep.error is not None]
    if episodes and len(errored) / len(episodes) > max_error_rate:
        first = errored[0]
        trace = getattr(first, "error_traceback", None) or first.error
        raise RuntimeError(
            f"{len(errored)} of {len(episodes)} episodes hit an env error (> max_error_rate={max_error_rate}); "
            f"the first, {first.episode_id} (seed {first.seed}):\n{trace}\nFix the env, or raise "
            "max_error_rate to train on the episodes that did not error.")
    if errored:
        logger.warning("%d of %d episodes hit an env error and leave the update (first: %s)", len(errored),
                       len(episodes), errored[0].error)
    return [ep for ep in episodes if ep.error is None]


def round_metrics(run: Run, result: RolloutResult, *, act_on: str = "student") -> dict[str, float]:
    """Success, return, turns, invalid actions, env errors, PI-leak rate and token counts of a sampling
    round (and the vLLM–HF log-prob gap when the sampler is vLLM)."""
    from agentdistill.eval import pi_leak_rate

    m = result.metrics
    tokens = sum(len(t.student_prompt_ids) + len(t.response_ids) for ep in result.episodes for t in ep.turns)
    out = {"success_rate": m.success_rate, "mean_return": m.mean_return, "mean_turns": m.mean_turns,
           "invalid_action_rate": m.invalid_action_rate, "truncation_rate": m.truncation_rate,
           "episodes": len(result.episodes), "errors": m.errors,
           "error_rate": m.errors / max(len(result.episodes), 1),
           "pi_leak_rate": pi_leak_rate(result.episodes, run.tokenizer),
           "rollout_tokens_per_s": m.tokens_per_s, "tokens": tokens}
    return out | sampler_gap(run, result, act_on)


# ---------------------------------------------------------------- the update


def update(run: Run, micro: Sequence[Sequence[TurnSample]],
           loss_fn: Callable[[Sequence[TurnSample], int], torch.Tensor],
           *, mode: ReduceMode = "token_mean") -> tuple[float, float]:
    """One optimiser step over all of ``micro`` (zero grad, accumulate, clip, step); (loss, grad norm).

    Nothing to train (no micro-batch) leaves the weights and the optimiser untouched: (0.0, 0.0).
    """
    if not micro:
        return 0.0, 0.0
    run.optimizer.zero_grad(set_to_none=True)
    device = next(run.model.parameters()).device.type
    with packing(run.cfg.packing), torch.autocast(device, torch.bfloat16, enabled=run.cfg.mixed_precision == "bf16"):
        loss = backward_microbatches(micro, loss_fn, mode=mode, rank=run.dist.rank, world_size=run.dist.world_size,
                                     idle_pass=lambda: _idle_pass(run.model))
    grad_norm = float(clip_gradients(run.model, run.cfg.max_grad_norm))
    run.optimizer.step()
    return dist.all_sum(loss, run.dist), grad_norm


def _idle_pass(model: torch.nn.Module) -> None:
    """A forward and backward of one token at weight zero: FSDP's all-gathers and reduce-scatters without
    gradient, for a rank that has no micro-batch left while the others still do."""
    device = next(model.parameters()).device
    (model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device)).logits.sum() * 0.0).backward()


# ---------------------------------------------------------------- logging, evaluation, checkpoints


def peak_memory_mb() -> dict[str, float]:
    """Peak CUDA memory of this step (on CUDA) and the process's peak resident memory, in MiB."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def log_step(run: Run, step: int, metrics: Mapping[str, float], started: float) -> dict[str, float]:
    """Append step ``step``'s row to ``metrics.jsonl`` (adding lr, wall time, tokens/s, peak memory) and to
    TensorBoard; returns the row."""
    elapsed = time.perf_counter() - started
    row = {"step": step, **metrics, "lr": run.optimizer.param_groups[0]["lr"], "step_time_s": elapsed}
    if "tokens" in metrics:
        row["tokens_per_s"] = metrics["tokens"] / elapsed if elapsed > 0 else 0.0
    row.update(peak_memory_mb())
    if run.dist.is_main:
        append_metrics(run.run_dir, row)
    if run.tb is not None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                run.tb.add_scalar(f"train/{key}", value, step)
        run.tb.flush()
    return row


def eval_due(cfg: TrainConfig, step: int) -> bool:
    """Evaluate after step ``step``: the last step, and every ``eval.every`` steps."""
    return step >= cfg.steps or (cfg.eval.every > 0 and step % cfg.eval.every == 0)


def checkpoint_due(cfg: TrainConfig, step: int) -> bool:
    """Checkpoint after step ``step``: the last step, and every ``checkpoint_every`` steps."""
    return step >= cfg.steps or step % cfg.checkpoint_every == 0


def evaluate(run: Run, step: int) -> list[dict[str, Any]]:
    """Evaluate the current weights on held-out tasks (student view, and the teacher view when the env has
    PI and ``eval.teacher_view``); append one ``eval.jsonl`` row per view. Sampling is seeded by the run's
    seed only, so every evaluation sees the same tasks and the same random numbers."""
    from agentdistill.eval import evaluate as evaluate_views

    cfg = run.cfg
    if cfg.eval.num_tasks == 0:
        return []
    views = ["student"] + (["teacher"] if cfg.eval.teacher_view and cfg.env.teacher_privileged else [])
    logger.info("step %d: evaluating on %d held-out tasks (%s view)", step, cfg.eval.num_tasks, " and ".join(views))
    policy = eval_policy(run)  # vllm or server: a copy holding the weights being evaluated
    # hf under FSDP: every rank refreshes its replica, rank 0 evaluates on it
    model = sampling_model(run) if policy is None else run.model
    if not run.dist.is_main:
        dist.barrier(run.dist)
        return []
    was_training = run.model.training
    run.model.eval()
    try:
        results = evaluate_views(model, run.tokenizer, cfg.env, cfg.eval, views=views,
                                 max_new_tokens=cfg.max_new_tokens, history_window=cfg.history_window,
                                 seed=cfg.seed, interface=run.interface, batch_size=cfg.rollout_batch,
                                 view_spec=run.view, policy=policy, env_pool=run.env_pool)
    finally:
        run.model.train(was_training)
    rows = []
    for r in results:
        row = {"step": step, "view": r.view, **r.metrics}
        append_metrics(run.run_dir, row, EVAL_FILE)
        if run.tb is not None:
            for key, value in r.metrics.items():
                run.tb.add_scalar(f"eval_{r.view}/{key}", value, step)
        rows.append(row)
        logger.info("step %d held-out %s view: success %.3f", step, r.view, r.metrics["success_rate"])
    dist.barrier(run.dist)
    return rows


def finish_run(run: Run, step: int, metrics: dict[str, float]) -> RunResult:
    """Write the plots, close TensorBoard, and return the run's result."""
    from agentdistill.report import write_plots

    if run.dist.is_main:
        write_plots(run.run_dir)
    dist.barrier(run.dist)
    close_samplers(run)
    if run.env_pool is not None:
        run.env_pool.close()
    if run.tb is not None:
        run.tb.close()
    return RunResult(final_step=step, metrics=metrics, run_dir=run.run_dir)

