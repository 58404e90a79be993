"""``splitbill``: a bill-splitting app (who paid what, who owes whom). The username is the email address.

People form groups (a trip, a flat) and add expenses to a group or outside any group: an expense has a
title, a total, the person who paid it, and how it is split — equally among some people, or by exact
shares that must sum to the total. Balances are computed, never stored: for every expense each person sharing it
owes their share to the payer, and a recorded payment (settling up) from A to B reduces what A owes B. People
can comment on expenses.

Tables:

- ``splitbill_groups(group_id, name, created_by, created_at)`` and ``splitbill_members(group_id, username,
  added_at)``.
- ``splitbill_expenses(expense_id, group_id, title, amount_cents, paid_by, split_type, date, created_by,
  created_at)`` — ``group_id`` is NULL for an expense outside any group; ``split_type`` is ``equal`` or
  ``exact``; ``date`` is YYYY-MM-DD.
- ``splitbill_shares(expense_id, username, share_cents)`` — who shares an expense, and how much each owes.
- ``splitbill_payments(payment_id, group_id, payer, payee, amount_cents, note, date, created_by, created_at)``.
- ``splitbill_comments(comment_id, expense_id, author, comment, created_at)``.

Visibility: a group (and its expenses and payments) is visible to its members; an expense or payment is also
visible to everyone in it (the payer and the people sharing it; the two sides of a payment). Whatever is not
visible is reported as not found.

Money is stored as integer cents; responses give amounts as numbers rounded to 2 decimals, and amount arguments
must be > 0 with at most 2 decimals. An equal split of an amount that does not divide evenly gives the leftover
cents, one each, to the people sharing it in email order (10.00 among 3: 3.34, 3.33, 3.33). Lists are ordered
deterministically (ties broken by id); people are listed by email.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agentdistill_appworld.framework import (
    PAGE_DOCS,
    AccountApp,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    api,
    paginate,
)
from agentdistill_appworld.values import MAX_AMOUNT_CENTS, check_date, fmt_cents, money, to_cents

MESSAGE = {"message": "string"}
PERSON = {"email": "string", "first_name": "string", "last_name": "string"}
GROUP_SUMMARY = {"group_id": "integer", "name": "string", "created_by": "string", "created_at": "string",
                 "member_count": "integer"}
GROUP = {"group_id": "integer", "name": "string", "created_by": "string", "created_at": "string",
         "members": [PERSON]}
SHARE = {"email": "string", "amount": "number"}
EXPENSE = {"expense_id": "integer", "group_id": "integer", "title": "string", "amount": "number",
           "paid_by_email": "string", "split_type": "string", "shares": [SHARE], "date": "string",
           "created_by": "string", "created_at": "string", "comment_count": "integer"}
PAYMENT = {"payment_id": "integer", "group_id": "integer", "from_email": "string", "to_email": "string",
           "amount": "number", "note": "string", "date": "string", "created_by": "string", "created_at": "string"}
COMMENT = {"comment_id": "integer", "expense_id": "integer", "author_email": "string", "comment": "string",
           "created_at": "string"}
DEBT = {"from_email": "string", "to_email": "string", "amount": "number"}
GROUP_BALANCES = {"group_id": "integer", "members": [{"email": "string", "net": "number"}], "debts": [DEBT],
                  "settled": "boolean"}
BALANCES = {"net": "number", "owes_you": [SHARE], "you_owe": [SHARE]}

_EXPENSE_VISIBLE = """(e.group_id IN (SELECT group_id FROM splitbill_members WHERE username = :me)
    OR e.paid_by = :me OR EXISTS (SELECT 1 FROM splitbill_shares s WHERE s.expense_id = e.expense_id
                                  AND s.username = :me))"""
_PAYMENT_VISIBLE = """(p.group_id IN (SELECT group_id FROM splitbill_members WHERE username = :me)
    OR p.payer = :me OR p.payee = :me)"""


# ------------------------------------------------------------------------------------------------ helpers










def equal_split(total_cents: int, people: list[str]) -> dict[str, int]:
    """Split evenly; the leftover cents go one each to the first people in email order."""
    ordered = sorted(people)
    base, extra = divmod(total_cents, len(ordered))
    return {p: base + (1 if i < extra else 0) for i, p in enumerate(ordered)}


def _nets(owed: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Pairwise nets from ``owed[(creditor, debtor)]``: ``{(debtor, creditor): cents}`` for nonzero pairs."""
    out = {}
    for a, b in sorted({tuple(sorted(pair)) for pair in owed}):
        net = owed.get((a, b), 0) - owed.get((b, a), 0)  # > 0: b owes a
        if net > 0:
            out[(b, a)] = net
        elif net < 0:
            out[(a, b)] = -net
    return out


