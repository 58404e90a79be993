"""Errand scenarios: the todo app on its own and together with splitbill, wallet, phone and the supervisor's cards.

- ``count_overdue_todo_tasks`` (question, todo): how many open tasks (of a project / with a label) are overdue.
- ``most_urgent_open_todo_task`` (question, todo): the title of the most urgent open task in a scope.
- ``todo_project_extreme`` (question, todo): which project has the most or fewest open or completed tasks.
- ``splitbill_net_with_circle`` (question, phone + splitbill): what my partner / roommates / friends owe me.
- ``pending_requests_total_by_circle`` (question, phone + wallet): the total of pending wallet requests with a
  relationship circle, in one direction.
- ``reschedule_overdue_todo_tasks`` (action, todo): move every overdue open task to a new due date.
- ``finish_and_archive_todo_project`` (action, todo): complete a project's open tasks, then archive it.
- ``todo_tasks_for_pending_requests`` (action, wallet + todo): one task per pending payment request.
- ``todo_tasks_for_group_debts`` (action, splitbill + todo): one task per debt of mine (or to me) in a group.
- ``todo_tasks_for_birthdays`` (action, phone + todo): a task on the next birthday of each person of a circle.
- ``text_open_todo_tasks`` (action, todo + phone): text the titles of some open tasks to a circle.
- ``alarms_for_todo_tasks_due_on_day`` (action, todo + phone): a one-off alarm per open task due on a day.
- ``todo_tasks_for_expiring_cards`` (action, supervisor + todo): a renewal task per card expiring soon.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from agentdistill_appworld.framework import Context
from agentdistill_appworld.scenarios.common import login, rows
from agentdistill_appworld.scenarios.common import supervisor as _supervisor
from agentdistill_appworld.tasks import Checker, Scenario

# ------------------------------------------------------------------------------------------------ helpers

EVERY = '''def every(api, **kwargs):
    """Every item of a paginated list API, page by page."""
    found, page = [], 0
    while True:
        batch = api(page_index=page, page_limit=20, **kwargs)
        found.extend(batch)
        if len(batch) < 20:
            return found
        page += 1
'''

#: Relationship kinds behind the circles that instructions name.
CIRCLES: dict[str, tuple[str, ...]] = {
    "partner": ("partner",), "roommates": ("roommate",), "household": ("partner", "roommate"),
    "friends": ("friend",), "family": ("family",), "manager": ("manager",),
}
CIRCLE_WORDS: dict[str, str] = {
    "partner": "my partner", "roommates": "my roommates", "household": "the people I live with (my partner and "
    "my roommates)", "friends": "my friends", "family": "my family", "manager": "my manager",
}


def _consts(**values: Any) -> str:
    """Reference-solution lines binding the task's parameters (what the agent reads off the instruction)."""
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


def _today(ctx: Context) -> date:
    return date.fromisoformat(ctx.now[:10])


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).lower()


def _dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def _my_tasks(ctx: Context) -> list[dict[str, Any]]:
    """The supervisor's tasks (with their labels and project name), by task_id."""
    me = _supervisor(ctx)["email"]
    tasks = rows(ctx, "SELECT t.*, p.name AS project_name FROM todo_tasks t LEFT JOIN todo_projects p "
                      "ON p.project_id = t.project_id WHERE t.owner = ? ORDER BY t.task_id", (me,))
    for task in tasks:
        task["labels"] = [r["label"] for r in rows(ctx, "SELECT label FROM todo_task_labels WHERE task_id = ? "
                                                        "ORDER BY label", (task["task_id"],))]
    return tasks


def _my_projects(ctx: Context) -> list[dict[str, Any]]:
    me = _supervisor(ctx)["email"]
    count = "(SELECT COUNT(*) FROM todo_tasks t WHERE t.project_id = p.project_id AND t.completed = {})"
    return rows(ctx, f"SELECT p.project_id, p.name, {count.format(0)} AS open, {count.format(1)} AS done "
                     "FROM todo_projects p WHERE p.owner = ? AND p.archived = 0 ORDER BY p.project_id", (me,))


def _circle(ctx: Context, circle: str) -> list[dict[str, Any]]:
    """The supervisor's phone contacts in a circle, by contact_id."""
    me = _supervisor(ctx)["phone"]
    return [c for c in rows(ctx, "SELECT * FROM phone_contacts WHERE owner = ? ORDER BY contact_id", (me,))
            if c["relationships"] in CIRCLES[circle]]


def _open_in(tasks: list[dict[str, Any]], scope: tuple[str, Any]) -> list[dict[str, Any]]:
    """Open tasks in a scope: ("all", None), ("project", name) or ("label", label)."""
    kind, value = scope
    return [t for t in tasks if not t["completed"] and (kind == "all"
                                                        or (kind == "project" and t["project_name"] == value)
                                                        or (kind == "label" and value in t["labels"]))]


def _scopes(tasks: list[dict[str, Any]], projects: list[dict[str, Any]], rng: random.Random,
            first: str) -> list[tuple[str, Any]]:
    """Every scope of the supervisor's tasks, shuffled by ``rng``, those of kind ``first`` first."""
    labels = sorted({label for t in tasks for label in t["labels"]})
    by_kind = {"all": [("all", None)], "project": [("project", p["name"]) for p in projects],
               "label": [("label", label) for label in labels]}
    for options in by_kind.values():
        rng.shuffle(options)
    order = [first] + [k for k in ("label", "project", "all") if k != first]
    return [scope for kind in order for scope in by_kind[kind]]


def _scope_words(scope: tuple[str, Any]) -> str:
    kind, value = scope
    return {"all": "", "project": f" in my '{value}' project", "label": f" labelled '{value}'"}[kind]


