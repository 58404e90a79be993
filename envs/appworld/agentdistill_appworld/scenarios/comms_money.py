"""Communication and money scenarios over the phone, wallet and splitbill apps (credentials from supervisor).

- ``wallet_total_sent_to_contact`` (question): how much I have sent a named contact on wallet since a date.
- ``phone_number_of_top_payer`` (question): the phone number of whoever sent me the largest payment lately.
- ``splitbill_balance_with_person`` (question): what a named contact owes me, or I owe them, on splitbill.
- ``count_texts_received_by_relationship`` (question): texts received from my family / coworkers / friends.
- ``splitbill_group_members_in_debt`` (question): who in a splitbill group owes money (or is owed), by name.
- ``household_group_spending`` (question): what my roommates / partner paid for group expenses since a date.
- ``square_up_pending_requests`` (action): pay the wallet requests my roommates / family sent me, cancel mine.
- ``request_equal_split_on_wallet`` (action): split a bill I paid with my roommates / family / coworkers.
- ``add_group_expense_split_equally`` (action): log an expense (mine or my partner's) in a splitbill group.
- ``settle_group_debt_via_wallet`` (action): pay a group debt on wallet and record it in splitbill.
- ``text_everyone_with_relationship`` (action): send one text to each of my coworkers / family / friends.
- ``forward_last_text`` (action): forward the last text one contact sent me to another contact.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from agentdistill_appworld.framework import Context
from agentdistill_appworld.scenarios.common import login, rows
from agentdistill_appworld.scenarios.common import supervisor as _supervisor
from agentdistill_appworld.tasks import Checker, Scenario

# ------------------------------------------------------------------------------------------------ helpers

PAGES = '''def every_page(api, **kwargs):
    items, page = [], 0
    while True:
        batch = api(page_index=page, page_limit=20, **kwargs)
        items += batch
        if len(batch) < 20:
            return items
        page += 1
'''

PLURALS = {"roommate": "roommates", "family": "family members", "friend": "friends", "coworker": "coworkers",
           "partner": "partner", "manager": "manager"}


def _role(kind: str) -> str:
    """A relationship tag as a noun for one person: 'my family member Ana', 'my friend Bo'."""
    return "family member" if kind == "family" else kind


def _logins(*apps: str) -> str:
    """Reference-solution prelude: the supervisor's credentials once, a token per app, and ``every_page``."""
    code = login(apps[0])
    for app in apps[1:]:
        field = "phone" if app == "phone" else "email"
        code += (f'{app}_token = apis.{app}.login(username=me["{field}"], '
                 f'password=passwords["{app}"])["access_token"]\n')
    return code + PAGES


def _today(ctx: Context) -> date:
    return datetime.fromisoformat(ctx.now).date()


def _human(day: str) -> str:
    d = date.fromisoformat(day)
    return f"{d:%B} {d.day}, {d.year}"


def _tagged(ctx: Context) -> list[dict[str, Any]]:
    """The supervisor's contacts that have a relationship tag and a full name no other contact shares."""
    found = rows(ctx, "SELECT contact_id, first_name || ' ' || last_name AS name, email, phone_number, "
                      "relationships AS kind FROM phone_contacts WHERE owner = ? ORDER BY contact_id",
                 (_supervisor(ctx)["phone"],))
    names = [r["name"].lower() for r in found]
    return [r for r in found if r["kind"] and sum(r["name"].lower() in n for n in names) == 1]


def _of_kind(ctx: Context, kind: str) -> list[dict[str, Any]]:
    """Every contact with the relationship ``kind`` (whatever their name), by contact id."""
    found = rows(ctx, "SELECT contact_id, first_name || ' ' || last_name AS name, email, phone_number, "
                      "relationships FROM phone_contacts WHERE owner = ? ORDER BY contact_id",
                 (_supervisor(ctx)["phone"],))
    return [r for r in found if kind in r["relationships"].split(",")]


def _owed(ctx: Context, group_id: int | None = None) -> dict[tuple[str, str], int]:
    """``owed[(creditor, debtor)]`` in cents, as splitbill computes it: every share is owed to the expense's
    payer, and a payment from X to Y counts as X lending Y the amount. One group's, or all (``None``)."""
    where = "" if group_id is None else "WHERE e.group_id = ?"
    params = () if group_id is None else (group_id,)
    owed: dict[tuple[str, str], int] = {}
    for r in rows(ctx, "SELECT e.paid_by, s.username, s.share_cents FROM splitbill_expenses e JOIN "
                       f"splitbill_shares s ON s.expense_id = e.expense_id {where}", params):
        if r["username"] != r["paid_by"]:
            key = (r["paid_by"], r["username"])
            owed[key] = owed.get(key, 0) + r["share_cents"]
    where = "" if group_id is None else "WHERE group_id = ?"
    for r in rows(ctx, f"SELECT payer, payee, amount_cents FROM splitbill_payments {where}", params):
        key = (r["payer"], r["payee"])
        owed[key] = owed.get(key, 0) + r["amount_cents"]
    return owed


def _owes(owed: Mapping[tuple[str, str], int], debtor: str, creditor: str) -> int:
    """What ``debtor`` owes ``creditor`` after netting (negative: the other way round)."""
    return owed.get((creditor, debtor), 0) - owed.get((debtor, creditor), 0)


