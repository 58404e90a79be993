"""``supervisor``: the person the agent works for — profile, addresses, payment cards, account passwords —
and ``complete_task``, which ends the episode."""

from __future__ import annotations

import json
from typing import Any

from agentdistill_appworld.framework import App, Unprocessable, api


class Supervisor(App):
    name = "supervisor"
    description = "Your supervisor's profile, addresses, payment cards and app passwords; complete_task ends the task."
    tables = """
        CREATE TABLE supervisor_profile (first_name TEXT, last_name TEXT, email TEXT, phone TEXT, birthday TEXT);
        CREATE TABLE supervisor_addresses (address_name TEXT PRIMARY KEY, street TEXT, city TEXT, state TEXT,
                                           zip_code TEXT, country TEXT);
        CREATE TABLE supervisor_payment_cards (card_name TEXT PRIMARY KEY, owner_name TEXT, card_number TEXT,
                                               expiry TEXT, cvv TEXT);
        CREATE TABLE supervisor_passwords (account_name TEXT PRIMARY KEY, password TEXT);
        CREATE TABLE supervisor_task (task_id TEXT, instruction TEXT, completed INTEGER, answer TEXT, status TEXT);
    """

    @api("Show the task you are working on.", login=False, response={"task_id": "string", "instruction": "string"})
    def show_active_task(self) -> dict[str, Any]:
        return self.row("SELECT task_id, instruction FROM supervisor_task")

    @api("Show your supervisor's profile.", login=False,
         response={"first_name": "string", "last_name": "string", "email": "string", "phone": "string",
                   "birthday": "string"})
    def show_profile(self) -> dict[str, Any]:
        return self.row("SELECT * FROM supervisor_profile")

    @api("Show your supervisor's saved addresses.", login=False,
         response=[{"address_name": "string", "street": "string", "city": "string", "state": "string",
                    "zip_code": "string", "country": "string"}])
    def show_addresses(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM supervisor_addresses ORDER BY address_name")

    @api("Show your supervisor's payment cards.", login=False,
         response=[{"card_name": "string", "owner_name": "string", "card_number": "string", "expiry": "string",
                    "cvv": "string"}])
    def show_payment_cards(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM supervisor_payment_cards ORDER BY card_name")

    @api("Show your supervisor's passwords for every app.", login=False,
         response=[{"account_name": "string", "password": "string"}])
    def show_account_passwords(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM supervisor_passwords ORDER BY account_name")

    @api("Mark the task complete. Pass answer for questions; status='fail' to give up.", login=False,
         response={"message": "string"},
         answer="The answer, for tasks that ask a question; leave null for tasks that only ask for changes.",
         status="'success' (default) or 'fail'.")
    def complete_task(self, answer: Any | None = None, status: str = "success") -> dict[str, str]:
        if status not in ("success", "fail"):
            raise Unprocessable(f"status must be 'success' or 'fail', got {status!r}")
        # JSON keeps the answer's type (3 and "3" differ) for the evaluator.
        self.db.execute("UPDATE supervisor_task SET completed = 1, answer = ?, status = ?",
                        (None if answer is None else json.dumps(answer), status))
        return {"message": "Task marked complete."}