def _scope_code(scope: tuple[str, Any]) -> str:
    """Reference-solution lines that put the search filters for ``scope`` in ``scope``."""
    kind, value = scope
    if kind == "label":
        return _consts(LABEL=value) + "scope = {'label': LABEL}\n"
    if kind == "project":
        return _consts(PROJECT=value) + '''\
projects = every(apis.todo.show_projects, access_token=todo_token)
scope = {"project_id": [x for x in projects if x["name"] == PROJECT][0]["project_id"]}
'''
    return "scope = {}\n"


def _next_birthday(born: str, today: date) -> date | None:
    """The next birthday on or after ``today`` (None for 29 February, which has no yearly answer)."""
    month, day = int(born[5:7]), int(born[8:10])
    if (month, day) == (2, 29):
        return None
    upcoming = date(today.year, month, day)
    return upcoming if upcoming >= today else date(today.year + 1, month, day)


# --------------------------------------------------------------------------------------------- check helpers


def _check_updates(c: Checker, table: str, key: str, expected: Mapping[Any, Mapping[str, Any]]) -> None:
    """Exactly the rows ``expected`` names changed in ``table``, each to its old values with ``fields`` set."""
    change = c.changes.get(table)
    before = {r[key]: r for r in c.as_dicts(table, change.removed)} if change else {}
    after = {r[key]: r for r in c.as_dicts(table, change.added)} if change else {}
    want = sorted(expected)
    c.require(sorted(before) == want and sorted(after) == want,
              f"exactly the {table} rows {want} changed (removed {sorted(before)}, added {sorted(after)})")
    for row_key, fields in sorted(expected.items()):
        if row_key in before and row_key in after:
            c.require(after[row_key] == {**before[row_key], **fields},
                      f"{table} {key}={row_key} changed to {dict(fields)} and nothing else")


def _new_tasks(c: Checker) -> list[dict[str, Any]]:
    """The tasks the agent created, each with its labels (sorted); fails if any task was changed or removed."""
    tasks = c.changes.get("todo_tasks")
    c.require(tasks is None or not tasks.removed, "no existing task was changed or deleted")
    added = c.as_dicts("todo_tasks", tasks.added) if tasks else []
    labels = c.changes.get("todo_task_labels")
    ids = {t["task_id"] for t in added}
    c.require(labels is None or (not labels.removed and all(r[0] in ids for r in labels.added)),
              "labels changed only on the new tasks")
    for task in added:
        task["labels"] = sorted(r[1] for r in (labels.added if labels else ()) if r[0] == task["task_id"])
    return added


def _check_new_tasks(c: Checker, me: str, expected: list[Mapping[str, Any]]) -> None:
    """The new tasks are exactly ``expected`` (title, due_date, priority, labels), all mine and open."""
    added = _new_tasks(c)

    def shape(task: Mapping[str, Any]) -> tuple:
        return _norm(task["title"]), task["due_date"], task["priority"], tuple(task["labels"])

    got, want = sorted(map(shape, added), key=repr), sorted(map(shape, expected), key=repr)
    c.require(got == want, f"the new tasks are exactly {want} (got {got})")
    c.require(all(t["owner"] == me and not t["completed"] for t in added), "the new tasks are mine and open")


# ---------------------------------------------------------------------- count overdue todo tasks (question)

OVERDUE_SCOPES = {1: "all", 2: "project", 3: "label"}


def _overdue_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"count_overdue_todo_tasks/{k}")
    tasks, today = _my_tasks(ctx), _today(ctx).isoformat()
    late = [t for t in tasks if t["due_date"] is not None and t["due_date"] < today]

    def count(scope: tuple[str, Any]) -> int:
        return len(_open_in(late, scope))

    scopes = _scopes(tasks, _my_projects(ctx), rng, OVERDUE_SCOPES[k])
    scope = next((s for s in scopes if s[0] == OVERDUE_SCOPES[k] and count(s) > 0),
                 next((s for s in scopes if count(s) > 0), scopes[0]))
    return {"scope": list(scope), "expected": count(scope)}


def _overdue_instruction(p: Mapping[str, Any]) -> str:
    kind, value = p["scope"]
    if kind == "project":
        return f"In my '{value}' todo project, how many open tasks are already past their due date?"
    if kind == "label":
        return f"How many of my unfinished todo tasks labelled '{value}' are overdue?"
    return "How many of my todo tasks are overdue, that is still open with a due date before today?"


def _overdue_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + EVERY + _scope_code(tuple(p["scope"])) + '''\
import datetime
yesterday = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
late = every(apis.todo.search_tasks, access_token=todo_token, completed=False, due_before=yesterday, **scope)
apis.supervisor.complete_task(answer=len(late))
'''


def _answer_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


COUNT_OVERDUE = Scenario(
    name="count_overdue_todo_tasks", kind="question", apps=("todo",), pick=_overdue_pick,
    instruction=_overdue_instruction, solution=_overdue_solution, check=_answer_check)


# -------------------------------------------------------------------- most urgent open todo task (question)

URGENT_SCOPES = {1: "label", 2: "project", 3: "all"}


def _urgency(task: Mapping[str, Any]) -> tuple:
    return task["priority"], task["due_date"] is None, task["due_date"] or ""


def _urgent_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"most_urgent_open_todo_task/{k}")
    tasks = _my_tasks(ctx)

    def winner(scope: tuple[str, Any]) -> dict[str, Any] | None:
        candidates = _open_in(tasks, scope)
        if len(candidates) < 2:
            return None
        best = min(candidates, key=_urgency)
        return best if [_urgency(t) for t in candidates].count(_urgency(best)) == 1 else None

    scopes = _scopes(tasks, _my_projects(ctx), rng, URGENT_SCOPES[k])
    scope = next((s for s in scopes if winner(s) is not None), None)
    if scope is None:
        raise ValueError("no scope of this world has a single most urgent open task")
    return {"scope": list(scope), "expected": winner(scope)["title"]}


