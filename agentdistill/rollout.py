"""The one loop that drives text envs with a policy: B tasks × G samples in lockstep, one policy call per step.

For every live episode the loop renders the student view (and, when PI kinds are requested for the teacher,
the teacher view) from the episode's messages, asks the policy for all live episodes at once, parses each
reply into an env action through the family's ``AgentInterface``, steps the env, and records one
``TurnSample`` per assistant turn. The turn budget is enforced by the ``TurnLimit`` wrapper as truncation.

Privileged information flows one way: env ``info["privileged"]`` → the teacher view's PI block, and → the
policy only if the policy declares ``sees_privileged`` (scripted experts). Student messages are built from
``public_info`` and never contain it.

An env exception inside ``step`` is, by default, recorded on its episode (``Episode.error`` and the full
``Episode.error_traceback``) and that episode stops; the others go on. An errored episode is a value with a
metric (``RolloutMetrics.errors``/``error_rate``), never a failure in the success and return means and never
training signal: the loops train on ``clean_episodes(...)`` and report ``first_error(...)``.

Where the envs live is the ``EnvHost``'s business (``agentdistill.envhost``): by default in this process, stepped
one after another; with ``env_pool=EnvPool(n)`` (``agentdistill.envpool``), in n worker processes. Then each
chunk's steps are sent to the workers and the next chunk is generated while they run; a chunk's outcomes are
gathered at the end of the pass over all live episodes, before any of their next prompts is built (the next
pass's chunks depend on which episodes ended). A worker that dies records ``EnvWorkerDied`` on the episodes
whose envs it held.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tqdm.auto import tqdm

from agentdistill import envs
from agentdistill.envhost import EnvError, EnvHandle, EnvHost, InProcessEnvs, ResetOutcome, StepOutcome
from agentdistill.envs import AgentInterface, public_info
from agentdistill.policies.base import Completion, Policy, Prompt, sample_seed
from agentdistill.traces import PI_KIND
from agentdistill.types import Episode, Message, TurnSample, return_to_go
from agentdistill.views import ViewSpec, encode, end_of_turn_ids, render_turn, window, with_pi

if TYPE_CHECKING:
    from agentdistill.envpool import EnvPool


@dataclass(frozen=True)
class RolloutMetrics:
    """Aggregates over the episodes of one rollout.

    The quality figures (success, return, turns, invalid actions, format errors, truncation) are over the
    episodes *without* an env error only: an env bug says nothing about the policy, so counting its episodes
    as failures would hide it inside a lower success rate. Errored episodes are counted in ``errors`` and
    ``error_rate`` instead. With every episode errored the quality figures are 0.0 and ``error_rate`` 1.0.
    Token and time figures cover every episode (the work was done). Rates are per turn unless named per
    episode.
    """

    episodes: int
    """Every episode of the rollout, errored ones included."""
    success_rate: float
    """Fraction of non-errored episodes won."""
    mean_return: float
    """Mean total reward of non-errored episodes."""
    mean_turns: float
    """Mean turns of non-errored episodes."""
    invalid_action_rate: float
    """Turns (of non-errored episodes) whose reply did not parse or whose action the env rejected."""
    format_error_rate: float
    """Turns (of non-errored episodes) whose reply did not parse into an action."""
    truncation_rate: float
    """Fraction of non-errored episodes cut by the turn budget."""
    tokens_generated: int
    wall_time_s: float
    tokens_per_s: float
    errors: int
    """Episodes stopped by a recorded env error."""
    error_rate: float
    """``errors / episodes`` (0.0 for an empty rollout)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutResult:
    episodes: list[Episode]
    metrics: RolloutMetrics


@dataclass
class _Live:
    """Mutable per-episode state while the loop runs (private to this module)."""

    handle: EnvHandle
    """Its env, in the rollout's EnvHost."""
    seed: int
    sample: int
    info: dict[str, Any]
    messages: list[Message]
    turns: list[dict[str, Any]] = field(default_factory=list)
    final_observation: str = ""
    done: bool = False
    error: str | None = None
    error_traceback: str | None = None
    terminated: bool = False
    truncated: bool = False
    cost_usd: float = 0.0


@dataclass(frozen=True)
class _Reply:
    """One episode's reply this turn, waiting for its env step (private to this module)."""

    ep: _Live
    student_ids: tuple[int, ...] | None
    teacher_ids: tuple[int, ...] | None
    completion: Completion
    action: str | None
    """The parsed action; None when the reply does not parse."""

    @property
    def sent(self) -> str:
        # An unparseable reply is still sent to the env, which answers with its documented invalid-action
        # observation and reward: the agent sees why its turn was wasted.
        return self.action if self.action is not None else self.completion.text