def _nets(owed: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Each person's net (> 0: is owed)."""
    nets: dict[str, int] = {}
    for (creditor, debtor), cents in owed.items():
        nets[creditor] = nets.get(creditor, 0) + cents
        nets[debtor] = nets.get(debtor, 0) - cents
    return nets


def _my_groups(ctx: Context) -> list[dict[str, Any]]:
    return rows(ctx, "SELECT g.group_id, g.name FROM splitbill_groups g JOIN splitbill_members m ON "
                     "m.group_id = g.group_id AND m.username = ? ORDER BY g.group_id",
                (_supervisor(ctx)["email"],))


def _members(ctx: Context, group_id: int) -> list[dict[str, Any]]:
    return rows(ctx, "SELECT a.email, a.first_name || ' ' || a.last_name AS name FROM splitbill_members m "
                     "JOIN splitbill_accounts a ON a.username = m.username WHERE m.group_id = ? "
                     "ORDER BY a.email", (group_id,))


def _answer_dollars(c: Checker, cents: int) -> bool:
    """A money answer: a number (or a numeric string, '$' and ',' allowed) equal to ``cents`` to the cent."""
    answer = c.answer
    if isinstance(answer, str):
        with contextlib.suppress(ValueError):
            answer = float(answer.strip().lstrip("$").replace(",", ""))
    ok = isinstance(answer, (int, float)) and not isinstance(answer, bool) and round(answer * 100) == cents
    return c.require(ok, f"the answer is {cents / 100:.2f} (got {c.answer!r})")


def _one_added(c: Checker, table: str) -> dict[str, Any] | None:
    """The single row added to ``table`` (none removed), or None after recording the failure."""
    change = c.changes.get(table)
    added = change.added if change else ()
    ok = c.require(len(added) == 1 and not change.removed,
                   f"exactly one new row in {table} (got {len(added)})")
    return c.as_dicts(table, added)[0] if ok else None


def _balance_deltas(c: Checker) -> dict[str, int]:
    """Wallet balance changes in cents, by user."""
    change = c.changes.get("wallet_balances")
    if change is None:
        return {}
    before = {r[0]: r[1] for r in change.removed}
    after = {r[0]: r[1] for r in change.added}
    return {u: after.get(u, 0) - before.get(u, 0) for u in sorted(set(before) | set(after))}


def _check_wallet_payments(c: Checker, me: str, expected: Mapping[str, int]) -> None:
    """Exactly one new payment from me per receiver in ``expected`` (email -> cents), and the balances moved
    by exactly those amounts."""
    change = c.changes.get("wallet_transactions")
    added = c.as_dicts("wallet_transactions", change.added) if change else []
    c.require(not (change and change.removed), "no payment was removed or changed")
    got = sorted((t["sender"], t["receiver"], t["amount_cents"]) for t in added)
    want = sorted((me, email, cents) for email, cents in expected.items())
    c.require(got == want, f"the new payments are {want} (got {got})")
    deltas = {me: -sum(expected.values())} if expected else {}
    for email, cents in expected.items():
        deltas[email] = deltas.get(email, 0) + cents
    c.require(_balance_deltas(c) == deltas, f"only the balances of the people involved moved, by {deltas}")


# ------------------------------------------------------------------- total sent to a contact (question)

SENT_DAYS = {1: 30, 2: 45, 3: 60}


def _sent_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"wallet_total_sent_to_contact/{k}")
    me = _supervisor(ctx)
    people = {r["email"]: r for r in _tagged(ctx)}
    for days in (SENT_DAYS[k], 90, 365):
        start = (_today(ctx) - timedelta(days=days)).isoformat()
        sent = rows(ctx, "SELECT receiver, COUNT(*) AS n, SUM(amount_cents) AS cents FROM "
                         "wallet_transactions WHERE sender = ? AND substr(created_at, 1, 10) >= ? "
                         "GROUP BY receiver ORDER BY receiver", (me["email"], start))
        sent = [r for r in sent if r["receiver"] in people]
        payers = {r["sender"] for r in rows(ctx, "SELECT DISTINCT sender FROM wallet_transactions WHERE "
                                                 "receiver = ? AND substr(created_at, 1, 10) >= ?",
                                            (me["email"], start))}
        # best: several payments to someone who also paid me (so the direction matters)
        choices = ([r for r in sent if r["n"] >= 2 and r["receiver"] in payers]
                   or [r for r in sent if r["receiver"] in payers]
                   or [r for r in sent if r["n"] >= 2] or sent)
        if choices:
            break
    else:
        raise LookupError("the supervisor never paid a contact on wallet")
    pick = rng.choice(choices)
    person = people[pick["receiver"]]
    return {"kind": person["kind"], "name": person["name"], "start": start, "expected_cents": pick["cents"],
            "expected": pick["cents"] / 100}


def _sent_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone", "wallet") + f'''\
found = every_page(apis.phone.search_contacts, access_token=phone_token, query={p["name"]!r},
                   relationship={p["kind"]!r})
contact = [c for c in found if c["first_name"] + " " + c["last_name"] == {p["name"]!r}][0]
sent = every_page(apis.wallet.show_transactions, access_token=wallet_token, direction="sent",
                  email=contact["email"], start_date={p["start"]!r})