def _urgent_instruction(p: Mapping[str, Any]) -> str:
    where = _scope_words(tuple(p["scope"]))
    return (f"Which of my open todo tasks{where} should I tackle first? Take the highest priority (1 is the most "
            f"urgent); among equal priorities the one due soonest (tasks without a due date come last). Tell me "
            f"its title.")


def _urgent_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + EVERY + _scope_code(tuple(p["scope"])) + '''\
tasks = every(apis.todo.search_tasks, access_token=todo_token, completed=False, **scope)
best = min(tasks, key=lambda t: (t["priority"], t["due_date"] is None, t["due_date"] or ""))
apis.supervisor.complete_task(answer=best["title"])
'''


MOST_URGENT = Scenario(
    name="most_urgent_open_todo_task", kind="question", apps=("todo",), pick=_urgent_pick,
    instruction=_urgent_instruction, solution=_urgent_solution, check=_answer_check)


# ------------------------------------------------------------------------ todo project extremes (question)

#: criterion -> (words, the project's count to compare, True to look for the largest).
EXTREMES: dict[str, tuple[str, str, bool]] = {
    "most_open": ("has the most open tasks", "open", True),
    "most_done": ("has the most completed tasks", "done", True),
    "fewest_open": ("has the fewest open tasks left", "open", False),
    "fewest_done": ("has the fewest completed tasks", "done", False),
}
EXTREME_ORDER = {1: ("most_open", "fewest_done", "most_done", "fewest_open"),
                 2: ("most_done", "fewest_open", "most_open", "fewest_done"),
                 3: ("fewest_open", "fewest_done", "most_open", "most_done")}


def _extreme_pick(ctx: Context, k: int) -> dict[str, Any]:
    projects = _my_projects(ctx)
    for criterion in EXTREME_ORDER[k]:
        _, column, largest = EXTREMES[criterion]
        counts = [p[column] for p in projects]
        best = max(counts) if largest else min(counts)
        if len(projects) >= 2 and counts.count(best) == 1:
            name = projects[counts.index(best)]["name"]
            return {"criterion": criterion, "expected": name}
    raise ValueError("every criterion ties in this world")


def _extreme_solution(p: Mapping[str, Any]) -> str:
    _, column, largest = EXTREMES[p["criterion"]]
    key = "open_task_count" if column == "open" else "completed_task_count"
    return login("todo") + EVERY + _consts(KEY=key) + f'''\
projects = every(apis.todo.show_projects, access_token=todo_token)
best = {"max" if largest else "min"}(projects, key=lambda x: x[KEY])
apis.supervisor.complete_task(answer=best["name"])
'''


PROJECT_EXTREME = Scenario(
    name="todo_project_extreme", kind="question", apps=("todo",), pick=_extreme_pick,
    instruction=lambda p: (f"Looking at my active projects in the todo app, which one {EXTREMES[p['criterion']][0]}? "
                           f"Answer with the project's name."),
    solution=_extreme_solution, check=_answer_check)


# ------------------------------------------------------------- net splitbill balance with a circle (question)

NET_CIRCLES = {1: "partner", 2: "roommates", 3: "friends"}


def _splitbill_nets(ctx: Context, me: str) -> dict[str, int]:
    """For every person, what they owe me across splitbill, in cents (negative: I owe them)."""
    owed: dict[tuple[str, str], int] = defaultdict(int)  # (creditor, debtor) -> cents
    for r in rows(ctx, "SELECT e.paid_by, s.username, s.share_cents FROM splitbill_expenses e JOIN splitbill_shares s "
                       "ON s.expense_id = e.expense_id WHERE e.paid_by = ? OR s.username = ?", (me, me)):
        if r["username"] != r["paid_by"]:
            owed[(r["paid_by"], r["username"])] += r["share_cents"]
    for r in rows(ctx, "SELECT payer, payee, amount_cents FROM splitbill_payments WHERE payer = ? OR payee = ?",
                  (me, me)):
        owed[(r["payer"], r["payee"])] += r["amount_cents"]
    people = {b for a, b in owed if a == me} | {a for a, b in owed if b == me}
    return {x: owed.get((me, x), 0) - owed.get((x, me), 0) for x in sorted(people)}


def _net_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    nets = _splitbill_nets(ctx, me)
    circle = NET_CIRCLES[k]
    cents = sum(nets.get(c["email"], 0) for c in _circle(ctx, circle))
    return {"circle": circle, "expected": round(cents / 100, 2)}


def _net_instruction(p: Mapping[str, Any]) -> str:
    who = CIRCLE_WORDS[p["circle"]]
    verb = "does" if p["circle"] in ("partner", "manager") else "do"
    return (f"Across all of splitbill, how much {verb} {who} owe me in total once everything is netted out? Answer in "
            f"dollars, as a negative number if I'm the one who owes.")


def _net_solution(p: Mapping[str, Any]) -> str:
    return login("phone") + login("splitbill") + EVERY + _consts(KINDS=list(CIRCLES[p["circle"]])) + '''\
emails = set()
for kind in KINDS:
    emails |= {c["email"] for c in every(apis.phone.search_contacts, access_token=phone_token, relationship=kind)}
balances = apis.splitbill.show_balances(access_token=splitbill_token)
total = (sum(x["amount"] for x in balances["owes_you"] if x["email"] in emails)
         - sum(x["amount"] for x in balances["you_owe"] if x["email"] in emails))
apis.supervisor.complete_task(answer=round(total, 2))
'''


