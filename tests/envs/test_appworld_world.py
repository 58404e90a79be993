"""The seeded AppWorld-style world: byte-stable digests, row counts per app, the supervisor's logins and lists
through the real APIs, money invariants, dates before now, referential integrity and build time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from agentdistill_appworld.apps.splitbill import equal_split
from agentdistill_appworld.population import make_population
from agentdistill_appworld.world import (
    ACCOUNT_APPS,
    ACCOUNT_PERCENT,
    APP_CLASSES,
    WorldSpec,
    build_world,
    supervisor_passwords,
    world_digest,
)

APPWORLD_DIR = Path(__file__).resolve().parents[2] / "envs" / "appworld"
SEEDS = (0, 1, 7, 42)
NOW = WorldSpec().now


@pytest.fixture(scope="module")
def worlds():
    return {seed: build_world(WorldSpec(seed=seed)) for seed in SEEDS}


@pytest.fixture(scope="module")
def world(worlds):
    return worlds[0]


def count(ctx, sql, params=()):
    return ctx.db.execute(sql, params).fetchone()[0]


def column(ctx, sql, params=()):
    return [r[0] for r in ctx.db.execute(sql, params)]


def sup_row(ctx):
    first, last, email, phone, _ = ctx.db.execute("SELECT * FROM supervisor_profile").fetchone()
    return email, phone


def call(ctx, app, api, **kwargs):
    return ctx.apps[app].call(api, kwargs)


def login(ctx, app):
    email, phone = sup_row(ctx)
    username = phone if app == "phone" else email
    return call(ctx, app, "login", username=username, password=supervisor_passwords(ctx)[app])["access_token"]


def every_page(ctx, app, api, token, page_limit=5, **kwargs):
    """All items of a paginated list API, page by page until an empty page."""
    items, page = [], 0
    while True:
        batch = call(ctx, app, api, access_token=token, page_index=page, page_limit=page_limit, **kwargs)
        assert len(batch) <= page_limit
        if not batch:
            return items
        items += batch
        page += 1


# ------------------------------------------------------------------------------------------ determinism


def _digest_in_subprocess(seed: int, hash_seed: str) -> str:
    code = ("from agentdistill_appworld.world import WorldSpec, build_world, world_digest; "
            f"print(world_digest(build_world(WorldSpec(seed={seed}))))")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(APPWORLD_DIR)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_digest_is_byte_stable_across_builds_and_processes(world):
    digest = world_digest(world)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert world_digest(build_world(WorldSpec(seed=0))) == digest
    assert _digest_in_subprocess(0, "12345") == digest
    assert _digest_in_subprocess(0, "random") == digest


def test_digest_differs_between_seeds_and_ignores_logins(worlds):
    digests = {seed: world_digest(ctx) for seed, ctx in worlds.items()}
    assert len(set(digests.values())) == len(SEEDS)
    fresh = build_world(WorldSpec(seed=1))
    login(fresh, "wallet")  # a login writes a token, which the digest leaves out
    assert world_digest(fresh) == digests[1]


def test_a_given_population_gives_the_same_world():
    spec = WorldSpec(seed=3, n_people=60)
    pop = make_population(3, 60, spec.now)
    assert world_digest(build_world(spec, population=pop)) == world_digest(build_world(spec))
    with pytest.raises(ValueError, match="now="):
        build_world(WorldSpec(seed=3, n_people=60, now="2024-06-01T00:00:00"), population=pop)


def test_build_time_for_100_people():
    start = time.perf_counter()
    ctx = build_world(WorldSpec(seed=11, n_people=100))
    elapsed = time.perf_counter() - start
    print(f"build_world(100 people): {elapsed:.3f} s")
    assert count(ctx, "SELECT COUNT(*) FROM phone_accounts") == 100


@pytest.mark.parametrize("n_people", [30, 250])
def test_small_and_large_populations(n_people):
    ctx = build_world(WorldSpec(seed=5, n_people=n_people))
    email, _ = sup_row(ctx)
    assert count(ctx, "SELECT COUNT(*) FROM wallet_accounts") == n_people
    assert 8 <= count(ctx, "SELECT COUNT(*) FROM notes_notes WHERE owner = ?", (email,)) <= 15
    assert 15 <= count(ctx, "SELECT COUNT(*) FROM todo_tasks WHERE owner = ?", (email,)) <= 30
    assert 40 <= count(ctx, "SELECT COUNT(*) FROM phone_messages") <= 80


# ------------------------------------------------------------------------------------------ apps and rows


def test_every_app_is_there_with_its_tables(world):
    assert list(world.apps) == [cls.name for cls in APP_CLASSES]
    assert [type(app) for app in world.apps.values()] == list(APP_CLASSES)
    assert world.now == NOW
    names = call(world, "api_docs", "show_app_descriptions")
    assert sorted(a["name"] for a in names) == sorted(world.apps)


@pytest.mark.parametrize("seed", SEEDS)
def test_supervisor_and_accounts(worlds, seed):
    ctx = worlds[seed]
    email, phone = sup_row(ctx)
    assert column(ctx, "SELECT address_name FROM supervisor_addresses ORDER BY address_name") == ["home", "work"]
    cards = ctx.db.execute("SELECT card_name, card_number, expiry, cvv FROM supervisor_payment_cards").fetchall()
    assert 2 <= len(cards) <= 3
    for name, number, expiry, cvv in cards:
        assert re.fullmatch(r"[45]\d{15}", number) and name.split()[0] == ("Visa" if number[0] == "4" else
                                                                            "Mastercard")
        assert not _luhn_valid(number)  # clearly fictional: no real card fails the checksum
        month, year = expiry.split("/")
        assert (2000 + int(year), int(month)) > (2024, 5) and re.fullmatch(r"\d{3}", cvv)
    passwords = supervisor_passwords(ctx)
    assert sorted(passwords) == sorted(ACCOUNT_APPS)
    assert all(re.fullmatch(r"[A-Za-z0-9]{12}", p) for p in passwords.values())
    assert ctx.db.execute("SELECT * FROM supervisor_task").fetchall() == [("", "", 0, None, None)]
    for app in ACCOUNT_APPS:
        username = phone if app == "phone" else email
        stored = column(ctx, f"SELECT password FROM {app}_accounts WHERE username = ?", (username,))
        assert stored == [passwords[app]]
        assert count(ctx, f"SELECT COUNT(*) FROM {app}_accounts") == 1 + 99 * ACCOUNT_PERCENT[app] // 100
        assert count(ctx, f"SELECT COUNT(DISTINCT password) FROM {app}_accounts") > 1


def _luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_phone_rows(worlds, seed):
    ctx = worlds[seed]
    _, phone = sup_row(ctx)
    pop = make_population(seed, 100, NOW)
    ties = pop.relations_of(0)
    tags = Counter(column(ctx, "SELECT relationships FROM phone_contacts WHERE owner = ?", (phone,)))
    assert tags - Counter({"": tags[""]}) == Counter(kind for _, kind in ties)
    assert 3 <= tags[""] <= 5
    assert count(ctx, "SELECT COUNT(*) FROM phone_contacts WHERE owner != ?", (phone,)) == 0
    contacts = set(column(ctx, "SELECT phone_number FROM phone_contacts"))
    messages = ctx.db.execute("SELECT sender, receiver, sent_at FROM phone_messages").fetchall()
    assert 40 <= len(messages) <= 80
    assert all(phone in (s, r) and ({s, r} - {phone}) <= contacts for s, r, _ in messages)
    assert {s == phone for s, _, _ in messages} == {True, False}  # both directions
    assert min(at for _, _, at in messages) >= "2024-03-16"  # the last 60 days
    assert count(ctx, "SELECT COUNT(*) FROM phone_messages m JOIN phone_contacts c ON c.phone_number IN "
                      "(m.sender, m.receiver) WHERE m.sent_at <= c.created_at") == 0  # texts follow saving
    assert 3 <= count(ctx, "SELECT COUNT(*) FROM phone_alarms WHERE owner = ?", (phone,)) <= 5


@pytest.mark.parametrize("seed", SEEDS)
def test_wallet_rows(worlds, seed):
    ctx = worlds[seed]
    email, _ = sup_row(ctx)
    pop = make_population(seed, 100, NOW)
    friends = {p.email for p, kind in pop.relations_of(0) if kind in ("friend", "family", "roommate", "partner")}
    assert set(column(ctx, "SELECT friend FROM wallet_friends WHERE owner = ?", (email,))) == friends
    assert set(column(ctx, "SELECT owner FROM wallet_friends WHERE friend = ?", (email,))) == friends
    assert count(ctx, "SELECT COUNT(*) FROM wallet_friends") == 2 * len(friends)
    mine = count(ctx, "SELECT COUNT(*) FROM wallet_transactions WHERE ? IN (sender, receiver)", (email,))
    assert 30 <= mine <= 60
    assert count(ctx, "SELECT COUNT(*) FROM wallet_transactions WHERE ? NOT IN (sender, receiver)", (email,)) == 20
    assert 0 < count(ctx, "SELECT COUNT(*) FROM wallet_transactions WHERE private = 1") < mine
    pending = count(ctx, "SELECT COUNT(*) FROM wallet_requests WHERE status = 'pending' AND ? IN (requester, payer)",
                    (email,))
    assert 3 <= pending <= 6
    for request_id, tid in ctx.db.execute("SELECT request_id, transaction_id FROM wallet_requests "
                                          "WHERE status = 'approved'"):
        assert column(ctx, "SELECT request_id FROM wallet_transactions WHERE transaction_id = ?", (tid,)) == [
            request_id]
    assert count(ctx, "SELECT COUNT(*) FROM wallet_likes") > 0
    assert count(ctx, "SELECT COUNT(*) FROM wallet_comments") > 0
    assert count(ctx, "SELECT COUNT(*) FROM wallet_likes l JOIN wallet_transactions t USING (transaction_id) "
                      "WHERE t.private = 1") == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_splitbill_rows(worlds, seed):
    ctx = worlds[seed]
    email, _ = sup_row(ctx)
    pop = make_population(seed, 100, NOW)
    house = {pop.people[0].email} | {p.email for p, kind in pop.relations_of(0) if kind in ("partner", "roommate")}
    groups = dict(ctx.db.execute("SELECT name, group_id FROM splitbill_groups"))
    assert 2 <= len(groups) <= 3 and "Home" in groups
    assert set(column(ctx, "SELECT username FROM splitbill_members WHERE group_id = ?", (groups["Home"],))) == house
    for group_id in groups.values():
        assert email in column(ctx, "SELECT username FROM splitbill_members WHERE group_id = ?", (group_id,))
        assert count(ctx, "SELECT COUNT(*) FROM splitbill_expenses WHERE group_id = ?", (group_id,)) >= 3
    assert min(column(ctx, "SELECT date FROM splitbill_expenses")) >= "2024-02-15"  # the last 90 days
    assert 2 <= count(ctx, "SELECT COUNT(*) FROM splitbill_payments") <= 3
    assert set(column(ctx, "SELECT split_type FROM splitbill_expenses")) <= {"equal", "exact"}


@pytest.mark.parametrize("seed", SEEDS)
def test_music_rows(worlds, seed):
    ctx = worlds[seed]
    email, _ = sup_row(ctx)
    assert count(ctx, "SELECT COUNT(*) FROM music_artists") == 25
    assert count(ctx, "SELECT COUNT(*) FROM music_albums") == 50
    assert 280 <= count(ctx, "SELECT COUNT(*) FROM music_songs") <= 380
    assert count(ctx, "SELECT COUNT(DISTINCT title) FROM music_songs") == count(ctx, "SELECT COUNT(*) FROM music_songs")
    assert count(ctx, "SELECT COUNT(*) FROM music_songs WHERE duration_s NOT BETWEEN 120 AND 420") == 0
    assert min(column(ctx, "SELECT release_date FROM music_songs")) >= "2004-05-15"

    def mine(table):
        return count(ctx, f"SELECT COUNT(*) FROM {table} WHERE owner = ?", (email,))

    assert 20 <= mine("music_library_songs") <= 40 and mine("music_library_albums") >= 3
    assert 20 <= mine("music_liked_songs") <= 40
    assert 5 <= mine("music_following") <= 10 and mine("music_plays") == 30 and mine("music_ratings") > 0
    playlists = ctx.db.execute("SELECT playlist_id, is_public FROM music_playlists WHERE owner = ?",
                               (email,)).fetchall()
    assert 3 <= len(playlists) <= 5 and {public for _, public in playlists} == {0, 1}
    for playlist_id, _ in playlists:
        positions = column(ctx, "SELECT position FROM music_playlist_songs WHERE playlist_id = ? ORDER BY position",
                           (playlist_id,))
        assert 5 <= len(positions) <= 20 and positions == list(range(1, len(positions) + 1))
    assert count(ctx, "SELECT COUNT(DISTINCT owner) FROM music_playlists WHERE owner != ?", (email,)) >= 3
    assert count(ctx, "SELECT COUNT(*) FROM music_ratings WHERE rating NOT BETWEEN 1 AND 5") == 0
    for table, stamp in (("music_library_songs", "added_at"), ("music_liked_songs", "liked_at"),
                         ("music_playlist_songs", "added_at"), ("music_ratings", "rated_at"),
                         ("music_plays", "played_at")):  # nobody touches a song before it came out
        assert count(ctx, f"SELECT COUNT(*) FROM {table} x JOIN music_songs s USING (song_id) "
                          f"WHERE x.{stamp} < s.release_date") == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_notes_and_todo_rows(worlds, seed):
    ctx = worlds[seed]
    email, _ = sup_row(ctx)
    assert 8 <= count(ctx, "SELECT COUNT(*) FROM notes_notes WHERE owner = ?", (email,)) <= 15
    assert 2 <= count(ctx, "SELECT COUNT(*) FROM notes_shares WHERE shared_with = ?", (email,)) <= 3
    assert count(ctx, "SELECT COUNT(*) FROM notes_notes n WHERE NOT EXISTS (SELECT 1 FROM notes_tags t "
                      "WHERE t.note_id = n.note_id)") == 0
    assert 1 <= count(ctx, "SELECT COUNT(*) FROM notes_notes WHERE pinned = 1 AND owner = ?", (email,)) <= 2
    assert 2 <= count(ctx, "SELECT COUNT(*) FROM todo_projects WHERE owner = ?", (email,)) <= 4
    tasks = ctx.db.execute("SELECT due_date, completed, completed_at, created_at FROM todo_tasks WHERE owner = ?",
                           (email,)).fetchall()
    assert 15 <= len(tasks) <= 30
    assert {done for _, done, _, _ in tasks} == {0, 1}
    dues = [due for due, _, _, _ in tasks if due]
    assert min(dues) < NOW[:10] < max(dues) and len(dues) < len(tasks)
    assert all((done == 1) == (at is not None) and (at is None or created <= at) for _, done, at, created in tasks)
    assert count(ctx, "SELECT COUNT(*) FROM todo_comments") >= 3
    assert "{" not in "".join(column(ctx, "SELECT title FROM todo_tasks"))


# ------------------------------------------------------------------------------------------ the real APIs


def test_supervisor_logs_in_everywhere_and_lists_through_the_apis(world):
    email, phone = sup_row(world)
    listed = call(world, "supervisor", "show_account_passwords")
    assert {r["account_name"]: r["password"] for r in listed} == supervisor_passwords(world)
    tokens = {app: login(world, app) for app in ACCOUNT_APPS}
    for app, token in tokens.items():
        assert call(world, app, "show_account", access_token=token)["email"] == email

    contacts = every_page(world, "phone", "search_contacts", tokens["phone"])
    assert len(contacts) == count(world, "SELECT COUNT(*) FROM phone_contacts")
    assert len({c["contact_id"] for c in contacts}) == len(contacts)
    roommates = every_page(world, "phone", "search_contacts", tokens["phone"], relationship="roommate")
    assert len(roommates) >= 2 and all(c["relationships"] == ["roommate"] for c in roommates)
    texts = every_page(world, "phone", "search_text_messages", tokens["phone"], page_limit=20)
    assert len(texts) == count(world, "SELECT COUNT(*) FROM phone_messages")

    friends = every_page(world, "wallet", "show_friends", tokens["wallet"])
    assert len(friends) == count(world, "SELECT COUNT(*) FROM wallet_friends WHERE owner = ?", (email,))
    payments = every_page(world, "wallet", "show_transactions", tokens["wallet"], page_limit=20)
    assert 30 <= len(payments) <= 60
    requests = every_page(world, "wallet", "show_payment_requests", tokens["wallet"], status="pending")
    assert 3 <= len(requests) <= 6

    groups = every_page(world, "splitbill", "show_groups", tokens["splitbill"])
    assert "Home" in {g["name"] for g in groups}
    playlists = every_page(world, "music", "show_playlist_library", tokens["music"], page_limit=2)
    assert 3 <= len(playlists) <= 5
    detail = call(world, "music", "show_playlist", access_token=tokens["music"],
                  playlist_id=playlists[0]["playlist_id"])
    assert len(detail["songs"]) == playlists[0]["song_count"]
    assert 20 <= len(every_page(world, "music", "show_liked_songs", tokens["music"], page_limit=20)) <= 40
    notes = every_page(world, "notes", "search_notes", tokens["notes"])
    assert 8 <= len(notes) <= 15
    shared = every_page(world, "notes", "show_shared_notes", tokens["notes"])
    assert shared and call(world, "notes", "show_note", access_token=tokens["notes"],
                           note_id=shared[0]["note_id"])["read_only"]
    tasks = every_page(world, "todo", "search_tasks", tokens["todo"])
    assert 15 <= len(tasks) <= 30
    assert 2 <= len(every_page(world, "todo", "show_projects", tokens["todo"])) <= 4


# ------------------------------------------------------------------------------------------ invariants


@pytest.mark.parametrize("seed", SEEDS)
def test_wallet_money(worlds, seed):
    ctx = worlds[seed]
    email, _ = sup_row(ctx)
    balances = dict(ctx.db.execute("SELECT username, balance_cents FROM wallet_balances"))
    assert sorted(balances) == sorted(column(ctx, "SELECT username FROM wallet_accounts"))
    assert 50_000 <= balances.pop(email) <= 200_000
    assert all(isinstance(c, int) and 0 <= c <= 150_000 for c in balances.values())
    # Every user's balance through the API (logged in with their stored password) adds up to the seeded total.
    total = 0
    for username, password in ctx.db.execute("SELECT username, password FROM wallet_accounts ORDER BY username"
                                             ).fetchall():
        token = call(ctx, "wallet", "login", username=username, password=password)["access_token"]
        total += round(call(ctx, "wallet", "show_balance", access_token=token)["balance"] * 100)
    assert total == count(ctx, "SELECT SUM(balance_cents) FROM wallet_balances")
    assert count(ctx, "SELECT COUNT(*) FROM wallet_transactions WHERE amount_cents <= 0") == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_splitbill_shares_sum_and_balances_are_open(worlds, seed):
    ctx = worlds[seed]
    expenses = ctx.db.execute("SELECT expense_id, amount_cents, split_type FROM splitbill_expenses").fetchall()
    for expense_id, total, split_type in expenses:
        shares = dict(ctx.db.execute("SELECT username, share_cents FROM splitbill_shares WHERE expense_id = ?",
                                     (expense_id,)))
        assert len(shares) >= 2 and min(shares.values()) > 0 and sum(shares.values()) == total
        if split_type == "equal":
            assert shares == equal_split(total, list(shares))
    token = login(ctx, "splitbill")
    home = [g for g in call(ctx, "splitbill", "show_groups", access_token=token) if g["name"] == "Home"][0]
    assert not call(ctx, "splitbill", "show_group_balances", access_token=token,
                    group_id=home["group_id"])["settled"]
    assert call(ctx, "splitbill", "show_balances", access_token=token)["net"] != 0


def test_both_kinds_of_split_occur(worlds):
    kinds = Counter(k for ctx in worlds.values() for k in column(ctx, "SELECT split_type FROM splitbill_expenses"))
    assert kinds["equal"] > kinds["exact"] > 0


DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?")
FUTURE_OK = {("todo_tasks", "due_date")}


@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_dated_after_now(worlds, seed):
    ctx = worlds[seed]
    tables = column(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    checked = 0
    for table in tables:
        cursor = ctx.db.execute(f"SELECT * FROM {table}")
        names = [c[0] for c in cursor.description]
        for row in cursor.fetchall():
            for name, value in zip(names, row, strict=True):
                if not isinstance(value, str) or not DATE.fullmatch(value) or (table, name) in FUTURE_OK:
                    continue
                checked += 1
                limit = NOW if len(value) > 10 else NOW[:10]
                assert value < limit, f"{table}.{name} = {value} is not before {limit}"
                datetime.fromisoformat(value)
    assert checked > 1000
    assert column(ctx, "SELECT MAX(due_date) FROM todo_tasks")[0] > NOW[:10]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_user_reference_has_an_account(worlds, seed):
    ctx = worlds[seed]
    refs = {
        "phone": ["SELECT owner FROM phone_contacts", "SELECT sender FROM phone_messages",
                  "SELECT receiver FROM phone_messages", "SELECT owner FROM phone_alarms"],
        "wallet": ["SELECT owner FROM wallet_friends", "SELECT friend FROM wallet_friends",
                   "SELECT sender FROM wallet_transactions", "SELECT receiver FROM wallet_transactions",
                   "SELECT username FROM wallet_likes", "SELECT author FROM wallet_comments",
                   "SELECT requester FROM wallet_requests", "SELECT payer FROM wallet_requests",
                   "SELECT owner FROM wallet_balance_transfers"],
        "splitbill": ["SELECT username FROM splitbill_members", "SELECT paid_by FROM splitbill_expenses",
                      "SELECT username FROM splitbill_shares", "SELECT payer FROM splitbill_payments",
                      "SELECT payee FROM splitbill_payments", "SELECT author FROM splitbill_comments"],
        "music": [f"SELECT owner FROM music_{t}" for t in ("library_songs", "library_albums", "liked_songs",
                                                          "following", "playlists", "plays", "ratings")],
        "notes": ["SELECT owner FROM notes_notes", "SELECT shared_with FROM notes_shares"],
        "todo": ["SELECT owner FROM todo_tasks", "SELECT owner FROM todo_projects", "SELECT author FROM todo_comments"],
    }
    for app, queries in refs.items():
        users = set(column(ctx, f"SELECT username FROM {app}_accounts"))
        for sql in queries:
            assert set(column(ctx, sql)) <= users, f"{app}: {sql} names someone without an account"
    people = set(column(ctx, "SELECT phone FROM phone_accounts"))
    assert set(column(ctx, "SELECT phone_number FROM phone_contacts")) <= people
    # Expense members belong to the group; playlist songs exist; todo tasks are in their owner's projects.
    assert count(ctx, "SELECT COUNT(*) FROM splitbill_shares s JOIN splitbill_expenses e USING (expense_id) "
                      "WHERE NOT EXISTS (SELECT 1 FROM splitbill_members m WHERE m.group_id = e.group_id "
                      "AND m.username = s.username)") == 0
    assert count(ctx, "SELECT COUNT(*) FROM music_playlist_songs WHERE song_id NOT IN "
                      "(SELECT song_id FROM music_songs)") == 0
    assert count(ctx, "SELECT COUNT(*) FROM todo_tasks t JOIN todo_projects p USING (project_id) "
                      "WHERE p.owner != t.owner") == 0