def rollout(
    env_id: str,
    policy: Policy,
    *,
    seeds: Sequence[int],
    group_size: int = 1,
    interface: AgentInterface | None = None,
    tokenizer: Any = None,
    teacher_privileged: Sequence[str] = (),
    view: ViewSpec = ViewSpec(),
    max_turns: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    run_seed: int = 0,
    max_batch: int | None = None,
    progress: bool = True,
    on_error: Literal["record", "raise"] = "record",
    act_on: Literal["student", "teacher"] = "student",
    pi_traces: Mapping[str, Any] | None = None,
    env_pool: EnvPool | None = None,
) -> RolloutResult:
    """Roll out ``policy`` on ``len(seeds) × group_size`` episodes of ``env_id``.

    Args:
        env_id: a registered agentdistill env id.
        policy: answers batches of prompts (``HFPolicy``, ``ExpertPolicy``, ...).
        seeds: env reset seeds, one task each; the G samples of a task share its seed and group id.
        group_size: samples per task (G).
        interface: how replies and observations become text; default: the env family's own.
        tokenizer: renders prompts to token ids (required by token-level policies, and for TurnSample ids).
        teacher_privileged: PI kinds rendered into a teacher view of every turn.
        view: history window and PI placement.
        max_turns: turn budget (truncation); None uses the env's default.
        env_kwargs: the env constructor's own knobs.
        run_seed: mixed into every prompt's sampling seed.
        max_batch: most episodes per policy call; None puts every live episode in one call.
        progress: show a progress bar.
        on_error: "record" stores an env exception on its episode (``Episode.error``, with the full
            traceback in ``Episode.error_traceback``), stops that episode and goes on with the others;
            "raise" re-raises it.
        act_on: which view the policy samples from. "student" (default) for everything that trains or
            evaluates the student; "teacher" for π-Distill, whose rollouts come from the PI-conditioned view
            of the same model. Either way the TurnSamples keep both views' ids, and the student view never
            contains PI.
        pi_traces: collected traces by task id (``traces.load_traces``), served as the ``expert_trace`` PI
            kind in place of the env's own.
        env_pool: worker processes to host the envs (pass the same pool to every round: workers start once);
            None makes and steps them in this process. The episodes are the same either way.
    """
    if act_on not in ("student", "teacher"):
        raise ValueError(f"act_on must be 'student' or 'teacher', got {act_on!r}")
    if act_on == "teacher" and (tokenizer is None or not teacher_privileged):
        raise ValueError("act_on='teacher' needs a tokenizer and teacher_privileged=[...] to render the teacher view")
    interface = interface or envs.default_interface(env_id)
    kinds = sorted(set(teacher_privileged) | set(policy.needs_privileged))
    if pi_traces is not None:
        kinds = [k for k in kinds if k != PI_KIND]
    eot = end_of_turn_ids(tokenizer)[:1] if tokenizer is not None else ()
    host: EnvHost = env_pool if env_pool is not None else InProcessEnvs()
    start = time.perf_counter()
    tasks = [(seed, sample) for seed in seeds for sample in range(group_size)]
    handles: list[EnvHandle] = []
    bar = tqdm(total=len(tasks), desc=f"rollout {policy.name}", unit="ep", disable=not progress)
    tokens_generated = 0
    try:
        for _ in tasks:
            handles.append(host.make(env_id, privileged=kinds, max_turns=max_turns, env_kwargs=env_kwargs,
                                     pi_traces=pi_traces))
        resets = host.reset(handles, [seed for seed, _ in tasks])
        episodes_all = [_start(handle, seed, sample, outcome, interface, on_error)
                        for handle, (seed, sample), outcome in zip(handles, tasks, resets, strict=True)]
        live = [ep for ep in episodes_all if not ep.done]
        bar.update(len(episodes_all) - len(live))
        while live:
            stepping = []  # chunks whose steps run while the next chunk is generated
            for chunk_start in range(0, len(live), max_batch or len(live)):
                chunk = live[chunk_start : chunk_start + (max_batch or len(live))]
                replies = _generate(chunk, policy, interface, tokenizer, teacher_privileged, view, run_seed, act_on)
                tokens_generated += sum(len(r.completion.token_ids) for r in replies)
                stepping.append((replies, host.step_async([(r.ep.handle, r.sent) for r in replies])))
            for replies, ticket in stepping:
                for reply, outcome in zip(replies, host.gather(ticket), strict=True):
                    _record(reply, outcome, interface, tokenizer, eot, teacher_privileged, on_error)
            finished = [ep for ep in live if ep.done]
            live = [ep for ep in live if not ep.done]
            bar.update(len(finished))
            bar.set_postfix(live=len(live))
    finally:
        host.release(handles)
        bar.close()
    wall = time.perf_counter() - start
    episodes = [_finish(ep, env_id, policy.name, act_on) for ep in episodes_all]
    return RolloutResult(episodes=episodes, metrics=summarize(episodes, tokens_generated, wall))