SPLITBILL_NET = Scenario(
    name="splitbill_net_with_circle", kind="question", apps=("phone", "splitbill"), pick=_net_pick,
    instruction=_net_instruction, solution=_net_solution, check=_answer_check)


# ------------------------------------------------- pending wallet requests with a circle, total (question)

REQUEST_COMBOS = {1: [("incoming", "household"), ("incoming", "friends"), ("incoming", "family")],
                  2: [("outgoing", "friends"), ("outgoing", "family"), ("outgoing", "household")],
                  3: [("incoming", "family"), ("outgoing", "household"), ("incoming", "friends")]}


def _pending_total(ctx: Context, direction: str, circle: str) -> int:
    me = _supervisor(ctx)["email"]
    emails = {c["email"] for c in _circle(ctx, circle)}
    mine, theirs = ("payer", "requester") if direction == "incoming" else ("requester", "payer")
    return sum(r["amount_cents"] for r in rows(ctx, f"SELECT {theirs} AS other, amount_cents FROM wallet_requests "
                                                    f"WHERE {mine} = ? AND status = 'pending'", (me,))
               if r["other"] in emails)


def _requests_pick(ctx: Context, k: int) -> dict[str, Any]:
    combos = REQUEST_COMBOS[k] + [c for j in (1, 2, 3) for c in REQUEST_COMBOS[j] if c not in REQUEST_COMBOS[k]]
    direction, circle = next((c for c in combos if _pending_total(ctx, *c) > 0), combos[0])
    return {"direction": direction, "circle": circle,
            "expected": round(_pending_total(ctx, direction, circle) / 100, 2)}


def _requests_instruction(p: Mapping[str, Any]) -> str:
    who = CIRCLE_WORDS[p["circle"]]
    if p["direction"] == "incoming":
        return (f"Add up the wallet payment requests that {who} sent me and that are still waiting for my answer. "
                f"What is the total in dollars?")
    return (f"How much money am I still waiting for from {who}, counting only the wallet payment requests I sent "
            f"them that are still pending? Give the total in dollars.")


def _requests_solution(p: Mapping[str, Any]) -> str:
    other = "requester_email" if p["direction"] == "incoming" else "payer_email"
    return login("phone") + login("wallet") + EVERY + _consts(
        KINDS=list(CIRCLES[p["circle"]]), DIRECTION=p["direction"], OTHER=other) + '''\
emails = set()
for kind in KINDS:
    emails |= {c["email"] for c in every(apis.phone.search_contacts, access_token=phone_token, relationship=kind)}
requests = every(apis.wallet.show_payment_requests, access_token=wallet_token, direction=DIRECTION,
                 status="pending")
total = sum(r["amount"] for r in requests if r[OTHER] in emails)
apis.supervisor.complete_task(answer=round(total, 2))
'''


PENDING_REQUESTS_TOTAL = Scenario(
    name="pending_requests_total_by_circle", kind="question", apps=("phone", "wallet"), pick=_requests_pick,
    instruction=_requests_instruction, solution=_requests_solution, check=_answer_check)


# ---------------------------------------------------------------------- reschedule overdue tasks (action)



