"""The app framework on real SQLite: API specs and docs, validation, login, pagination, savepoints, diffs."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest

from agentdistill_appworld.apps.api_docs import APIDocs
from agentdistill_appworld.apps.phone import Phone
from agentdistill_appworld.apps.supervisor import Supervisor
from agentdistill_appworld.framework import (
    Context,
    NotFound,
    Unauthorized,
    Unprocessable,
    diff,
    snapshot,
)

ME = SimpleNamespace(first_name="Ada", last_name="Moss", email="ada.moss@mail.example", phone="5550100001")


@pytest.fixture()
def world():
    ctx = Context(db=sqlite3.connect(":memory:", isolation_level=None), now="2024-05-15T10:00:00")
    for cls in (Supervisor, APIDocs, Phone):
        app = cls(ctx)
        app.create_tables()
        ctx.apps[app.name] = app
    ctx.apps["phone"].add_account(ME, "pw-phone-1", "2020-01-01T00:00:00")
    for i in range(7):
        ctx.db.execute("INSERT INTO phone_contacts (owner, first_name, last_name, email, phone_number, "
                       "relationships, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (ME.phone, f"F{i}", f"L{i}", f"f{i}@x.example", f"55501000{i + 10}",
                        "roommate" if i < 2 else "friend", "2021-01-01T00:00:00"))
    return ctx


def call(ctx, app, api, **kwargs):
    return ctx.apps[app].call(api, kwargs)


def login(ctx):
    return call(ctx, "phone", "login", username=ME.phone, password="pw-phone-1")["access_token"]


def test_api_docs_describe_every_api_from_its_signature(world):
    apps = call(world, "api_docs", "show_app_descriptions")
    assert [a["name"] for a in apps] == ["api_docs", "phone", "supervisor"]
    names = [a["name"] for a in call(world, "api_docs", "show_api_descriptions", app_name="phone")]
    assert {"login", "logout", "search_contacts", "send_text_message", "create_alarm"} <= set(names)
    doc = call(world, "api_docs", "show_api_doc", app_name="phone", api_name="search_contacts")
    params = {p["name"]: p for p in doc["parameters"]}
    assert params["access_token"]["required"] and params["access_token"]["type"] == "string"
    assert params["page_limit"] == {"name": "page_limit", "type": "integer", "required": False, "default": 5,
                                    "description": "Items per page, 1 to 20."}
    assert params["relationship"]["nullable"] and doc["response_schema"][0]["contact_id"] == "integer"
    json.dumps(doc)  # served as JSON
    hits = call(world, "api_docs", "search_api_docs", query="send text message")
    assert hits[0] == {"app_name": "phone", "api_name": "send_text_message",
                       "description": "Send a text message."}
    with pytest.raises(NotFound, match="no app named 'fone'"):
        call(world, "api_docs", "show_api_descriptions", app_name="fone")


def test_calls_are_validated(world):
    token = login(world)
    with pytest.raises(Unprocessable, match=r"unknown parameters \['qeury'\]"):
        call(world, "phone", "search_contacts", access_token=token, qeury="F1")
    with pytest.raises(Unprocessable, match="missing the required parameter 'contact_id'"):
        call(world, "phone", "show_contact", access_token=token)
    with pytest.raises(Unprocessable, match="contact_id must be of type integer, got str"):
        call(world, "phone", "show_contact", access_token=token, contact_id="3")
    with pytest.raises(Unprocessable, match="must be of type integer, got bool"):
        call(world, "phone", "show_contact", access_token=token, contact_id=True)
    with pytest.raises(Unprocessable, match="relationships must be of type array of string"):
        call(world, "phone", "add_contact", access_token=token, first_name="A", last_name="B",
             phone_number="5550199999", relationships=[1])
    with pytest.raises(NotFound, match="phone has no API 'dial'"):
        call(world, "phone", "dial")


def test_login_tokens_and_logout(world):
    with pytest.raises(Unauthorized, match="wrong username or password"):
        call(world, "phone", "login", username=ME.phone, password="nope")
    with pytest.raises(Unauthorized, match=r"call apis.phone.login"):
        call(world, "phone", "show_account", access_token="forged")
    token = login(world)
    assert call(world, "phone", "show_account", access_token=token)["email"] == ME.email
    call(world, "phone", "logout", access_token=token)
    with pytest.raises(Unauthorized):
        call(world, "phone", "show_account", access_token=token)


def test_pagination_and_filters(world):
    token = login(world)
    pages = [call(world, "phone", "search_contacts", access_token=token, page_index=i, page_limit=3)
             for i in range(4)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert len({c["contact_id"] for p in pages for c in p}) == 7
    roommates = call(world, "phone", "search_contacts", access_token=token, relationship="roommate")
    assert [c["first_name"] for c in roommates] == ["F0", "F1"] and roommates[0]["relationships"] == ["roommate"]
    with pytest.raises(Unprocessable, match="page_limit must be between 1 and 20"):
        call(world, "phone", "search_contacts", access_token=token, page_limit=50)


def test_a_failing_call_changes_nothing_and_diffs_show_changes(world):
    token = login(world)
    before = snapshot(world.db)
    with pytest.raises(Unprocessable):
        call(world, "phone", "update_contact", access_token=token, contact_id=1, phone_number="12")
    assert snapshot(world.db) == before
    call(world, "phone", "send_text_message", access_token=token, phone_number="5550100010", message="hi")
    call(world, "phone", "delete_contact", access_token=token, contact_id=7)
    changes = diff(before, snapshot(world.db))
    assert sorted(changes) == ["phone_contacts", "phone_messages"]  # logins (tokens) are not changes
    assert changes["phone_messages"].added == ((1, ME.phone, "5550100010", "hi", "2024-05-15T10:00:00"),)
    assert len(changes["phone_contacts"].removed) == 1 and not changes["phone_contacts"].added


def test_supervisor_complete_task_keeps_the_answer_type(world):
    world.db.execute("INSERT INTO supervisor_task VALUES ('t_1', 'Count my roommates.', 0, NULL, NULL)")
    assert call(world, "supervisor", "show_active_task")["instruction"] == "Count my roommates."
    call(world, "supervisor", "complete_task", answer=2)
    row = world.db.execute("SELECT completed, answer, status FROM supervisor_task").fetchone()
    assert row == (1, "2", "success") and json.loads(row[1]) == 2
    with pytest.raises(Unprocessable, match="status must be 'success' or 'fail'"):
        call(world, "supervisor", "complete_task", status="done")