apis.supervisor.complete_task(answer=round(sum(t["amount"] for t in sent), 2))
'''


def _sent_check(c: Checker, p: Mapping[str, Any]) -> None:
    _answer_dollars(c, p["expected_cents"])
    c.only_changed()


TOTAL_SENT = Scenario(
    name="wallet_total_sent_to_contact", kind="question", apps=("phone", "wallet"), pick=_sent_pick,
    instruction=lambda p: (f"How much money have I sent my {_role(p['kind'])} {p['name']} on wallet since "
                           f"{_human(p['start'])}? Add up every payment from that day on."),
    solution=_sent_solution, check=_sent_check)


# ------------------------------------------------------------- phone number of the top payer (question)

TOP_START_DAYS = {1: 14, 2: 21, 3: 40}


def _top_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)
    phones = {r["email"]: r["phone_number"] for r in rows(
        ctx, "SELECT email, phone_number FROM phone_contacts WHERE owner = ?", (me["phone"],))}
    for days in range(TOP_START_DAYS[k], 366, 7):
        start = (_today(ctx) - timedelta(days=days)).isoformat()
        got = rows(ctx, "SELECT sender, amount_cents FROM wallet_transactions WHERE receiver = ? AND "
                        "substr(created_at, 1, 10) >= ? ORDER BY amount_cents DESC", (me["email"], start))
        if len(got) >= 2 and got[0]["amount_cents"] > got[1]["amount_cents"] and got[0]["sender"] in phones:
            return {"start": start, "sender": got[0]["sender"], "expected": phones[got[0]["sender"]],
                    "payments": len(got)}
    raise LookupError("no window with a single largest payment from a contact")


def _top_solution(p: Mapping[str, Any]) -> str:
    return _logins("wallet", "phone") + f'''\
received = every_page(apis.wallet.show_transactions, access_token=wallet_token, direction="received",
                      start_date={p["start"]!r})
top = max(received, key=lambda t: t["amount"])
contact = apis.phone.search_contacts(access_token=phone_token, query=top["sender_email"])[0]
apis.supervisor.complete_task(answer=contact["phone_number"])
'''


def _top_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


TOP_PAYER_PHONE = Scenario(
    name="phone_number_of_top_payer", kind="question", apps=("wallet", "phone"), pick=_top_pick,
    instruction=lambda p: (f"Of all the wallet payments I've received since {_human(p['start'])} (that day "
                           "included), who sent me the biggest one? Tell me their phone number (just the 10 "
                           "digits)."),
    solution=_top_solution, check=_top_check)


# --------------------------------------------------------- splitbill balance with one person (question)

BALANCE_SIDES = {1: "owes_you", 2: "you_owe", 3: None}


def _balance_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"splitbill_balance_with_person/{k}")
    me = _supervisor(ctx)["email"]
    owed = _owed(ctx)
    names = [r["name"].lower() for r in rows(ctx, "SELECT first_name || ' ' || last_name AS name "
                                                  "FROM splitbill_accounts")]
    candidates = []
    for person in sorted(_tagged(ctx), key=lambda r: r["email"]):
        net = _owes(owed, person["email"], me)  # > 0: they owe me
        if net and names.count(person["name"].lower()) == 1:
            candidates.append((person, "owes_you" if net > 0 else "you_owe", abs(net)))
    if not candidates:
        raise LookupError("nobody owes the supervisor or is owed by them on splitbill")
    preferred = [x for x in candidates if x[1] == BALANCE_SIDES[k]] or candidates
    person, side, cents = rng.choice(preferred)
    return {"kind": person["kind"], "name": person["name"], "side": side, "expected_cents": cents,
            "expected": cents / 100}


def _balance_solution(p: Mapping[str, Any]) -> str:
    return _logins("splitbill") + f'''\
found = every_page(apis.splitbill.search_users, access_token=splitbill_token, query={p["name"]!r})
person = [u for u in found if u["first_name"] + " " + u["last_name"] == {p["name"]!r}][0]
balances = apis.splitbill.show_balances(access_token=splitbill_token)
amount = [b["amount"] for b in balances[{p["side"]!r}] if b["email"] == person["email"]][0]
apis.supervisor.complete_task(answer=amount)
'''


def _balance_instruction(p: Mapping[str, Any]) -> str:
    if p["side"] == "owes_you":
        return (f"How much does my {_role(p['kind'])} {p['name']} owe me on splitbill, all our groups and "
                "shared expenses taken together?")
    return (f"What do I owe my {_role(p['kind'])} {p['name']} on splitbill in total, across every group and "
            "shared expense?")


def _balance_check(c: Checker, p: Mapping[str, Any]) -> None:
    _answer_dollars(c, p["expected_cents"])
    c.only_changed()


SPLITBILL_BALANCE = Scenario(
    name="splitbill_balance_with_person", kind="question", apps=("splitbill",), pick=_balance_pick,
    instruction=_balance_instruction, solution=_balance_solution, check=_balance_check)


# ---------------------------------------------------- texts received from one relationship kind (question)

TEXT_KINDS = {1: "family", 2: "coworker", 3: "friend"}
TEXT_PHRASES = {"family": "my family", "coworker": "my coworkers", "friend": "my friends",
                "roommate": "my roommates", "partner": "my partner", "manager": "my manager"}


def _texts_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"count_texts_received_by_relationship/{k}")
    me = _supervisor(ctx)["phone"]
    base = rng.randint(10, 35)
    kinds = [TEXT_KINDS[k]] + [x for x in TEXT_PHRASES if x != TEXT_KINDS[k]]
    for kind in kinds:
        phones = [r["phone_number"] for r in _of_kind(ctx, kind)]
        for days in range(base, 70, 10):
            start = (_today(ctx) - timedelta(days=days)).isoformat()
            count = sum(rows(ctx, "SELECT COUNT(*) AS n FROM phone_messages WHERE receiver = ? AND "
                                  "sender = ? AND substr(sent_at, 1, 10) >= ?", (me, phone, start))[0]["n"]
                        for phone in phones)
            if count:
                return {"kind": kind, "start": start, "people": len(phones), "expected": count}
    raise LookupError("nobody with a relationship ever texted the supervisor")


def _texts_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone") + f'''\
count = 0
people = every_page(apis.phone.search_contacts, access_token=phone_token, relationship={p["kind"]!r})
for person in people:
    texts = every_page(apis.phone.search_text_messages, access_token=phone_token,
                       phone_number=person["phone_number"])
    count += sum(1 for t in texts
                 if t["sender"] == person["phone_number"] and t["sent_at"][:10] >= {p["start"]!r})