# -------------------------------------------------------------------------------------------------- the app


class SplitBill(AccountApp):
    name = "splitbill"
    description = ("Split bills with friends: groups, shared expenses (equal or exact splits), who owes whom, "
                   "and recording payments to settle up.")
    tables = """
        CREATE TABLE splitbill_groups (group_id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_by TEXT NOT NULL,
            created_at TEXT NOT NULL);
        CREATE TABLE splitbill_members (group_id INTEGER NOT NULL, username TEXT NOT NULL, added_at TEXT NOT NULL,
            PRIMARY KEY (group_id, username));
        CREATE TABLE splitbill_expenses (expense_id INTEGER PRIMARY KEY, group_id INTEGER,
            title TEXT NOT NULL, amount_cents INTEGER NOT NULL, paid_by TEXT NOT NULL,
            split_type TEXT NOT NULL, date TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE splitbill_shares (expense_id INTEGER NOT NULL, username TEXT NOT NULL,
            share_cents INTEGER NOT NULL, PRIMARY KEY (expense_id, username));
        CREATE TABLE splitbill_payments (payment_id INTEGER PRIMARY KEY, group_id INTEGER, payer TEXT NOT NULL,
            payee TEXT NOT NULL, amount_cents INTEGER NOT NULL, note TEXT NOT NULL, date TEXT NOT NULL,
            created_by TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE splitbill_comments (comment_id INTEGER PRIMARY KEY, expense_id INTEGER NOT NULL,
            author TEXT NOT NULL, comment TEXT NOT NULL, created_at TEXT NOT NULL);
    """

    # ---- people

    @api("Search splitbill users (other than you) by name or email.", response=[PERSON],
         query="Text to look for in the name or email ('' lists everyone).", **PAGE_DOCS)
    def search_users(self, query: str = "", page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        like = f"%{query.lower()}%"
        return self.rows("SELECT email, first_name, last_name FROM splitbill_accounts WHERE username != ? AND "
                         "(lower(first_name || ' ' || last_name) LIKE ? OR lower(email) LIKE ?) "
                         "ORDER BY first_name, last_name, email LIMIT ? OFFSET ?",
                         (self.user, like, like, limit, offset))

    # ---- groups

    @api("Create a group; you are a member, and so is everyone in member_emails.",
         response={"group_id": "integer", "message": "string"}, name="The group's name, e.g. 'Lisbon trip'.",
         member_emails="The other members' emails (splitbill users; see search_users).")
    def create_group(self, name: str, member_emails: list[str]) -> dict[str, Any]:
        name = self._group_name(name)
        emails = self._distinct_users(member_emails, "member_emails")
        group_id = self.insert("splitbill_groups", {"name": name, "created_by": self.user, "created_at": self.now})
        for email in sorted({self.user, *emails}):
            self.insert("splitbill_members", {"group_id": group_id, "username": email, "added_at": self.now})
        return {"group_id": group_id, "message": f"Created group {name!r}."}

    @api("List or search your groups by name, ordered by name.", response=[GROUP_SUMMARY],
         query="Text to look for in the group's name ('' lists all).", **PAGE_DOCS)
    def show_groups(self, query: str = "", page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(
            "SELECT g.group_id, g.name, g.created_by, g.created_at, (SELECT COUNT(*) FROM splitbill_members m "
            "WHERE m.group_id = g.group_id) AS member_count FROM splitbill_groups g JOIN splitbill_members me "
            "ON me.group_id = g.group_id AND me.username = ? WHERE lower(g.name) LIKE ? "
            "ORDER BY lower(g.name), g.group_id LIMIT ? OFFSET ?", (self.user, f"%{query.lower()}%", limit, offset))

    @api("Show one of your groups with its members.", response=GROUP, group_id="The group's group_id.")
    def show_group(self, group_id: int) -> dict[str, Any]:
        group = self._own_group(group_id)
        members = self.rows("SELECT a.email, a.first_name, a.last_name FROM splitbill_members m JOIN "
                            "splitbill_accounts a ON a.username = m.username WHERE m.group_id = ? ORDER BY a.email",
                            (group_id,))
        return {**group, "members": members}

    @api("Rename one of your groups.", response=MESSAGE, group_id="The group's group_id.",
         name="The new name.")
    def rename_group(self, group_id: int, name: str) -> dict[str, str]:
        self._own_group(group_id)
        name = self._group_name(name, exclude=group_id)
        self.db.execute("UPDATE splitbill_groups SET name = ? WHERE group_id = ?", (name, group_id))
        return {"message": f"Renamed group {group_id} to {name!r}."}

    @api("Add a splitbill user to one of your groups.", response=MESSAGE, group_id="The group's group_id.",
         email="The new member's email.")
    def add_group_member(self, group_id: int, email: str) -> dict[str, str]:
        self._own_group(group_id)
        self._user_exists(email)
        if self._is_member(group_id, email):
            raise Conflict(f"{email} is already a member of group {group_id}")
        self.insert("splitbill_members", {"group_id": group_id, "username": email, "added_at": self.now})
        return {"message": f"Added {email} to group {group_id}."}

    @api("Remove a member (or yourself) from one of your groups; their balance in the group must be settled.",
         response=MESSAGE, group_id="The group's group_id.", email="The member's email.")
    def remove_group_member(self, group_id: int, email: str) -> dict[str, str]:
        self._own_group(group_id)
        if not self._is_member(group_id, email):
            raise NotFound(f"{email} is not a member of group {group_id}; see apis.splitbill.show_group("
                           f"group_id={group_id})")
        net = self._member_nets(self._group_ledger(group_id)).get(email, 0)
        if net:
            side = f"is owed {fmt_cents(net)}" if net > 0 else f"owes {fmt_cents(-net)}"
            raise Unprocessable(f"{email} {side} in group {group_id}; settle up first with "
                                f"apis.splitbill.record_payment (see show_group_balances(group_id={group_id}))")
        self.db.execute("DELETE FROM splitbill_members WHERE group_id = ? AND username = ?", (group_id, email))
        return {"message": f"Removed {email} from group {group_id}."}

    @api("Delete a group you created, with its expenses, comments and payments.", response=MESSAGE,
         group_id="The group's group_id.")
    def delete_group(self, group_id: int) -> dict[str, str]:
        group = self._own_group(group_id)
        if group["created_by"] != self.user:
            raise Forbidden(f"only the group's creator ({group['created_by']}) can delete group {group_id}; "
                            f"leave it with apis.splitbill.remove_group_member(group_id={group_id}, email=...)")
        expense_ids = "SELECT expense_id FROM splitbill_expenses WHERE group_id = ?"
        self.db.execute(f"DELETE FROM splitbill_comments WHERE expense_id IN ({expense_ids})", (group_id,))
        self.db.execute(f"DELETE FROM splitbill_shares WHERE expense_id IN ({expense_ids})", (group_id,))
        for table in ("splitbill_expenses", "splitbill_payments", "splitbill_members", "splitbill_groups"):
            self.db.execute(f"DELETE FROM {table} WHERE group_id = ?", (group_id,))
        return {"message": f"Deleted group {group_id}."}

    # ---- expenses

    @api("Add an expense, in a group or outside any group, split equally (split_with) or by exact shares "
         "(shares). With neither, a group expense is split equally among all the group's members.",
         response={"expense_id": "integer", "shares": [SHARE], "message": "string"},
         title="What it was for, e.g. 'Dinner at Luigi's'.",
         amount="The total, in dollars (> 0, at most 2 decimals).",
         paid_by_email="Who paid (null: you). In a group, a member.",
         group_id="The group's group_id (null: an expense outside any group, which you must pay or share).",
         split_with="Emails to split the total equally among (the payer too if they share it).",
         shares="Exact shares, {email: dollars}, summing to the total, e.g. {'a@x.com': 12.5, 'b@x.com': 7.5}.",
         date="The expense's date, YYYY-MM-DD (null: today).")
    def add_expense(self, title: str, amount: float, paid_by_email: str | None = None,
                    group_id: int | None = None, split_with: list[str] | None = None,
                    shares: dict[str, float] | None = None, date: str | None = None) -> dict[str, Any]:
        if not title.strip():
            raise Unprocessable("title must not be empty")
        total = to_cents(amount)
        if group_id is not None:
            self._own_group(group_id)
        paid_by = self.user if paid_by_email is None else paid_by_email
        self._check_person(group_id, paid_by, "paid_by_email")
        split_type, split = self._split(group_id, total, split_with, shares)
        self._check_involved(group_id, paid_by, split)
        expense_id = self.insert("splitbill_expenses", {
            "group_id": group_id, "title": title.strip(), "amount_cents": total, "paid_by": paid_by,
            "split_type": split_type, "date": self._date(date), "created_by": self.user, "created_at": self.now})
        self._write_shares(expense_id, split)
        return {"expense_id": expense_id, "shares": [{"email": e, "amount": money(c)} for e, c in split.items()],
                "message": f"Added expense {title.strip()!r} of {fmt_cents(total)} paid by {paid_by}."}

    @api("List or search the expenses you can see (your groups' and those you are in), newest first.",
         response=[EXPENSE], group_id="Only this group's expenses (null: any, including outside groups).",
         query="Text to look for in the title ('' matches all).",
         paid_by_email="Only expenses this person paid (null: anyone).",
         involving_email="Only expenses this person paid or shares (null: anyone).",
         start_date="Only expenses dated on or after this day, YYYY-MM-DD (null: no limit).",
         end_date="Only expenses dated on or before this day, YYYY-MM-DD (null: no limit).",
         min_amount="Only expenses with a total of at least this many dollars (null: no limit).",
         max_amount="Only expenses with a total of at most this many dollars (null: no limit).", **PAGE_DOCS)
    def show_expenses(self, group_id: int | None = None, query: str = "", paid_by_email: str | None = None,
                      involving_email: str | None = None, start_date: str | None = None,
                      end_date: str | None = None, min_amount: float | None = None,
                      max_amount: float | None = None, page_index: int = 0,
                      page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        where, params = [_EXPENSE_VISIBLE], {"me": self.user, "limit": limit, "offset": offset}
        if group_id is not None:
            self._own_group(group_id)
            where.append("e.group_id = :group_id")
            params["group_id"] = group_id
        if query:
            where.append("lower(e.title) LIKE :query")
            params["query"] = f"%{query.lower()}%"
        if paid_by_email is not None:
            where.append("e.paid_by = :paid_by")
            params["paid_by"] = paid_by_email
        if involving_email is not None:
            where.append("(e.paid_by = :involving OR EXISTS (SELECT 1 FROM splitbill_shares s2 WHERE "
                         "s2.expense_id = e.expense_id AND s2.username = :involving))")
            params["involving"] = involving_email
        if start_date is not None:
            where.append("e.date >= :start")
            params["start"] = check_date(start_date, "start_date")
        if end_date is not None:
            where.append("e.date <= :end")
            params["end"] = check_date(end_date, "end_date")
        if start_date is not None and end_date is not None and start_date > end_date:
            raise Unprocessable(f"start_date {start_date} is after end_date {end_date}")
        if min_amount is not None:
            where.append("e.amount_cents >= :low")
            params["low"] = to_cents(min_amount, "min_amount", allow_zero=True)
        if max_amount is not None:
            where.append("e.amount_cents <= :high")
            params["high"] = to_cents(max_amount, "max_amount", allow_zero=True)
        if params.get("low", 0) > params.get("high", MAX_AMOUNT_CENTS):
            raise Unprocessable(f"min_amount {min_amount} is more than max_amount {max_amount}")
        rows = self.rows(f"SELECT e.* FROM splitbill_expenses e WHERE {' AND '.join(where)} "
                         "ORDER BY e.date DESC, e.expense_id DESC LIMIT :limit OFFSET :offset", params)
        return [self._expense(r) for r in rows]

    @api("Show one expense with its shares.", response=EXPENSE, expense_id="The expense's expense_id.")
    def show_expense(self, expense_id: int) -> dict[str, Any]:
        return self._expense(self._visible_expense(expense_id))

    @api("Update an expense (only the fields given). A new amount re-splits an equal split among the same people; "
         "an exact split needs new shares.", response=EXPENSE,
         expense_id="The expense's expense_id.", title="New title.",
         amount="New total, in dollars (> 0, at most 2 decimals).", paid_by_email="New payer.",
         split_with="New list of emails to split equally among.",
         shares="New exact shares, {email: dollars}, summing to the total.", date="New date, YYYY-MM-DD.")
    def update_expense(self, expense_id: int, title: str | None = None, amount: float | None = None,
                       paid_by_email: str | None = None, split_with: list[str] | None = None,
                       shares: dict[str, float] | None = None, date: str | None = None) -> dict[str, Any]:
        expense = self._visible_expense(expense_id)
        if all(v is None for v in (title, amount, paid_by_email, split_with, shares, date)):
            raise Unprocessable("give at least one field to update")
        group_id = expense["group_id"]
        if title is not None and not title.strip():
            raise Unprocessable("title must not be empty")
        total = expense["amount_cents"] if amount is None else to_cents(amount)
        paid_by = expense["paid_by"] if paid_by_email is None else paid_by_email
        self._check_person(group_id, paid_by, "paid_by_email")
        current = {r["username"]: r["share_cents"] for r in self.rows(
            "SELECT username, share_cents FROM splitbill_shares WHERE expense_id = ?", (expense_id,))}
        if split_with is not None or shares is not None:
            split_type, split = self._split(group_id, total, split_with, shares)
        elif total == expense["amount_cents"]:
            split_type, split = expense["split_type"], dict(sorted(current.items()))
        elif expense["split_type"] == "equal":
            split_type, split = "equal", equal_split(total, list(current))
        else:
            raise Unprocessable(f"expense {expense_id} is split by exact shares; give shares that sum to the new "
                                f"amount {fmt_cents(total)}")
        self._check_involved(group_id, paid_by, split)
        self.db.execute("UPDATE splitbill_expenses SET title = ?, amount_cents = ?, paid_by = ?, "
                        "split_type = ?, date = ? WHERE expense_id = ?",
                        (expense["title"] if title is None else title.strip(), total, paid_by,
                         split_type, expense["date"] if date is None else self._date(date), expense_id))
        self.db.execute("DELETE FROM splitbill_shares WHERE expense_id = ?", (expense_id,))
        self._write_shares(expense_id, split)
        return self._expense(self._visible_expense(expense_id))

    @api("Delete an expense and its comments.", response=MESSAGE, expense_id="The expense's expense_id.")
    def delete_expense(self, expense_id: int) -> dict[str, str]:
        self._visible_expense(expense_id)
        for table in ("splitbill_comments", "splitbill_shares", "splitbill_expenses"):
            self.db.execute(f"DELETE FROM {table} WHERE expense_id = ?", (expense_id,))
        return {"message": f"Deleted expense {expense_id}."}

    @api("Comment on an expense.", response={"comment_id": "integer", "message": "string"},
         expense_id="The expense's expense_id.", comment="The comment's text.")
    def add_expense_comment(self, expense_id: int, comment: str) -> dict[str, Any]:
        self._visible_expense(expense_id)
        return self.add_comment("splitbill_comments", "expense_id", expense_id, comment)

    @api("List the comments on an expense, oldest first.", response=[COMMENT],
         expense_id="The expense's expense_id.", **PAGE_DOCS)
    def show_expense_comments(self, expense_id: int, page_index: int = 0,
                              page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        self._visible_expense(expense_id)
        return self.comment_page("splitbill_comments", "expense_id", expense_id, limit, offset)

    # ---- balances and payments

    @api("Show who owes whom in one of your groups: each person's net (> 0: is owed, < 0: owes) and the "
         "debts between pairs.", response=GROUP_BALANCES, group_id="The group's group_id.")
    def show_group_balances(self, group_id: int) -> dict[str, Any]:
        self._own_group(group_id)
        owed = self._group_ledger(group_id)
        nets = self._member_nets(owed)
        members = [r["username"] for r in self.rows("SELECT username FROM splitbill_members WHERE group_id = ?",
                                                     (group_id,))]
        people = sorted(set(members) | {p for p, n in nets.items() if n})
        debts = [{"from_email": d, "to_email": c, "amount": money(n)} for (d, c), n in _nets(owed).items()]
        return {"group_id": group_id, "members": [{"email": p, "net": money(nets.get(p, 0))} for p in people],
                "debts": debts, "settled": not debts}

    @api("Show your overall balances across all groups and expenses outside groups: your net (> 0: you are "
         "owed), who owes you and whom you owe.", response=BALANCES)
    def show_balances(self) -> dict[str, Any]:
        owed = self._ledger("(e.paid_by = :me OR EXISTS (SELECT 1 FROM splitbill_shares s2 WHERE "
                            "s2.expense_id = e.expense_id AND s2.username = :me))",
                            "(p.payer = :me OR p.payee = :me)", {"me": self.user})
        owes_you, you_owe, net = [], [], 0
        for (debtor, creditor), cents in _nets(owed).items():
            if creditor == self.user:
                owes_you.append({"email": debtor, "amount": money(cents)})
                net += cents
            elif debtor == self.user:
                you_owe.append({"email": creditor, "amount": money(cents)})
                net -= cents
        return {"net": money(net), "owes_you": sorted(owes_you, key=lambda o: o["email"]),
                "you_owe": sorted(you_owe, key=lambda o: o["email"])}

    @api("Record a payment (settling up) from one person to another, in a group or outside any group.",
         response={"payment_id": "integer", "message": "string"},
         to_email="Who received the money.", amount="How much, in dollars (> 0, at most 2 decimals).",
         from_email="Who paid (null: you). Outside a group, you must be one of the two.",
         group_id="The group it settles (null: outside any group).", note="A note, e.g. 'cash'.",
         date="The payment's date, YYYY-MM-DD (null: today).")
    def record_payment(self, to_email: str, amount: float, from_email: str | None = None,
                       group_id: int | None = None, note: str = "", date: str | None = None) -> dict[str, Any]:
        cents = to_cents(amount)
        payer = self.user if from_email is None else from_email
        if group_id is not None:
            self._own_group(group_id)
        self._check_person(group_id, payer, "from_email")
        self._check_person(group_id, to_email, "to_email")
        if payer == to_email:
            raise Unprocessable("from_email and to_email must be different people")
        if group_id is None and self.user not in (payer, to_email):
            raise Unprocessable("outside a group you can record only payments you made or received; give "
                                "group_id for a payment between other members of your group")
        payment_id = self.insert("splitbill_payments", {
            "group_id": group_id, "payer": payer, "payee": to_email, "amount_cents": cents, "note": note,
            "date": self._date(date), "created_by": self.user, "created_at": self.now})
        return {"payment_id": payment_id, "message": f"Recorded {payer} paying {to_email} {fmt_cents(cents)}."}

    @api("List the payments you can see (your groups' and your own), newest first.", response=[PAYMENT],
         group_id="Only this group's payments (null: any, including outside groups).",
         email="Only payments this person made or received (null: anyone).", **PAGE_DOCS)
    def show_payments(self, group_id: int | None = None, email: str | None = None, page_index: int = 0,
                      page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        if group_id is not None:
            self._own_group(group_id)
        rows = self.rows(f"SELECT p.* FROM splitbill_payments p WHERE {_PAYMENT_VISIBLE} AND (:group_id IS NULL "
                         "OR p.group_id = :group_id) AND (:email IS NULL OR p.payer = :email OR p.payee = :email) "
                         "ORDER BY p.date DESC, p.payment_id DESC LIMIT :limit OFFSET :offset",
                         {"me": self.user, "group_id": group_id, "email": email, "limit": limit, "offset": offset})
        return [_payment(r) for r in rows]

    @api("Delete a payment you made, received or recorded.", response=MESSAGE, payment_id="The payment's id.")
    def delete_payment(self, payment_id: int) -> dict[str, str]:
        found = self.row(f"SELECT p.* FROM splitbill_payments p WHERE p.payment_id = :id AND {_PAYMENT_VISIBLE}",
                         {"id": payment_id, "me": self.user},
                         missing=f"no payment with payment_id {payment_id}; see apis.splitbill.show_payments()")
        if self.user not in (found["payer"], found["payee"], found["created_by"]):
            raise Forbidden(f"only {found['payer']}, {found['payee']} or whoever recorded it "
                            f"({found['created_by']}) can delete payment {payment_id}")
        self.db.execute("DELETE FROM splitbill_payments WHERE payment_id = ?", (payment_id,))
        return {"message": f"Deleted payment {payment_id}."}

    # ---- internals

    def _user_exists(self, email: str) -> None:
        self.row("SELECT 1 AS x FROM splitbill_accounts WHERE username = ?", (email,),
                 missing=f"no splitbill user with email {email}; find users with "
                         "apis.splitbill.search_users(query=...)")

    def _distinct_users(self, emails: list[str], name: str) -> list[str]:
        if len(set(emails)) != len(emails):
            raise Unprocessable(f"{name} lists {sorted({e for e in emails if emails.count(e) > 1})} more than once")
        for email in emails:
            self._user_exists(email)
        return list(emails)

    def _is_member(self, group_id: int, email: str) -> bool:
        return self.row("SELECT 1 AS x FROM splitbill_members WHERE group_id = ? AND username = ?",
                        (group_id, email)) is not None

    def _own_group(self, group_id: int) -> dict[str, Any]:
        return self.row("SELECT g.group_id, g.name, g.created_by, g.created_at FROM splitbill_groups g JOIN "
                        "splitbill_members m ON m.group_id = g.group_id AND m.username = ? WHERE g.group_id = ?",
                        (self.user, group_id),
                        missing=f"no group with group_id {group_id} among yours; see apis.splitbill.show_groups()")

    def _group_name(self, name: str, exclude: int | None = None) -> str:
        name = name.strip()
        if not name:
            raise Unprocessable("name must not be empty")
        clash = self.row("SELECT g.group_id FROM splitbill_groups g JOIN splitbill_members m ON m.group_id = "
                         "g.group_id WHERE m.username = ? AND lower(g.name) = lower(?) AND g.group_id != ?",
                         (self.user, name, -1 if exclude is None else exclude))
        if clash:
            raise Conflict(f"you already have a group named {name!r} (group_id {clash['group_id']}); pick another "
                           "name")
        return name

    def _check_person(self, group_id: int | None, email: str, name: str) -> None:
        self._user_exists(email)
        if group_id is not None and not self._is_member(group_id, email):
            raise Unprocessable(f"{name} {email} is not a member of group {group_id}; add them with "
                                f"apis.splitbill.add_group_member(group_id={group_id}, email='{email}')")

    def _split(self, group_id: int | None, total: int, split_with: list[str] | None,
               shares: dict[str, float] | None) -> tuple[str, dict[str, int]]:
        if split_with is not None and shares is not None:
            raise Unprocessable("give split_with (equal split) or shares (exact split), not both")
        if shares is not None:
            if not shares:
                raise Unprocessable("shares must name at least one person")
            split = {}
            for email, value in sorted(shares.items()):
                self._check_person(group_id, email, "shares entry")
                split[email] = to_cents(value, f"shares[{email!r}]")
            if sum(split.values()) != total:
                raise Unprocessable(f"shares sum to {fmt_cents(sum(split.values()))} but the amount is "
                                    f"{fmt_cents(total)}; make the shares sum to the total")
            return "exact", split
        if split_with is None:
            if group_id is None:
                raise Unprocessable("outside a group, give split_with (equal split) or shares (exact split)")
            split_with = [r["username"] for r in self.rows("SELECT username FROM splitbill_members WHERE "
                                                           "group_id = ?", (group_id,))]
        if not split_with:
            raise Unprocessable("split_with must name at least one person")
        for email in self._distinct_users(split_with, "split_with"):
            self._check_person(group_id, email, "split_with entry")
        return "equal", equal_split(total, split_with)

    def _check_involved(self, group_id: int | None, paid_by: str, split: dict[str, int]) -> None:
        if group_id is None and self.user != paid_by and self.user not in split:
            raise Unprocessable("an expense outside a group must be paid or shared by you; include yourself in "
                                "split_with or shares, or give group_id")

    def _date(self, date: str | None) -> str:
        return self.now[:10] if date is None else check_date(date, "date")

    def _write_shares(self, expense_id: int, split: dict[str, int]) -> None:
        for email, cents in sorted(split.items()):
            self.insert("splitbill_shares", {"expense_id": expense_id, "username": email, "share_cents": cents})

    def _visible_expense(self, expense_id: int) -> dict[str, Any]:
        return self.row(f"SELECT e.* FROM splitbill_expenses e WHERE e.expense_id = :id AND {_EXPENSE_VISIBLE}",
                        {"id": expense_id, "me": self.user},
                        missing=f"no expense with expense_id {expense_id}; see apis.splitbill.show_expenses()")

    def _expense(self, row: dict[str, Any]) -> dict[str, Any]:
        shares = self.rows("SELECT username AS email, share_cents FROM splitbill_shares WHERE expense_id = ? "
                           "ORDER BY username", (row["expense_id"],))
        count = self.row("SELECT COUNT(*) AS n FROM splitbill_comments WHERE expense_id = ?", (row["expense_id"],))
        return {"expense_id": row["expense_id"], "group_id": row["group_id"], "title": row["title"],
                "amount": money(row["amount_cents"]), "paid_by_email": row["paid_by"],
                "split_type": row["split_type"],
                "shares": [{"email": s["email"], "amount": money(s["share_cents"])} for s in shares],
                "date": row["date"], "created_by": row["created_by"], "created_at": row["created_at"],
                "comment_count": count["n"]}

    def _ledger(self, expense_where: str, payment_where: str, params: dict[str, Any]) -> dict[tuple[str, str], int]:
        """``owed[(creditor, debtor)]``: each share is owed to the expense's payer; a payment from X to Y counts
        as X lending Y the amount, which cancels what X owed Y."""
        owed: dict[tuple[str, str], int] = defaultdict(int)
        for r in self.rows("SELECT e.paid_by, s.username, s.share_cents FROM splitbill_expenses e JOIN "
                           f"splitbill_shares s ON s.expense_id = e.expense_id WHERE {expense_where}", params):
            if r["username"] != r["paid_by"]:
                owed[(r["paid_by"], r["username"])] += r["share_cents"]
        for r in self.rows(f"SELECT p.payer, p.payee, p.amount_cents FROM splitbill_payments p WHERE {payment_where}",
                           params):
            owed[(r["payer"], r["payee"])] += r["amount_cents"]
        return dict(owed)

    def _group_ledger(self, group_id: int) -> dict[tuple[str, str], int]:
        return self._ledger("e.group_id = :g", "p.group_id = :g", {"g": group_id})

    @staticmethod
    def _member_nets(owed: dict[tuple[str, str], int]) -> dict[str, int]:
        nets: dict[str, int] = defaultdict(int)
        for (creditor, debtor), cents in owed.items():
            nets[creditor] += cents
            nets[debtor] -= cents
        return dict(nets)


def _payment(row: dict[str, Any]) -> dict[str, Any]:
    return {"payment_id": row["payment_id"], "group_id": row["group_id"], "from_email": row["payer"],
            "to_email": row["payee"], "amount": money(row["amount_cents"]), "note": row["note"], "date": row["date"],
            "created_by": row["created_by"], "created_at": row["created_at"]}
