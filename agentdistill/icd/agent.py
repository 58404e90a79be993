"""The in-context distillation agent: retrieved teacher demos in a cheap student's prompt, N student samples
per step, and a self-consistency cascade that hands a step to the teacher when the samples disagree.

One class, ``IcdAgent``, plays every arm of an ICD experiment, so all arms share one accounting path:

=========  =======  ==============  =======  ==================
arm        student  demos           samples  teacher
=========  =======  ==============  =======  ==================
teacher    –        –               –        every step
student    yes      –               1        –
icd        yes      k windows       1        –
cascade    yes      k windows       N        on disagreement
=========  =======  ==============  =======  ==================

Per step: retrieve the top-k demo windows for (goal, current observation) from tasks other than the
evaluated one (``DemoIndex.retrieve(exclude_task_ids=[task_id])``), append them to the student's system
prompt, draw N samples (N prompts with distinct seeds derived from the step's seed), parse each into an
action with the env's interface and ``agree`` on the normalised actions. Accepted: the first agreeing sample
is the step's reply. Otherwise the step's original prompt — without demos, with the PI a scripted teacher
reads — goes to the teacher. The student never sees PI: its prompts are built afresh with ``privileged=None``.

Accounting: every call is priced into the agent's ``Ledger`` under the episode's id, and the reply's
``Completion.cost_usd`` carries the step's dollars (so ``Episode.metadata["cost_usd"]`` sums them). Token
counts, most exact first: what the provider reported (HTTP policies); the prompt ids and sampled ids (local
models); the ``tokenizer``'s count of the chat-templated prompt and the reply text (scripted teachers, such
as the env expert priced as an expensive model). With ``prompt_caching`` the prompt prefix shared with the
same role's previous request in the episode counts as cached (providers cache prefixes; we take the whole
shared prefix, an upper bound on what a provider's block-wise cache would hit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from agentdistill.icd.agreement import agree
from agentdistill.icd.ledger import Call, Ledger
from agentdistill.icd.retrieval import DemoIndex
from agentdistill.policies.base import Completion, Policy, Prompt
from agentdistill.policies.openai import Price
from agentdistill.types import Message
from agentdistill.views import encode, render_text

DEMO_HEADER = ("Below are steps an expert took on similar tasks, each with what it observed and the action it "
               "chose. Use them as examples of good actions; your own task and observations come after.")


@dataclass(frozen=True)
class RetrievalSpec:
    """How many demos and which keys find them (see ``DemoIndex.retrieve``)."""

    k: int = 3
    window: int = 2
    weights: Mapping[str, float] = field(default_factory=lambda: {"goal": 1.0, "observation": 1.0})


@dataclass(frozen=True)
class StepRecord:
    """What the agent did at one step of one episode, and what it cost."""

    episode_id: str
    turn: int
    deferred: bool
    """The step's reply came from the teacher (always, for the teacher-only arm)."""
    agreement: float | None
    """Share of the student's samples with the most common normalised action (None: no student call)."""
    actions: tuple[str | None, ...]
    """The student's parsed actions (None: unparseable)."""
    demo_tasks: tuple[str, ...]
    """Task ids of the retrieved demo windows, best first."""
    student_usd: float
    teacher_usd: float
    calls: tuple[Mapping[str, Any], ...]
    """The ledger's calls of this step (``Call`` fields plus ``cost_usd``)."""


