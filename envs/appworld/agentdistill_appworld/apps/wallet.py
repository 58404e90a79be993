"""``wallet``: a peer-to-peer payments app (a mobile money app). The username is the email address.

Each account has a wallet balance. Money comes in from a payment card (``add_money_from_card``; the card's name
and number are passed in and recorded, the supervisor's cards live in the supervisor app), goes out to a bank
account (``withdraw_to_bank``), and moves between users as payments (``send_money``) or as approved payment
requests (``request_money`` → ``approve_payment_request``). Users keep a friend list, and can like and comment on
the payments they can see: their own, and anybody's public ones.

Tables (all per-user rows name their user by email):

- ``wallet_balances(username, balance_cents)`` — one row per account (a missing row reads as 0).
- ``wallet_balance_transfers(transfer_id, owner, kind, amount_cents, card_name, card_number, bank_account_number,
  created_at)`` — ``kind`` is ``'deposit'`` (from a card) or ``'withdrawal'`` (to a bank account).
- ``wallet_friends(owner, friend, created_at)`` — one-directional: ``friend`` is on ``owner``'s list.
- ``wallet_transactions(transaction_id, sender, receiver, amount_cents, note, private, request_id, created_at)`` —
  payments between users; ``request_id`` is set when the payment settled a payment request.
- ``wallet_likes(transaction_id, username, created_at)`` and ``wallet_comments(comment_id, transaction_id, author,
  comment, created_at)``.
- ``wallet_requests(request_id, requester, payer, amount_cents, note, private, status, transaction_id, created_at,
  updated_at)`` — ``status`` is ``pending``, ``approved``, ``denied`` or ``cancelled``.

Money is stored as integer cents; responses give amounts as numbers rounded to 2 decimals (12.5 means $12.50),
and amount arguments are numbers that must be > 0 with at most 2 decimals. Lists are newest first unless said
otherwise, with the row id breaking ties, so every ordering is deterministic.
"""

from __future__ import annotations

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
from agentdistill_appworld.values import check_date, fmt_cents, money, to_cents

MESSAGE = {"message": "string"}
BALANCE = {"balance": "number"}
TRANSFER = {"transfer_id": "integer", "kind": "string", "amount": "number", "card_name": "string",
            "card_last4": "string", "bank_account_last4": "string", "created_at": "string"}
USER = {"email": "string", "first_name": "string", "last_name": "string", "is_friend": "boolean"}
FRIEND = {"email": "string", "first_name": "string", "last_name": "string", "friends_since": "string"}
TRANSACTION = {"transaction_id": "integer", "sender_email": "string", "receiver_email": "string",
               "amount": "number", "note": "string", "private": "boolean", "request_id": "integer",
               "created_at": "string", "like_count": "integer", "comment_count": "integer",
               "liked_by_you": "boolean"}
COMMENT = {"comment_id": "integer", "transaction_id": "integer", "author_email": "string", "comment": "string",
           "created_at": "string"}
REQUEST = {"request_id": "integer", "requester_email": "string", "payer_email": "string", "amount": "number",
           "note": "string", "private": "boolean", "status": "string", "transaction_id": "integer",
           "created_at": "string", "updated_at": "string"}
REQUEST_STATUSES = ("pending", "approved", "denied", "cancelled")

_TRANSACTION_SELECT = """
    SELECT t.transaction_id, t.sender AS sender_email, t.receiver AS receiver_email, t.amount_cents, t.note,
           t.private, t.request_id, t.created_at,
           (SELECT COUNT(*) FROM wallet_likes l WHERE l.transaction_id = t.transaction_id) AS like_count,
           (SELECT COUNT(*) FROM wallet_comments c WHERE c.transaction_id = t.transaction_id) AS comment_count,
           EXISTS (SELECT 1 FROM wallet_likes l WHERE l.transaction_id = t.transaction_id AND l.username = ?)
               AS liked_by_you
    FROM wallet_transactions t
"""


# ------------------------------------------------------------------------------------------------ helpers










