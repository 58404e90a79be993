"""``agentdistill collect``: run a teacher on tasks and keep its successful action traces as a PI dataset.

The teacher is the env's expert (its solver), a local transformers model (``teacher=hf``) or any
OpenAI-compatible endpoint (``teacher=openai endpoint.base_url=... endpoint.model=...``). Tasks are rolled
out ``chunk_size`` at a time, ``attempts`` samples each; after every chunk each task gets one line in
``attempts.jsonl`` (solved or not, turns, dollars, the trace and demo steps if solved), then each solved
task one ``Trace`` in ``traces.jsonl`` (its valid actions in order) and one line per step in ``demos.jsonl``
(goal, the observation acted on, the full reply, the action, the outcome, reward: the per-step records
in-context distillation retrieves). Every line is flushed and fsynced before the next is written, so the
attempt line is the commit point of a task.

Resuming: rerun the same command with the same ``out_dir``. A partial last line left by a kill is cut off; a
trace or demo lines whose attempt line was written but not they themselves are written from it; tasks
with an attempt line are skipped; a chunk cut short by the kill is rolled out again.
Because every sample's seed depends only on (seed, task, sample, turn), the resumed files hold the same
lines as an uninterrupted run's. A different job in the same ``out_dir`` (another env, split or teacher) is
refused.

Use the traces for training with ``env.pi_traces=<out_dir>/traces.jsonl`` (PI kind ``expert_trace``).

Pricing a teacher that reports no cost (``price_as``: the env expert or a local model billed as an expensive
model) is a hook, ``TeacherPricer``: the collector serves every consumer of its files and knows no one way of
billing. The command line passes the ICD cost ledger's (``priced_teacher`` in ``icd/agent.py``), so the
``collect price_as=...`` and ``icd collect`` commands bill exactly as an ICD run does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm.auto import tqdm

from agentdistill import envs
from agentdistill.config import CollectJobConfig, env_kwargs
from agentdistill.policies.base import Policy
from agentdistill.traces import JsonlLog, Trace
from agentdistill.types import Episode

if TYPE_CHECKING:
    from agentdistill.envs import AgentInterface
    from agentdistill.policies.openai import Price

TEACHERS = ("expert", "hf", "openai")
SPLITS = ("train", "eval")


class TeacherPricer(Protocol):
    """Bills a teacher that reports no cost as ``model`` would be billed: returns a policy that acts exactly as
    ``teacher`` and sets each reply's ``Completion.cost_usd`` (which the rollout sums into
    ``Episode.metadata["cost_usd"]``, the dollars in ``attempts.jsonl``).

    ``tokenizer`` counts the tokens of a teacher that reports none (``model``'s own tokenizer, or the local
    teacher's); ``name`` is the returned policy's name (it is written in the files' headers, so a resumed
    run must get the same one).
    """

    def __call__(self, teacher: Policy, *, model: str, price: Price, interface: AgentInterface, tokenizer: Any,
                 name: str) -> Policy: ...


@dataclass(frozen=True)
class CollectSummary:
    tasks: int
    solved: int
    success_rate: float
    cost_usd: float
    """Dollars over every attempt in the files, earlier (resumed) runs included."""
    traces_path: str
    new_tasks: int
    """Tasks rolled out by this invocation (the rest were done by an earlier one)."""


def _complete_interrupted(done: dict[int, dict], traces: JsonlLog, demos: JsonlLog) -> set[int]:
    """Write the trace and demo lines of tasks whose attempt line a kill left without them; the solved seeds."""
    solved_seeds = {r["seed"] for r in traces.records()}
    demo_ids = {r["demo_id"] for r in demos.records()}
    for record in done.values():
        if record["trace"] is not None and record["seed"] not in solved_seeds:
            traces.append(Trace(**{**record["trace"], "actions": tuple(record["trace"]["actions"])}))
            solved_seeds.add(record["seed"])
        for step in record.get("demo") or []:
            if step["demo_id"] not in demo_ids:
                demos.append(step)
    return solved_seeds


def collect(cfg: CollectJobConfig, *, pricer: TeacherPricer | None = None) -> CollectSummary:
    """Roll the teacher out on the split's tasks not yet in ``out_dir`` and append what it solved.

    ``pricer`` bills the teacher as ``cfg.price_as`` (required when that is set, unused otherwise).
    """
    from agentdistill.rollout import rollout
    from agentdistill.runs import write_run_info
    from agentdistill.views import ViewSpec

    _check(cfg, pricer)
    out = Path(cfg.out_dir)
    kwargs, seeds = _tasks(cfg)
    interface = envs.default_interface(cfg.env.id, **cfg.env.interface)
    policy, tokenizer, prices = _teacher(cfg, interface, pricer)
    header = {"env_id": cfg.env.id, "env_kwargs": kwargs, "split": cfg.split, "teacher": policy.name}
    traces = JsonlLog.open(out / "traces.jsonl", header)  # refuses another job's out_dir before writing
    attempts = JsonlLog.open(out / "attempts.jsonl", header)
    demos = JsonlLog.open(out / "demos.jsonl", header)
    write_run_info(out, cfg)
    if prices:  # the price table is stored with the run (what the dollars were computed from)
        (out / "prices.json").write_text(json.dumps({m: asdict(p) for m, p in prices.items()}, indent=2) + "\n")
    done = {r["seed"]: r for r in attempts.records()}
    solved_seeds = _complete_interrupted(done, traces, demos)
    todo = [s for s in seeds if s not in done]
    solved = len(solved_seeds & set(seeds))
    cost = sum(r["cost_usd"] for r in done.values())
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc=f"collect {policy.name}", unit="task",
               disable=not cfg.progress)
    for start in range(0, len(todo), cfg.chunk_size):
        chunk = todo[start : start + cfg.chunk_size]
        result = rollout(
            cfg.env.id, policy, seeds=chunk, group_size=cfg.attempts, interface=interface, tokenizer=tokenizer,
            view=ViewSpec(history_window=cfg.history_window), max_turns=cfg.env.max_turns, env_kwargs=kwargs,
            run_seed=cfg.seed, progress=False,
        )
        by_seed: dict[int, list[Episode]] = defaultdict(list)
        for ep in result.episodes:
            by_seed[ep.seed].append(ep)
        for seed in chunk:
            episodes = by_seed[seed]
            winner = next((ep for ep in episodes if ep.won), None)
            task_cost = sum(ep.metadata.get("cost_usd", 0.0) for ep in episodes)
            trace = _trace(winner, task_cost) if winner is not None else None
            steps = demo_steps(winner, task_cost) if winner is not None else None
            attempts.append(_attempt(seed, episodes, trace, task_cost, steps))
            if trace is not None:
                traces.append(trace)
                for step in steps:
                    demos.append(step)
                solved += 1
            cost += task_cost
        bar.update(len(chunk))
        finished = bar.n
        bar.set_postfix(success=f"{solved / max(finished, 1):.2f}", cost=f"${cost:.4f}")
    bar.close()
    summary = CollectSummary(tasks=len(seeds), solved=solved, success_rate=solved / len(seeds), cost_usd=cost,
                             traces_path=str(traces.path), new_tasks=len(todo))
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    usage = getattr(policy, "usage", None)
    if usage is not None:
        print(f"this run: {usage.calls} calls, {usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
              f"tokens, {usage.retries} retries, ${usage.cost_usd:.4f}")
    print(f"solved {solved}/{len(seeds)} tasks ({summary.success_rate:.1%}), ${cost:.4f} in all; traces: "
          f"{traces.path}")
    print(f"train with them: env.pi_traces={traces.path} env.teacher_privileged=[expert_trace]")
    return summary


def _check(cfg: CollectJobConfig, pricer: TeacherPricer | None) -> None:
    if cfg.teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {cfg.teacher!r}: choose from {list(TEACHERS)}")
    if cfg.split not in SPLITS:
        raise ValueError(f"unknown split {cfg.split!r}: choose from {list(SPLITS)}")
    if cfg.num_tasks < 1 or cfg.attempts < 1 or cfg.chunk_size < 1:
        raise ValueError("num_tasks, attempts and chunk_size must be >= 1")
    if cfg.teacher == "openai" and not cfg.endpoint.model:
        raise ValueError("teacher=openai needs endpoint.model=<served model name> (and endpoint.base_url=...)")
    if cfg.teacher == "openai" and cfg.price_as:
        raise ValueError("price_as prices teachers that report no cost (expert, hf); an endpoint is priced by "
                         "endpoint.price_in/price_out or configs/prices.yaml")
    if cfg.price_as and pricer is None:
        raise ValueError(f"price_as={cfg.price_as!r} needs a pricer to bill the teacher with: use the command "
                         "line's `collect` or `icd collect` (they pass the ICD ledger's), or call "
                         "collect(cfg, pricer=priced_teacher) with priced_teacher from icd/agent.py")


def _tasks(cfg: CollectJobConfig) -> tuple[dict[str, Any], list[int]]:
    if cfg.split == "train":
        return env_kwargs(cfg.env.kwargs), list(range(cfg.seed_start, cfg.seed_start + cfg.num_tasks))
    first = cfg.env.eval_seed_start
    return env_kwargs({**cfg.env.kwargs, **cfg.env.eval_kwargs}), list(range(first, first + cfg.num_tasks))


def _teacher(cfg: CollectJobConfig, interface: AgentInterface, pricer: TeacherPricer | None):
    """(policy, tokenizer or None, {model: price} or None) for ``cfg.teacher``, billed by ``pricer`` as
    ``cfg.price_as`` when that is set (``_check`` made sure a pricer was given)."""
    policy, tokenizer, prices = _unpriced_teacher(cfg, interface)
    if not cfg.price_as:
        return policy, tokenizer, prices
    assert pricer is not None
    from agentdistill.models import load_tokenizer
    from agentdistill.policies.openai import price_for

    price = price_for(cfg.price_as)
    priced = pricer(policy, model=cfg.price_as, price=price, interface=interface,
                    tokenizer=tokenizer or load_tokenizer(cfg.model.name),
                    name=f"{policy.name} (priced as {cfg.price_as})")
    return priced, tokenizer, {cfg.price_as: price}


def _unpriced_teacher(cfg: CollectJobConfig, interface):
    if cfg.teacher == "expert":
        from agentdistill.policies import ExpertPolicy

        return ExpertPolicy(interface), None, None
    if cfg.teacher == "hf":
        from agentdistill.models import load_model
        from agentdistill.policies.hf import HFPolicy

        model, tokenizer = load_model(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
        model.eval()
        policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                          name=f"hf:{cfg.model.name}")
        return policy, tokenizer, None
    from agentdistill.policies.openai import OpenAIClient, OpenAIPolicy

    client = OpenAIClient.from_config(cfg.endpoint)
    policy = OpenAIPolicy(client, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    return policy, None, {cfg.endpoint.model: client.price}


def _trace(ep: Episode, cost_usd: float) -> Trace:
    return Trace(task_id=ep.task_id, seed=ep.seed, task=ep.task,
                 actions=tuple(t.action for t in ep.turns if not t.invalid_action and t.action is not None),
                 total_reward=ep.total_reward, turns=ep.num_turns, cost_usd=cost_usd)


def demo_steps(ep: Episode, cost_usd: float) -> list[dict[str, Any]]:
    """One record per turn of a solved episode: what the teacher saw, said and did, and what followed."""
    steps = []
    for t in ep.turns:
        after = t.message_index + 1
        steps.append({
            "demo_id": f"{ep.task_id}/{t.turn}", "task_id": ep.task_id, "seed": ep.seed, "step": t.turn,
            "goal": ep.task, "observation": ep.messages[t.message_index - 1].content, "reply": t.response_text,
            "action": t.action, "outcome": ep.messages[after].content if after < len(ep.messages)
            else ep.final_observation, "reward": t.reward, "invalid_action": t.invalid_action,
            "episode_cost_usd": cost_usd})
    return steps


def _attempt(seed: int, episodes: list[Episode], trace: Trace | None, cost_usd: float,
             steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"seed": seed, "task_id": episodes[0].task_id, "solved": trace is not None, "samples": len(episodes),
            "turns": [ep.num_turns for ep in episodes], "returns": [ep.total_reward for ep in episodes],
            "errors": [ep.error for ep in episodes if ep.error], "cost_usd": cost_usd,
            "trace": None if trace is None else json.loads(trace.to_json()), "demo": steps}
