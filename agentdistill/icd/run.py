"""``agentdistill icd run``: every ICD arm on the same held-out tasks, each call priced, resumable; then the report.

Arms (see ``icd.agent``): ``teacher`` (the teacher acts every step), ``student`` (the student alone, greedy),
``icd`` (the student with k retrieved demo windows, greedy), ``cascade`` (the student with demos, N samples
at ``temperature``, deferring to the teacher when they disagree). Each arm plays the tasks with seeds
``env.eval_seed_start ..`` — the same episodes for every arm — ``chunk_size`` tasks at a time.

Files in ``out_dir``:
- ``episodes.jsonl``: a header naming the job (env, tasks, demos, arms' settings, prices, billing), then one
  line per (arm, task) written after its chunk: won, return, turns, dollars by role, deferrals, and every
  step's record with its priced calls. A line is the commit point of an episode: a run killed (or stopped by
  a teacher endpoint that stays down past its retries) is resumed by rerunning the same command; finished
  episodes are kept and skipped, a cut-off chunk is played again, and a torn last line is dropped.
- ``prices.json``: the price table and billing model every dollar was computed with.
- ``report.json``, ``report.md``, ``pareto.png``: see ``icd.report``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from agentdistill import envs
from agentdistill.config import IcdJobConfig, env_kwargs
from agentdistill.icd.agent import IcdAgent, RetrievalSpec
from agentdistill.icd.agreement import NORMALISERS
from agentdistill.icd.ledger import SAMPLE_BILLING, BillingModel, Ledger
from agentdistill.traces import JsonlLog, read_jsonl
from agentdistill.types import Episode

ARMS = ("teacher", "student", "icd", "cascade")
STUDENTS = ("hf", "vllm", "openai")
TEACHERS = ("expert", "hf", "openai")
EMBEDDERS = ("minilm", "hashing")


def run_icd(cfg: IcdJobConfig) -> dict[str, Any]:
    """Play every arm not yet finished in ``cfg.out_dir``, then write and return the report."""
    from agentdistill.icd.report import icd_report
    from agentdistill.models import load_tokenizer
    from agentdistill.policies.openai import load_prices, price_for
    from agentdistill.rollout import rollout
    from agentdistill.runs import write_run_info
    from agentdistill.views import ViewSpec

    _check(cfg)
    out = Path(cfg.out_dir)
    interface = envs.default_interface(cfg.env.id, **cfg.env.interface)
    kwargs = env_kwargs({**cfg.env.kwargs, **cfg.env.eval_kwargs})
    seeds = list(range(cfg.env.eval_seed_start, cfg.env.eval_seed_start + cfg.num_tasks))
    table = load_prices(cfg.price_table)
    prices = {m: price_for(m, table) for m in sorted({cfg.student_price, cfg.teacher_price})}
    billing = BillingModel(cfg.billing_samples, cfg.prompt_caching)
    demo_cost = demo_collection_cost(cfg.demos) if _needs_demos(cfg) else None
    header = {"env_id": cfg.env.id, "env_kwargs": kwargs, "seeds": seeds, "max_turns": cfg.env.max_turns,
              "demos": str(Path(cfg.demos).resolve()) if cfg.demos else None, "demo_cost_usd": demo_cost,
              "student": _student_name(cfg), "teacher": _teacher_name(cfg), "student_price": cfg.student_price,
              "teacher_price": cfg.teacher_price, "billing": asdict(billing), "samples": cfg.samples,
              "agreement": cfg.agreement, "min_agree": cfg.min_agree, "temperature": cfg.temperature,
              "k": cfg.k, "window": cfg.window, "weights": dict(cfg.weights), "embedder": cfg.embedder,
              "history_window": cfg.history_window, "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed}
    log = JsonlLog.open(out / "episodes.jsonl", header)  # refuses another job's out_dir before writing
    write_run_info(out, cfg)
    (out / "prices.json").write_text(json.dumps(
        {"billing": asdict(billing), "prices": {m: asdict(p) for m, p in prices.items()}}, indent=2) + "\n")
    done = {(r["arm"], r["seed"]) for r in log.records()}
    todo = {arm: [s for s in seeds if (arm, s) not in done] for arm in cfg.arms}
    tokenizer = load_tokenizer(cfg.model.name)
    parts = _Parts(cfg, interface, tokenizer)
    for arm in cfg.arms:
        if not todo[arm]:
            continue
        agent = parts.agent(arm, Ledger(prices, billing))
        bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo[arm]), desc=f"icd {arm}", unit="task",
                   disable=not cfg.progress)
        for start in range(0, len(todo[arm]), cfg.chunk_size):
            chunk = todo[arm][start : start + cfg.chunk_size]
            result = rollout(
                cfg.env.id, agent, seeds=chunk, interface=interface, tokenizer=tokenizer,
                view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.env.max_turns, env_kwargs=kwargs,
                run_seed=cfg.seed, progress=False,
            )
            for ep in result.episodes:
                log.append(episode_record(arm, ep, agent.take(ep.episode_id)))
            bar.update(len(chunk))
        bar.close()
    return icd_report(out)


def episode_record(arm: str, ep: Episode, steps: list) -> dict[str, Any]:
    """One line of episodes.jsonl: the episode's outcome, its dollars by role, and its step records."""
    calls = [c for s in steps for c in s.calls]
    tokens = {role: {"prompt": sum(c["prompt_tokens"] for c in calls if c["role"] == role),
                     "completion": sum(c["completion_tokens"] for c in calls if c["role"] == role)}
              for role in ("student", "teacher")}
    return {"arm": arm, "seed": ep.seed, "task_id": ep.task_id, "task_family": ep.metadata.get("task_family"),
            "won": ep.won, "return": ep.total_reward, "turns": ep.num_turns, "truncated": ep.truncated,
            "error": ep.error, "cost_usd": sum(s.student_usd + s.teacher_usd for s in steps),
            "student_usd": sum(s.student_usd for s in steps), "teacher_usd": sum(s.teacher_usd for s in steps),
            "deferred_steps": sum(s.deferred for s in steps), "steps": len(steps), "tokens": tokens,
            "actions": [t.action for t in ep.turns],
            "step_records": [{k: v for k, v in asdict(s).items() if k != "episode_id"} for s in steps]}


