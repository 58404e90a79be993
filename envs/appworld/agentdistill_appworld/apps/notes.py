"""``notes``: a notes app — notes with a title, text content and tags, pinning, and read-only sharing with other
users. The username is the email.

Tables:

- ``notes_notes`` (note_id, owner, title, content, pinned, created_at, updated_at): ``owner`` is the username
  (email); ``updated_at`` moves on every change to the title, content or tags (not on pinning or sharing).
- ``notes_tags`` (note_id, tag): tags are stored trimmed and lower-cased, at most once per note.
- ``notes_shares`` (note_id, shared_with, shared_at): a note shared with another user (by email) is readable by
  them with ``show_note`` and listed by ``show_shared_notes``; only the owner can change it.

Conventions: another user's note that is not shared with you is invisible (404); one shared with you is read-only
(changing it is 403). ``search_notes`` lists your own notes, pinned first, then most recently updated, then
newest ``note_id``. Tags in outputs are sorted.
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
from agentdistill_appworld.values import clean_text

NOTE = {"note_id": "integer", "title": "string", "content": "string", "tags": ["string"], "pinned": "boolean",
        "owner_email": "string", "read_only": "boolean (true for a note shared with you)",
        "shared_with": ["string (emails; only shown to the owner, [] for others)"], "created_at": "string",
        "updated_at": "string"}
NOTE_SUMMARY = {"note_id": "integer", "title": "string", "tags": ["string"], "pinned": "boolean",
                "owner_email": "string", "created_at": "string", "updated_at": "string"}
SHARED_NOTE = {**NOTE_SUMMARY, "shared_at": "string"}
TAG = {"tag": "string", "note_count": "integer"}
MESSAGE = {"message": "string"}
MAX_TITLE = 200


def _tag(tag: str) -> str:
    clean = tag.strip().lower()
    if not clean:
        raise Unprocessable("tags must not be empty")
    if len(clean) > 50:
        raise Unprocessable(f"tags have at most 50 characters, got {len(clean)} in {tag!r}")
    return clean



class Notes(AccountApp):
    name = "notes"
    description = "Notes with titles, content and tags: create, search, edit, pin, and share read-only with others."
    tables = """
        CREATE TABLE notes_notes (note_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
            content TEXT NOT NULL, pinned INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE notes_tags (note_id INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (note_id, tag));
        CREATE TABLE notes_shares (note_id INTEGER NOT NULL, shared_with TEXT NOT NULL, shared_at TEXT NOT NULL,
            PRIMARY KEY (note_id, shared_with));
    """

    @api("Create a note.", response={"note_id": "integer", "message": "string"},
         title="The note's title (at most 200 characters).", content="The note's text ('' for none).",
         tags="Tags, e.g. ['recipes', 'work'] (stored lower-cased; duplicates are merged).",
         pinned="Pin it to the top of your notes.")
    def create_note(self, title: str, content: str = "", tags: list[str] | None = None,
                    pinned: bool = False) -> dict[str, Any]:
        title = clean_text(title, "title", MAX_TITLE)
        clean = sorted({_tag(t) for t in tags or []})
        note_id = self.insert("notes_notes", {"owner": self.user, "title": title, "content": content,
                                              "pinned": int(pinned), "created_at": self.now, "updated_at": self.now})
        self.db.executemany("INSERT INTO notes_tags (note_id, tag) VALUES (?, ?)", [(note_id, t) for t in clean])
        return {"note_id": note_id, "message": "Note created."}

    @api("Search your own notes by text in the title or content, optionally by tag; pinned first, then most "
         "recently updated.", response=[NOTE_SUMMARY],
         query="Text to look for in the title or content, case-insensitive ('' lists all).",
         tag="Only notes with this tag (null: any).", pinned="Only pinned (true) or unpinned (false) notes "
         "(null: both).", **PAGE_DOCS)
    def search_notes(self, query: str = "", tag: str | None = None, pinned: bool | None = None,
                     page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        tag = None if tag is None else _tag(tag)
        like = f"%{query.strip().lower()}%"
        rows = self.rows(
            "SELECT note_id, title, pinned, owner AS owner_email, created_at, updated_at FROM notes_notes n "
            "WHERE owner = ? AND (lower(title) LIKE ? OR lower(content) LIKE ?) AND (? IS NULL OR EXISTS "
            "(SELECT 1 FROM notes_tags t WHERE t.note_id = n.note_id AND t.tag = ?)) AND (? IS NULL OR pinned = ?) "
            "ORDER BY pinned DESC, updated_at DESC, note_id DESC LIMIT ? OFFSET ?",
            (self.user, like, like, tag, tag, pinned, None if pinned is None else int(pinned), limit, offset))
        return [self._summary(r) for r in rows]

    @api("Show one note: yours, or one shared with you (read-only).", response=NOTE, note_id="The note's id.")
    def show_note(self, note_id: int) -> dict[str, Any]:
        note = self._readable(note_id)
        mine = note["owner"] == self.user
        out = self._summary({"note_id": note_id, "title": note["title"], "pinned": note["pinned"],
                             "owner_email": note["owner"], "created_at": note["created_at"],
                             "updated_at": note["updated_at"]})
        out["content"] = note["content"]
        out["read_only"] = not mine
        shares = self.rows("SELECT shared_with FROM notes_shares WHERE note_id = ? ORDER BY shared_with", (note_id,))
        out["shared_with"] = [r["shared_with"] for r in shares] if mine else []
        return {k: out[k] for k in NOTE}

    @api("Change a note's title and/or content (only those given).", response=MESSAGE, note_id="The note's id.",
         title="The new title.", content="The new content (replaces the old; see append_to_note to add).")
    def update_note(self, note_id: int, title: str | None = None,
                    content: str | None = None) -> dict[str, str]:
        self._own(note_id)
        if title is None and content is None:
            raise Unprocessable("give title and/or content to update")
        changes = {k: v for k, v in {"title": None if title is None else clean_text(title, "title", MAX_TITLE),
                                     "content": content}.items() if v is not None}
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE notes_notes SET {sets}, updated_at = ? WHERE note_id = ?",
                        (*changes.values(), self.now, note_id))
        return {"message": "Note updated."}

    @api("Append text to a note's content, on a new line (none is added if the note is empty).",
         response=MESSAGE, note_id="The note's id.", text="The text to append.")
    def append_to_note(self, note_id: int, text: str) -> dict[str, str]:
        note = self._own(note_id)
        if not text.strip():
            raise Unprocessable("text must not be empty")
        content = f"{note['content']}\n{text}" if note["content"] else text
        self.db.execute("UPDATE notes_notes SET content = ?, updated_at = ? WHERE note_id = ?",
                        (content, self.now, note_id))
        return {"message": "Text appended."}

    @api("Add a tag to one of your notes.", response=MESSAGE, note_id="The note's id.",
         tag="The tag (stored lower-cased).")
    def add_tag(self, note_id: int, tag: str) -> dict[str, str]:
        self._own(note_id)
        tag = _tag(tag)
        if self.row("SELECT 1 AS x FROM notes_tags WHERE note_id = ? AND tag = ?", (note_id, tag)):
            raise Conflict(f"note {note_id} already has the tag {tag!r}")
        self.insert("notes_tags", {"note_id": note_id, "tag": tag})
        self._touch(note_id)
        return {"message": f"Tag {tag!r} added."}

    @api("Remove a tag from one of your notes.", response=MESSAGE, note_id="The note's id.", tag="The tag.")
    def remove_tag(self, note_id: int, tag: str) -> dict[str, str]:
        self._own(note_id)
        tag = _tag(tag)
        if not self.db.execute("DELETE FROM notes_tags WHERE note_id = ? AND tag = ?", (note_id, tag)).rowcount:
            raise NotFound(f"note {note_id} has no tag {tag!r}; its tags are in notes.show_note")
        self._touch(note_id)
        return {"message": f"Tag {tag!r} removed."}

    @api("Pin one of your notes to the top of your list.", response=MESSAGE, note_id="The note's id.")
    def pin_note(self, note_id: int) -> dict[str, str]:
        return self._set_pinned(note_id, True)

    @api("Unpin one of your notes.", response=MESSAGE, note_id="The note's id.")
    def unpin_note(self, note_id: int) -> dict[str, str]:
        return self._set_pinned(note_id, False)

    @api("Delete one of your notes (and its tags and shares).", response=MESSAGE, note_id="The note's id.")
    def delete_note(self, note_id: int) -> dict[str, str]:
        self._own(note_id)
        for table in ("notes_tags", "notes_shares", "notes_notes"):
            self.db.execute(f"DELETE FROM {table} WHERE note_id = ?", (note_id,))
        return {"message": "Note deleted."}

    @api("List the tags used in your notes with how many notes have each, alphabetically.", response=[TAG])
    def show_tags(self) -> list[dict[str, Any]]:
        return self.rows("SELECT t.tag, COUNT(*) AS note_count FROM notes_tags t JOIN notes_notes n "
                         "ON n.note_id = t.note_id WHERE n.owner = ? GROUP BY t.tag ORDER BY t.tag", (self.user,))

    @api("Share one of your notes, read-only, with another notes user.", response=MESSAGE,
         note_id="The note's id.", email="The other user's email address.")
    def share_note(self, note_id: int, email: str) -> dict[str, str]:
        self._own(note_id)
        if email == self.user:
            raise Unprocessable("you cannot share a note with yourself; give another user's email")
        self.row("SELECT 1 AS x FROM notes_accounts WHERE username = ?", (email,),
                 missing=f"no notes user with email {email}; check it with notes.show_profile")
        if self.row("SELECT 1 AS x FROM notes_shares WHERE note_id = ? AND shared_with = ?", (note_id, email)):
            raise Conflict(f"note {note_id} is already shared with {email}")
        self.insert("notes_shares", {"note_id": note_id, "shared_with": email, "shared_at": self.now})
        return {"message": f"Note shared with {email}."}

    @api("Stop sharing one of your notes with a user.", response=MESSAGE, note_id="The note's id.",
         email="The user's email address.")
    def unshare_note(self, note_id: int, email: str) -> dict[str, str]:
        self._own(note_id)
        if not self.db.execute("DELETE FROM notes_shares WHERE note_id = ? AND shared_with = ?",
                               (note_id, email)).rowcount:
            raise NotFound(f"note {note_id} is not shared with {email}; see shared_with in notes.show_note")
        return {"message": f"Note no longer shared with {email}."}

    @api("List the notes other users shared with you, most recently shared first.", response=[SHARED_NOTE],
         **PAGE_DOCS)
    def show_shared_notes(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        rows = self.rows(
            "SELECT n.note_id, n.title, n.pinned, n.owner AS owner_email, n.created_at, n.updated_at, s.shared_at "
            "FROM notes_shares s JOIN notes_notes n ON n.note_id = s.note_id WHERE s.shared_with = ? "
            "ORDER BY s.shared_at DESC, s.rowid DESC LIMIT ? OFFSET ?", (self.user, limit, offset))
        return [self._summary(r) for r in rows]

    # ---- helpers

    def _summary(self, row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        row["pinned"] = bool(row["pinned"])
        row["tags"] = [r["tag"] for r in self.rows("SELECT tag FROM notes_tags WHERE note_id = ? ORDER BY tag",
                                                   (row["note_id"],))]
        return row

    def _readable(self, note_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM notes_notes n WHERE note_id = ? AND (owner = ? OR EXISTS (SELECT 1 FROM "
                        "notes_shares s WHERE s.note_id = n.note_id AND s.shared_with = ?))",
                        (note_id, self.user, self.user),
                        missing=f"no note with note_id {note_id}; find your notes with notes.search_notes")

    def _own(self, note_id: int) -> dict[str, Any]:
        note = self._readable(note_id)
        if note["owner"] != self.user:
            raise Forbidden(f"note {note_id} was shared with you read-only by {note['owner']}; only its owner can "
                            f"change it (copy it into a new note with notes.create_note to edit)")
        return note

    def _touch(self, note_id: int) -> None:
        self.db.execute("UPDATE notes_notes SET updated_at = ? WHERE note_id = ?", (self.now, note_id))

    def _set_pinned(self, note_id: int, pinned: bool) -> dict[str, str]:
        note = self._own(note_id)
        if bool(note["pinned"]) == pinned:
            raise Conflict(f"note {note_id} is already {'pinned' if pinned else 'unpinned'}")
        self.db.execute("UPDATE notes_notes SET pinned = ? WHERE note_id = ?", (int(pinned), note_id))
        return {"message": "Note pinned." if pinned else "Note unpinned."}
