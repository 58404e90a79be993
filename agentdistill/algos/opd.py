"""On-policy distillation (OPD) from a separate teacher model that shares the student's tokenizer.

Each step rolls out ``tasks_per_step`` tasks × ``group_size`` samples from the student (student view, no
privileged information). The teacher scores the very same ids under the very same prompt — OPD's teacher
sees what the student sees — and the student descends a per-token divergence to the teacher on its own
samples. ``loss`` names it in the loss registry (``agentdistill.losses.LOSSES``, dispatched by
``algos/distill.py``):

- ``"ppo_clip"`` (default): Tinker-style per-token advantage A_t = −sg(ℓ_t), ℓ_t = log π_θ(y_t) − log π_T(y_t),
  in the PPO-clipped surrogate with the sampler's log-probs as π_old; ``"pg_reverse_kl"`` is the plain
  policy-gradient form sg(ℓ_t)·log π_θ(y_t), ``"iw_k3"`` the importance-weighted k3. Each has expected
  gradient ∇KL(π_θ ‖ π_T) on-policy.
- ``"reverse_kl"`` (or ``forward_kl``, ``generalized_jsd``): exact full-vocabulary divergences from both
  models' logits; their ``*_chunked`` versions compute the same from hidden states with O(chunk·V) memory.
- ``"topk_tail_reverse_kl"`` (and the other top-k forms): reverse KL on the teacher's top-k ids plus a tail.

All are token means over the step's response tokens (global normaliser across micro-batches). The logged
``mean_kl`` is the mean of the non-negative k3 estimate e^{−ℓ} − 1 + ℓ over sampled tokens.

The teacher must differ from the student: OPD with the student's own weights has a zero gradient (every
log-ratio is 0), so ``train`` refuses a teacher whose weights equal the student's and names the fix
(a stronger model in ``teacher_model``, or fine-tuned weights in ``teacher_init_from``, e.g. an SFT warm start
teaching the raw model). There is no default teacher.

With ``teacher_engine=server`` the teacher lives in a ``vllm serve`` (``teacher_server_url``, or one started
for the run from ``teacher_model`` with ``teacher_init_from``'s weights pushed in) and only its log-probs reach
the trainer: the sampled-token losses and the top-k forms, at temperature 1 (a server's prompt log-probs are
untempered). The full-vocabulary and chunked losses need the teacher's logits and stay in-process.

Departures from Thinking Machines' recipe: no KL discounting by default (``kl_discount``), one update per
rollout batch, the env reward is logged but not used.

Resume is exact: the task cursor is checkpointed and sampling seeds depend only on (seed, step). Held-out
success is evaluated before training, every ``eval.every`` steps and at the end (``eval.jsonl``).

Run from the command line (``configs/algo/opd.yaml``)::

    agentdistill train algo=opd env=sokoban teacher_model.name=smollm2-135m-instruct \
        teacher_init_from=runs/train/sft/<warm start> steps=20

or from Python::

    from agentdistill.algos.opd import OPDConfig, train
    from agentdistill.config import EnvConfig, ModelConfig
    result = train(OPDConfig(model=ModelConfig("smollm2-135m-instruct"),
                             teacher_model=ModelConfig("/models/smollm2-360m-instruct"),
                             env=EnvConfig("agentdistill/Sokoban-v0"), steps=100, out_dir="runs/opd-sokoban"))

Calling ``train`` again with the same ``out_dir`` resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from agentdistill import dist
from agentdistill.algos.batch import microbatches_by_tokens
from agentdistill.algos.common import (
    Run,
    RunResult,
    begin_step,
    checkpoint_due,
    eval_due,
    evaluate,
    finish_run,
    log_step,
    rollout_round,
    round_metrics,
    start_run,
    task_seeds,
    update,
    usable_episodes,
)
from agentdistill.algos.distill import DivergenceSpec, check_divergence, distill_token_loss
from agentdistill.algos.samplers import sampling_policy, sync_sampler
from agentdistill.checkpoints import load_weights, save_checkpoint
from agentdistill.config import ModelConfig, TrainConfig
from agentdistill.losses import reduce_loss
from agentdistill.models import load_model, model_folder
from agentdistill.serving.launch import VLLMServer
from agentdistill.serving.teacher import ServerTeacher
from agentdistill.serving.weight_sync import ServerWeightSync
from agentdistill.teachers import Teacher, make_teacher
from agentdistill.types import TurnSample

logger = logging.getLogger(__name__)


@dataclass
class OPDConfig(TrainConfig):
    """OPD's own knobs; the shared ones (model, env, tasks, optimiser, eval, run) come from TrainConfig."""

    teacher_model: ModelConfig = field(default_factory=lambda: ModelConfig(name=""))
    """Teacher weights (same tokenizer as the student; required); a null device/dtype follows the student's."""
    teacher_init_from: str | None = None
    """Load the teacher's weights from this training run directory or checkpoint (e.g. an SFT warm start)."""
    teacher_weight_noise: float = 0.0
    """Std of seeded Gaussian noise added to every teacher weight after loading (tests, ablations)."""
    teacher_engine: str = "hf"
    """hf (the teacher model in this process) or server (a ``vllm serve`` scores; the teacher never sits in
    trainer memory once the run starts)."""
    teacher_server_url: str | None = None
    """With teacher_engine=server: a running ``vllm serve`` of the teacher (``http://host:port``); null starts
    one for the run (log in ``<run>/teacher_server.log``)."""
    loss: str = "ppo_clip"
    """A registered distillation loss: ppo_clip, pg_reverse_kl, iw_k3, reverse_kl, forward_kl, generalized_jsd,
    their *_chunked forms, topk_tail_reverse_kl, topk_renorm_reverse_kl, topk_reverse_kl_sg, ... (algos/distill.py)."""
    kl_discount: float = 0.0
    """γ of ``reverse_kl_advantage`` (loss=ppo_clip): 0 gives A_t = −ℓ_t."""
    clip_low: float = 0.2
    """ε_low of the PPO surrogate."""
    clip_high: float = 0.2
    """ε_high of the PPO surrogate."""
    top_k: int = 16
    """Teacher top-k support size of the top-k losses."""
    group_size: int = 1
    """Samples per task (OPD's per-token signal needs no group baseline)."""
    lr: float = 1e-6
    """Peak AdamW learning rate."""
    out_dir: str = "runs/opd"
    """Run directory."""