apis.supervisor.complete_task(answer=count)
'''


def _texts_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


COUNT_TEXTS = Scenario(
    name="count_texts_received_by_relationship", kind="question", apps=("phone",), pick=_texts_pick,
    instruction=lambda p: (f"How many text messages have I received from {TEXT_PHRASES[p['kind']]} since "
                           f"{_human(p['start'])}, that day included? Count everyone saved with that "
                           "relationship in my contacts."),
    solution=_texts_solution, check=_texts_check)


# ------------------------------------------------------------ who owes (or is owed) in a group (question)

DEBTOR_SIDES = {1: "owe", 2: "owed", 3: "owe"}


def _debtors_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    groups = _my_groups(ctx)
    first = min(k - 1, len(groups) - 1)  # Home first for variant 1, another group for variants 2 and 3
    order = groups[first:] + groups[:first]
    for side in (DEBTOR_SIDES[k], "owed" if DEBTOR_SIDES[k] == "owe" else "owe"):
        for group in order:
            nets = _nets(_owed(ctx, group["group_id"]))
            sign = -1 if side == "owe" else 1
            names = sorted(m["name"] for m in _members(ctx, group["group_id"])
                           if m["email"] != me and nets.get(m["email"], 0) * sign > 0)
            if names:
                return {"group": group["name"], "side": side, "expected": names}
    raise LookupError("every splitbill group of the supervisor is settled")


def _debtors_solution(p: Mapping[str, Any]) -> str:
    test = "< 0" if p["side"] == "owe" else "> 0"
    return _logins("splitbill") + f'''\
groups = every_page(apis.splitbill.show_groups, access_token=splitbill_token, query={p["group"]!r})
group = [g for g in groups if g["name"] == {p["group"]!r}][0]
members = apis.splitbill.show_group(access_token=splitbill_token, group_id=group["group_id"])["members"]
balances = apis.splitbill.show_group_balances(access_token=splitbill_token, group_id=group["group_id"])
nets = {{m["email"]: m["net"] for m in balances["members"]}}
names = [m["first_name"] + " " + m["last_name"] for m in members
         if m["email"] != me["email"] and nets.get(m["email"], 0) {test}]
apis.supervisor.complete_task(answer=names)
'''


def _debtors_instruction(p: Mapping[str, Any]) -> str:
    if p["side"] == "owe":
        return (f"Who in my '{p['group']}' group on splitbill still owes money in the group? Leave me out "
                "and give me their full names.")
    return (f"In my '{p['group']}' group on splitbill, which members other than me are still owed money? "
            "List their full names.")


def _debtors_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(list(p["expected"]))
    c.only_changed()


GROUP_DEBTORS = Scenario(
    name="splitbill_group_members_in_debt", kind="question", apps=("splitbill",), pick=_debtors_pick,
    instruction=_debtors_instruction, solution=_debtors_solution, check=_debtors_check)


# --------------------------------------------- what my household paid in a group since a date (question)

SPENDING_KINDS = {1: "roommate", 2: "partner", 3: "roommate"}


def _spending_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"household_group_spending/{k}")
    kind = SPENDING_KINDS[k]
    emails = [r["email"] for r in _of_kind(ctx, kind)]
    groups = [g for g in _my_groups(ctx) if set(emails) <= {m["email"] for m in _members(ctx, g["group_id"])}]
    if not groups:
        raise LookupError(f"no splitbill group holds all of the supervisor's {PLURALS[kind]}")
    group = groups[0]
    marks = ", ".join("?" for _ in emails)
    for days in range(rng.randint(15, 50), 400, 10):
        start = (_today(ctx) - timedelta(days=days)).isoformat()
        cents = rows(ctx, "SELECT COALESCE(SUM(amount_cents), 0) AS c FROM splitbill_expenses WHERE "
                          f"group_id = ? AND date >= ? AND paid_by IN ({marks})",
                     (group["group_id"], start, *emails))[0]["c"]
        if cents:
            return {"kind": kind, "group": group["name"], "start": start, "expected_cents": cents,
                    "expected": cents / 100}
    raise LookupError(f"the supervisor's {PLURALS[kind]} never paid a group expense")


def _spending_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone", "splitbill") + f'''\
groups = every_page(apis.splitbill.show_groups, access_token=splitbill_token, query={p["group"]!r})
group = [g for g in groups if g["name"] == {p["group"]!r}][0]
total = 0
people = every_page(apis.phone.search_contacts, access_token=phone_token, relationship={p["kind"]!r})
for person in people:
    paid = every_page(apis.splitbill.show_expenses, access_token=splitbill_token, group_id=group["group_id"],
                      paid_by_email=person["email"], start_date={p["start"]!r})
    total += sum(e["amount"] for e in paid)