def _generate(
    chunk: Sequence[_Live],
    policy: Policy,
    interface: AgentInterface,
    tokenizer: Any,
    teacher_privileged: Sequence[str],
    view: ViewSpec,
    run_seed: int,
    act_on: str,
) -> list[_Reply]:
    """One policy call for a chunk of live episodes: their replies, parsed into actions."""
    built = [_prompt(ep, policy, interface, tokenizer, teacher_privileged, view, run_seed, act_on) for ep in chunk]
    prompts, student_ids, teacher_ids = zip(*built, strict=True)
    completions = policy.act(list(prompts))
    if len(completions) != len(chunk):
        raise RuntimeError(f"{policy.name} returned {len(completions)} completions for {len(chunk)} prompts")
    return [_Reply(ep, s_ids, t_ids, comp, interface.parse_action(comp.text))
            for ep, s_ids, t_ids, comp in zip(chunk, student_ids, teacher_ids, completions, strict=True)]


def _prompt(
    ep: _Live,
    policy: Policy,
    interface: AgentInterface,
    tokenizer: Any,
    teacher_privileged: Sequence[str],
    view: ViewSpec,
    run_seed: int,
    act_on: str,
) -> tuple[Prompt, tuple[int, ...] | None, tuple[int, ...] | None]:
    messages = tuple(window(ep.messages, view.history_window))
    student_ids, teacher_ids = None, None
    if tokenizer is not None:
        pi_text = None
        if teacher_privileged:
            pi = {k: ep.info["privileged"][k] for k in teacher_privileged}
            pi_text = interface.render_privileged(pi)
        views = render_turn(tokenizer, ep.messages, pi_text=pi_text, spec=view)
        student_ids, teacher_ids = views.student_ids, views.teacher_ids
        if act_on == "teacher" and pi_text is not None:
            messages = tuple(with_pi(messages, pi_text, view))
    admissible = ep.info.get("admissible_actions")
    prompt = Prompt(
        messages=messages,
        token_ids=teacher_ids if act_on == "teacher" else student_ids,
        sample_seed=sample_seed(run_seed, ep.seed, ep.sample, len(ep.turns)),
        admissible_actions=tuple(admissible) if admissible is not None else None,
        privileged=ep.info.get("privileged") if policy.sees_privileged else None,
        task_id=ep.info.get("task_id"),
        episode_id=_episode_id(ep),
        goal=ep.info.get("task"),
    )
    return prompt, student_ids, teacher_ids


def _start(
    handle: EnvHandle, seed: int, sample: int, outcome: ResetOutcome, interface: AgentInterface, on_error: str
) -> _Live:
    """A new episode from its env's reset. A reset that raised stops the rollout, as a bad env should; a reset
    lost with its pool worker is recorded on the episode like any step error."""
    ep = _Live(handle=handle, seed=seed, sample=sample, info={}, messages=[])
    if isinstance(outcome, EnvError):
        if on_error == "raise" or not outcome.worker_died:
            outcome.reraise()
        ep.error, ep.error_traceback, ep.done = outcome.error, outcome.traceback, True
        return ep
    obs, ep.info = outcome
    first = public_info(ep.info)
    ep.messages += [
        Message("system", interface.system_prompt(first)),
        Message("user", interface.observation_message(obs, first)),
    ]
    return ep