def demo_collection_cost(demos_path: str) -> float:
    """C_demo: dollars of every attempt of the collection that wrote ``demos_path`` (unsolved ones included)."""
    attempts = Path(demos_path).with_name("attempts.jsonl")
    if not attempts.exists():
        raise FileNotFoundError(f"no attempts.jsonl beside {demos_path}: point demos= at the demos.jsonl of an "
                                "`agentdistill icd collect` run")
    records, _ = read_jsonl(attempts)
    return float(sum(r["cost_usd"] for r in records[1:]))


class _Parts:
    """Builds the policies, the demo index and the arms' agents on first use (an arm resumed as done needs none)."""

    def __init__(self, cfg: IcdJobConfig, interface: Any, tokenizer: Any):
        self.cfg, self.interface, self.tokenizer = cfg, interface, tokenizer
        self._cache: dict[str, Any] = {}

    def agent(self, arm: str, ledger: Ledger) -> IcdAgent:
        cfg = self.cfg
        student = None if arm == "teacher" else self._student(cfg.temperature if arm == "cascade" else 0.0)
        teacher = self._teacher() if arm in ("teacher", "cascade") else None
        return IcdAgent(
            student=student, teacher=teacher, interface=self.interface, tokenizer=self.tokenizer, ledger=ledger,
            student_model=cfg.student_price, teacher_model=cfg.teacher_price,
            index=self._index() if arm in ("icd", "cascade") else None,
            retrieval=RetrievalSpec(k=cfg.k, window=cfg.window, weights=dict(cfg.weights)),
            samples=cfg.samples if arm == "cascade" else 1, normaliser=cfg.agreement, min_agree=cfg.min_agree,
            name=arm)

    def _once(self, key: str, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _student(self, temperature: float):
        cfg = self.cfg
        if cfg.student == "hf":
            from agentdistill.models import load_model
            from agentdistill.policies.hf import HFPolicy

            model, tokenizer = self._once("student_model", lambda: load_model(
                cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype))
            model.eval()
            return HFPolicy(model, tokenizer, temperature=temperature, max_new_tokens=cfg.max_new_tokens,
                            name=f"hf:{cfg.model.name}")
        if cfg.student == "vllm":
            from agentdistill.models import model_folder
            from agentdistill.policies.vllm import VLLMPolicy

            # demos make long prompts: allow SmolLM2's full 8k context (vLLM caps it at the model's own)
            engine = self._once("student_vllm", lambda: VLLMPolicy(
                model_folder(cfg.model.name), temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                max_model_len=8192))
            return WithTemperature(engine, temperature)
        from agentdistill.policies.openai import OpenAIClient, OpenAIPolicy

        client = self._once("student_client", lambda: OpenAIClient.from_config(cfg.student_endpoint))
        return OpenAIPolicy(client, temperature=temperature, max_new_tokens=cfg.max_new_tokens)

    def _teacher(self):
        cfg = self.cfg
        if cfg.teacher == "expert":
            from agentdistill.policies import ExpertPolicy

            return ExpertPolicy(self.interface)
        if cfg.teacher == "hf":
            from agentdistill.models import load_model
            from agentdistill.policies.hf import HFPolicy

            model, tokenizer = self._once("teacher_model", lambda: load_model(
                cfg.teacher_model.name, device=cfg.teacher_model.device, dtype=cfg.teacher_model.dtype))
            return HFPolicy(model.eval(), tokenizer, temperature=0.0, max_new_tokens=cfg.max_new_tokens,
                            name=f"hf:{cfg.teacher_model.name}")
        from agentdistill.policies.openai import OpenAIClient, OpenAIPolicy

        client = self._once("teacher_client", lambda: OpenAIClient.from_config(cfg.teacher_endpoint))
        return OpenAIPolicy(client, temperature=0.0, max_new_tokens=cfg.max_new_tokens)

    def _index(self):
        from agentdistill.icd.retrieval import DemoIndex, HashingEmbedder, MiniLMEmbedder, load_demos

        def build():
            embedder = MiniLMEmbedder() if self.cfg.embedder == "minilm" else HashingEmbedder()
            return DemoIndex(load_demos(self.cfg.demos), embedder)

        return self._once("index", build)


class WithTemperature:
    """One colocated vLLM engine serving arms that sample at different temperatures."""

    sees_privileged = False
    needs_privileged: tuple[str, ...] = ()

    def __init__(self, engine: Any, temperature: float):
        self.engine, self.temperature, self.name = engine, temperature, engine.name

    def act(self, prompts):
        saved, self.engine.temperature = self.engine.temperature, self.temperature
        try:
            return self.engine.act(prompts)
        finally:
            self.engine.temperature = saved


def _needs_demos(cfg: IcdJobConfig) -> bool:
    return any(arm in ("icd", "cascade") for arm in cfg.arms)


def _student_name(cfg: IcdJobConfig) -> str:
    return f"openai:{cfg.student_endpoint.model}" if cfg.student == "openai" else f"{cfg.student}:{cfg.model.name}"


def _teacher_name(cfg: IcdJobConfig) -> str:
    if cfg.teacher == "openai":
        return f"openai:{cfg.teacher_endpoint.model}"
    return f"hf:{cfg.teacher_model.name}" if cfg.teacher == "hf" else "expert"


def _check(cfg: IcdJobConfig) -> None:
    bad_arms = [a for a in cfg.arms if a not in ARMS]
    if bad_arms or not cfg.arms or len(set(cfg.arms)) != len(cfg.arms):
        raise ValueError(f"arms must be distinct names from {list(ARMS)}, got {list(cfg.arms)}")
    for what, value, allowed in (("student", cfg.student, STUDENTS), ("teacher", cfg.teacher, TEACHERS),
                                 ("embedder", cfg.embedder, EMBEDDERS), ("agreement", cfg.agreement, NORMALISERS),
                                 ("billing_samples", cfg.billing_samples, SAMPLE_BILLING)):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}: choose from {sorted(allowed)}")
    if _needs_demos(cfg) and not cfg.demos:
        raise ValueError("the icd and cascade arms need demos=<dir>/demos.jsonl: collect them with "
                         "`agentdistill icd collect` (or run arms=[teacher,student])")
    if cfg.samples < 1 or cfg.num_tasks < 1 or cfg.chunk_size < 1 or cfg.k < 1 or cfg.window < 0:
        raise ValueError("samples, num_tasks, chunk_size and k must be >= 1, window >= 0")
    if "cascade" in cfg.arms and cfg.samples > 1 and cfg.temperature <= 0:
        raise ValueError("the cascade's N samples need temperature > 0 (greedy samples always agree)")
    for role, endpoint in (("student", cfg.student_endpoint), ("teacher", cfg.teacher_endpoint)):
        if getattr(cfg, role) == "openai" and not endpoint.model:
            raise ValueError(f"{role}=openai needs {role}_endpoint.model=<served model name> "
                             f"(and {role}_endpoint.base_url=...)")