def train(cfg: OPDConfig) -> RunResult:
    """Run (or resume) OPD as ``cfg`` says; returns the final step, the last metrics and the run dir."""
    _check(cfg)
    spec = DivergenceSpec(cfg.loss, temperature=cfg.temperature, top_k=cfg.top_k, kl_discount=cfg.kl_discount,
                          clip_low=cfg.clip_low, clip_high=cfg.clip_high)
    # ---- set-up: seed, student, optimiser, resume; the teacher (refused if it is the student); evaluation
    run = start_run(cfg, state={"cursor": 0})
    model, start, cursor = run.model, run.first_step, run.state["cursor"]
    step = start
    teacher: Teacher | ServerTeacher
    if cfg.teacher_engine == "server":
        teacher = served_teacher(cfg, run)
    else:
        teacher_model = load_teacher(cfg)
        if step == 0:
            refuse_identical_teacher(model, teacher_model)
        teacher = make_teacher("separate", model, teacher_model=teacher_model)
    if step == 0 and cfg.eval.before:
        evaluate(run, 0)
    policy = sampling_policy(run, "student")
    logger.info("OPD (%s) on %s from teacher %s, %d steps, out_dir=%s", cfg.loss, cfg.env.id,
                cfg.teacher_model.name, cfg.steps, run.run_dir)

    metrics: dict[str, float] = {}
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="OPD",
                     disable=not cfg.progress):
        started = begin_step(run, step)
        # ---- rollout: student view, sampling seeded by the step (a resumed run samples the same)
        result = rollout_round(run, policy, task_seeds(cfg, cursor), step=step)
        episodes = usable_episodes(result.episodes, cfg.max_error_rate)
        sampled = round_metrics(run, result)  # before the update: gap vs the sampling weights
        samples = [t for ep in episodes for t in ep.turns if t.response_ids]

        # ---- loss and update: the teacher scores the student's prompts under no_grad, token mean over the step
        stats: dict[str, float] = {}
        micro = microbatches_by_tokens(samples, cfg.max_tokens_per_microbatch)

        def loss_fn(mb: Sequence[TurnSample], n: int) -> torch.Tensor:
            loss_BT, mask_BT = distill_token_loss(model, teacher, mb, spec, teacher_view="student", stats=stats)
            return reduce_loss(loss_BT, mask_BT, mode="token_mean", normalizer=n)

        loss, grad_norm = update(run, micro, loss_fn)
        cursor += cfg.tasks_per_step

        # ---- sync the sampler, log, evaluate, checkpoint
        tokens = stats.get("tokens", 0.0)
        sync_sampler(policy, model)
        metrics = log_step(run, step, {
            **sampled,
            "mean_kl": stats.get("k3", 0.0) / tokens if tokens else 0.0,
            "clip_fraction": stats.get("clipped", 0.0) / tokens if tokens else 0.0,
            "loss": loss,
            "grad_norm": grad_norm,
            "trained_turns": len(samples),
            "response_tokens": sum(len(s.response_ids) for s in samples),
            "microbatches": len(micro),
        }, started)
        if eval_due(cfg, step):
            evaluate(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run.run_dir, step, model, run.optimizer, {"cursor": cursor})
    return finish_run(run, step, metrics)