def _reschedule_target(today: date, k: int) -> tuple[date, str]:
    """Variant k's new due date: tomorrow, next Monday, or the last day of this month (of next month when today
    is the last)."""
    if k == 1:
        return today + timedelta(days=1), "tomorrow"
    if k == 2:
        return today + timedelta(days=7 - today.weekday()), "next Monday"
    month_end = date(today.year + today.month // 12, today.month % 12 + 1, 1) - timedelta(days=1)
    if month_end == today:
        return date(month_end.year + month_end.month // 12, month_end.month % 12 + 1, 1) + timedelta(days=27), \
            "the 28th of next month"
    return month_end, "the last day of this month"


def _reschedule_pick(ctx: Context, k: int) -> dict[str, Any]:
    today = _today(ctx)
    day, words = _reschedule_target(today, k)
    target = day.isoformat()
    tasks = [t for t in _my_tasks(ctx) if not t["completed"] and t["due_date"] is not None]
    window = ["overdue", None, (today - timedelta(days=1)).isoformat()]
    if not any(t["due_date"] <= window[2] for t in tasks):
        # nothing overdue: the open tasks due from today up to the first such due date slip instead
        first = min((t["due_date"] for t in tasks if t["due_date"] >= today.isoformat()),
                    default=today.isoformat())
        window = ["upcoming", today.isoformat(), first]
        if first >= target:
            target, words = (date.fromisoformat(first) + timedelta(days=7)).isoformat(), ""
    chosen = [t["task_id"] for t in tasks if (window[1] or "") <= t["due_date"] <= window[2]]
    return {"window": window, "target": target, "target_words": f"{words} ({target})" if words else target,
            "task_ids": chosen, "now": ctx.now}


def _reschedule_instruction(p: Mapping[str, Any]) -> str:
    if p["window"][0] == "overdue":
        return (f"I've fallen behind: move every open todo task of mine that is past its due date to "
                f"{p['target_words']}. Leave everything else about them as it is.")
    return (f"I need some breathing room: every open todo task of mine due between today and {p['window'][2]} "
            f"should be pushed to {p['target_words']}. Change nothing else about them.")


def _reschedule_solution(p: Mapping[str, Any]) -> str:
    _, after, before = p["window"]
    return login("todo") + EVERY + _consts(AFTER=after, BEFORE=before, TARGET=p["target"]) + '''\
late = every(apis.todo.search_tasks, access_token=todo_token, completed=False, due_after=AFTER,
             due_before=BEFORE)
for task in late:
    apis.todo.update_task(access_token=todo_token, task_id=task["task_id"], due_date=TARGET)
apis.supervisor.complete_task()
'''


def _reschedule_check(c: Checker, p: Mapping[str, Any]) -> None:
    _check_updates(c, "todo_tasks", "task_id",
                   {tid: {"due_date": p["target"], "updated_at": p["now"]} for tid in p["task_ids"]})
    c.only_changed("todo_tasks")


RESCHEDULE_OVERDUE = Scenario(
    name="reschedule_overdue_todo_tasks", kind="action", apps=("todo",), pick=_reschedule_pick,
    instruction=_reschedule_instruction, solution=_reschedule_solution, check=_reschedule_check)


# -------------------------------------------------------------------- finish and archive a project (action)


def _finish_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"finish_and_archive_todo_project/{k}")
    projects = _my_projects(ctx)
    rng.shuffle(projects)
    project = min(projects, key=lambda p: (p["open"] < 2, p["open"] < 1))  # the first with 2+ open tasks, or 1
    tasks = [t["task_id"] for t in _open_in(_my_tasks(ctx), ("project", project["name"]))]
    return {"project": project["name"], "project_id": project["project_id"], "task_ids": tasks, "now": ctx.now,
            "wording": k}


FINISH_WORDS = {1: "I'm done with my '{}' project: tick off whatever is still open in it, then archive it.",
                2: "Wrap up the '{}' project in my todo app. Mark every task in it that's still open as completed "
                   "and archive it afterwards.",
                3: "The '{}' project is finished. Close out its remaining open tasks and archive it."}


def _finish_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + EVERY + _consts(PROJECT=p["project"]) + '''\
projects = every(apis.todo.show_projects, access_token=todo_token)
project_id = [x for x in projects if x["name"] == PROJECT][0]["project_id"]
for task in every(apis.todo.search_tasks, access_token=todo_token, project_id=project_id, completed=False):
    apis.todo.mark_task_complete(access_token=todo_token, task_id=task["task_id"])
apis.todo.archive_project(access_token=todo_token, project_id=project_id)
apis.supervisor.complete_task()
'''


def _finish_check(c: Checker, p: Mapping[str, Any]) -> None:
    done = {"completed": 1, "completed_at": p["now"], "updated_at": p["now"]}
    _check_updates(c, "todo_tasks", "task_id", {tid: done for tid in p["task_ids"]})
    _check_updates(c, "todo_projects", "project_id", {p["project_id"]: {"archived": 1}})
    c.only_changed("todo_tasks", "todo_projects")


FINISH_PROJECT = Scenario(
    name="finish_and_archive_todo_project", kind="action", apps=("todo",), pick=_finish_pick,
    instruction=lambda p: FINISH_WORDS[p["wording"]].format(p["project"]),
    solution=_finish_solution, check=_finish_check)


# ------------------------------------------------------- todo tasks for pending payment requests (action)

#: k -> (preferred direction, due in days, priority).
REQUEST_TASKS = {1: ("incoming", 1, 2), 2: ("outgoing", 3, 3), 3: ("incoming", 2, 1)}
REQUEST_TITLES = {"incoming": ("Pay {name} {amount}", "Pay Maya $25.50"),
                  "outgoing": ("Chase {name} for {amount}", "Chase Maya for $25.50")}


def _request_tasks_pick(ctx: Context, k: int) -> dict[str, Any]:
    me, today = _supervisor(ctx)["email"], _today(ctx)
    preferred, days, priority = REQUEST_TASKS[k]
    for direction in (preferred, "outgoing" if preferred == "incoming" else "incoming"):
        mine, theirs = ("payer", "requester") if direction == "incoming" else ("requester", "payer")
        found = rows(ctx, f"SELECT a.first_name, r.amount_cents FROM wallet_requests r JOIN wallet_accounts a ON "
                          f"a.username = r.{theirs} WHERE r.{mine} = ? AND r.status = 'pending' ORDER BY r.request_id",
                     (me,))
        if found:
            break
    due = (today + timedelta(days=days)).isoformat()
    title = REQUEST_TITLES[direction][0]
    tasks = [{"title": title.format(name=r["first_name"], amount=_dollars(r["amount_cents"])), "due_date": due,
              "priority": priority, "labels": ["money"]} for r in found]
    return {"direction": direction, "due": due, "priority": priority, "expected": tasks, "me": me}


def _request_tasks_instruction(p: Mapping[str, Any]) -> str:
    title, example = REQUEST_TITLES[p["direction"]]
    which = ("that someone sent me and I haven't answered yet" if p["direction"] == "incoming"
             else "that I sent and that nobody has paid or turned down yet")
    return (f"For every pending wallet payment request {which}, add a todo task titled "
            f"'{title.replace('{name}', '<their first name>').replace('{amount}', '<amount>')}' (e.g. '{example}'), "
            f"due {p['due']}, priority {p['priority']}, labelled 'money'.")


def _request_tasks_solution(p: Mapping[str, Any]) -> str:
    other = "requester_email" if p["direction"] == "incoming" else "payer_email"
    verb = "Pay {name} ${amount:.2f}" if p["direction"] == "incoming" else "Chase {name} for ${amount:.2f}"
    return login("wallet") + login("todo") + EVERY + _consts(
        DIRECTION=p["direction"], OTHER=other, TITLE=verb, DUE=p["due"], PRIORITY=p["priority"]) + '''\
requests = every(apis.wallet.show_payment_requests, access_token=wallet_token, direction=DIRECTION,
                 status="pending")
for request in requests:
    name = apis.wallet.show_profile(access_token=wallet_token, email=request[OTHER])["first_name"]
    apis.todo.create_task(access_token=todo_token, title=TITLE.format(name=name, amount=request["amount"]),
                          due_date=DUE, priority=PRIORITY, labels=["money"])
apis.supervisor.complete_task()
'''


def _new_tasks_check(c: Checker, p: Mapping[str, Any]) -> None:
    _check_new_tasks(c, p["me"], p["expected"])
    c.only_changed("todo_tasks", "todo_task_labels")


REQUEST_TASKS_SCENARIO = Scenario(
    name="todo_tasks_for_pending_requests", kind="action", apps=("wallet", "todo"), pick=_request_tasks_pick,
    instruction=_request_tasks_instruction, solution=_request_tasks_solution, check=_new_tasks_check)


# -------------------------------------------------------------- todo tasks for debts in a group (action)

#: k -> (preferred group: 'Home', a trip or the other group; preferred direction).
GROUP_DEBTS = {1: ("home", "pay"), 2: ("trip", "collect"), 3: ("other", "pay")}
DEBT_TITLES = {"pay": ("Pay back {name} {amount}", "Pay back Maya $12.50"),
               "collect": ("Collect {amount} from {name}", "Collect $12.50 from Maya")}


def _group_debts(ctx: Context, group_id: int) -> dict[tuple[str, str], int]:
    """The debts in a group as splitbill reports them: {(debtor, creditor): cents}."""
    owed: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows(ctx, "SELECT e.paid_by, s.username, s.share_cents FROM splitbill_expenses e JOIN splitbill_shares s "
                       "ON s.expense_id = e.expense_id WHERE e.group_id = ?", (group_id,)):
        if r["username"] != r["paid_by"]:
            owed[(r["paid_by"], r["username"])] += r["share_cents"]
    for r in rows(ctx, "SELECT payer, payee, amount_cents FROM splitbill_payments WHERE group_id = ?", (group_id,)):
        owed[(r["payer"], r["payee"])] += r["amount_cents"]
    debts = {}
    for a, b in sorted({tuple(sorted(pair)) for pair in owed}):
        net = owed.get((a, b), 0) - owed.get((b, a), 0)
        if net:
            debts[(b, a) if net > 0 else (a, b)] = abs(net)
    return debts


def _group_kind(name: str) -> str:
    return "home" if name == "Home" else "trip" if name.startswith("Trip to") else "other"


def _group_tasks_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    groups = rows(ctx, "SELECT g.group_id, g.name FROM splitbill_groups g JOIN splitbill_members m ON m.group_id = "
                       "g.group_id WHERE m.username = ? ORDER BY g.group_id", (me,))
    first_names = {r["username"]: r["first_name"] for r in rows(ctx, "SELECT username, first_name FROM "
                                                                     "splitbill_accounts")}
    kind, direction = GROUP_DEBTS[k]
    groups.sort(key=lambda g: _group_kind(g["name"]) != kind)
    options = [(g, d) for g in groups for d in (direction, "collect" if direction == "pay" else "pay")]
    for group, way in options:
        debts = _group_debts(ctx, group["group_id"])
        mine = sorted((creditor if way == "pay" else debtor, cents) for (debtor, creditor), cents in debts.items()
                      if (debtor if way == "pay" else creditor) == me)
        if mine:
            break
    title = DEBT_TITLES[way][0]
    tasks = [{"title": title.format(name=first_names[who], amount=_dollars(cents)), "due_date": None,
              "priority": 2, "labels": ["splitbill"]} for who, cents in mine]
    return {"group": group["name"], "direction": way, "expected": tasks, "me": me}


def _group_tasks_instruction(p: Mapping[str, Any]) -> str:
    title, example = DEBT_TITLES[p["direction"]]
    pattern = title.replace("{name}", "<first name>").replace("{amount}", "<amount>")
    who = ("each person I owe money to" if p["direction"] == "pay" else "each person who owes me money")
    return (f"Check the balances of my '{p['group']}' group on splitbill. For {who} in that group, add a todo task "
            f"'{pattern}' with the exact amount (e.g. '{example}'), priority 2, labelled 'splitbill', no due date.")


def _group_tasks_solution(p: Mapping[str, Any]) -> str:
    pay = p["direction"] == "pay"
    return login("splitbill") + login("todo") + EVERY + _consts(
        GROUP=p["group"], MINE="from_email" if pay else "to_email", OTHER="to_email" if pay else "from_email",
        TITLE="Pay back {name} ${amount:.2f}" if pay else "Collect ${amount:.2f} from {name}") + '''\
groups = every(apis.splitbill.show_groups, access_token=splitbill_token, query=GROUP)
group = [g for g in groups if g["name"] == GROUP][0]
balances = apis.splitbill.show_group_balances(access_token=splitbill_token, group_id=group["group_id"])
members = apis.splitbill.show_group(access_token=splitbill_token, group_id=group["group_id"])["members"]
names = {m["email"]: m["first_name"] for m in members}
for debt in balances["debts"]:
    if debt[MINE] == me["email"]:
        title = TITLE.format(name=names[debt[OTHER]], amount=debt["amount"])
        apis.todo.create_task(access_token=todo_token, title=title, priority=2, labels=["splitbill"])
apis.supervisor.complete_task()
'''


GROUP_DEBT_TASKS = Scenario(
    name="todo_tasks_for_group_debts", kind="action", apps=("splitbill", "todo"), pick=_group_tasks_pick,
    instruction=_group_tasks_instruction, solution=_group_tasks_solution, check=_new_tasks_check)


# ------------------------------------------------------------------- todo tasks for birthdays (action)

BIRTHDAY_CIRCLES = {1: "partner", 2: "roommates", 3: "family"}


def _birthday_pick(ctx: Context, k: int) -> dict[str, Any]:
    today = _today(ctx)
    order = [BIRTHDAY_CIRCLES[k]] + [c for c in ("partner", "roommates", "family", "manager")
                                     if c != BIRTHDAY_CIRCLES[k]]
    for circle in order:
        people = _circle(ctx, circle)
        if people and all(_next_birthday(c["birthday"], today) for c in people):
            break
    tasks = [{"title": f"{c['first_name']} {c['last_name']}'s birthday",
              "due_date": _next_birthday(c["birthday"], today).isoformat(), "priority": 3, "labels": ["birthday"]}
             for c in people]
    return {"circle": circle, "expected": tasks, "me": _supervisor(ctx)["email"]}


def _birthday_instruction(p: Mapping[str, Any]) -> str:
    who = {"partner": "my partner", "manager": "my manager"}.get(p["circle"], f"each of my {p['circle']}"
                                                                 if p["circle"] == "roommates"
                                                                 else "each member of my family")
    return (f"So I stop forgetting birthdays: for {who}, add a todo task titled '<First Last>'s birthday' due on "
            f"their next birthday (today counts), priority 3, labelled 'birthday'. Their birthdays are in my phone "
            f"contacts.")


def _birthday_solution(p: Mapping[str, Any]) -> str:
    return login("phone") + login("todo") + EVERY + _consts(KINDS=list(CIRCLES[p["circle"]])) + '''\
import datetime
today = datetime.date.today()
for kind in KINDS:
    for person in every(apis.phone.search_contacts, access_token=phone_token, relationship=kind):
        day = datetime.date.fromisoformat(person["birthday"]).replace(year=today.year)
        if day < today:
            day = day.replace(year=today.year + 1)
        title = person["first_name"] + " " + person["last_name"] + "'s birthday"
        apis.todo.create_task(access_token=todo_token, title=title, due_date=day.isoformat(), priority=3,
                              labels=["birthday"])
apis.supervisor.complete_task()
'''


BIRTHDAY_TASKS = Scenario(
    name="todo_tasks_for_birthdays", kind="action", apps=("phone", "todo"), pick=_birthday_pick,
    instruction=_birthday_instruction, solution=_birthday_solution, check=_new_tasks_check)


# -------------------------------------------------------------- text open todo tasks to a circle (action)

#: k -> (circle, preferred scope kind).
TEXT_TASKS = {1: ("partner", "week"), 2: ("roommates", "label"), 3: ("manager", "project")}
TEXT_PREFERRED = {2: ("home", "errand", "chores"), 3: ("Work",)}


def _text_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"text_open_todo_tasks/{k}")
    me, today = _supervisor(ctx), _today(ctx)
    tasks = _my_tasks(ctx)
    circle, kind = TEXT_TASKS[k]
    end = (today + timedelta(days=6)).isoformat()
    week = [t for t in tasks if not t["completed"] and t["due_date"] is not None
            and today.isoformat() <= t["due_date"] <= end]
    first = "label" if kind == "week" else kind
    scopes = [s for s in _scopes(tasks, _my_projects(ctx), rng, first) if s[0] != "all"]
    scopes.sort(key=lambda s: s[1] not in TEXT_PREFERRED.get(k, ()))  # stable: the preferred ones first
    if kind == "week" and week:
        scope, chosen = ["week", end], week
    else:
        scope = list(next(s for s in scopes if _open_in(tasks, s)))
        chosen = _open_in(tasks, tuple(scope))
    titles = sorted({t["title"] for t in chosen})
    others = sorted({t["title"] for t in tasks if t["title"] not in titles and not any(
        _norm(t["title"]) in _norm(x) for x in titles)})
    return {"circle": circle, "scope": scope, "titles": titles, "other_titles": others, "my_phone": me["phone"],
            "phones": [c["phone_number"] for c in _circle(ctx, circle)]}