def _record(
    reply: _Reply,
    outcome: StepOutcome,
    interface: AgentInterface,
    tokenizer: Any,
    eot: tuple[int, ...],
    teacher_privileged: Sequence[str],
    on_error: str,
) -> None:
    """Append one turn to its episode: the reply, and the env's answer to it (or the env error that ends it)."""
    ep, comp = reply.ep, reply.completion
    if isinstance(outcome, EnvError):
        if on_error == "raise":
            outcome.reraise()
        ep.error, ep.error_traceback, ep.done = outcome.error, outcome.traceback, True
        return
    obs, reward, terminated, truncated, info = outcome
    ep.cost_usd += comp.cost_usd
    response_ids = comp.token_ids
    if not response_ids and tokenizer is not None:
        response_ids = encode(tokenizer, comp.text) + eot
    pi = {k: ep.info["privileged"][k] for k in teacher_privileged} if teacher_privileged else None
    ep.messages.append(Message("assistant", comp.text))
    ep.turns.append(
        dict(
            turn=len(ep.turns),
            message_index=len(ep.messages) - 1,
            response_text=comp.text,
            action=reply.action,
            reward=float(reward),
            terminated=bool(terminated),
            truncated=bool(truncated),
            invalid_action=reply.action is None or bool(info.get("invalid_action", False)),
            student_prompt_ids=reply.student_ids or (),
            teacher_prompt_ids=reply.teacher_ids,
            response_ids=tuple(response_ids),
            sampler_logprobs=comp.logprobs,
            finish_reason=comp.finish_reason,
            privileged=pi,
        )
    )
    ep.info = info
    ep.terminated, ep.truncated = bool(terminated), bool(truncated)
    if terminated or truncated:
        ep.final_observation, ep.done = obs, True
    else:
        ep.messages.append(Message("user", interface.observation_message(obs, public_info(info))))


def _finish(ep: _Live, env_id: str, policy_name: str, act_on: str) -> Episode:
    last_info = public_info(ep.info)  # empty when the env was lost before its reset returned
    rtg = return_to_go([t["reward"] for t in ep.turns])
    episode_id, group_id = _episode_id(ep), f"seed{ep.seed}"
    common = dict(episode_id=episode_id, group_id=group_id, task_id=last_info.get("task_id", ""))
    turns = tuple(TurnSample(**common, **t, return_to_go=g) for t, g in zip(ep.turns, rtg, strict=False))
    return Episode(
        **common,
        env_id=env_id,
        task=last_info.get("task", ""),
        seed=ep.seed,
        messages=tuple(ep.messages),
        turns=turns,
        final_observation=ep.final_observation,
        won=bool(last_info.get("won", last_info.get("success", False))),
        terminated=ep.terminated,
        truncated=ep.truncated,
        policy=policy_name,
        error=ep.error,
        error_traceback=ep.error_traceback,
        metadata={"act_on": act_on, "cost_usd": ep.cost_usd,
                  "task_family": str(last_info.get("task_type", env_id))},
    )


def _episode_id(ep: _Live) -> str:
    return f"seed{ep.seed}-g{ep.sample}"


def clean_episodes(episodes: Sequence[Episode]) -> list[Episode]:
    """The episodes without a recorded env error, in order: the only ones that may train or be scored.

    An errored episode stopped where the env broke; its partial turns and zero reward are not evidence about
    the policy (DESIGN §5: a recorded error is a value with a metric, never training signal).
    """
    return [ep for ep in episodes if ep.error is None]


def first_error(episodes: Sequence[Episode]) -> Episode | None:
    """The first episode (in order) with a recorded env error, or None: the one to show when stopping a run."""
    return next((ep for ep in episodes if ep.error is not None), None)


def summarize(episodes: Sequence[Episode], tokens_generated: int, wall_time_s: float) -> RolloutMetrics:
    """Aggregate metrics over finished episodes; quality figures over the non-errored ones (see
    ``RolloutMetrics``)."""
    clean = clean_episodes(episodes)
    errors = len(episodes) - len(clean)
    n = max(len(clean), 1)
    turns = [t for ep in clean for t in ep.turns]
    n_turns = max(len(turns), 1)
    return RolloutMetrics(
        episodes=len(episodes),
        success_rate=sum(ep.won for ep in clean) / n,
        mean_return=sum(ep.total_reward for ep in clean) / n,
        mean_turns=len(turns) / n,
        invalid_action_rate=sum(t.invalid_action for t in turns) / n_turns,
        format_error_rate=sum(t.action is None for t in turns) / n_turns,
        truncation_rate=sum(ep.truncated for ep in clean) / n,
        tokens_generated=tokens_generated,
        wall_time_s=wall_time_s,
        tokens_per_s=tokens_generated / wall_time_s if wall_time_s > 0 else 0.0,
        errors=errors,
        error_rate=errors / len(episodes) if episodes else 0.0,
    )
