"""``phone``: contacts (with relationships), text messages, alarms. The username is the phone number."""

from __future__ import annotations

from typing import Any

from agentdistill_appworld.framework import PAGE_DOCS, AccountApp, Conflict, Unprocessable, api, paginate

CONTACT = {"contact_id": "integer", "first_name": "string", "last_name": "string", "email": "string",
           "phone_number": "string", "relationships": ["string"], "birthday": "string", "home_address": "string",
           "created_at": "string"}
MESSAGE = {"message_id": "integer", "sender": "string", "receiver": "string", "message": "string",
           "sent_at": "string"}
ALARM = {"alarm_id": "integer", "time": "string", "label": "string", "repeat_days": ["string"],
         "enabled": "boolean"}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _contact(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row.pop("owner", None)
    row["relationships"] = [r for r in row["relationships"].split(",") if r]
    return row


def _alarm(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row.pop("owner", None)
    row["repeat_days"] = [d for d in row["repeat_days"].split(",") if d]
    row["enabled"] = bool(row["enabled"])
    return row


class Phone(AccountApp):
    name = "phone"
    description = "Your phone: contacts with relationships (family, friend, roommate, ...), text messages, alarms."
    username_field = "phone"
    tables = """
        CREATE TABLE phone_contacts (contact_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, first_name TEXT NOT NULL,
            last_name TEXT NOT NULL, email TEXT, phone_number TEXT NOT NULL, relationships TEXT NOT NULL,
            birthday TEXT, home_address TEXT, created_at TEXT NOT NULL);
        CREATE TABLE phone_messages (message_id INTEGER PRIMARY KEY, sender TEXT NOT NULL, receiver TEXT NOT NULL,
            message TEXT NOT NULL, sent_at TEXT NOT NULL);
        CREATE TABLE phone_alarms (alarm_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, time TEXT NOT NULL,
            label TEXT NOT NULL, repeat_days TEXT NOT NULL, enabled INTEGER NOT NULL);
    """

    # ---- contacts

    @api("Search your contacts by name, email or phone number, optionally by relationship.",
         response=[CONTACT], query="Text to look for in the name, email or phone number ('' lists all).",
         relationship="Only contacts with this relationship, e.g. 'roommate' (null: any).", **PAGE_DOCS)
    def search_contacts(self, query: str = "", relationship: str | None = None, page_index: int = 0,
                        page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        like = f"%{query.lower()}%"
        rows = self.rows(
            "SELECT * FROM phone_contacts WHERE owner = ? AND (lower(first_name || ' ' || last_name) LIKE ? OR "
            "lower(coalesce(email, '')) LIKE ? OR phone_number LIKE ?) AND (? IS NULL OR ',' || relationships || "
            "',' LIKE '%,' || ? || ',%') ORDER BY contact_id LIMIT ? OFFSET ?",
            (self.user, like, like, like, relationship, relationship, limit, offset))
        return [_contact(r) for r in rows]

    @api("Show one contact.", response=CONTACT, contact_id="The contact's id.")
    def show_contact(self, contact_id: int) -> dict[str, Any]:
        return _contact(self._own_contact(contact_id))

    @api("Add a contact.", response={"contact_id": "integer", "message": "string"},
         first_name="First name.", last_name="Last name.", phone_number="10-digit phone number.",
         email="Email address (optional).", relationships="Relationships, e.g. ['friend', 'coworker'].",
         birthday="Birthday, YYYY-MM-DD (optional).", home_address="Home address (optional).")
    def add_contact(self, first_name: str, last_name: str, phone_number: str, email: str | None = None,
                    relationships: list[str] | None = None, birthday: str | None = None,
                    home_address: str | None = None) -> dict[str, Any]:
        _check_phone(phone_number)
        if self.row("SELECT 1 AS x FROM phone_contacts WHERE owner = ? AND phone_number = ?",
                    (self.user, phone_number)):
            raise Conflict(f"a contact with phone number {phone_number} already exists")
        contact_id = self.insert("phone_contacts", {
            "owner": self.user, "first_name": first_name, "last_name": last_name, "email": email,
            "phone_number": phone_number, "relationships": ",".join(relationships or []), "birthday": birthday,
            "home_address": home_address, "created_at": self.now})
        return {"contact_id": contact_id, "message": "Contact added."}

    @api("Update a contact's fields (only those given).", response={"message": "string"},
         contact_id="The contact's id.", first_name="New first name.", last_name="New last name.",
         phone_number="New phone number.", email="New email.", relationships="New list of relationships.",
         birthday="New birthday, YYYY-MM-DD.", home_address="New home address.")
    def update_contact(self, contact_id: int, first_name: str | None = None, last_name: str | None = None,
                       phone_number: str | None = None, email: str | None = None,
                       relationships: list[str] | None = None, birthday: str | None = None,
                       home_address: str | None = None) -> dict[str, str]:
        self._own_contact(contact_id)
        if phone_number is not None:
            _check_phone(phone_number)
        changes = {"first_name": first_name, "last_name": last_name, "phone_number": phone_number, "email": email,
                   "relationships": None if relationships is None else ",".join(relationships),
                   "birthday": birthday, "home_address": home_address}
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            raise Unprocessable("give at least one field to update")
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE phone_contacts SET {sets} WHERE contact_id = ?", (*changes.values(), contact_id))
        return {"message": "Contact updated."}

    @api("Delete a contact.", response={"message": "string"}, contact_id="The contact's id.")
    def delete_contact(self, contact_id: int) -> dict[str, str]:
        self._own_contact(contact_id)
        self.db.execute("DELETE FROM phone_contacts WHERE contact_id = ?", (contact_id,))
        return {"message": "Contact deleted."}

    @api("List the relationship kinds used in your contacts.", response=["string"])
    def show_contact_relationships(self) -> list[str]:
        kinds = set()
        for row in self.rows("SELECT relationships FROM phone_contacts WHERE owner = ?", (self.user,)):
            kinds.update(r for r in row["relationships"].split(",") if r)
        return sorted(kinds)

    # ---- text messages

    @api("Search your text messages (sent and received), newest first.", response=[MESSAGE],
         query="Text to look for in the message ('' lists all).",
         phone_number="Only messages with this phone number (null: any).", **PAGE_DOCS)
    def search_text_messages(self, query: str = "", phone_number: str | None = None, page_index: int = 0,
                             page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(
            "SELECT * FROM phone_messages WHERE (sender = ? OR receiver = ?) AND lower(message) LIKE ? AND "
            "(? IS NULL OR sender = ? OR receiver = ?) ORDER BY sent_at DESC, message_id DESC LIMIT ? OFFSET ?",
            (self.user, self.user, f"%{query.lower()}%", phone_number, phone_number, phone_number, limit, offset))

    @api("Show one text message.", response=MESSAGE, message_id="The message's id.")
    def show_text_message(self, message_id: int) -> dict[str, Any]:
        return self._own_message(message_id)

    @api("Send a text message.", response={"message_id": "integer", "message": "string"},
         phone_number="The receiver's 10-digit phone number.", message="The text.")
    def send_text_message(self, phone_number: str, message: str) -> dict[str, Any]:
        _check_phone(phone_number)
        if not message.strip():
            raise Unprocessable("message must not be empty")
        message_id = self.insert("phone_messages", {"sender": self.user, "receiver": phone_number,
                                                    "message": message, "sent_at": self.now})
        return {"message_id": message_id, "message": "Message sent."}

    @api("Delete a text message.", response={"message": "string"}, message_id="The message's id.")
    def delete_text_message(self, message_id: int) -> dict[str, str]:
        self._own_message(message_id)
        self.db.execute("DELETE FROM phone_messages WHERE message_id = ?", (message_id,))
        return {"message": "Message deleted."}

    # ---- alarms and time

    @api("Show the current date and time.", login=False, response={"date": "string", "time": "string"})
    def show_current_date_time(self) -> dict[str, str]:
        date, _, time = self.now.partition("T")
        return {"date": date, "time": time}

    @api("List your alarms.", response=[ALARM], **PAGE_DOCS)
    def show_alarms(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return [_alarm(r) for r in self.rows("SELECT * FROM phone_alarms WHERE owner = ? ORDER BY time, alarm_id "
                                             "LIMIT ? OFFSET ?", (self.user, limit, offset))]

    @api("Create an alarm.", response={"alarm_id": "integer", "message": "string"},
         time="HH:MM, 24-hour.", label="A label.", repeat_days="Days it repeats, e.g. ['monday'] ([] = once).")
    def create_alarm(self, time: str, label: str = "", repeat_days: list[str] | None = None) -> dict[str, Any]:
        _check_time(time)
        days = [d.lower() for d in repeat_days or []]
        bad = [d for d in days if d not in DAYS]
        if bad:
            raise Unprocessable(f"unknown days {bad}; use {list(DAYS)}")
        alarm_id = self.insert("phone_alarms", {"owner": self.user, "time": time, "label": label,
                                                "repeat_days": ",".join(days), "enabled": 1})
        return {"alarm_id": alarm_id, "message": "Alarm created."}

    @api("Turn an alarm on or off, or change its time or label.", response={"message": "string"},
         alarm_id="The alarm's id.", enabled="On (true) or off (false).", time="New time, HH:MM.",
         label="New label.")
    def update_alarm(self, alarm_id: int, enabled: bool | None = None, time: str | None = None,
                     label: str | None = None) -> dict[str, str]:
        self._own_alarm(alarm_id)
        if time is not None:
            _check_time(time)
        changes = {k: v for k, v in {"enabled": None if enabled is None else int(enabled), "time": time,
                                     "label": label}.items() if v is not None}
        if not changes:
            raise Unprocessable("give at least one of enabled, time, label")
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE phone_alarms SET {sets} WHERE alarm_id = ?", (*changes.values(), alarm_id))
        return {"message": "Alarm updated."}

    @api("Delete an alarm.", response={"message": "string"}, alarm_id="The alarm's id.")
    def delete_alarm(self, alarm_id: int) -> dict[str, str]:
        self._own_alarm(alarm_id)
        self.db.execute("DELETE FROM phone_alarms WHERE alarm_id = ?", (alarm_id,))
        return {"message": "Alarm deleted."}

    # ---- ownership checks

    def _own_contact(self, contact_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM phone_contacts WHERE contact_id = ? AND owner = ?", (contact_id, self.user),
                        missing=f"no contact with contact_id {contact_id}")

    def _own_message(self, message_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM phone_messages WHERE message_id = ? AND (sender = ? OR receiver = ?)",
                        (message_id, self.user, self.user), missing=f"no text message with message_id {message_id}")

    def _own_alarm(self, alarm_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM phone_alarms WHERE alarm_id = ? AND owner = ?", (alarm_id, self.user),
                        missing=f"no alarm with alarm_id {alarm_id}")


def _check_phone(number: str) -> None:
    if not (len(number) == 10 and number.isdigit()):
        raise Unprocessable(f"phone numbers have 10 digits, got {number!r}")


def _check_time(value: str) -> None:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2):
        raise Unprocessable(f"time must be HH:MM (24-hour), got {value!r}")