def _text_instruction(p: Mapping[str, Any]) -> str:
    kind, value = p["scope"]
    which = {"week": f"due between today and {value}", "label": f"labelled '{value}'",
             "project": f"in my '{value}' project"}[kind]
    who = CIRCLE_WORDS[p["circle"]] if p["circle"] != "roommates" else "each of my roommates"
    return (f"Text {who} a single message listing the titles of all my open todo tasks {which}, so they know "
            f"what's on my plate. Don't mention any other tasks.")


def _text_solution(p: Mapping[str, Any]) -> str:
    kind, value = p["scope"]
    if kind == "week":
        scope = f'''import datetime
scope = {{"due_after": datetime.date.today().isoformat(), "due_before": "{value}"}}
'''
    else:
        scope = _scope_code((kind, value))
    return login("todo") + login("phone") + EVERY + scope + _consts(KINDS=list(CIRCLES[p["circle"]])) + '''\
tasks = every(apis.todo.search_tasks, access_token=todo_token, completed=False, **scope)
text = "Still on my list: " + "; ".join(t["title"] for t in tasks)
for kind in KINDS:
    for person in every(apis.phone.search_contacts, access_token=phone_token, relationship=kind):
        apis.phone.send_text_message(access_token=phone_token, phone_number=person["phone_number"], message=text)
apis.supervisor.complete_task()
'''


