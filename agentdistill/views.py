"""Student and teacher views of one turn, rendered from the same message list by the model's chat template.

The student view is the conversation so far (optionally windowed to the last k exchanges). The teacher view
is the *same* windowed message list with a privileged-information (PI) block appended to one message — by
default the end of the system prompt, where π-Distill puts it — and rendered by the same template. Nothing
builds one view by editing the other's string, so the two differ exactly by the PI block, and an empty PI
block gives identical views (DESIGN §3.3, §4.2).

Token ids are produced as ``tokenizer(template_text, add_special_tokens=False)``: the template already
writes any BOS it wants, and adding special tokens again would give one stream a second BOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from agentdistill.types import Message

DEFAULT_PI_TEMPLATE = "\n\n<privileged_information>\n{pi}\n</privileged_information>"


@dataclass(frozen=True)
class ViewSpec:
    """How prompts are built from a conversation."""

    history_window: int | None = None
    """Past exchanges (assistant reply + the observation after it) kept in the prompt; None keeps all."""
    pi_placement: Literal["system", "user"] = "system"
    """Where the teacher's PI block goes: the end of the system prompt, or the end of the last user turn."""
    pi_template: str = DEFAULT_PI_TEMPLATE
    """Format of the PI block; ``{pi}`` is replaced by the interface's rendered text."""

    def __post_init__(self) -> None:
        if self.history_window is not None and self.history_window < 0:
            raise ValueError(f"history_window must be None or >= 0, got {self.history_window}")
        if self.pi_placement not in ("system", "user"):
            raise ValueError(f"pi_placement must be 'system' or 'user', got {self.pi_placement!r}")
        if "{pi}" not in self.pi_template:
            raise ValueError("pi_template must contain '{pi}'")


@dataclass(frozen=True)
class TurnViews:
    """The rendered prompts of one turn. Teacher fields are None when no PI block was given."""

    student_text: str
    student_ids: tuple[int, ...]
    teacher_text: str | None = None
    teacher_ids: tuple[int, ...] | None = None


def window(messages: Sequence[Message], history_window: int | None) -> list[Message]:
    """Keep the system prompt, the last ``history_window`` exchanges, and the current user turn.

    ``messages`` must be ``[system, user, assistant, user, ..., user]``. Dropping whole (user, assistant)
    pairs keeps roles alternating, which many chat templates require; the task must therefore live in the
    system prompt (every ``AgentInterface`` puts it there).
    """
    _check_conversation(messages)
    if history_window is None:
        return list(messages)
    keep = 2 * history_window + 1
    return [messages[0], *messages[1:][-keep:]]


def with_pi(messages: Sequence[Message], pi_text: str, spec: ViewSpec) -> list[Message]:
    """The teacher's message list: ``messages`` with the PI block appended to one message.

    An empty ``pi_text`` returns the messages unchanged, so the teacher view equals the student view.
    """
    _check_conversation(messages)
    out = list(messages)
    if not pi_text:
        return out
    index = 0 if spec.pi_placement == "system" else len(out) - 1
    out[index] = replace(out[index], content=out[index].content + pi_block(pi_text, spec))
    return out


def pi_block(pi_text: str, spec: ViewSpec) -> str:
    """The exact text the teacher view adds for ``pi_text``."""
    return spec.pi_template.format(pi=pi_text)


def render_text(tokenizer: Any, messages: Sequence[Message]) -> str:
    """Render a prompt with the tokenizer's chat template, ending with the assistant generation prompt."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; load it with agentdistill.models.load_tokenizer")
    chat = [{"role": m.role, "content": m.content} for m in messages]
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    """Token ids of already-templated text (no extra special tokens)."""
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def render_turn(
    tokenizer: Any, messages: Sequence[Message], *, pi_text: str | None, spec: ViewSpec
) -> TurnViews:
    """Render the student view and, when ``pi_text`` is not None, the teacher view of one turn.

    Args:
        tokenizer: a tokenizer with a chat template.
        messages: the whole conversation so far, ending with the current user turn (student view, no PI).
        pi_text: the interface's rendering of this turn's PI; None for no teacher view.
        spec: history window and PI placement.
    """
    student_messages = window(messages, spec.history_window)
    student_text = render_text(tokenizer, student_messages)
    views = TurnViews(student_text=student_text, student_ids=encode(tokenizer, student_text))
    if pi_text is None:
        return views
    teacher_text = render_text(tokenizer, with_pi(student_messages, pi_text, spec))
    return replace(views, teacher_text=teacher_text, teacher_ids=encode(tokenizer, teacher_text))


def end_of_turn_ids(tokenizer: Any) -> tuple[int, ...]:
    """The token ids the chat template writes right after an assistant reply's text (e.g. ``<|im_end|>``).

    Scripted replies (expert actions) are stored as ``encode(text) + end_of_turn_ids[:1]`` so that SFT on
    them teaches the model to stop, exactly like a sampled reply that ended with EOS.
    """
    marker = "\x00AGENTDISTILL\x00"
    chat = [{"role": "user", "content": "u"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    suffix = text.split(marker, 1)[1]
    ids = encode(tokenizer, suffix)
    if not ids:
        raise ValueError("the chat template writes nothing after an assistant reply: cannot find end of turn")
    return ids


def _check_conversation(messages: Sequence[Message]) -> None:
    roles = [m.role for m in messages]
    expected = ["system"] + ["user", "assistant"] * max((len(roles) - 2) // 2, 0) + ["user"]
    if roles != expected:
        raise ValueError(
            f"a prompt must be [system, user, assistant, ..., user]; got roles {roles}. "
            "Build it with agentdistill.rollout, which keeps this shape."
        )