apis.supervisor.complete_task(answer=round(total, 2))
'''


def _spending_instruction(p: Mapping[str, Any]) -> str:
    who = "have my roommates paid altogether" if p["kind"] == "roommate" else f"has my {p['kind']} paid"
    return (f"How much {who} for expenses in our '{p['group']}' group on splitbill? Only count expenses "
            f"dated {_human(p['start'])} or later.")


def _spending_check(c: Checker, p: Mapping[str, Any]) -> None:
    _answer_dollars(c, p["expected_cents"])
    c.only_changed()


HOUSEHOLD_SPENDING = Scenario(
    name="household_group_spending", kind="question", apps=("phone", "splitbill"), pick=_spending_pick,
    instruction=_spending_instruction, solution=_spending_solution, check=_spending_check)


# ---------------------------------------- square up pending wallet requests with one kind of contact (action)

SQUARE_KINDS = ("roommate", "family", "friend", "partner")


def _square_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    pending = rows(ctx, "SELECT request_id, requester, payer, amount_cents, note, private FROM "
                        "wallet_requests WHERE status = 'pending' AND (requester = ? OR payer = ?) "
                        "ORDER BY request_id", (me, me))
    order = SQUARE_KINDS[k - 1:] + SQUARE_KINDS[:k - 1]
    found = {}
    for kind in order:
        emails = {r["email"] for r in _of_kind(ctx, kind)}
        incoming = [r for r in pending if r["payer"] == me and r["requester"] in emails]
        outgoing = [r for r in pending if r["requester"] == me and r["payer"] in emails]
        found[kind] = (incoming, outgoing)
    others = {kind: [r for r in pending if r not in found[kind][0] + found[kind][1]] for kind in order}
    # best: requests to pay among other pending requests (so choosing the right people matters)
    kind = (next((x for x in order if found[x][0] and others[x]), None)
            or next((x for x in order if found[x][0]), None) or next((x for x in order if found[x][1]), None))
    if kind is None:
        raise LookupError("the supervisor has no pending wallet request with anyone close")
    incoming, outgoing = found[kind]
    return {"kind": kind, "me": me, "pay": incoming, "cancel": outgoing, "wording": k}


def _square_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone", "wallet") + f'''\
people = {{c["email"] for c in every_page(apis.phone.search_contacts, access_token=phone_token,
                                          relationship={p["kind"]!r})}}
for request in every_page(apis.wallet.show_payment_requests, access_token=wallet_token, status="pending"):
    if request["payer_email"] == me["email"] and request["requester_email"] in people:
        apis.wallet.approve_payment_request(access_token=wallet_token, request_id=request["request_id"])
    elif request["requester_email"] == me["email"] and request["payer_email"] in people:
        apis.wallet.cancel_payment_request(access_token=wallet_token, request_id=request["request_id"])
apis.supervisor.complete_task()
'''


def _square_check(c: Checker, p: Mapping[str, Any]) -> None:
    statuses = {r["request_id"]: "approved" for r in p["pay"]}
    statuses.update({r["request_id"]: "cancelled" for r in p["cancel"]})
    change = c.changes.get("wallet_requests")
    before = {r["request_id"]: r for r in c.as_dicts("wallet_requests", change.removed)} if change else {}
    after = {r["request_id"]: r for r in c.as_dicts("wallet_requests", change.added)} if change else {}
    c.require(set(before) == set(after) == set(statuses),
              f"exactly the requests {sorted(statuses)} changed (got {sorted(set(before) | set(after))})")
    new = c.changes.get("wallet_transactions")
    paid = {t["request_id"]: t for t in c.as_dicts("wallet_transactions", new.added)} if new else {}
    for request_id, status in sorted(statuses.items()):
        row = after.get(request_id)
        if row is None or request_id not in before:
            continue
        c.require(row["status"] == status, f"request {request_id} is {status} (got {row['status']})")
        same = {key for key in row if key not in ("status", "transaction_id", "updated_at")}
        c.require(all(row[key] == before[request_id][key] for key in same),
                  f"request {request_id} kept its details")
        link = paid.get(request_id, {}).get("transaction_id") if status == "approved" else None
        c.require(row["transaction_id"] == link,
                  f"request {request_id} links to {'its payment' if link else 'no payment'}")
    c.require(set(paid) == {r["request_id"] for r in p["pay"]}, "each paid request has its own payment")
    owed: dict[str, int] = {}
    for r in p["pay"]:
        owed[r["requester"]] = owed.get(r["requester"], 0) + r["amount_cents"]
    if p["pay"]:
        _check_wallet_payments(c, p["me"], owed)
        c.only_changed("wallet_requests", "wallet_transactions", "wallet_balances")
    else:
        c.only_changed("wallet_requests")


def _square_instruction(p: Mapping[str, Any]) -> str:
    people = PLURALS[p["kind"]]
    them = "they've" if p["kind"] != "partner" else "my partner has"
    whom = "them" if p["kind"] != "partner" else "my partner"
    if p["wording"] == 1:
        return (f"I'm squaring up with my {people} on wallet: pay every pending request {them} sent me, and "
                f"cancel any pending request I've sent {whom}. Leave every other request as it is.")
    if p["wording"] == 2:
        return (f"Clear out my open wallet requests with my {people}: approve the ones {them} sent me and "
                f"cancel the ones I sent {whom}. Don't touch requests with anyone else.")
    return (f"On wallet, approve each pending request from my {people} and cancel each pending request I "
            f"made to {whom}; every other request stays as it is.")


SQUARE_UP = Scenario(
    name="square_up_pending_requests", kind="action", apps=("phone", "wallet"), pick=_square_pick,
    instruction=_square_instruction, solution=_square_solution, check=_square_check)


# -------------------------------------------------- request an equal share of a bill on wallet (action)

SPLIT_KINDS = {1: "roommate", 2: "family", 3: "coworker"}
SPLIT_ITEMS = {"roommate": ("new couch", "cleaning service", "wifi router", "housewarming party"),
               "family": ("anniversary dinner for mom and dad", "grandma's birthday present",
                          "holiday cabin deposit"),
               "coworker": ("team lunch", "farewell gift for Sam", "office coffee machine")}


def _split_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"request_equal_split_on_wallet/{k}")
    kind = SPLIT_KINDS[k]
    people = _of_kind(ctx, kind)
    share = rng.randrange(1200, 6000)
    item = rng.choice(SPLIT_ITEMS[kind])
    return {"kind": kind, "item": item, "note": item.capitalize(), "total_cents": share * (len(people) + 1),
            "share_cents": share, "payers": sorted(r["email"] for r in people),
            "me": _supervisor(ctx)["email"]}


def _split_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone", "wallet") + f'''\
people = every_page(apis.phone.search_contacts, access_token=phone_token,
                    relationship={p["kind"]!r})