def _check(cfg: OPDConfig) -> None:
    if cfg.teacher_engine not in ("hf", "server"):
        raise ValueError(f"teacher_engine must be 'hf' or 'server', got {cfg.teacher_engine!r}")
    if cfg.teacher_engine == "server":
        if check_divergence(cfg.loss) in ("full", "chunked"):
            raise ValueError(f"loss={cfg.loss} needs the teacher's logits, which a server does not send: use a "
                             "sampled-token loss (ppo_clip, pg_reverse_kl, iw_k3) or a top-k one "
                             "(topk_tail_reverse_kl), or teacher_engine=hf")
        if cfg.temperature != 1.0:
            raise ValueError(f"a served teacher scores at temperature 1 only (prompt log-probs are untempered): "
                             f"set temperature=1.0 (got {cfg.temperature}) or teacher_engine=hf")
    if not cfg.teacher_model.name and not (cfg.teacher_engine == "server" and cfg.teacher_server_url):
        raise ValueError("OPD learns from a separate, stronger teacher and has none: set teacher_model.name=<a "
                         "local model folder or embedded name sharing the student's tokenizer>, and for fine-tuned "
                         "weights teacher_init_from=<training run dir> (e.g. an SFT warm start teaching the raw "
                         "model)")
    check_divergence(cfg.loss)
    if not cfg.temperature > 0:
        raise ValueError(f"OPD samples and scores at temperature > 0, got {cfg.temperature}")
    if cfg.top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {cfg.top_k}")
    if cfg.teacher_weight_noise < 0:
        raise ValueError(f"teacher_weight_noise must be >= 0, got {cfg.teacher_weight_noise}")


def served_teacher(cfg: OPDConfig, run: Run) -> ServerTeacher:
    """The teacher behind a ``vllm serve``: on ``teacher_server_url``, or started by rank 0 from
    ``teacher_model`` (stopped at the run's end) and given ``teacher_init_from``'s weights and noise, pushed
    through the weight-transfer API (the teacher passes through trainer memory once, at the start)."""
    url = cfg.teacher_server_url
    if not url:
        if run.dist.is_main:
            server = VLLMServer(model_folder(cfg.teacher_model.name), seed=cfg.seed,
                                log_path=run.run_dir / "teacher_server.log").start()
            run.engines["teacher_process"], url = server, server.url
        url = str(dist.broadcast(url, run.dist))
        if cfg.teacher_init_from or cfg.teacher_weight_noise:
            with ServerWeightSync(url, run.run_dir / "teacher_weights") as sync:
                sync.push(load_teacher(cfg))
    teacher = ServerTeacher(url)
    run.engines["teacher"] = teacher
    logger.info("OPD teacher served at %s", url)
    return teacher


def load_teacher(cfg: OPDConfig) -> torch.nn.Module:
    """The teacher LM in eval mode without grad (``teacher_init_from``'s weights, plus ``teacher_weight_noise``
    seeded by ``cfg.seed``). A null ``teacher_model.device``/``dtype`` takes the student's."""
    spec = cfg.teacher_model
    teacher_model, _ = load_model(spec.name, device=spec.device or cfg.model.device,
                                  dtype=spec.dtype or cfg.model.dtype)
    if cfg.teacher_init_from:
        load_weights(teacher_model, cfg.teacher_init_from)
    teacher_model.eval()
    generator = torch.Generator().manual_seed(cfg.seed + 12345)
    with torch.no_grad():
        for p in teacher_model.parameters():
            p.requires_grad_(False)
            if cfg.teacher_weight_noise > 0 and p.is_floating_point():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float32) * cfg.teacher_weight_noise
                p.add_(noise.to(device=p.device, dtype=p.dtype))
    return teacher_model


@torch.no_grad()
def refuse_identical_teacher(student: torch.nn.Module, teacher: torch.nn.Module) -> None:
    """Raise when ``teacher`` holds exactly the student's weights: every log-ratio would be 0, and so would
    every gradient — a run that "trains" without learning or warning."""
    s_state, t_state = student.state_dict(), teacher.state_dict()
    if s_state.keys() != t_state.keys():
        return
    if all(s_state[k].shape == t_state[k].shape and torch.equal(s_state[k].to(t_state[k].device), t_state[k])
           for k in s_state):
        raise ValueError("OPD's teacher has exactly the student's weights, so every gradient is zero: give a "
                         "stronger teacher (teacher_model.name=<another model>, or teacher_init_from=<a trained "
                         "run>, e.g. an SFT warm start), or start the student elsewhere (init_from=...)")