def _text_check(c: Checker, p: Mapping[str, Any]) -> None:
    change = c.changes.get("phone_messages")
    sent = c.as_dicts("phone_messages", change.added) if change else []
    c.require(change is None or not change.removed, "no text message was deleted")
    pairs = sorted((m["sender"], m["receiver"]) for m in sent)
    c.require(pairs == sorted((p["my_phone"], x) for x in p["phones"]),
              f"exactly one text from me to each of {p['phones']} (got {pairs})")
    for message in sent:
        text = _norm(message["message"])
        missing = [t for t in p["titles"] if _norm(t) not in text]
        extra = [t for t in p["other_titles"] if _norm(t) in text]
        c.require(not missing and not extra, f"the text to {message['receiver']} lists {p['titles']} and no other "
                                             f"task (missing {missing}, extra {extra})")
    c.only_changed("phone_messages")


TEXT_OPEN_TASKS = Scenario(
    name="text_open_todo_tasks", kind="action", apps=("todo", "phone"), pick=_text_pick,
    instruction=_text_instruction, solution=_text_solution, check=_text_check)


# ------------------------------------------------------------ alarms for tasks due on a day (action)

ALARM_TIMES = {1: "08:00", 2: "07:30", 3: "09:15"}
ALARM_DAYS = {1: (1, 2, 3, 4, 5, 6), 2: (2, 3, 1, 4, 5, 6), 3: (3, 4, 2, 5, 6, 1)}