share = round({p["total_cents"] / 100} / (len(people) + 1), 2)
for person in people:
    apis.wallet.request_money(access_token=wallet_token, payer_email=person["email"], amount=share,
                              note={p["note"]!r})
apis.supervisor.complete_task()
'''


def _split_check(c: Checker, p: Mapping[str, Any]) -> None:
    change = c.changes.get("wallet_requests")
    added = c.as_dicts("wallet_requests", change.added) if change else []
    c.require(not (change and change.removed), "no existing request changed")
    got = sorted((r["requester"], r["payer"], r["amount_cents"], r["status"]) for r in added)
    want = sorted((p["me"], email, p["share_cents"], "pending") for email in p["payers"])
    c.require(got == want,
              f"one pending request of {p['share_cents'] / 100:.2f} to each of {p['payers']} (got {got})")
    c.require(all(p["item"].lower() in r["note"].lower() for r in added), f"every note says '{p['note']}'")
    c.only_changed("wallet_requests")


REQUEST_SPLIT = Scenario(
    name="request_equal_split_on_wallet", kind="action", apps=("phone", "wallet"), pick=_split_pick,
    instruction=lambda p: (f"I paid ${p['total_cents'] / 100:.2f} for the {p['item']}. Split it evenly "
                           f"between me and my {PLURALS[p['kind']]}, and send each of them a wallet request "
                           f"for their share with the note '{p['note']}'."),
    solution=_split_solution, check=_split_check)


# ----------------------------------------------------------- add a group expense split equally (action)

EXPENSE_TITLES = {1: ("Dish rack", "Light bulbs", "Pizza night", "Laundry detergent"),
                  2: ("Farmers market haul", "New shower head", "Pantry restock", "Window cleaning"),
                  3: ("Concert tickets", "Picnic supplies", "Late-night tacos", "Bike rental")}


def _expense_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"add_group_expense_split_equally/{k}")
    me = _supervisor(ctx)["email"]
    groups = _my_groups(ctx)
    partner = _of_kind(ctx, "partner")[0]
    home = next(g for g in groups if partner["email"] in {m["email"] for m in _members(ctx, g["group_id"])})
    group = rng.choice([g for g in groups if g["group_id"] != home["group_id"]]) if k == 3 and len(groups) > 1 else home
    members = _members(ctx, group["group_id"])
    payer = {"email": me, "name": None}
    split = [m["email"] for m in members]
    friend = None
    if k == 2:
        payer = {"email": partner["email"], "name": partner["name"]}
    elif k == 3:
        tags = {r["email"]: r["kind"] for r in _tagged(ctx)}
        friend = rng.choice([m for m in members if m["email"] in tags])
        split = [me, friend["email"]]
    amount = rng.randrange(1500, 16000)
    base, extra = divmod(amount, len(split))
    shares = {email: base + (1 if i < extra else 0) for i, email in enumerate(sorted(split))}
    return {"group": group["name"], "group_id": group["group_id"], "title": rng.choice(EXPENSE_TITLES[k]),
            "amount_cents": amount, "date": (_today(ctx) - timedelta(days=rng.randint(1, 6))).isoformat(),
            "payer": payer["email"], "payer_name": payer["name"], "friend": friend and friend["name"],
            "friend_kind": friend and tags[friend["email"]], "shares": shares, "me": me}


def _expense_solution(p: Mapping[str, Any]) -> str:
    payer = "me['email']" if p["payer_name"] is None else f"emails[{p['payer_name']!r}]"
    split = "list(emails.values())" if p["friend"] is None else f"[me['email'], emails[{p['friend']!r}]]"
    return _logins("splitbill") + f'''\
groups = every_page(apis.splitbill.show_groups, access_token=splitbill_token, query={p["group"]!r})
group = [g for g in groups if g["name"] == {p["group"]!r}][0]
members = apis.splitbill.show_group(access_token=splitbill_token, group_id=group["group_id"])["members"]
emails = {{m["first_name"] + " " + m["last_name"]: m["email"] for m in members}}
apis.splitbill.add_expense(access_token=splitbill_token, title={p["title"]!r},
                           amount={p["amount_cents"] / 100}, group_id=group["group_id"],
                           paid_by_email={payer}, split_with={split}, date={p["date"]!r})
