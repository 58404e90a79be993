"""Basic scenarios: questions about the supervisor's own records (difficulty 1), counting contacts by
relationship, paying a contact, adding a todo task."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from agentdistill_appworld.framework import Context
from agentdistill_appworld.scenarios.common import contacts as _contacts
from agentdistill_appworld.scenarios.common import login
from agentdistill_appworld.scenarios.common import supervisor as _supervisor
from agentdistill_appworld.tasks import Checker, Scenario

# ---------------------------------------------------------------------- count contacts by relationship (question)

COUNT_KINDS = {1: "roommate", 2: "family", 3: "friend"}


def _count_pick(ctx: Context, k: int) -> dict[str, Any]:
    kind = COUNT_KINDS[k]
    return {"kind": kind, "expected": len(_contacts(ctx, kind))}


def _count_solution(p: Mapping[str, Any]) -> str:
    return login("phone") + f'''count, page = 0, 0
while True:
    batch = apis.phone.search_contacts(access_token=phone_token, relationship="{p["kind"]}", page_index=page,
                                       page_limit=20)
    if not batch:
        break
    count += len(batch)
    page += 1
apis.supervisor.complete_task(answer=count)
'''


def _count_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


COUNT_CONTACTS = Scenario(
    name="count_contacts_by_relationship", kind="question", apps=("phone",), pick=_count_pick,
    instruction=lambda p: f"How many people are saved as my {p['kind']} in my phone contacts?",
    solution=_count_solution, check=_count_check)


# ------------------------------------------------------------------ pay a contact through the wallet (action)

PAY_KINDS = {1: "roommate", 2: "partner", 3: "family"}
PAY_NOTES = ("groceries", "utilities", "concert tickets", "dinner last week", "internet bill", "birthday gift")


def _pay_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"pay_contact/{k}")
    first, last, email, _, _ = _contacts(ctx, PAY_KINDS[k])[0]
    return {"kind": PAY_KINDS[k], "name": f"{first} {last}", "email": email,
            "amount": rng.randrange(1000, 9000) / 100, "note": rng.choice(PAY_NOTES),
            "me": _supervisor(ctx)["email"]}


def _pay_solution(p: Mapping[str, Any]) -> str:
    return login("phone") + login("wallet") + f'''match = apis.phone.search_contacts(access_token=phone_token, \
query="{p["name"]}")[0]
apis.wallet.send_money(access_token=wallet_token, receiver_email=match["email"], amount={p["amount"]},
                       note="{p["note"]}")
apis.supervisor.complete_task()
'''


def _pay_check(c: Checker, p: Mapping[str, Any]) -> None:
    cents = round(p["amount"] * 100)
    added = c.changes.get("wallet_transactions")
    rows = added.added if added else ()
    c.require(len(rows) == 1 and not added.removed, f"exactly one new payment (got {len(rows)})")
    if len(rows) == 1:
        payment = c.as_dicts("wallet_transactions", rows)[0]
        c.require((payment["sender"], payment["receiver"], payment["amount_cents"]) == (p["me"], p["email"], cents),
                  f"the payment is {p['amount']:.2f} from me to {p['email']}")
        c.require(p["note"].lower() in payment["note"].lower(), f"the note mentions '{p['note']}'")
    balances = c.changes.get("wallet_balances")
    moved = {} if balances is None else {r[0]: r[1] for r in balances.added}
    before = {} if balances is None else {r[0]: r[1] for r in balances.removed}
    c.require(set(moved) == {p["me"], p["email"]}
              and moved[p["me"]] - before[p["me"]] == -cents and moved[p["email"]] - before[p["email"]] == cents,
              "only the two balances moved, by the amount")
    c.only_changed("wallet_transactions", "wallet_balances")


PAY_CONTACT = Scenario(
    name="pay_contact_on_wallet", kind="action", apps=("phone", "wallet"), pick=_pay_pick,
    instruction=lambda p: f"Send ${p['amount']:.2f} to my {p['kind']} {p['name']} on wallet for {p['note']}.",
    solution=_pay_solution, check=_pay_check)


# ------------------------------------------------------------------------- add a todo task (action)

TODO_TITLES = {1: "Renew passport", 2: "Book dentist appointment", 3: "Return library books"}


def _todo_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    project_id, project = ctx.db.execute("SELECT project_id, name FROM todo_projects WHERE owner = ? "
                                         "ORDER BY project_id LIMIT 1 OFFSET ?", (me, k - 1)).fetchone()
    return {"title": TODO_TITLES[k], "project": project, "project_id": project_id, "due": f"2024-05-{17 + k:02d}",
            "priority": k, "me": me}


def _todo_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + f'''projects = apis.todo.show_projects(access_token=todo_token, page_limit=20)
project = [x for x in projects if x["name"] == "{p["project"]}"][0]
apis.todo.create_task(access_token=todo_token, title="{p["title"]}", due_date="{p["due"]}",
                      priority={p["priority"]}, project_id=project["project_id"])
apis.supervisor.complete_task()
'''


def _todo_check(c: Checker, p: Mapping[str, Any]) -> None:
    tasks = c.changes.get("todo_tasks")
    rows = tasks.added if tasks else ()
    c.require(len(rows) == 1 and not tasks.removed, f"exactly one new task (got {len(rows)})")
    if len(rows) == 1:
        task = c.as_dicts("todo_tasks", rows)[0]
        c.require(task["owner"] == p["me"], "the task is mine")
        c.require(task["title"].strip().lower() == p["title"].lower(), f"the task is titled '{p['title']}'")
        c.require(task["due_date"] == p["due"] and task["priority"] == p["priority"],
                  f"due {p['due']}, priority {p['priority']}")
        c.require(task["project_id"] == p["project_id"], f"in the project '{p['project']}'")
    c.only_changed("todo_tasks")


ADD_TODO = Scenario(
    name="add_todo_task", kind="action", apps=("todo",), pick=_todo_pick,
    instruction=lambda p: (f"Add a task '{p['title']}' to my '{p['project']}' project in the todo app, due "
                           f"{p['due']} with priority {p['priority']}."),
    solution=_todo_solution, check=_todo_check)


# ------------------------------------------------------------- the supervisor's own records (question)

ADDRESS_FIELDS = {1: ("home", "zip_code", "zip code"), 2: ("work", "city", "city"), 3: ("home", "street", "street")}


def _address_pick(ctx: Context, k: int) -> dict[str, Any]:
    name, column, words = ADDRESS_FIELDS[k]
    value = ctx.db.execute(f"SELECT {column} FROM supervisor_addresses WHERE address_name = ?", (name,)).fetchone()[0]
    return {"address": name, "column": column, "words": words, "expected": value}


def _address_solution(p: Mapping[str, Any]) -> str:
    return f'''address = [a for a in apis.supervisor.show_addresses() if a["address_name"] == "{p["address"]}"][0]
apis.supervisor.complete_task(answer=address["{p["column"]}"])
'''


def _answer_only(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


ADDRESS_QUESTION = Scenario(
    name="my_address_detail", kind="question", apps=("supervisor",), pick=_address_pick,
    instruction=lambda p: f"What is the {p['words']} of my {p['address']} address?",
    solution=_address_solution, check=_answer_only)


def _card_pick(ctx: Context, k: int) -> dict[str, Any]:
    cards = ctx.db.execute("SELECT card_name, expiry FROM supervisor_payment_cards ORDER BY card_name").fetchall()
    name, expiry = cards[(k - 1) % len(cards)]
    return {"card": name, "expected": expiry}


CARD_EXPIRY = Scenario(
    name="my_card_expiry", kind="question", apps=("supervisor",), pick=_card_pick,
    instruction=lambda p: f"When does my '{p['card']}' payment card expire? Answer as it is written on file (MM/YY).",
    solution=lambda p: (f'''card = [c for c in apis.supervisor.show_payment_cards() \
if c["card_name"] == "{p["card"]}"][0]
apis.supervisor.complete_task(answer=card["expiry"])
'''), check=_answer_only)


SCENARIOS: tuple[Scenario, ...] = (ADDRESS_QUESTION, CARD_EXPIRY, COUNT_CONTACTS, PAY_CONTACT, ADD_TODO)
