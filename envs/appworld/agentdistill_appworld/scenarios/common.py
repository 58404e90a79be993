"""Helpers every scenario module uses: the reference solutions' login prelude and start-state lookups."""

from __future__ import annotations

from typing import Any

from agentdistill_appworld.framework import Context

LOGIN = '''passwords = {{p["account_name"]: p["password"] for p in apis.supervisor.show_account_passwords()}}
me = apis.supervisor.show_profile()
{app}_token = apis.{app}.login(username=me["{username}"], password=passwords["{app}"])["access_token"]
'''


def login(app: str) -> str:
    """Reference-solution code that logs the supervisor in to ``app`` as ``<app>_token`` (credentials from the
    supervisor app, as an agent must get them)."""
    return LOGIN.format(app=app, username="phone" if app == "phone" else "email")


def supervisor(ctx: Context) -> dict[str, Any]:
    row = ctx.db.execute("SELECT first_name, last_name, email, phone FROM supervisor_profile").fetchone()
    return {"first_name": row[0], "last_name": row[1], "email": row[2], "phone": row[3]}


def contacts(ctx: Context, relationship: str) -> list[tuple]:
    """The supervisor's phone contacts with ``relationship``: (first, last, email, phone, relationships)."""
    me = supervisor(ctx)["phone"]
    rows = ctx.db.execute("SELECT first_name, last_name, email, phone_number, relationships FROM phone_contacts "
                          "WHERE owner = ? ORDER BY contact_id", (me,)).fetchall()
    return [r for r in rows if relationship in r[4].split(",")]


def rows(ctx: Context, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    cursor = ctx.db.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