apis.supervisor.complete_task()
'''


def _expense_instruction(p: Mapping[str, Any]) -> str:
    amount, day, group, title = f"${p['amount_cents'] / 100:.2f}", _human(p["date"]), p["group"], p["title"]
    if p["payer_name"] is not None:
        return (f"My partner {p['payer_name']} paid {amount} for '{title}' on {day}. Log it in our '{group}' "
                "group on splitbill, split equally among all the members.")
    if p["friend"] is not None:
        return (f"On {day} I paid {amount} for '{title}'. Add it to my '{group}' group on splitbill, split "
                f"equally between just me and my {_role(p['friend_kind'])} {p['friend']}.")
    return (f"Add a '{title}' expense of {amount} to my '{group}' group on splitbill: I paid it on {day}; "
            "split it equally among everyone in the group.")


def _expense_check(c: Checker, p: Mapping[str, Any]) -> None:
    expense = _one_added(c, "splitbill_expenses")
    if expense is not None:
        got = (expense["group_id"], expense["title"].strip().lower(), expense["amount_cents"],
               expense["paid_by"], expense["date"])
        want = (p["group_id"], p["title"].lower(), p["amount_cents"], p["payer"], p["date"])
        c.require(got == want, f"the expense is {want} (got {got})")
    change = c.changes.get("splitbill_shares")
    shares = c.as_dicts("splitbill_shares", change.added) if change else []
    c.require(not (change and change.removed), "no existing share changed")
    got_shares = {s["username"]: s["share_cents"] for s in shares
                  if expense is not None and s["expense_id"] == expense["expense_id"]}
    c.require(len(shares) == len(got_shares) and got_shares == p["shares"],
              f"the expense is shared {p['shares']} (got {got_shares})")
    c.only_changed("splitbill_expenses", "splitbill_shares")


ADD_GROUP_EXPENSE = Scenario(
    name="add_group_expense_split_equally", kind="action", apps=("splitbill",), pick=_expense_pick,
    instruction=_expense_instruction, solution=_expense_solution, check=_expense_check)


# ---------------------------------------------------- pay a group debt on wallet and record it (action)


def _settle_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"settle_group_debt_via_wallet/{k}")
    me = _supervisor(ctx)["email"]
    balance = rows(ctx, "SELECT balance_cents FROM wallet_balances WHERE username = ?",
                   (me,))[0]["balance_cents"]
    tagged = {r["email"]: r for r in _tagged(ctx)}
    candidates = []
    for group in _my_groups(ctx):
        owed = _owed(ctx, group["group_id"])
        names = [m["name"].lower() for m in _members(ctx, group["group_id"])]
        for member in _members(ctx, group["group_id"]):
            cents = _owes(owed, me, member["email"])
            unique = names.count(member["name"].lower()) == 1
            if 0 < cents <= balance and member["email"] in tagged and unique:
                candidates.append((group, member, cents))
    if not candidates:
        raise LookupError("the supervisor owes nobody in any splitbill group (or cannot afford it)")
    group, member, cents = rng.choice(candidates)
    return {"group": group["name"], "group_id": group["group_id"], "name": member["name"],
            "email": member["email"], "kind": tagged[member["email"]]["kind"], "amount_cents": cents,
            "me": me}


def _settle_solution(p: Mapping[str, Any]) -> str:
    return _logins("splitbill", "wallet") + f'''\
groups = every_page(apis.splitbill.show_groups, access_token=splitbill_token, query={p["group"]!r})
group = [g for g in groups if g["name"] == {p["group"]!r}][0]
members = apis.splitbill.show_group(access_token=splitbill_token, group_id=group["group_id"])["members"]
them = [m["email"] for m in members if m["first_name"] + " " + m["last_name"] == {p["name"]!r}][0]
debts = apis.splitbill.show_group_balances(access_token=splitbill_token, group_id=group["group_id"])["debts"]
amount = [d["amount"] for d in debts if d["from_email"] == me["email"] and d["to_email"] == them][0]
apis.wallet.send_money(access_token=wallet_token, receiver_email=them, amount=amount,
                       note={p["group"] + " settle up"!r})
apis.splitbill.record_payment(access_token=splitbill_token, to_email=them, amount=amount,
                              group_id=group["group_id"], note="wallet")
apis.supervisor.complete_task()
'''


def _settle_check(c: Checker, p: Mapping[str, Any]) -> None:
    payment = _one_added(c, "splitbill_payments")
    if payment is not None:
        got = (payment["group_id"], payment["payer"], payment["payee"], payment["amount_cents"])
        want = (p["group_id"], p["me"], p["email"], p["amount_cents"])
        c.require(got == want, f"the splitbill payment is {want} (got {got})")
    _check_wallet_payments(c, p["me"], {p["email"]: p["amount_cents"]})
    c.only_changed("splitbill_payments", "wallet_transactions", "wallet_balances")


SETTLE_DEBT = Scenario(
    name="settle_group_debt_via_wallet", kind="action", apps=("splitbill", "wallet"), pick=_settle_pick,
    instruction=lambda p: (f"Pay back what I owe my {_role(p['kind'])} {p['name']} in our '{p['group']}' "
                           "group on splitbill: send them exactly that amount on wallet, then record the "
                           "payment in the group."),
    solution=_settle_solution, check=_settle_check)


# --------------------------------------------------------- text everyone of one relationship kind (action)

BROADCAST_KINDS = {1: "coworker", 2: "family", 3: "friend"}
BROADCASTS = {
    "coworker": ("Heads up: I'm out of office on Friday, text me if anything urgent comes up.",
                 "Reminder: the team lunch moved to Thursday at noon."),
    "family": ("Family dinner at my place on Sunday at 6pm, hope you can all make it!",
               "I'll be travelling next week, call me if you need anything before Monday."),
    "friend": ("Game night at my place this Saturday at 7, bring snacks!",
               "Anyone up for a hike on Sunday morning? Meeting at the trailhead at 9."),
}


def _broadcast_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"text_everyone_with_relationship/{k}")
    kind = BROADCAST_KINDS[k]
    return {"kind": kind, "message": rng.choice(BROADCASTS[kind]),
            "phones": sorted(r["phone_number"] for r in _of_kind(ctx, kind)), "me": _supervisor(ctx)["phone"]}


def _broadcast_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone") + f'''\
people = every_page(apis.phone.search_contacts, access_token=phone_token, relationship={p["kind"]!r})
for person in people:
    apis.phone.send_text_message(access_token=phone_token, phone_number=person["phone_number"],
                                 message={p["message"]!r})