def _alarm_pick(ctx: Context, k: int) -> dict[str, Any]:
    today = _today(ctx)
    tasks = [t for t in _my_tasks(ctx) if not t["completed"] and t["due_date"] is not None]
    for offset in ALARM_DAYS[k] + tuple(range(7, 31)):
        day = (today + timedelta(days=offset)).isoformat()
        due = [t for t in tasks if t["due_date"] == day]
        if due:
            break
    weekday = (today + timedelta(days=offset)).strftime("%A")
    return {"day": day, "weekday": weekday, "time": ALARM_TIMES[k], "titles": sorted(t["title"] for t in due),
            "my_phone": _supervisor(ctx)["phone"]}


def _alarm_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + login("phone") + EVERY + _consts(DAY=p["day"], TIME=p["time"]) + '''\
due = every(apis.todo.search_tasks, access_token=todo_token, completed=False, due_after=DAY,
            due_before=DAY)
for task in due:
    apis.phone.create_alarm(access_token=phone_token, time=TIME, label=task["title"])
apis.supervisor.complete_task()
'''


def _alarm_check(c: Checker, p: Mapping[str, Any]) -> None:
    change = c.changes.get("phone_alarms")
    added = c.as_dicts("phone_alarms", change.added) if change else []
    c.require(change is None or not change.removed, "no existing alarm was changed or deleted")
    got = sorted((a["owner"], a["time"], _norm(a["label"]), a["repeat_days"], a["enabled"]) for a in added)
    want = sorted((p["my_phone"], p["time"], _norm(t), "", 1) for t in p["titles"])
    c.require(got == want, f"one enabled one-time alarm at {p['time']} per task, labelled with its title "
                           f"(want {want}, got {got})")
    c.only_changed("phone_alarms")


ALARMS_FOR_TASKS = Scenario(
    name="alarms_for_todo_tasks_due_on_day", kind="action", apps=("todo", "phone"), pick=_alarm_pick,
    instruction=lambda p: (f"I want a nudge for everything due on {p['weekday']}, {p['day']}: for each of my open "
                           f"todo tasks due that day, set a one-time phone alarm at {p['time']} whose label is the "
                           f"task's title."),
    solution=_alarm_solution, check=_alarm_check)


# ------------------------------------------------------------ renewal tasks for expiring cards (action)


def _card_due(expiry: str) -> str:
    month, year = expiry.split("/")
    return f"20{year}-{month}-01"


def _cards_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"todo_tasks_for_expiring_cards/{k}")
    cards = rows(ctx, "SELECT card_name, expiry FROM supervisor_payment_cards ORDER BY card_name")
    months = sorted({_card_due(c["expiry"]) for c in cards})
    last = months[min(len(months) - 1, rng.randrange(len(months)) if k == 3 else k - 1)]
    cutoff = date.fromisoformat(last)
    tasks = [{"title": f"Renew my {c['card_name']} card", "due_date": _card_due(c["expiry"]), "priority": 2,
              "labels": ["finance"]} for c in cards if _card_due(c["expiry"]) <= last]
    return {"last_month": cutoff.strftime("%B %Y"), "last_due": last, "expected": tasks,
            "me": _supervisor(ctx)["email"]}


def _cards_solution(p: Mapping[str, Any]) -> str:
    return login("todo") + _consts(LAST=p["last_due"]) + '''\
for card in apis.supervisor.show_payment_cards():
    month, year = card["expiry"].split("/")
    due = "20" + year + "-" + month + "-01"
    if due <= LAST:
        apis.todo.create_task(access_token=todo_token, title="Renew my " + card["card_name"] + " card",
                              due_date=due, priority=2, labels=["finance"])
apis.supervisor.complete_task()
'''


EXPIRING_CARDS = Scenario(
    name="todo_tasks_for_expiring_cards", kind="action", apps=("supervisor", "todo"), pick=_cards_pick,
    instruction=lambda p: (f"For each of my payment cards that expires in {p['last_month']} or earlier, add a todo "
                           f"task 'Renew my <card name> card' (e.g. 'Renew my Visa Gold card') due on the first day "
                           f"of the month it expires, priority 2, labelled 'finance'."),
    solution=_cards_solution, check=_new_tasks_check)


SCENARIOS: tuple[Scenario, ...] = (
    COUNT_OVERDUE, MOST_URGENT, PROJECT_EXTREME, SPLITBILL_NET, PENDING_REQUESTS_TOTAL, RESCHEDULE_OVERDUE,
    FINISH_PROJECT, REQUEST_TASKS_SCENARIO, GROUP_DEBT_TASKS, BIRTHDAY_TASKS, TEXT_OPEN_TASKS, ALARMS_FOR_TASKS,
    EXPIRING_CARDS,
)