def _digits(value: str, name: str, low: int, high: int) -> str:
    cleaned = value.replace(" ", "").replace("-", "")
    if not (cleaned.isdigit() and low <= len(cleaned) <= high):
        raise Unprocessable(f"{name} must have {low} to {high} digits (spaces and dashes allowed), got {value!r}")
    return cleaned


def _transaction(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["amount"] = money(row.pop("amount_cents"))
    row["private"] = bool(row["private"])
    row["liked_by_you"] = bool(row["liked_by_you"])
    return {k: row[k] for k in TRANSACTION}


def _request(row: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": row["request_id"], "requester_email": row["requester"], "payer_email": row["payer"],
            "amount": money(row["amount_cents"]), "note": row["note"], "private": bool(row["private"]),
            "status": row["status"], "transaction_id": row["transaction_id"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def _transfer(row: dict[str, Any]) -> dict[str, Any]:
    return {"transfer_id": row["transfer_id"], "kind": row["kind"], "amount": money(row["amount_cents"]),
            "card_name": row["card_name"],
            "card_last4": row["card_number"][-4:] if row["card_number"] else None,
            "bank_account_last4": row["bank_account_number"][-4:] if row["bank_account_number"] else None,
            "created_at": row["created_at"]}


# -------------------------------------------------------------------------------------------------- the app


class Wallet(AccountApp):
    name = "wallet"
    description = ("Peer-to-peer payments: your wallet balance (add from a card, withdraw to a bank), friends, "
                   "sending money, payment requests, and likes and comments on payments.")
    tables = """
        CREATE TABLE wallet_balances (username TEXT PRIMARY KEY, balance_cents INTEGER NOT NULL);
        CREATE TABLE wallet_balance_transfers (transfer_id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
            kind TEXT NOT NULL, amount_cents INTEGER NOT NULL, card_name TEXT, card_number TEXT,
            bank_account_number TEXT, created_at TEXT NOT NULL);
        CREATE TABLE wallet_friends (owner TEXT NOT NULL, friend TEXT NOT NULL, created_at TEXT NOT NULL,
            PRIMARY KEY (owner, friend));
        CREATE TABLE wallet_transactions (transaction_id INTEGER PRIMARY KEY, sender TEXT NOT NULL,
            receiver TEXT NOT NULL, amount_cents INTEGER NOT NULL, note TEXT NOT NULL, private INTEGER NOT NULL,
            request_id INTEGER, created_at TEXT NOT NULL);
        CREATE TABLE wallet_likes (transaction_id INTEGER NOT NULL, username TEXT NOT NULL,
            created_at TEXT NOT NULL, PRIMARY KEY (transaction_id, username));
        CREATE TABLE wallet_comments (comment_id INTEGER PRIMARY KEY, transaction_id INTEGER NOT NULL,
            author TEXT NOT NULL, comment TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE wallet_requests (request_id INTEGER PRIMARY KEY, requester TEXT NOT NULL, payer TEXT NOT NULL,
            amount_cents INTEGER NOT NULL, note TEXT NOT NULL, private INTEGER NOT NULL, status TEXT NOT NULL,
            transaction_id INTEGER, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    """

    def add_account(self, person: Any, password: str, created_at: str, balance: float = 0.0) -> str:
        """Create the account with a starting balance (dollars, at most 2 decimals)."""
        username = super().add_account(person, password, created_at)
        self.insert("wallet_balances", {"username": username,
                                        "balance_cents": to_cents(balance, "balance", allow_zero=True)})
        return username

    # ---- balance

    @api("Show your wallet balance.", response=BALANCE)
    def show_balance(self) -> dict[str, float]:
        return {"balance": money(self._balance(self.user))}

    @api("Add money to your wallet balance from a payment card (see apis.supervisor.show_payment_cards).",
         response={"transfer_id": "integer", "balance": "number", "message": "string"},
         amount="How much to add, in dollars (> 0, at most 2 decimals).",
         card_name="The card's name, e.g. 'Visa Gold'.", card_number="The card's number (12 to 19 digits).")
    def add_money_from_card(self, amount: float, card_name: str, card_number: str) -> dict[str, Any]:
        cents = to_cents(amount)
        if not card_name.strip():
            raise Unprocessable("card_name must not be empty; use the card's name from "
                                "apis.supervisor.show_payment_cards()")
        number = _digits(card_number, "card_number", 12, 19)
        self._adjust(self.user, cents)
        transfer_id = self.insert("wallet_balance_transfers", {
            "owner": self.user, "kind": "deposit", "amount_cents": cents, "card_name": card_name.strip(),
            "card_number": number, "bank_account_number": None, "created_at": self.now})
        return {"transfer_id": transfer_id, "balance": money(self._balance(self.user)),
                "message": f"Added {fmt_cents(cents)} from card {card_name.strip()} ending in {number[-4:]}."}

    @api("Withdraw money from your wallet balance to a bank account.",
         response={"transfer_id": "integer", "balance": "number", "message": "string"},
         amount="How much to withdraw, in dollars (> 0, at most 2 decimals, at most your balance).",
         bank_account_number="The bank account's number (6 to 17 digits).")
    def withdraw_to_bank(self, amount: float, bank_account_number: str) -> dict[str, Any]:
        cents = to_cents(amount)
        account = _digits(bank_account_number, "bank_account_number", 6, 17)
        self._debit(self.user, cents, "withdraw")
        transfer_id = self.insert("wallet_balance_transfers", {
            "owner": self.user, "kind": "withdrawal", "amount_cents": cents, "card_name": None,
            "card_number": None, "bank_account_number": account, "created_at": self.now})
        return {"transfer_id": transfer_id, "balance": money(self._balance(self.user)),
                "message": f"Withdrew {fmt_cents(cents)} to the bank account ending in {account[-4:]}."}

    @api("List your deposits from cards and withdrawals to banks, newest first.", response=[TRANSFER],
         kind="'deposit' or 'withdrawal' (null: both).", **PAGE_DOCS)
    def show_balance_transfers(self, kind: str | None = None, page_index: int = 0,
                               page_limit: int = 5) -> list[dict[str, Any]]:
        if kind not in (None, "deposit", "withdrawal"):
            raise Unprocessable(f"kind must be 'deposit', 'withdrawal' or null, got {kind!r}")
        limit, offset = paginate(page_index, page_limit)
        rows = self.rows("SELECT * FROM wallet_balance_transfers WHERE owner = ? AND (? IS NULL OR kind = ?) "
                         "ORDER BY created_at DESC, transfer_id DESC LIMIT ? OFFSET ?",
                         (self.user, kind, kind, limit, offset))
        return [_transfer(r) for r in rows]

    # ---- people

    @api("Search wallet users (other than you) by name or email.", response=[USER],
         query="Text to look for in the name or email ('' lists everyone).", **PAGE_DOCS)
    def search_users(self, query: str = "", page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        like = f"%{query.lower()}%"
        rows = self.rows(
            "SELECT a.email, a.first_name, a.last_name, EXISTS (SELECT 1 FROM wallet_friends f WHERE f.owner = ? "
            "AND f.friend = a.username) AS is_friend FROM wallet_accounts a WHERE a.username != ? AND "
            "(lower(a.first_name || ' ' || a.last_name) LIKE ? OR lower(a.email) LIKE ?) "
            "ORDER BY a.first_name, a.last_name, a.email LIMIT ? OFFSET ?",
            (self.user, self.user, like, like, limit, offset))
        return [{**r, "is_friend": bool(r["is_friend"])} for r in rows]

    @api("List or search your friends by name or email, ordered by name.", response=[FRIEND],
         query="Text to look for in the friend's name or email ('' lists all).", **PAGE_DOCS)
    def show_friends(self, query: str = "", page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        like = f"%{query.lower()}%"
        return self.rows(
            "SELECT a.email, a.first_name, a.last_name, f.created_at AS friends_since FROM wallet_friends f "
            "JOIN wallet_accounts a ON a.username = f.friend WHERE f.owner = ? AND "
            "(lower(a.first_name || ' ' || a.last_name) LIKE ? OR lower(a.email) LIKE ?) "
            "ORDER BY a.first_name, a.last_name, a.email LIMIT ? OFFSET ?", (self.user, like, like, limit, offset))

    @api("Add a wallet user to your friends.", response=MESSAGE, email="The user's email address.")
    def add_friend(self, email: str) -> dict[str, str]:
        self._user_exists(email)
        if email == self.user:
            raise Unprocessable("you cannot add yourself as a friend")
        if self._is_friend(email):
            raise Conflict(f"{email} is already your friend")
        self.insert("wallet_friends", {"owner": self.user, "friend": email, "created_at": self.now})
        return {"message": f"Added {email} to your friends."}

    @api("Remove a user from your friends.", response=MESSAGE, email="The friend's email address.")
    def remove_friend(self, email: str) -> dict[str, str]:
        if not self._is_friend(email):
            raise NotFound(f"no friend with email {email}; see your friends with apis.wallet.show_friends()")
        self.db.execute("DELETE FROM wallet_friends WHERE owner = ? AND friend = ?", (self.user, email))
        return {"message": f"Removed {email} from your friends."}

    # ---- payments

    @api("Send money from your wallet balance to another user.",
         response={"transaction_id": "integer", "balance": "number", "message": "string"},
         receiver_email="The receiver's email address.",
         amount="How much to send, in dollars (> 0, at most 2 decimals, at most your balance).",
         note="A note shown with the payment, e.g. 'pizza night'.",
         private="true: only you and the receiver see it; false (default): public.")
    def send_money(self, receiver_email: str, amount: float, note: str = "",
                   private: bool = False) -> dict[str, Any]:
        cents = to_cents(amount)
        self._user_exists(receiver_email)
        if receiver_email == self.user:
            raise Unprocessable("you cannot send money to yourself")
        transaction_id = self._transfer(self.user, receiver_email, cents, note, private, None)
        return {"transaction_id": transaction_id, "balance": money(self._balance(self.user)),
                "message": f"Sent {fmt_cents(cents)} to {receiver_email}."}

    @api("List or search your payments (sent and received), newest first.", response=[TRANSACTION],
         direction="'sent' or 'received' (null: both).",
         email="Only payments with this user, the other side of the payment (null: anyone).",
         query="Text to look for in the note ('' matches all).",
         start_date="Only payments on or after this date, YYYY-MM-DD (null: no limit).",
         end_date="Only payments on or before this date, YYYY-MM-DD (null: no limit).",
         min_amount="Only payments of at least this many dollars (null: no limit).",
         max_amount="Only payments of at most this many dollars (null: no limit).", **PAGE_DOCS)
    def show_transactions(self, direction: str | None = None, email: str | None = None, query: str = "",
                          start_date: str | None = None, end_date: str | None = None,
                          min_amount: float | None = None, max_amount: float | None = None,
                          page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        if direction == "sent":
            where, params = ["t.sender = ?"], [self.user]
        elif direction == "received":
            where, params = ["t.receiver = ?"], [self.user]
        elif direction is None:
            where, params = ["(t.sender = ? OR t.receiver = ?)"], [self.user, self.user]
        else:
            raise Unprocessable(f"direction must be 'sent', 'received' or null, got {direction!r}")
        if email is not None:
            where.append("(CASE WHEN t.sender = ? THEN t.receiver ELSE t.sender END) = ?")
            params += [self.user, email]
        if query:
            where.append("lower(t.note) LIKE ?")
            params.append(f"%{query.lower()}%")
        if start_date is not None:
            where.append("substr(t.created_at, 1, 10) >= ?")
            params.append(check_date(start_date, "start_date"))
        if end_date is not None:
            where.append("substr(t.created_at, 1, 10) <= ?")
            params.append(check_date(end_date, "end_date"))
        if start_date is not None and end_date is not None and start_date > end_date:
            raise Unprocessable(f"start_date {start_date} is after end_date {end_date}")
        low = None if min_amount is None else to_cents(min_amount, "min_amount", allow_zero=True)
        high = None if max_amount is None else to_cents(max_amount, "max_amount", allow_zero=True)
        if low is not None and high is not None and low > high:
            raise Unprocessable(f"min_amount {min_amount} is more than max_amount {max_amount}")
        if low is not None:
            where.append("t.amount_cents >= ?")
            params.append(low)
        if high is not None:
            where.append("t.amount_cents <= ?")
            params.append(high)
        rows = self.rows(f"{_TRANSACTION_SELECT} WHERE {' AND '.join(where)} "
                         "ORDER BY t.created_at DESC, t.transaction_id DESC LIMIT ? OFFSET ?",
                         (self.user, *params, limit, offset))
        return [_transaction(r) for r in rows]

    @api("Show one payment: yours, or anyone's public payment.", response=TRANSACTION,
         transaction_id="The payment's transaction_id.")
    def show_transaction(self, transaction_id: int) -> dict[str, Any]:
        return _transaction(self._visible_transaction(transaction_id))

    @api("List a user's public payments (sent or received), newest first.", response=[TRANSACTION],
         email="The user's email address.", **PAGE_DOCS)
    def show_user_transactions(self, email: str, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        self._user_exists(email)
        rows = self.rows(f"{_TRANSACTION_SELECT} WHERE t.private = 0 AND (t.sender = ? OR t.receiver = ?) "
                         "ORDER BY t.created_at DESC, t.transaction_id DESC LIMIT ? OFFSET ?",
                         (self.user, email, email, limit, offset))
        return [_transaction(r) for r in rows]

    @api("Like a payment (yours, or anyone's public payment).", response=MESSAGE,
         transaction_id="The payment's transaction_id.")
    def like_transaction(self, transaction_id: int) -> dict[str, str]:
        self._visible_transaction(transaction_id)
        if self.row("SELECT 1 AS x FROM wallet_likes WHERE transaction_id = ? AND username = ?",
                    (transaction_id, self.user)):
            raise Conflict(f"you already like transaction {transaction_id}")
        self.insert("wallet_likes", {"transaction_id": transaction_id, "username": self.user,
                                     "created_at": self.now})
        return {"message": f"Liked transaction {transaction_id}."}

    @api("Remove your like from a payment.", response=MESSAGE, transaction_id="The payment's transaction_id.")
    def unlike_transaction(self, transaction_id: int) -> dict[str, str]:
        self._visible_transaction(transaction_id)
        if not self.row("SELECT 1 AS x FROM wallet_likes WHERE transaction_id = ? AND username = ?",
                        (transaction_id, self.user)):
            raise NotFound(f"you have not liked transaction {transaction_id}")
        self.db.execute("DELETE FROM wallet_likes WHERE transaction_id = ? AND username = ?",
                        (transaction_id, self.user))
        return {"message": f"Unliked transaction {transaction_id}."}

    @api("Comment on a payment (yours, or anyone's public payment).",
         response={"comment_id": "integer", "message": "string"},
         transaction_id="The payment's transaction_id.", comment="The comment's text.")
    def add_transaction_comment(self, transaction_id: int, comment: str) -> dict[str, Any]:
        self._visible_transaction(transaction_id)
        return self.add_comment("wallet_comments", "transaction_id", transaction_id, comment)

    @api("List the comments on a payment, oldest first.", response=[COMMENT],
         transaction_id="The payment's transaction_id.", **PAGE_DOCS)
    def show_transaction_comments(self, transaction_id: int, page_index: int = 0,
                                  page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        self._visible_transaction(transaction_id)
        return self.comment_page("wallet_comments", "transaction_id", transaction_id, limit, offset)

    @api("Delete one of your comments.", response=MESSAGE, comment_id="The comment's comment_id.")
    def delete_transaction_comment(self, comment_id: int) -> dict[str, str]:
        found = self.row("SELECT * FROM wallet_comments WHERE comment_id = ?", (comment_id,),
                         missing=f"no comment with comment_id {comment_id}")
        if not self._can_see(found["transaction_id"]):
            raise NotFound(f"no comment with comment_id {comment_id}")
        if found["author"] != self.user:
            raise Forbidden(f"comment {comment_id} was written by {found['author']}; you can delete only your own "
                            "comments")
        self.db.execute("DELETE FROM wallet_comments WHERE comment_id = ?", (comment_id,))
        return {"message": "Comment deleted."}

    # ---- payment requests

    @api("Ask another user to pay you; they approve (which pays you) or deny it.",
         response={"request_id": "integer", "message": "string"},
         payer_email="The email of the user you ask to pay.",
         amount="How much to ask for, in dollars (> 0, at most 2 decimals).",
         note="A note shown with the request, e.g. 'concert tickets'.",
         private="true: the payment made on approval is private; false (default): public.")
    def request_money(self, payer_email: str, amount: float, note: str = "", private: bool = False) -> dict[str, Any]:
        cents = to_cents(amount)
        self._user_exists(payer_email)
        if payer_email == self.user:
            raise Unprocessable("you cannot request money from yourself")
        request_id = self.insert("wallet_requests", {
            "requester": self.user, "payer": payer_email, "amount_cents": cents, "note": note,
            "private": int(private), "status": "pending", "transaction_id": None, "created_at": self.now,
            "updated_at": self.now})
        return {"request_id": request_id, "message": f"Requested {fmt_cents(cents)} from {payer_email}."}

    @api("List payment requests: incoming (others ask you to pay) or outgoing (you asked), newest first.",
         response=[REQUEST], direction="'incoming' or 'outgoing' (null: both).",
         status="'pending', 'approved', 'denied' or 'cancelled' (null: any).",
         email="Only requests with this user, the other side of the request (null: anyone).", **PAGE_DOCS)
    def show_payment_requests(self, direction: str | None = None, status: str | None = None,
                              email: str | None = None, page_index: int = 0,
                              page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        if direction == "incoming":
            where, params = "payer = ?", [self.user]
        elif direction == "outgoing":
            where, params = "requester = ?", [self.user]
        elif direction is None:
            where, params = "(payer = ? OR requester = ?)", [self.user, self.user]
        else:
            raise Unprocessable(f"direction must be 'incoming', 'outgoing' or null, got {direction!r}")
        if status is not None and status not in REQUEST_STATUSES:
            raise Unprocessable(f"status must be one of {list(REQUEST_STATUSES)} or null, got {status!r}")
        rows = self.rows(
            f"SELECT * FROM wallet_requests WHERE {where} AND (? IS NULL OR status = ?) AND (? IS NULL OR "
            "(CASE WHEN payer = ? THEN requester ELSE payer END) = ?) "
            "ORDER BY created_at DESC, request_id DESC LIMIT ? OFFSET ?",
            (*params, status, status, email, self.user, email, limit, offset))
        return [_request(r) for r in rows]

    @api("Show one payment request you made or received.", response=REQUEST,
         request_id="The request's request_id.")
    def show_payment_request(self, request_id: int) -> dict[str, Any]:
        return _request(self._own_request(request_id))

    @api("Approve a pending request someone sent you: pays them the amount from your balance.",
         response={"transaction_id": "integer", "balance": "number", "message": "string"},
         request_id="The request's request_id (see show_payment_requests(direction='incoming')).")
    def approve_payment_request(self, request_id: int) -> dict[str, Any]:
        found = self._pending_request(request_id, role="payer")
        transaction_id = self._transfer(self.user, found["requester"], found["amount_cents"], found["note"],
                                        bool(found["private"]), request_id)
        self._set_status(request_id, "approved", transaction_id)
        return {"transaction_id": transaction_id, "balance": money(self._balance(self.user)),
                "message": f"Paid {fmt_cents(found['amount_cents'])} to {found['requester']}."}

    @api("Deny a pending request someone sent you (no money moves).", response=MESSAGE,
         request_id="The request's request_id (see show_payment_requests(direction='incoming')).")
    def deny_payment_request(self, request_id: int) -> dict[str, str]:
        self._pending_request(request_id, role="payer")
        self._set_status(request_id, "denied", None)
        return {"message": f"Denied request {request_id}."}

    @api("Cancel a pending request you sent.", response=MESSAGE,
         request_id="The request's request_id (see show_payment_requests(direction='outgoing')).")
    def cancel_payment_request(self, request_id: int) -> dict[str, str]:
        self._pending_request(request_id, role="requester")
        self._set_status(request_id, "cancelled", None)
        return {"message": f"Cancelled request {request_id}."}

    # ---- internals

    def _balance(self, username: str) -> int:
        found = self.row("SELECT balance_cents FROM wallet_balances WHERE username = ?", (username,))
        return found["balance_cents"] if found else 0

    def _adjust(self, username: str, cents: int) -> None:
        self.db.execute("INSERT INTO wallet_balances (username, balance_cents) VALUES (?, ?) ON CONFLICT (username) "
                        "DO UPDATE SET balance_cents = balance_cents + excluded.balance_cents", (username, cents))

    def _debit(self, username: str, cents: int, what: str) -> None:
        balance = self._balance(username)
        if balance < cents:
            raise Unprocessable(f"your balance is {fmt_cents(balance)}, too low to {what} {fmt_cents(cents)}; "
                                "add money with apis.wallet.add_money_from_card("
                                "amount=..., card_name=..., card_number=...)")
        self._adjust(username, -cents)

    def _transfer(self, sender: str, receiver: str, cents: int, note: str, private: bool,
                  request_id: int | None) -> int:
        self._debit(sender, cents, "pay")
        self._adjust(receiver, cents)
        return self.insert("wallet_transactions", {
            "sender": sender, "receiver": receiver, "amount_cents": cents, "note": note, "private": int(private),
            "request_id": request_id, "created_at": self.now})

    def _user_exists(self, email: str) -> None:
        self.row("SELECT 1 AS x FROM wallet_accounts WHERE username = ?", (email,),
                 missing=f"no wallet user with email {email}; find users with apis.wallet.search_users(query=...)")

    def _is_friend(self, email: str) -> bool:
        return self.row("SELECT 1 AS x FROM wallet_friends WHERE owner = ? AND friend = ?",
                        (self.user, email)) is not None

    def _can_see(self, transaction_id: int) -> bool:
        return self.row("SELECT 1 AS x FROM wallet_transactions WHERE transaction_id = ? AND (private = 0 OR "
                        "sender = ? OR receiver = ?)", (transaction_id, self.user, self.user)) is not None

    def _visible_transaction(self, transaction_id: int) -> dict[str, Any]:
        return self.row(f"{_TRANSACTION_SELECT} WHERE t.transaction_id = ? AND (t.private = 0 OR t.sender = ? OR "
                        "t.receiver = ?)", (self.user, transaction_id, self.user, self.user),
                        missing=f"no transaction with transaction_id {transaction_id}; see your payments with "
                                "apis.wallet.show_transactions()")

    def _own_request(self, request_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM wallet_requests WHERE request_id = ? AND (requester = ? OR payer = ?)",
                        (request_id, self.user, self.user),
                        missing=f"no payment request with request_id {request_id}; see "
                                "apis.wallet.show_payment_requests()")

    def _pending_request(self, request_id: int, role: str) -> dict[str, Any]:
        found = self._own_request(request_id)
        if found[role] != self.user:
            if role == "payer":
                raise Forbidden(f"request {request_id} asks {found['payer']} to pay you; only the payer can approve "
                                f"or deny it (cancel it with apis.wallet.cancel_payment_request(request_id="
                                f"{request_id}))")
            raise Forbidden(f"request {request_id} was sent to you by {found['requester']}; only the requester can "
                            f"cancel it (approve or deny it with apis.wallet.approve_payment_request or "
                            f"deny_payment_request)")
        if found["status"] != "pending":
            raise Conflict(f"request {request_id} is already {found['status']}; only pending requests can change")
        return found

    def _set_status(self, request_id: int, status: str, transaction_id: int | None) -> None:
        self.db.execute("UPDATE wallet_requests SET status = ?, transaction_id = ?, updated_at = ? "
                        "WHERE request_id = ?", (status, transaction_id, self.now, request_id))
