"""Evaluate a model on held-out tasks, acting from the student view (no PI) or the teacher view (with PI).

The held-out tasks are env seeds ``env.eval_seed_start ..`` with ``env.eval_kwargs`` over ``env.kwargs``
(ALFWorld: ``{split: valid_unseen}``), so they never overlap the training pool. Used by every training loop
(``eval.jsonl``: one row per evaluation and view) and by ``agentdistill eval``.

The student view is the deployment setting and the one to report. The teacher view (the same weights acting
with the PI block in the prompt) is the upper bound π-Distill and OPSD distil from. ``pi_leak_rate`` counts
replies that mention the PI itself (methods.md §14: track leakage per view).

Episodes stopped by an env error are counted (``errors``, ``error_rate``) and kept out of every other figure:
success, return, turns and leakage are over the episodes that ran to their end (see ``RolloutMetrics``), so a
broken env shows up as errors, not as a policy that got worse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentdistill.config import EnvConfig, EvalConfig, env_kwargs
from agentdistill.types import Episode

VIEWS = ("student", "teacher")

LEAK_WORDS = ("hint", "secret", "privileged", "expert plan", "expert's plan", "the plan says", "i was told")
"""Words that give away a reply leaning on the PI block (π-Distill App. D.1 penalises such mentions)."""
_LEAK = re.compile("|".join(re.escape(w) for w in LEAK_WORDS), re.IGNORECASE)

EVAL_KEYS = ("success_rate", "mean_return", "mean_turns", "invalid_action_rate", "format_error_rate",
             "truncation_rate", "pi_leak_rate", "tokens_generated", "wall_time_s", "errors", "error_rate")


@dataclass(frozen=True)
class EvalResult:
    """One view's evaluation: its metrics (``EVAL_KEYS``) and the episodes behind them (errored ones
    included; ``metrics["errors"]`` counts them)."""

    view: str
    metrics: dict[str, float]
    episodes: list[Episode]


def pi_leak_rate(episodes: Sequence[Episode], tokenizer: Any) -> float:
    """Fraction of assistant replies whose text mentions ``LEAK_WORDS`` (0 when there are none)."""
    texts = [tokenizer.decode(t.response_ids, skip_special_tokens=True)
             for ep in episodes for t in ep.turns if t.response_ids]
    return sum(bool(_LEAK.search(x)) for x in texts) / len(texts) if texts else 0.0


def eval_env_kwargs(env: EnvConfig) -> dict[str, Any]:
    """``env.kwargs`` with ``env.eval_kwargs`` on top (lists become tuples, as env constructors expect)."""
    return env_kwargs({**env.kwargs, **env.eval_kwargs})


def evaluate(
    model: Any,
    tokenizer: Any,
    env: EnvConfig,
    cfg: EvalConfig,
    *,
    views: Sequence[str] = ("student",),
    max_new_tokens: int = 128,
    history_window: int | None = None,
    seed: int = 0,
    interface: Any = None,
    batch_size: int = 32,
    view_spec: Any = None,
    policy: Any = None,
    env_pool: Any = None,
) -> list[EvalResult]:
    """Roll the model out on ``cfg.num_tasks`` held-out tasks from each of ``views``; the model is left in
    the train/eval mode it came in.

    ``views`` may hold "student" (the prompt without PI; the deployment setting) and "teacher" (with the PI
    kinds ``env.teacher_privileged``). Sampling is seeded by ``seed`` alone, so two evaluations of the same
    weights give the same numbers. ``view_spec`` renders the prompts (default: ``history_window`` with the
    default PI placement); ``policy`` samples instead of an ``HFPolicy`` over ``model`` (e.g. a vLLM engine
    holding the same weights, at ``cfg.temperature``); ``env_pool`` hosts the envs (``rollout``'s).
    """
    from agentdistill import envs
    from agentdistill.policies.hf import HFPolicy
    from agentdistill.rollout import clean_episodes, rollout
    from agentdistill.views import ViewSpec

    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown evaluation views {unknown}: choose from {list(VIEWS)}")
    if "teacher" in views and not env.teacher_privileged:
        raise ValueError("the teacher view needs env.teacher_privileged=[...] (the PI kinds it reads)")
    if interface is None:
        interface = envs.default_interface(env.id, **env.interface)
    if policy is None:
        policy = HFPolicy(model, tokenizer, temperature=cfg.temperature, max_new_tokens=max_new_tokens,
                          batch_size=batch_size, name="eval")
    if view_spec is None:
        view_spec = ViewSpec(history_window=history_window)
    was_training = getattr(model, "training", False)
    model.eval()
    results = []
    try:
        for view in views:
            privileged = list(env.teacher_privileged) if view == "teacher" else []
            out = rollout(
                env.id, policy, seeds=range(env.eval_seed_start, env.eval_seed_start + cfg.num_tasks),
                group_size=cfg.group_size, interface=interface, tokenizer=tokenizer,
                teacher_privileged=privileged, view=view_spec,
                max_turns=env.max_turns, env_kwargs=eval_env_kwargs(env), run_seed=seed, progress=False,
                act_on="teacher" if view == "teacher" else "student", env_pool=env_pool,
            )
            m = out.metrics.as_dict()
            metrics = {k: m[k] for k in EVAL_KEYS if k in m}
            metrics["pi_leak_rate"] = pi_leak_rate(clean_episodes(out.episodes), tokenizer)
            results.append(EvalResult(view=view, metrics=metrics, episodes=out.episodes))
    finally:
        model.train(was_training)
    return results