class IcdAgent:
    """A ``Policy`` that is one arm of an ICD experiment (see the module docstring).

    Args:
        student: the cheap policy (None: the teacher-only arm). It must sample at ``temperature`` > 0 when
            ``samples`` > 1, or the cascade degenerates (identical samples always agree).
        teacher: the expensive policy the cascade defers to (None: never defer; a disagreement then plays the
            first sample).
        interface: the env family's interface (parses replies into actions).
        tokenizer: renders the student's prompt ids (token-level students need them) and counts tokens of
            policies that report none.
        ledger: prices every call; its price table must list ``student_model`` and ``teacher_model``.
        index: the demo index (None: no demos).
        samples: N, student samples per step.
        normaliser, min_agree: the agreement rule (``agree``).
    """

    def __init__(self, *, student: Policy | None, teacher: Policy | None, interface: Any, tokenizer: Any,
                 ledger: Ledger, student_model: str = "", teacher_model: str = "", index: DemoIndex | None = None,
                 retrieval: RetrievalSpec = RetrievalSpec(), samples: int = 1, normaliser: str = "command",
                 min_agree: float = 1.0, name: str = "icd"):
        if student is None and teacher is None:
            raise ValueError("an IcdAgent needs a student, a teacher, or both")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if student is not None and student.sees_privileged:
            raise ValueError(f"the student {student.name!r} reads privileged information: it cannot be a student")
        for role, model in (("student", student_model if student is not None else None),
                            ("teacher", teacher_model if teacher is not None else None)):
            if model is not None and model not in ledger.prices:
                raise ValueError(f"{role} price {model!r} is not in the price table ({sorted(ledger.prices)}): add "
                                 "it to configs/prices.yaml or choose a listed model")
        self.student, self.teacher, self.interface, self.tokenizer = student, teacher, interface, tokenizer
        self.ledger, self.index, self.retrieval = ledger, index, retrieval
        self.student_model, self.teacher_model = student_model, teacher_model
        self.samples, self.normaliser, self.min_agree = samples, normaliser, min_agree
        self.name = name
        self.sees_privileged = bool(teacher is not None and teacher.sees_privileged)
        self.needs_privileged: tuple[str, ...] = tuple(teacher.needs_privileged) if teacher is not None else ()
        self.steps: dict[str, list[StepRecord]] = defaultdict(list)
        self._last_ids: dict[tuple[str, str], tuple[int, ...]] = {}

    def act(self, prompts: Sequence[Prompt]) -> list[Completion]:
        for p in prompts:
            if p.episode_id is None or p.task_id is None:
                raise ValueError("IcdAgent needs Prompt.episode_id and task_id: run it through agentdistill.rollout")
        demos = [self._demos(p) for p in prompts]
        student = self._sample_student(prompts, demos) if self.student is not None else None
        verdicts = []
        for i in range(len(prompts)):
            if student is None:
                verdicts.append((True, None, ()))
                continue
            actions = tuple(self.interface.parse_action(c.text) for c in student[i][1])
            verdict = agree(actions, self.normaliser, min_agree=self.min_agree)
            verdicts.append((not verdict.accepted and self.teacher is not None, verdict, actions))
        deferred = [i for i, (d, _, _) in enumerate(verdicts) if d]
        teacher_out = (dict(zip(deferred, self.teacher.act([prompts[i] for i in deferred]), strict=True))
                       if deferred else {})
        out = []
        for i, p in enumerate(prompts):
            defer, verdict, actions = verdicts[i]
            calls: list[tuple[Call, float]] = []
            if student is not None:
                s_prompt, s_comps = student[i]
                calls.append(self._price("student", self.student_model, p.episode_id, s_prompt, s_comps))
            if defer:
                reply = teacher_out[i]
                calls.append(self._price("teacher", self.teacher_model, p.episode_id, p, [reply]))
            else:
                comps = student[i][1]
                reply = comps[actions.index(verdict.action)] if verdict.accepted else comps[0]
            cost = sum(c for _, c in calls)
            turn = len(self.steps[p.episode_id])
            self.steps[p.episode_id].append(StepRecord(
                episode_id=p.episode_id, turn=turn, deferred=defer,
                agreement=verdict.share if verdict is not None else None, actions=actions,
                demo_tasks=tuple(w.task_id for w in demos[i]),
                student_usd=sum(c for call, c in calls if call.role == "student"),
                teacher_usd=sum(c for call, c in calls if call.role == "teacher"),
                calls=tuple({**asdict(call), "cost_usd": c} for call, c in calls)))
            out.append(replace(reply, cost_usd=cost, prompt_tokens=None, completion_tokens=None))
        return out

    def take(self, episode_id: str) -> list[StepRecord]:
        """The step records of a finished episode (removed from the agent, so memory stays bounded)."""
        for role in ("student", "teacher"):
            self._last_ids.pop((episode_id, role), None)
        return self.steps.pop(episode_id, [])

    def _demos(self, prompt: Prompt) -> list:
        if self.index is None or self.student is None:
            return []
        query = {"goal": prompt.goal or "", "observation": prompt.messages[-1].content}
        return self.index.retrieve(query, k=self.retrieval.k, window=self.retrieval.window,
                                   weights=self.retrieval.weights, exclude_task_ids=[prompt.task_id])

    def _sample_student(self, prompts: Sequence[Prompt],
                        demos: Sequence[list]) -> list[tuple[Prompt, list[Completion]]]:
        """Per prompt: the student's prompt (with demos) and its N completions, all in one batched call."""
        student_prompts = []
        for p, windows in zip(prompts, demos, strict=False):
            messages, ids = p.messages, p.token_ids
            if windows:
                block = "\n\n".join(f"[Example {j + 1}]\n{w.render()}" for j, w in enumerate(windows))
                system = messages[0]
                messages = (Message("system", f"{system.content}\n\n{DEMO_HEADER}\n\n{block}"), *messages[1:])
                ids = None
            if ids is None and self.tokenizer is not None:
                ids = encode(self.tokenizer, render_text(self.tokenizer, messages))
            student_prompts.append(replace(p, messages=tuple(messages), token_ids=ids, privileged=None))
        batch = [replace(sp, sample_seed=_derive(sp.sample_seed, j)) if self.samples > 1 else sp
                 for sp in student_prompts for j in range(self.samples)]
        completions = self.student.act(batch)
        n = self.samples
        return [(sp, completions[i * n:(i + 1) * n]) for i, sp in enumerate(student_prompts)]

    def _price(self, role: str, model: str, episode_id: str, prompt: Prompt,
               comps: Sequence[Completion]) -> tuple[Call, float]:
        ids = prompt.token_ids
        if ids is None and comps[0].prompt_tokens is None:
            ids = self._count_ids(prompt.messages)
        prompt_tokens = comps[0].prompt_tokens if comps[0].prompt_tokens is not None else len(ids)
        completion_tokens = sum(self._completion_tokens(c) for c in comps)
        cached = 0
        if ids is not None:
            last = self._last_ids.get((episode_id, role))
            cached = _common_prefix(last, ids) if last is not None else 0
            self._last_ids[(episode_id, role)] = tuple(ids)
        call = Call(episode=episode_id, role=role, model=model, prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens, samples=len(comps), cached_tokens=cached)
        return call, self.ledger.add(call)

    def _completion_tokens(self, comp: Completion) -> int:
        if comp.completion_tokens is not None:
            return comp.completion_tokens
        if comp.token_ids:
            return len(comp.token_ids)
        return len(self._count_text(comp.text)) + 1  # + the end-of-turn token a model would have emitted

    def _count_ids(self, messages: Sequence[Message]) -> tuple[int, ...]:
        if self.tokenizer is None:
            raise ValueError("pricing a policy that reports no token counts needs a tokenizer to count them")
        return encode(self.tokenizer, render_text(self.tokenizer, messages))

    def _count_text(self, text: str) -> tuple[int, ...]:
        if self.tokenizer is None:
            raise ValueError("pricing a policy that reports no token counts needs a tokenizer to count them")
        return encode(self.tokenizer, text)


def priced_teacher(teacher: Policy, *, model: str, price: Price, interface: Any, tokenizer: Any,
                   name: str) -> IcdAgent:
    """``teacher`` as the teacher-only arm, billed as ``model`` at ``price`` by a ``Ledger``.

    This is the ``TeacherPricer`` the collector is given for ``price_as`` (``agentdistill collect`` /
    ``agentdistill icd collect``): the demos' dollars then come from the same accounting path as every arm of
    an ICD run, so the report can charge them against its savings like for like.
    """
    return IcdAgent(student=None, teacher=teacher, interface=interface, tokenizer=tokenizer,
                    ledger=Ledger({model: price}), teacher_model=model, name=name)


def _derive(seed: int, sample: int) -> int:
    """The j-th sample's seed of a step, from the step's own seed (independent of batching)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, sample, 0x1CD])
    return int(state.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