apis.supervisor.complete_task()
'''


def _broadcast_check(c: Checker, p: Mapping[str, Any]) -> None:
    change = c.changes.get("phone_messages")
    added = c.as_dicts("phone_messages", change.added) if change else []
    c.require(not (change and change.removed), "no existing message changed")
    receivers = sorted(m["receiver"] for m in added)
    c.require(receivers == p["phones"], f"one text to each of {p['phones']} (got {receivers})")
    c.require(all(m["sender"] == p["me"] for m in added), "every text is sent by me")
    c.require(all(m["message"].strip() == p["message"] for m in added), f"every text says {p['message']!r}")
    c.only_changed("phone_messages")


TEXT_EVERYONE = Scenario(
    name="text_everyone_with_relationship", kind="action", apps=("phone",), pick=_broadcast_pick,
    instruction=lambda p: (f"Text this, word for word, to everyone tagged '{p['kind']}' in my phone "
                           f"contacts: \"{p['message']}\""),
    solution=_broadcast_solution, check=_broadcast_check)


# ------------------------------------------------------------------ forward someone's last text (action)

FORWARD_KINDS = {1: ("manager", "partner"), 2: ("partner", "roommate"), 3: ("family", "friend")}
FORWARD_FALLBACK = ("partner", "roommate", "family", "friend", "coworker", "manager")


def _forward_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"forward_last_text/{k}")
    me = _supervisor(ctx)["phone"]
    src_kind, dst_kind = FORWARD_KINDS[k]
    tagged = _tagged(ctx)
    def last_sender(phone: str) -> str | None:
        found = rows(ctx, "SELECT sender FROM phone_messages WHERE (sender = ? AND receiver = ?) OR "
                          "(sender = ? AND receiver = ?) ORDER BY sent_at DESC, message_id DESC LIMIT 1",
                     (phone, me, me, phone))
        return found[0]["sender"] if found else None

    def first_kind(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The people of the first kind in ``kinds`` that any of them has."""
        present = [x for x in kinds if any(r["kind"] == x for r in people)]
        return [r for r in people if r["kind"] == present[0]] if present else []

    kinds = (src_kind, *[x for x in FORWARD_FALLBACK if x not in (src_kind, dst_kind)])
    texted = [r for r in tagged if rows(ctx, "SELECT 1 FROM phone_messages WHERE sender = ? AND receiver = ?",
                                        (r["phone_number"], me))]
    # best: someone whose conversation ends with my reply (so the last text *they* sent must be looked for)
    senders = first_kind([r for r in texted if last_sender(r["phone_number"]) == me]) or first_kind(texted)
    if not senders:
        raise LookupError("no contact has ever texted the supervisor")
    source = rng.choice(senders)
    targets = [r for r in tagged if r["kind"] == dst_kind]
    target = rng.choice(targets or [r for r in tagged if r["kind"] not in (source["kind"], "")])
    text = rows(ctx, "SELECT message FROM phone_messages WHERE sender = ? AND receiver = ? ORDER BY sent_at "
                     "DESC, message_id DESC LIMIT 1", (source["phone_number"], me))[0]["message"]
    return {"src_kind": source["kind"], "src_name": source["name"], "dst_kind": target["kind"],
            "dst_name": target["name"], "dst_phone": target["phone_number"], "text": text, "me": me}


def _forward_solution(p: Mapping[str, Any]) -> str:
    return _logins("phone") + f'''\
def contact(name, kind):
    found = every_page(apis.phone.search_contacts, access_token=phone_token, query=name, relationship=kind)
    return [c for c in found if c["first_name"] + " " + c["last_name"] == name][0]
source = contact({p["src_name"]!r}, {p["src_kind"]!r})
target = contact({p["dst_name"]!r}, {p["dst_kind"]!r})
last, page = None, 0
while last is None:
    batch = apis.phone.search_text_messages(access_token=phone_token, phone_number=source["phone_number"],
                                            page_index=page, page_limit=20)
    theirs = [t for t in batch if t["sender"] == source["phone_number"]]
    last = theirs[0] if theirs else None
    page += 1
apis.phone.send_text_message(access_token=phone_token, phone_number=target["phone_number"],
                             message=last["message"])
apis.supervisor.complete_task()
'''


def _forward_check(c: Checker, p: Mapping[str, Any]) -> None:
    text = _one_added(c, "phone_messages")
    if text is not None:
        c.require((text["sender"], text["receiver"]) == (p["me"], p["dst_phone"]),
                  f"the text goes from me to {p['dst_name']} ({p['dst_phone']})")
        c.require(text["message"].strip() == p["text"].strip(),
                  f"the text is {p['text']!r} (got {text['message']!r})")
    c.only_changed("phone_messages")


FORWARD_TEXT = Scenario(
    name="forward_last_text", kind="action", apps=("phone",), pick=_forward_pick,
    instruction=lambda p: (f"Forward the most recent text my {_role(p['src_kind'])} {p['src_name']} sent me "
                           f"to my {_role(p['dst_kind'])} {p['dst_name']}, word for word."),
    solution=_forward_solution, check=_forward_check)


SCENARIOS: tuple[Scenario, ...] = (
    TOTAL_SENT, TOP_PAYER_PHONE, SPLITBILL_BALANCE, COUNT_TEXTS, GROUP_DEBTORS, HOUSEHOLD_SPENDING,
    SQUARE_UP, REQUEST_SPLIT, ADD_GROUP_EXPENSE, SETTLE_DEBT, TEXT_EVERYONE, FORWARD_TEXT,
)
