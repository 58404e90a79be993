import pytest

from agentdistill.types import Message
from agentdistill.views import ViewSpec, end_of_turn_ids, pi_block, render_turn, window, with_pi

CONVO = [
    Message("system", "rules"), Message("user", "o0"), Message("assistant", "a0"),
    Message("user", "o1"), Message("assistant", "a1"), Message("user", "o2"),
]


def test_window_keeps_system_last_exchanges_and_current_turn():
    assert window(CONVO, None) == CONVO
    assert window(CONVO, 1) == [CONVO[0], *CONVO[3:]]
    assert window(CONVO, 0) == [CONVO[0], CONVO[5]]
    assert window(CONVO, 10) == CONVO


@pytest.mark.parametrize("roles", [["system"], ["system", "user", "assistant"], ["user", "assistant", "user"]])
def test_malformed_conversations_are_rejected(roles):
    with pytest.raises(ValueError, match=r"\[system, user, assistant, \.\.\., user\]"):
        window([Message(r, "x") for r in roles], None)


@pytest.mark.parametrize("placement", ["system", "user"])
def test_teacher_view_differs_from_student_view_only_by_the_pi_block(tiny, placement):
    _, tok = tiny
    spec = ViewSpec(history_window=1, pi_placement=placement)
    views = render_turn(tok, CONVO, pi_text="plan: up, left", spec=spec)
    block = pi_block("plan: up, left", spec)
    assert views.teacher_text.count(block) == 1
    assert views.teacher_text.replace(block, "", 1) == views.student_text
    assert views.student_ids == tuple(tok(views.student_text, add_special_tokens=False)["input_ids"])
    assert views.teacher_ids == tuple(tok(views.teacher_text, add_special_tokens=False)["input_ids"])
    # the token streams share everything outside the block
    s, t = views.student_ids, views.teacher_ids
    prefix = next(i for i, (a, b) in enumerate(zip(s, t, strict=False)) if a != b)
    suffix = next(i for i, (a, b) in enumerate(zip(reversed(s), reversed(t), strict=False)) if a != b)
    assert len(t) - len(s) == len(tok(block, add_special_tokens=False)["input_ids"])
    assert prefix + suffix == len(s)
    if placement == "system":
        assert views.teacher_text.index(block) < views.teacher_text.index("o1")
    else:
        assert views.teacher_text.index(block) > views.teacher_text.index("o2")


def test_empty_pi_gives_identical_views(tiny):
    _, tok = tiny
    views = render_turn(tok, CONVO, pi_text="", spec=ViewSpec())
    assert views.teacher_ids == views.student_ids
    assert render_turn(tok, CONVO, pi_text=None, spec=ViewSpec()).teacher_ids is None


def test_with_pi_never_mutates_the_student_messages():
    before = list(CONVO)
    teacher = with_pi(CONVO, "secret", ViewSpec())
    assert before == CONVO and teacher[0].content.startswith("rules") and teacher[0] != CONVO[0]


def test_end_of_turn_is_the_templates_turn_terminator(tiny):
    _, tok = tiny
    assert tok.convert_ids_to_tokens(list(end_of_turn_ids(tok)[:1])) == ["<|im_end|>"]


def test_pi_template_must_have_a_slot():
    with pytest.raises(ValueError, match="{pi}"):
        ViewSpec(pi_template="no slot")
