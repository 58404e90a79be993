"""The wallet (peer-to-peer payments) and splitbill (bill splitting) apps on real in-memory SQLite."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest

from agentdistill_appworld.apps.api_docs import APIDocs
from agentdistill_appworld.apps.splitbill import SplitBill, equal_split
from agentdistill_appworld.apps.wallet import Wallet, to_cents
from agentdistill_appworld.framework import (
    Conflict,
    Context,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    diff,
    snapshot,
)

ADA = SimpleNamespace(first_name="Ada", last_name="Moss", email="ada@mail.example", phone="5550100001")
BEN = SimpleNamespace(first_name="Ben", last_name="Okafor", email="ben@mail.example", phone="5550100002")
CY = SimpleNamespace(first_name="Cy", last_name="Park", email="cy@mail.example", phone="5550100003")
DEE = SimpleNamespace(first_name="Dee", last_name="Quinn", email="dee@mail.example", phone="5550100004")
EVE = SimpleNamespace(first_name="Eve", last_name="Ruiz", email="eve@mail.example", phone="5550100005")
PEOPLE = (ADA, BEN, CY, DEE, EVE)
START = {ADA.email: 100.0, BEN.email: 50.0, CY.email: 0.0, DEE.email: 20.25, EVE.email: 0.0}
CARD = {"card_name": "Visa Gold", "card_number": "4111 1111 1111 1234"}


@pytest.fixture()
def world():
    ctx = Context(db=sqlite3.connect(":memory:", isolation_level=None), now="2024-05-15T10:00:00")
    for cls in (APIDocs, Wallet, SplitBill):
        app = cls(ctx)
        app.create_tables()
        ctx.apps[app.name] = app
    for p in PEOPLE:
        ctx.apps["wallet"].add_account(p, f"pw-wallet-{p.first_name}", "2020-01-01T00:00:00", balance=START[p.email])
        ctx.apps["splitbill"].add_account(p, f"pw-split-{p.first_name}", "2020-01-01T00:00:00")
    return ctx


def call(ctx, app, api, **kwargs):
    return ctx.apps[app].call(api, kwargs)


def _password(app, person):
    return f"pw-{'wallet' if app == 'wallet' else 'split'}-{person.first_name}"


def login(ctx, app, person):
    return call(ctx, app, "login", username=person.email, password=_password(app, person))["access_token"]


class As:
    """Calls to one app as one logged-in person: ``As(world, 'wallet', ADA).send_money(...)``."""

    def __init__(self, ctx, app, person):
        self.ctx, self.app, self.token = ctx, app, login(ctx, app, person)

    def __getattr__(self, api):
        return lambda **kwargs: call(self.ctx, self.app, api, access_token=self.token, **kwargs)


def total_balance(ctx):
    return ctx.db.execute("SELECT SUM(balance_cents) FROM wallet_balances").fetchone()[0]


# ------------------------------------------------------------------------------------------ account block


@pytest.mark.parametrize("app", ["wallet", "splitbill"])
def test_account_block_works_for_both_apps(world, app):
    ben = As(world, app, BEN)
    assert ben.show_account() == {"username": BEN.email, "first_name": "Ben", "last_name": "Okafor",
                                  "email": BEN.email, "phone": BEN.phone, "created_at": "2020-01-01T00:00:00"}
    assert ben.show_profile(email=CY.email)["last_name"] == "Park"
    with pytest.raises(NotFound, match=f"no {app} user with email ghost@x.example"):
        ben.show_profile(email="ghost@x.example")
    with pytest.raises(Unauthorized, match="old_password is wrong"):
        ben.change_password(old_password="nope", new_password="long enough")
    ben.change_password(old_password=_password(app, BEN), new_password="new-secret-1")
    assert call(world, app, "login", username=BEN.email, password="new-secret-1")["token_type"] == "Bearer"
    ben.logout()
    with pytest.raises(Unauthorized, match=f"apis.{app}.login"):
        ben.show_account()


# --------------------------------------------------------------------------------------------------- specs


def test_specs_build_for_every_api_and_every_parameter_is_described(world):
    expected = {
        "wallet": {"show_balance", "add_money_from_card", "withdraw_to_bank", "show_balance_transfers",
                   "search_users", "show_friends", "add_friend", "remove_friend", "send_money",
                   "show_transactions", "show_transaction", "show_user_transactions", "like_transaction",
                   "unlike_transaction", "add_transaction_comment", "show_transaction_comments",
                   "delete_transaction_comment", "request_money", "show_payment_requests", "show_payment_request",
                   "approve_payment_request", "deny_payment_request", "cancel_payment_request"},
        "splitbill": {"search_users", "create_group", "show_groups", "show_group", "rename_group",
                      "add_group_member", "remove_group_member", "delete_group", "add_expense", "show_expenses",
                      "show_expense", "update_expense", "delete_expense", "add_expense_comment",
                      "show_expense_comments", "show_group_balances", "show_balances", "record_payment",
                      "show_payments", "delete_payment"},
    }
    account = {"login", "logout", "show_account", "change_password", "show_profile"}
    for cls in (Wallet, SplitBill):
        app = cls(world)  # instantiating builds every spec (a missing description raises TypeError)
        assert set(app.specs) == expected[app.name] | account
        for spec in app.specs.values():
            assert spec.description and spec.response is not None
            for param in spec.params:
                assert param.description.strip(), (spec.name, param.name)
            doc = call(world, "api_docs", "show_api_doc", app_name=app.name, api_name=spec.name)
            json.dumps(doc)
        names = [a["name"] for a in call(world, "api_docs", "show_api_descriptions", app_name=app.name)]
        assert names == sorted(expected[app.name] | account)
    assert len(Wallet(world).specs) == 28 and len(SplitBill(world).specs) == 25
    doc = call(world, "api_docs", "show_api_doc", app_name="splitbill", api_name="add_expense")
    params = {p["name"]: p for p in doc["parameters"]}
    assert params["amount"]["type"] == "number" and params["shares"]["type"] == "object"
    assert params["split_with"]["items"] == "string" and params["group_id"]["nullable"]
    tables = [r[0] for r in world.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert all(t.startswith(("wallet_", "splitbill_")) for t in tables)


def test_amount_arguments_are_positive_whole_cents():
    assert to_cents(12.5) == 1250 and to_cents(0.29) == 29 and to_cents(7) == 700 and to_cents(999999.99) == 99999999
    for bad, message in ((0.0, "greater than 0"), (-1.0, "greater than 0"), (1.005, "at most 2 decimals"),
                         (float("nan"), "finite"), (float("inf"), "finite"), (1e300, "at most 1000000.00"),
                         (1e-7, "greater than 0|at most 2 decimals")):
        with pytest.raises(Unprocessable, match=message):
            to_cents(bad)
    assert to_cents(0.0, allow_zero=True) == 0
    assert equal_split(1000, ["c", "a", "b"]) == {"a": 334, "b": 333, "c": 333}


# -------------------------------------------------------------------------------------------------- wallet


def test_wallet_needs_login_and_only_shows_your_own_account(world):
    with pytest.raises(Unauthorized, match=r"apis.wallet.login"):
        call(world, "wallet", "show_balance", access_token="forged")
    with pytest.raises(Unprocessable, match="missing the required parameter 'access_token'"):
        call(world, "wallet", "show_balance")
    with pytest.raises(Unauthorized, match="wrong username or password"):
        call(world, "wallet", "login", username=ADA.email, password="pw-split-Ada")
    ada, ben = As(world, "wallet", ADA), As(world, "wallet", BEN)
    assert ada.show_balance() == {"balance": 100.0} and ben.show_balance() == {"balance": 50.0}
    assert ada.show_account()["email"] == ADA.email
    assert ben.show_profile(email=ADA.email) == {"first_name": "Ada", "last_name": "Moss", "email": ADA.email}
    ada.logout()
    with pytest.raises(Unauthorized):
        ada.show_balance()


def test_add_money_from_card_and_withdraw_to_bank(world):
    dee = As(world, "wallet", DEE)
    out = dee.add_money_from_card(amount=25.5, **CARD)
    assert out["balance"] == 45.75 and "ending in 1234" in out["message"]
    before = snapshot(world.db)
    with pytest.raises(Unprocessable, match=r"balance is 45.75, too low to withdraw 100.00; add money"):
        dee.withdraw_to_bank(amount=100, bank_account_number="12345678")
    for bad in ({"amount": 0}, {"amount": -5.0}, {"amount": 1.234}):
        with pytest.raises(Unprocessable, match="amount must"):
            dee.add_money_from_card(**CARD, **bad)
    with pytest.raises(Unprocessable, match="card_number must have 12 to 19 digits"):
        dee.add_money_from_card(amount=5, card_name="Visa", card_number="1234")
    with pytest.raises(Unprocessable, match="card_name must not be empty"):
        dee.add_money_from_card(amount=5, card_name=" ", card_number="4111111111111234")
    with pytest.raises(Unprocessable, match="amount must be of type number, got str"):
        dee.add_money_from_card(amount="5", **CARD)
    with pytest.raises(Unprocessable, match="bank_account_number must have 6 to 17 digits"):
        dee.withdraw_to_bank(amount=5, bank_account_number="12ab")
    assert snapshot(world.db) == before
    out = dee.withdraw_to_bank(amount=40.75, bank_account_number="000123456789")
    assert out["balance"] == 5.0
    transfers = dee.show_balance_transfers()
    assert [(t["kind"], t["amount"]) for t in transfers] == [("withdrawal", 40.75), ("deposit", 25.5)]
    assert transfers[1]["card_name"] == "Visa Gold" and transfers[1]["card_last4"] == "1234"
    assert transfers[0]["bank_account_last4"] == "6789" and transfers[0]["card_last4"] is None
    assert dee.show_balance_transfers(kind="deposit") == [transfers[1]]
    with pytest.raises(Unprocessable, match="kind must be 'deposit', 'withdrawal'"):
        dee.show_balance_transfers(kind="refund")
    assert As(world, "wallet", ADA).show_balance_transfers() == []  # only your own


def test_friends_list_search_add_remove(world):
    ada = As(world, "wallet", ADA)
    for p in (EVE, CY, BEN, DEE):
        assert ada.add_friend(email=p.email)["message"].startswith("Added")
    with pytest.raises(Conflict, match="already your friend"):
        ada.add_friend(email=BEN.email)
    with pytest.raises(Unprocessable, match="cannot add yourself"):
        ada.add_friend(email=ADA.email)
    with pytest.raises(NotFound, match=r"no wallet user with email zed@x.example; find users with "
                                       r"apis.wallet.search_users"):
        ada.add_friend(email="zed@x.example")
    pages = [ada.show_friends(page_index=i, page_limit=3) for i in range(3)]
    assert [[f["first_name"] for f in page] for page in pages] == [["Ben", "Cy", "Dee"], ["Eve"], []]
    assert pages[0][0] == {"email": BEN.email, "first_name": "Ben", "last_name": "Okafor",
                           "friends_since": "2024-05-15T10:00:00"}
    assert [f["email"] for f in ada.show_friends(query="QUINN")] == [DEE.email]
    assert ada.remove_friend(email=CY.email)["message"] == f"Removed {CY.email} from your friends."
    with pytest.raises(NotFound, match=r"no friend with email cy@mail.example; see your friends with "
                                       r"apis.wallet.show_friends"):
        ada.remove_friend(email=CY.email)
    users = ada.search_users()
    assert [u["first_name"] for u in users] == ["Ben", "Cy", "Dee", "Eve"]  # not yourself, by name
    assert {u["email"]: u["is_friend"] for u in users} == {BEN.email: True, CY.email: False, DEE.email: True,
                                                           EVE.email: True}
    assert As(world, "wallet", BEN).show_friends() == []  # friend lists are per user
    with pytest.raises(Unprocessable, match="page_limit must be between 1 and 20"):
        ada.show_friends(page_limit=0)


def test_send_money_conserves_money_and_failures_change_nothing(world):
    ada, ben = As(world, "wallet", ADA), As(world, "wallet", BEN)
    total = total_balance(world)
    out = ada.send_money(receiver_email=BEN.email, amount=30.1, note="concert", private=True)
    assert out["balance"] == 69.9 and ben.show_balance()["balance"] == 80.1
    ben.send_money(receiver_email=CY.email, amount=0.01)
    assert total_balance(world) == total
    before = snapshot(world.db)
    with pytest.raises(Unprocessable, match=r"balance is 69.90, too low to pay 70.00"):
        ada.send_money(receiver_email=BEN.email, amount=70)
    with pytest.raises(NotFound, match="no wallet user with email nobody@x.example"):
        ada.send_money(receiver_email="nobody@x.example", amount=1)
    with pytest.raises(Unprocessable, match="cannot send money to yourself"):
        ada.send_money(receiver_email=ADA.email, amount=1)
    with pytest.raises(Unprocessable, match="at most 2 decimals"):
        ada.send_money(receiver_email=BEN.email, amount=0.001)
    with pytest.raises(Unprocessable, match=r"unknown parameters \['to'\]"):
        ada.send_money(to=BEN.email, amount=1)
    assert snapshot(world.db) == before
    tx = ada.show_transaction(transaction_id=out["transaction_id"])
    assert tx == {"transaction_id": 1, "sender_email": ADA.email, "receiver_email": BEN.email, "amount": 30.1,
                  "note": "concert", "private": True, "request_id": None, "created_at": "2024-05-15T10:00:00",
                  "like_count": 0, "comment_count": 0, "liked_by_you": False}
    changes = diff(before, snapshot(world.db))
    assert changes == {}
    ada.send_money(receiver_email=DEE.email, amount=9.9)
    changes = diff(before, snapshot(world.db))
    assert sorted(changes) == ["wallet_balances", "wallet_transactions"]
    assert changes["wallet_balances"].added == ((ADA.email, 6000), (DEE.email, 3015))


def test_transactions_filters_pagination_and_order(world):
    ada, ben = As(world, "wallet", ADA), As(world, "wallet", BEN)
    plan = [("2024-05-01T09:00:00", ada, BEN, 5.0, "coffee"), ("2024-05-03T09:00:00", ben, ADA, 12.0, "lunch"),
            ("2024-05-03T18:00:00", ada, CY, 20.0, "taxi"), ("2024-05-07T09:00:00", ada, BEN, 7.5, "coffee again"),
            ("2024-05-10T09:00:00", ada, DEE, 1.25, "gum")]
    for now, sender, receiver, amount, note in plan:
        world.now = now
        sender.send_money(receiver_email=receiver.email, amount=amount, note=note)
    world.now = "2024-05-15T10:00:00"
    ids = lambda txs: [t["transaction_id"] for t in txs]  # noqa: E731
    assert ids(ada.show_transactions(page_limit=20)) == [5, 4, 3, 2, 1]  # newest first
    pages = [ids(ada.show_transactions(page_index=i, page_limit=2)) for i in range(4)]
    assert pages == [[5, 4], [3, 2], [1], []]
    assert ids(ada.show_transactions(direction="received")) == [2]
    assert ids(ada.show_transactions(direction="sent", email=BEN.email)) == [4, 1]
    assert ids(ada.show_transactions(email=BEN.email)) == [4, 2, 1]
    assert ids(ada.show_transactions(start_date="2024-05-03", end_date="2024-05-07")) == [4, 3, 2]
    assert ids(ada.show_transactions(min_amount=5, max_amount=12)) == [4, 2, 1]
    assert ids(ada.show_transactions(query="COFFEE")) == [4, 1]
    assert ids(ben.show_transactions()) == [4, 2, 1]  # only payments you are in
    with pytest.raises(Unprocessable, match="direction must be 'sent', 'received'"):
        ada.show_transactions(direction="out")
    with pytest.raises(Unprocessable, match="start_date must be a date YYYY-MM-DD"):
        ada.show_transactions(start_date="05/03/2024")
    with pytest.raises(Unprocessable, match="start_date 2024-05-09 is after end_date"):
        ada.show_transactions(start_date="2024-05-09", end_date="2024-05-01")
    with pytest.raises(Unprocessable, match="min_amount 9.0 is more than max_amount 3.0"):
        ada.show_transactions(min_amount=9, max_amount=3)


def test_private_payments_are_hidden_likes_and_comments(world):
    ada, ben, cy = As(world, "wallet", ADA), As(world, "wallet", BEN), As(world, "wallet", CY)
    private = ada.send_money(receiver_email=BEN.email, amount=10, note="rent", private=True)["transaction_id"]
    public = ada.send_money(receiver_email=BEN.email, amount=5, note="tacos")["transaction_id"]
    for api, kwargs in (("show_transaction", {}), ("like_transaction", {}), ("show_transaction_comments", {}),
                        ("add_transaction_comment", {"comment": "hi"})):
        with pytest.raises(NotFound, match=f"no transaction with transaction_id {private}"):
            getattr(cy, api)(transaction_id=private, **kwargs)
    assert [t["transaction_id"] for t in cy.show_user_transactions(email=ADA.email)] == [public]
    assert [t["transaction_id"] for t in ada.show_user_transactions(email=ADA.email)] == [public]
    with pytest.raises(NotFound):
        cy.show_user_transactions(email="ghost@x.example")
    ben.like_transaction(transaction_id=private)
    cy.like_transaction(transaction_id=public)
    with pytest.raises(Conflict, match="already like"):
        cy.like_transaction(transaction_id=public)
    ada.like_transaction(transaction_id=public)
    tx = ada.show_transaction(transaction_id=public)
    assert tx["like_count"] == 2 and tx["liked_by_you"] is True
    ada.unlike_transaction(transaction_id=public)
    with pytest.raises(NotFound, match="you have not liked"):
        ada.unlike_transaction(transaction_id=public)
    assert cy.show_transaction(transaction_id=public)["like_count"] == 1
    first = cy.add_transaction_comment(transaction_id=public, comment="yum")["comment_id"]
    ben.add_transaction_comment(transaction_id=public, comment="thanks!")
    ben.add_transaction_comment(transaction_id=private, comment="paid the landlord")
    with pytest.raises(Unprocessable, match="comment must not be empty"):
        ben.add_transaction_comment(transaction_id=public, comment="  ")
    comments = ada.show_transaction_comments(transaction_id=public)
    assert [(c["author_email"], c["comment"]) for c in comments] == [(CY.email, "yum"), (BEN.email, "thanks!")]
    assert ada.show_transaction(transaction_id=public)["comment_count"] == 2
    with pytest.raises(Forbidden, match="only your own"):
        ada.delete_transaction_comment(comment_id=first)
    with pytest.raises(NotFound, match="no comment with comment_id 3"):
        cy.delete_transaction_comment(comment_id=3)  # on a private payment cy cannot see
    cy.delete_transaction_comment(comment_id=first)
    assert len(ada.show_transaction_comments(transaction_id=public)) == 1
    with pytest.raises(NotFound, match="no comment with comment_id 99"):
        cy.delete_transaction_comment(comment_id=99)


def test_payment_requests_move_money_exactly_once(world):
    ada, ben, cy = As(world, "wallet", ADA), As(world, "wallet", BEN), As(world, "wallet", CY)
    total = total_balance(world)
    rid = ben.request_money(payer_email=ADA.email, amount=30, note="tickets", private=True)["request_id"]
    other = cy.request_money(payer_email=ADA.email, amount=5, note="snacks")["request_id"]
    mine = ada.request_money(payer_email=BEN.email, amount=2.5)["request_id"]
    incoming = ada.show_payment_requests(direction="incoming")
    assert [r["request_id"] for r in incoming] == [other, rid]
    assert incoming[1] == {"request_id": rid, "requester_email": BEN.email, "payer_email": ADA.email,
                           "amount": 30.0, "note": "tickets", "private": True, "status": "pending",
                           "transaction_id": None, "created_at": "2024-05-15T10:00:00",
                           "updated_at": "2024-05-15T10:00:00"}
    assert [r["request_id"] for r in ada.show_payment_requests(direction="outgoing")] == [mine]
    assert [r["request_id"] for r in ada.show_payment_requests(email=BEN.email)] == [mine, rid]
    with pytest.raises(Forbidden, match="only the payer can approve"):
        ben.approve_payment_request(request_id=rid)
    with pytest.raises(Forbidden, match="only the requester can cancel"):
        ada.cancel_payment_request(request_id=rid)
    with pytest.raises(NotFound, match=f"no payment request with request_id {rid}"):
        cy.show_payment_request(request_id=rid)
    with pytest.raises(NotFound):
        cy.approve_payment_request(request_id=rid)
    out = ada.approve_payment_request(request_id=rid)
    assert out["balance"] == 70.0 and ben.show_balance()["balance"] == 80.0
    with pytest.raises(Conflict, match="already approved"):
        ada.approve_payment_request(request_id=rid)
    assert ada.show_balance()["balance"] == 70.0 and total_balance(world) == total
    shown = ben.show_payment_request(request_id=rid)
    assert shown["status"] == "approved" and shown["transaction_id"] == out["transaction_id"]
    tx = ben.show_transaction(transaction_id=out["transaction_id"])
    assert (tx["sender_email"], tx["receiver_email"], tx["amount"], tx["private"], tx["request_id"]) == \
        (ADA.email, BEN.email, 30.0, True, rid)
    ada.deny_payment_request(request_id=other)
    ada.cancel_payment_request(request_id=mine)
    assert [r["status"] for r in ada.show_payment_requests()] == ["cancelled", "denied", "approved"]
    assert [r["request_id"] for r in ada.show_payment_requests(status="denied")] == [other]
    with pytest.raises(Conflict, match="already cancelled"):
        ben.deny_payment_request(request_id=mine)
    with pytest.raises(Unprocessable, match="status must be one of"):
        ada.show_payment_requests(status="open")
    with pytest.raises(Unprocessable, match="direction must be 'incoming', 'outgoing'"):
        ada.show_payment_requests(direction="in")
    with pytest.raises(Unprocessable, match="cannot request money from yourself"):
        ada.request_money(payer_email=ADA.email, amount=1)
    with pytest.raises(NotFound):
        ada.request_money(payer_email="ghost@x.example", amount=1)
    big = ada.request_money(payer_email=CY.email, amount=10)["request_id"]  # cy has 0
    before = snapshot(world.db)
    with pytest.raises(Unprocessable, match="too low to pay 10.00"):
        cy.approve_payment_request(request_id=big)
    assert snapshot(world.db) == before and cy.show_payment_request(request_id=big)["status"] == "pending"
    assert total_balance(world) == total


# ----------------------------------------------------------------------------------------------- splitbill


def test_groups_create_list_show_rename_members_delete(world):
    ada, ben, eve = As(world, "splitbill", ADA), As(world, "splitbill", BEN), As(world, "splitbill", EVE)
    with pytest.raises(NotFound, match="no splitbill user with email zed@x.example"):
        ada.create_group(name="Trip", member_emails=[BEN.email, "zed@x.example"])
    with pytest.raises(Unprocessable, match="more than once"):
        ada.create_group(name="Trip", member_emails=[BEN.email, BEN.email])
    with pytest.raises(Unprocessable, match="name must not be empty"):
        ada.create_group(name=" ", member_emails=[])
    trip = ada.create_group(name="Trip", member_emails=[BEN.email, CY.email])["group_id"]
    with pytest.raises(Conflict, match="already have a group named 'trip'"):
        ada.create_group(name="trip", member_emails=[])
    for i in range(5):
        ada.create_group(name=f"Club {i}", member_emails=[])
    pages = [[g["name"] for g in ada.show_groups(page_index=i, page_limit=4)] for i in range(3)]
    assert pages == [["Club 0", "Club 1", "Club 2", "Club 3"], ["Club 4", "Trip"], []]
    assert ada.show_groups(query="tri") == [{"group_id": trip, "name": "Trip", "created_by": ADA.email,
                                             "created_at": "2024-05-15T10:00:00", "member_count": 3}]
    group = ben.show_group(group_id=trip)
    assert [m["email"] for m in group["members"]] == [ADA.email, BEN.email, CY.email]
    assert group["members"][0] == {"email": ADA.email, "first_name": "Ada", "last_name": "Moss"}
    with pytest.raises(NotFound, match=f"no group with group_id {trip} among yours"):
        eve.show_group(group_id=trip)
    with pytest.raises(NotFound):
        eve.rename_group(group_id=trip, name="Mine")
    assert eve.show_groups() == []
    ben.rename_group(group_id=trip, name="Lisbon trip")
    assert ada.show_group(group_id=trip)["name"] == "Lisbon trip"
    ada.add_group_member(group_id=trip, email=EVE.email)
    assert eve.show_group(group_id=trip)["name"] == "Lisbon trip"
    with pytest.raises(Conflict, match="already a member"):
        ada.add_group_member(group_id=trip, email=EVE.email)
    ada.remove_group_member(group_id=trip, email=EVE.email)
    with pytest.raises(NotFound, match="is not a member of group"):
        ada.remove_group_member(group_id=trip, email=EVE.email)
    ada.add_expense(group_id=trip, title="Hotel", amount=90)  # equal among ada, ben, cy
    with pytest.raises(Unprocessable, match="owes 30.00 in group .*settle up first"):
        ada.remove_group_member(group_id=trip, email=BEN.email)
    with pytest.raises(Forbidden, match="only the group's creator"):
        ben.delete_group(group_id=trip)
    ada.delete_group(group_id=trip)
    for table in ("groups", "members", "expenses", "shares"):
        assert world.db.execute(f"SELECT COUNT(*) FROM splitbill_{table} WHERE "
                                f"{'expense_id = 1' if table == 'shares' else 'group_id = ?'}",
                                () if table == "shares" else (trip,)).fetchone()[0] == 0
    with pytest.raises(NotFound):
        ben.show_group(group_id=trip)


def test_add_expense_splits_equally_and_rejects_bad_input_unchanged(world):
    ada, dee = As(world, "splitbill", ADA), As(world, "splitbill", DEE)
    flat = ada.create_group(name="Flat", member_emails=[BEN.email, CY.email])["group_id"]
    out = ada.add_expense(group_id=flat, title="Cleaning", amount=10, date="2024-05-01")
    assert out["shares"] == [{"email": ADA.email, "amount": 3.34}, {"email": BEN.email, "amount": 3.33},
                             {"email": CY.email, "amount": 3.33}]
    before = snapshot(world.db)
    with pytest.raises(Unprocessable, match=r"shares sum to 30.00 but the amount is 40.00; make the shares sum"):
        ada.add_expense(group_id=flat, title="Groceries", amount=40,
                        shares={ADA.email: 10, BEN.email: 20})
    with pytest.raises(Unprocessable, match=r"dee@mail.example is not a member of group .*add_group_member"):
        ada.add_expense(group_id=flat, title="Groceries", amount=40, paid_by_email=DEE.email)
    with pytest.raises(Unprocessable, match="split_with entry dee@mail.example is not a member"):
        ada.add_expense(group_id=flat, title="Groceries", amount=40, split_with=[ADA.email, DEE.email])
    with pytest.raises(Unprocessable, match="not both"):
        ada.add_expense(group_id=flat, title="Groceries", amount=40, split_with=[ADA.email],
                        shares={ADA.email: 40})
    with pytest.raises(Unprocessable, match="outside a group, give split_with"):
        ada.add_expense(title="Groceries", amount=40)
    with pytest.raises(Unprocessable, match="must be paid or shared by you"):
        ada.add_expense(title="Groceries", amount=40, paid_by_email=BEN.email, split_with=[BEN.email,
                                                                                                 CY.email])
    with pytest.raises(Unprocessable, match=r"shares\['ben@mail.example'\] must be a number"):
        ada.add_expense(group_id=flat, title="Groceries", amount=40, shares={ADA.email: 40, BEN.email: "0"})
    with pytest.raises(Unprocessable, match="title must not be empty"):
        ada.add_expense(group_id=flat, title="", amount=40)
    with pytest.raises(NotFound, match="no group with group_id"):
        dee.add_expense(group_id=flat, title="Sneaky", amount=1)
    assert snapshot(world.db) == before


def test_expenses_splits_filters_update_delete_comments(world):
    ada, ben, dee = As(world, "splitbill", ADA), As(world, "splitbill", BEN), As(world, "splitbill", DEE)
    flat = ada.create_group(name="Flat", member_emails=[BEN.email, CY.email])["group_id"]
    ada.add_expense(group_id=flat, title="Cleaning", amount=10, date="2024-05-01")
    groceries = ben.add_expense(group_id=flat, title="Groceries", amount=40, date="2024-05-03",
                                shares={ADA.email: 10, BEN.email: 20, CY.email: 10})["expense_id"]
    lunch = dee.add_expense(title="Lunch", amount=25, split_with=[ADA.email, DEE.email],
                            date="2024-05-02")["expense_id"]
    ids = lambda es: [e["expense_id"] for e in es]  # noqa: E731
    assert ids(ada.show_expenses()) == [groceries, lunch, 1]  # by date, newest first
    assert ids(ada.show_expenses(page_index=1, page_limit=2)) == [1]
    assert ids(ada.show_expenses(group_id=flat)) == [groceries, 1]
    assert ids(ada.show_expenses(paid_by_email=DEE.email)) == [lunch]
    assert ids(ada.show_expenses(involving_email=CY.email)) == [groceries, 1]
    assert ids(ada.show_expenses(start_date="2024-05-02", end_date="2024-05-02")) == [lunch]
    assert ids(ada.show_expenses(min_amount=20, max_amount=30)) == [lunch]
    assert ids(ada.show_expenses(query="CLEAN")) == [1]
    assert ids(ben.show_expenses()) == [groceries, 1]  # ben is not in dee's lunch
    assert ids(dee.show_expenses()) == [lunch]
    with pytest.raises(NotFound, match=f"no expense with expense_id {groceries}"):
        dee.show_expense(expense_id=groceries)
    with pytest.raises(NotFound):
        ben.update_expense(expense_id=lunch, amount=1)
    with pytest.raises(NotFound):
        dee.show_expenses(group_id=flat)
    shown = ada.show_expense(expense_id=groceries)
    assert shown == {"expense_id": groceries, "group_id": flat, "title": "Groceries", "amount": 40.0,
                     "paid_by_email": BEN.email, "split_type": "exact",
                     "shares": [{"email": ADA.email, "amount": 10.0}, {"email": BEN.email, "amount": 20.0},
                                {"email": CY.email, "amount": 10.0}],
                     "date": "2024-05-03", "created_by": BEN.email, "created_at": "2024-05-15T10:00:00",
                     "comment_count": 0}
    with pytest.raises(Unprocessable, match="split by exact shares; give shares that sum to the new amount 50.00"):
        ada.update_expense(expense_id=groceries, amount=50)
    with pytest.raises(Unprocessable, match="at least one field"):
        ada.update_expense(expense_id=groceries)
    updated = ada.update_expense(expense_id=1, amount=12, title="Deep cleaning")
    assert [s["amount"] for s in updated["shares"]] == [4.0, 4.0, 4.0] and updated["title"] == "Deep cleaning"
    updated = ada.update_expense(expense_id=groceries, amount=50, shares={ADA.email: 25, CY.email: 25})
    assert updated["split_type"] == "exact" and [s["email"] for s in updated["shares"]] == [ADA.email, CY.email]
    updated = dee.update_expense(expense_id=lunch, split_with=[ADA.email, DEE.email, ], paid_by_email=ADA.email,
                                 date="2024-05-04")
    assert updated["paid_by_email"] == ADA.email and updated["date"] == "2024-05-04"
    c1 = ben.add_expense_comment(expense_id=groceries, comment="I paid at the market")["comment_id"]
    ada.add_expense_comment(expense_id=groceries, comment="thanks")
    with pytest.raises(Unprocessable, match="comment must not be empty"):
        ada.add_expense_comment(expense_id=groceries, comment="")
    with pytest.raises(NotFound):
        dee.add_expense_comment(expense_id=groceries, comment="hi")
    comments = ada.show_expense_comments(expense_id=groceries)
    assert [(c["comment_id"], c["author_email"]) for c in comments] == [(c1, BEN.email), (c1 + 1, ADA.email)]
    assert ada.show_expense_comments(expense_id=groceries, page_index=1, page_limit=1)[0]["comment"] == "thanks"
    assert ada.show_expense(expense_id=groceries)["comment_count"] == 2
    with pytest.raises(NotFound):
        dee.delete_expense(expense_id=groceries)
    ben.delete_expense(expense_id=groceries)
    assert world.db.execute("SELECT COUNT(*) FROM splitbill_comments").fetchone()[0] == 0
    with pytest.raises(NotFound):
        ada.show_expense(expense_id=groceries)


def test_balances_after_expenses_and_a_settle_up_match_a_hand_computation(world):
    ada, ben, cy = As(world, "splitbill", ADA), As(world, "splitbill", BEN), As(world, "splitbill", CY)
    dee = As(world, "splitbill", DEE)
    trip = ada.create_group(name="Trip", member_emails=[BEN.email, CY.email])["group_id"]
    # ada pays 90 split equally: ben owes ada 30, cy owes ada 30.
    ada.add_expense(group_id=trip, title="Hotel", amount=90)
    # ben pays 60: ada 10, ben 20, cy 30 -> ada owes ben 10, cy owes ben 30.
    ben.add_expense(group_id=trip, title="Car", amount=60, shares={ADA.email: 10, BEN.email: 20, CY.email: 30})
    # outside the group, dee pays 25 split with ada -> ada owes dee 12.50.
    dee.add_expense(title="Museum", amount=25, split_with=[ADA.email, DEE.email])
    balances = cy.show_group_balances(group_id=trip)
    assert balances == {
        "group_id": trip,
        "members": [{"email": ADA.email, "net": 50.0}, {"email": BEN.email, "net": 10.0},
                    {"email": CY.email, "net": -60.0}],
        "debts": [{"from_email": BEN.email, "to_email": ADA.email, "amount": 20.0},
                  {"from_email": CY.email, "to_email": ADA.email, "amount": 30.0},
                  {"from_email": CY.email, "to_email": BEN.email, "amount": 30.0}],
        "settled": False}
    assert ada.show_balances() == {"net": 37.5, "owes_you": [{"email": BEN.email, "amount": 20.0},
                                                             {"email": CY.email, "amount": 30.0}],
                                   "you_owe": [{"email": DEE.email, "amount": 12.5}]}
    # cy settles with ada; ben records cy paying him half of what cy owes him.
    pay = cy.record_payment(group_id=trip, to_email=ADA.email, amount=30, note="bank transfer")["payment_id"]
    ben.record_payment(group_id=trip, from_email=CY.email, to_email=BEN.email, amount=15, date="2024-05-16")
    balances = ada.show_group_balances(group_id=trip)
    assert balances["members"] == [{"email": ADA.email, "net": 20.0}, {"email": BEN.email, "net": -5.0},
                                   {"email": CY.email, "net": -15.0}]
    assert balances["debts"] == [{"from_email": BEN.email, "to_email": ADA.email, "amount": 20.0},
                                 {"from_email": CY.email, "to_email": BEN.email, "amount": 15.0}]
    assert cy.show_balances() == {"net": -15.0, "owes_you": [], "you_owe": [{"email": BEN.email, "amount": 15.0}]}
    ada.record_payment(to_email=DEE.email, amount=12.5)  # outside any group
    assert ada.show_balances() == {"net": 20.0, "owes_you": [{"email": BEN.email, "amount": 20.0}],
                                   "you_owe": []}
    assert dee.show_balances() == {"net": 0.0, "owes_you": [], "you_owe": []}
    ben.record_payment(group_id=trip, to_email=ADA.email, amount=20)
    cy.record_payment(group_id=trip, to_email=BEN.email, amount=15)
    settled = ada.show_group_balances(group_id=trip)
    assert settled["settled"] and settled["debts"] == [] and {m["net"] for m in settled["members"]} == {0.0}
    ada.remove_group_member(group_id=trip, email=CY.email)  # settled: allowed now
    payments = ada.show_payments(group_id=trip)
    assert [p["payment_id"] for p in payments] == [2, 5, 4, pay]  # newest date first, then id
    assert payments[-1] == {"payment_id": pay, "group_id": trip, "from_email": CY.email, "to_email": ADA.email,
                            "amount": 30.0, "note": "bank transfer", "date": "2024-05-15", "created_by": CY.email,
                            "created_at": "2024-05-15T10:00:00"}
    assert [p["payment_id"] for p in ada.show_payments(email=DEE.email)] == [3]
    assert [p["payment_id"] for p in dee.show_payments()] == [3]  # not in the trip group
    assert [p["payment_id"] for p in ada.show_payments(page_index=2, page_limit=2)] == [1]


def test_record_and_delete_payments_errors(world):
    ada, ben, cy = As(world, "splitbill", ADA), As(world, "splitbill", BEN), As(world, "splitbill", CY)
    dee = As(world, "splitbill", DEE)
    flat = ada.create_group(name="Flat", member_emails=[BEN.email, CY.email])["group_id"]
    before = snapshot(world.db)
    with pytest.raises(Unprocessable, match="must be different people"):
        ada.record_payment(group_id=flat, to_email=ADA.email, amount=5)
    with pytest.raises(Unprocessable, match="to_email dee@mail.example is not a member"):
        ada.record_payment(group_id=flat, to_email=DEE.email, amount=5)
    with pytest.raises(Unprocessable, match="outside a group you can record only payments you made or received"):
        ada.record_payment(from_email=BEN.email, to_email=CY.email, amount=5)
    with pytest.raises(NotFound, match="no splitbill user"):
        ada.record_payment(to_email="ghost@x.example", amount=5)
    with pytest.raises(Unprocessable, match="amount must be greater than 0"):
        ada.record_payment(to_email=BEN.email, amount=0)
    with pytest.raises(Unprocessable, match="date must be a date YYYY-MM-DD"):
        ada.record_payment(to_email=BEN.email, amount=5, date="2024-5-1")
    with pytest.raises(NotFound):
        dee.record_payment(group_id=flat, to_email=ADA.email, amount=5)
    assert snapshot(world.db) == before
    paid = ada.record_payment(group_id=flat, from_email=BEN.email, to_email=CY.email, amount=5)["payment_id"]
    private = ben.record_payment(to_email=CY.email, amount=7)["payment_id"]  # outside the group
    assert [p["payment_id"] for p in ada.show_payments()] == [paid]  # ada cannot see ben->cy outside groups
    with pytest.raises(NotFound, match=f"no payment with payment_id {private}"):
        ada.delete_payment(payment_id=private)
    ben.add_expense(group_id=flat, title="Internet", amount=30)
    ada.add_group_member(group_id=flat, email=DEE.email)
    assert [p["payment_id"] for p in dee.show_payments(group_id=flat)] == [paid]  # members see group payments
    with pytest.raises(Forbidden, match="can delete payment"):
        dee.delete_payment(payment_id=paid)  # dee neither made, received nor recorded it
    cy.delete_payment(payment_id=paid)
    latest = ada.record_payment(to_email=BEN.email, amount=1)["payment_id"]
    assert [p["payment_id"] for p in ben.show_payments()] == [latest, private]
    assert [u["email"] for u in dee.search_users(query="mail.example")] == [ADA.email, BEN.email, CY.email,
                                                                             EVE.email]
    assert [u["email"] for u in dee.search_users(query="park")] == [CY.email]
