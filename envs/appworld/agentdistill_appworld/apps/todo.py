"""``todo``: a task manager — projects, tasks with due dates, priorities and labels, and comments on tasks. The
username is the email.

Tables (``owner`` is the username, i.e. the email):

- ``todo_projects`` (project_id, owner, name, archived, created_at): names are unique per owner
  (case-insensitive). An archived project keeps its tasks but takes no new ones.
- ``todo_tasks`` (task_id, owner, project_id or NULL for the inbox, title, description, due_date YYYY-MM-DD or
  NULL, priority 1 (urgent) .. 4 (low), completed, completed_at, created_at, updated_at).
- ``todo_task_labels`` (task_id, label): labels are stored trimmed and lower-cased, at most once per task.
- ``todo_comments`` (comment_id, task_id, author, text, created_at).

Conventions: another user's projects and tasks are invisible (404). Task lists put open tasks before completed
ones, then order by due date (undated last), priority and task_id; projects are listed by project_id, comments
oldest first. Completing and un-completing are ``mark_task_complete`` / ``mark_task_incomplete`` (not
``complete_task``, which is the supervisor's API that ends the whole task).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agentdistill_appworld.framework import (
    PAGE_DOCS,
    AccountApp,
    Conflict,
    Unprocessable,
    api,
    paginate,
)
from agentdistill_appworld.values import clean_text

TASK = {"task_id": "integer", "title": "string", "description": "string",
        "project_id": "integer (null: in no project)", "project_name": "string (null: in no project)",
        "due_date": "string YYYY-MM-DD (null: no due date)", "priority": "integer, 1 (urgent) to 4 (low)",
        "labels": ["string"], "completed": "boolean", "completed_at": "string (null while open)",
        "comment_count": "integer", "created_at": "string", "updated_at": "string"}
PROJECT = {"project_id": "integer", "name": "string", "archived": "boolean", "open_task_count": "integer",
           "completed_task_count": "integer", "created_at": "string"}
LABEL = {"label": "string", "task_count": "integer", "open_task_count": "integer"}
COMMENT = {"comment_id": "integer", "task_id": "integer", "author": "string", "text": "string",
           "created_at": "string"}
MESSAGE = {"message": "string"}

TASK_SELECT = """
    SELECT t.task_id, t.title, t.description, t.project_id, p.name AS project_name, t.due_date, t.priority,
           t.completed, t.completed_at,
           (SELECT COUNT(*) FROM todo_comments c WHERE c.task_id = t.task_id) AS comment_count,
           t.created_at, t.updated_at
    FROM todo_tasks t LEFT JOIN todo_projects p ON p.project_id = t.project_id
"""
PROJECT_SELECT = """
    SELECT p.project_id, p.name, p.archived,
           (SELECT COUNT(*) FROM todo_tasks t WHERE t.project_id = p.project_id AND t.completed = 0)
               AS open_task_count,
           (SELECT COUNT(*) FROM todo_tasks t WHERE t.project_id = p.project_id AND t.completed = 1)
               AS completed_task_count,
           p.created_at
    FROM todo_projects p
"""
DESCRIPTION_DOC = "Longer notes about the task ('' for none)."


def _date(value: str, what: str) -> str:
    try:
        ok = len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        ok = False
    if not ok:
        raise Unprocessable(f"{what} must be a date YYYY-MM-DD, e.g. '2024-05-31', got {value!r}")
    return value


def _priority(value: int) -> int:
    if not 1 <= value <= 4:
        raise Unprocessable(f"priority must be 1 (urgent), 2, 3 or 4 (low), got {value}")
    return value



def _labels(labels: list[str]) -> list[str]:
    return sorted({clean_text(label, "labels", 50).lower() for label in labels})


class Todo(AccountApp):
    name = "todo"
    description = "Task manager: projects, tasks with due dates, priorities and labels, and comments on tasks."
    tables = """
        CREATE TABLE todo_projects (project_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,
            archived INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
        CREATE TABLE todo_tasks (task_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, project_id INTEGER,
            title TEXT NOT NULL, description TEXT NOT NULL, due_date TEXT, priority INTEGER NOT NULL,
            completed INTEGER NOT NULL DEFAULT 0, completed_at TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE todo_task_labels (task_id INTEGER NOT NULL, label TEXT NOT NULL, PRIMARY KEY (task_id, label));
        CREATE TABLE todo_comments (comment_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL,
            author TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL);
    """

    # ------------------------------------------------------------------------------------------- projects

    @api("Create a project.", response={"project_id": "integer", "message": "string"},
         name="The project's name (unique among your projects, at most 100 characters).")
    def create_project(self, name: str) -> dict[str, Any]:
        name = self._free_name(name)
        project_id = self.insert("todo_projects", {"owner": self.user, "name": name, "archived": 0,
                                                   "created_at": self.now})
        return {"project_id": project_id, "message": "Project created."}

    @api("List your projects by project_id, with their open and completed task counts.", response=[PROJECT],
         include_archived="Also list archived projects.", **PAGE_DOCS)
    def show_projects(self, include_archived: bool = False, page_index: int = 0,
                      page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        rows = self.rows(f"{PROJECT_SELECT} WHERE p.owner = ? AND (? OR p.archived = 0) ORDER BY p.project_id "
                         "LIMIT ? OFFSET ?", (self.user, int(include_archived), limit, offset))
        return [{**r, "archived": bool(r["archived"])} for r in rows]

    @api("Rename one of your projects.", response=MESSAGE, project_id="The project's id.",
         name="The new name (unique among your projects).")
    def rename_project(self, project_id: int, name: str) -> dict[str, str]:
        self._project(project_id)
        name = self._free_name(name, project_id)
        self.db.execute("UPDATE todo_projects SET name = ? WHERE project_id = ?", (name, project_id))
        return {"message": "Project renamed."}

    @api("Archive one of your projects: it keeps its tasks but takes no new ones.", response=MESSAGE,
         project_id="The project's id.")
    def archive_project(self, project_id: int) -> dict[str, str]:
        return self._set_archived(project_id, True)

    @api("Unarchive one of your archived projects.", response=MESSAGE, project_id="The project's id.")
    def unarchive_project(self, project_id: int) -> dict[str, str]:
        return self._set_archived(project_id, False)

    @api("Delete one of your projects. A project with tasks is only deleted with delete_tasks=true.",
         response=MESSAGE, project_id="The project's id.",
         delete_tasks="Also delete its tasks (and their labels and comments); needed when it has tasks.")
    def delete_project(self, project_id: int, delete_tasks: bool = False) -> dict[str, str]:
        self._project(project_id)
        task_ids = [r["task_id"] for r in self.rows("SELECT task_id FROM todo_tasks WHERE project_id = ?",
                                                    (project_id,))]
        if task_ids and not delete_tasks:
            raise Conflict(f"project {project_id} has {len(task_ids)} tasks: pass delete_tasks=true to delete them "
                           f"too, or first move them elsewhere with todo.update_task(project_id=...)")
        for task_id in task_ids:
            self._delete_task_rows(task_id)
        self.db.execute("DELETE FROM todo_projects WHERE project_id = ?", (project_id,))
        return {"message": f"Project deleted with {len(task_ids)} tasks."}

    # ---------------------------------------------------------------------------------------------- tasks

    @api("Create a task.", response={"task_id": "integer", "message": "string"},
         params={"description": DESCRIPTION_DOC}, title="The task's title (at most 200 characters).",
         due_date="Due date, YYYY-MM-DD (null: none).",
         priority="1 (urgent), 2, 3 or 4 (low).", labels="Labels, e.g. ['errand', 'home'] (stored lower-cased).",
         project_id="The project to put it in (null: no project); it must not be archived.")
    def create_task(self, title: str, description: str = "", due_date: str | None = None, priority: int = 4,
                    labels: list[str] | None = None, project_id: int | None = None) -> dict[str, Any]:
        title = clean_text(title, "title", 200)
        if due_date is not None:
            _date(due_date, "due_date")
        _priority(priority)
        clean = _labels(labels or [])
        if project_id is not None:
            self._open_project(project_id)
        task_id = self.insert("todo_tasks", {
            "owner": self.user, "project_id": project_id, "title": title, "description": description,
            "due_date": due_date, "priority": priority, "completed": 0, "completed_at": None,
            "created_at": self.now, "updated_at": self.now})
        self.db.executemany("INSERT INTO todo_task_labels (task_id, label) VALUES (?, ?)",
                            [(task_id, label) for label in clean])
        return {"task_id": task_id, "message": "Task created."}

    @api("Search your tasks: open before completed, then by due date (undated last), priority and task_id.",
         response=[TASK], query="Text to look for in the title or description ('' lists all).",
         project_id="Only tasks in this project (null: any).", label="Only tasks with this label (null: any).",
         completed="Only completed (true) or open (false) tasks (null: both).",
         due_before="Only tasks due on or before this date, YYYY-MM-DD (null: no bound).",
         due_after="Only tasks due on or after this date, YYYY-MM-DD (null: no bound).",
         priority="Only tasks of this priority, 1 to 4 (null: any).", **PAGE_DOCS)
    def search_tasks(self, query: str = "", project_id: int | None = None, label: str | None = None,
                     completed: bool | None = None, due_before: str | None = None,
                     due_after: str | None = None, priority: int | None = None, page_index: int = 0,
                     page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        if project_id is not None:
            self._project(project_id)
        for value, what in ((due_before, "due_before"), (due_after, "due_after")):
            if value is not None:
                _date(value, what)
        if priority is not None:
            _priority(priority)
        label = None if label is None else clean_text(label, "label", 50).lower()
        like = f"%{query.strip().lower()}%"
        rows = self.rows(
            f"{TASK_SELECT} WHERE t.owner = ? AND (lower(t.title) LIKE ? OR lower(t.description) LIKE ?) AND "
            "(? IS NULL OR t.project_id = ?) AND (? IS NULL OR EXISTS (SELECT 1 FROM todo_task_labels l WHERE "
            "l.task_id = t.task_id AND l.label = ?)) AND (? IS NULL OR t.completed = ?) AND "
            "(? IS NULL OR t.due_date <= ?) AND (? IS NULL OR t.due_date >= ?) AND (? IS NULL OR t.priority = ?) "
            "ORDER BY t.completed, t.due_date IS NULL, t.due_date, t.priority, t.task_id LIMIT ? OFFSET ?",
            (self.user, like, like, project_id, project_id, label, label, completed,
             None if completed is None else int(completed), due_before, due_before, due_after, due_after,
             priority, priority, limit, offset))
        return [self._task_out(r) for r in rows]

    @api("Show one task.", response=TASK, task_id="The task's id.")
    def show_task(self, task_id: int) -> dict[str, Any]:
        return self._task_out(self._task(task_id))

    @api("Change a task's fields (only those given).", response=MESSAGE, task_id="The task's id.",
         params={"description": "The new description ('' clears it)."},
         title="The new title.", due_date="The new due date, YYYY-MM-DD ('' removes the due date).",
         priority="The new priority, 1 (urgent) to 4 (low).", labels="The new labels (replace the old; [] clears).",
         project_id="Move it to this project (0 takes it out of any project); it must not be archived.")
    def update_task(self, task_id: int, title: str | None = None, description: str | None = None,
                    due_date: str | None = None, priority: int | None = None,
                    labels: list[str] | None = None, project_id: int | None = None) -> dict[str, str]:
        self._task(task_id)
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = clean_text(title, "title", 200)
        if description is not None:
            changes["description"] = description
        if due_date is not None:
            changes["due_date"] = _date(due_date, "due_date") if due_date else None
        if priority is not None:
            changes["priority"] = _priority(priority)
        if project_id is not None:
            if project_id != 0:
                self._open_project(project_id)
            changes["project_id"] = project_id or None
        if not changes and labels is None:
            raise Unprocessable("give at least one of title, description, due_date, priority, labels, project_id")
        if labels is not None:
            clean = _labels(labels)
            self.db.execute("DELETE FROM todo_task_labels WHERE task_id = ?", (task_id,))
            self.db.executemany("INSERT INTO todo_task_labels (task_id, label) VALUES (?, ?)",
                                [(task_id, label) for label in clean])
        changes["updated_at"] = self.now
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE todo_tasks SET {sets} WHERE task_id = ?", (*changes.values(), task_id))
        return {"message": "Task updated."}

    @api("Mark a task as completed.", response=MESSAGE, task_id="The task's id.")
    def mark_task_complete(self, task_id: int) -> dict[str, str]:
        if self._task(task_id)["completed"]:
            raise Conflict(f"task {task_id} is already completed")
        self.db.execute("UPDATE todo_tasks SET completed = 1, completed_at = ?, updated_at = ? WHERE task_id = ?",
                        (self.now, self.now, task_id))
        return {"message": "Task completed."}

    @api("Mark a completed task as open again.", response=MESSAGE, task_id="The task's id.")
    def mark_task_incomplete(self, task_id: int) -> dict[str, str]:
        if not self._task(task_id)["completed"]:
            raise Conflict(f"task {task_id} is not completed")
        self.db.execute("UPDATE todo_tasks SET completed = 0, completed_at = NULL, updated_at = ? WHERE task_id = ?",
                        (self.now, task_id))
        return {"message": "Task marked as open."}

    @api("Delete a task (and its labels and comments).", response=MESSAGE, task_id="The task's id.")
    def delete_task(self, task_id: int) -> dict[str, str]:
        self._task(task_id)
        self._delete_task_rows(task_id)
        return {"message": "Task deleted."}

    # --------------------------------------------------------------------------------- labels and comments

    @api("List the labels on your tasks, alphabetically, with how many tasks (and open tasks) have each.",
         response=[LABEL])
    def show_labels(self) -> list[dict[str, Any]]:
        return self.rows("SELECT l.label, COUNT(*) AS task_count, SUM(t.completed = 0) AS open_task_count "
                         "FROM todo_task_labels l JOIN todo_tasks t ON t.task_id = l.task_id WHERE t.owner = ? "
                         "GROUP BY l.label ORDER BY l.label", (self.user,))

    @api("Add a comment to one of your tasks.", response={"comment_id": "integer", "message": "string"},
         task_id="The task's id.", text="The comment (at most 2000 characters).")
    def add_task_comment(self, task_id: int, text: str) -> dict[str, Any]:
        self._task(task_id)
        comment_id = self.insert("todo_comments", {"task_id": task_id, "author": self.user,
                                                   "text": clean_text(text, "text", 2000), "created_at": self.now})
        return {"comment_id": comment_id, "message": "Comment added."}

    @api("List a task's comments, oldest first.", response=[COMMENT], task_id="The task's id.", **PAGE_DOCS)
    def show_task_comments(self, task_id: int, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        self._task(task_id)
        return self.rows("SELECT * FROM todo_comments WHERE task_id = ? ORDER BY created_at, comment_id "
                         "LIMIT ? OFFSET ?", (task_id, limit, offset))

    # -------------------------------------------------------------------------------------------- helpers

    def _project(self, project_id: int) -> dict[str, Any]:
        return self.row("SELECT * FROM todo_projects WHERE project_id = ? AND owner = ?", (project_id, self.user),
                        missing=f"no project with project_id {project_id}; see your projects with "
                                f"todo.show_projects(include_archived=true)")

    def _open_project(self, project_id: int) -> dict[str, Any]:
        project = self._project(project_id)
        if project["archived"]:
            raise Unprocessable(f"project {project_id} ({project['name']!r}) is archived and takes no tasks; "
                                f"unarchive it first with todo.unarchive_project")
        return project

    def _free_name(self, name: str, project_id: int | None = None) -> str:
        name = clean_text(name, "name", 100)
        clash = self.row("SELECT project_id FROM todo_projects WHERE owner = ? AND lower(name) = lower(?) AND "
                         "project_id != ?", (self.user, name, project_id or 0))
        if clash:
            raise Conflict(f"you already have a project named {name!r} (project_id {clash['project_id']}); "
                           f"choose another name")
        return name

    def _set_archived(self, project_id: int, archived: bool) -> dict[str, str]:
        if bool(self._project(project_id)["archived"]) == archived:
            raise Conflict(f"project {project_id} is already {'archived' if archived else 'not archived'}")
        self.db.execute("UPDATE todo_projects SET archived = ? WHERE project_id = ?", (int(archived), project_id))
        return {"message": "Project archived." if archived else "Project unarchived."}

    def _task(self, task_id: int) -> dict[str, Any]:
        return self.row(f"{TASK_SELECT} WHERE t.task_id = ? AND t.owner = ?", (task_id, self.user),
                        missing=f"no task with task_id {task_id}; find your tasks with todo.search_tasks")

    def _task_out(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["completed"] = bool(out["completed"])
        out["labels"] = [r["label"] for r in self.rows(
            "SELECT label FROM todo_task_labels WHERE task_id = ? ORDER BY label", (out["task_id"],))]
        return {k: out[k] for k in TASK}

    def _delete_task_rows(self, task_id: int) -> None:
        for table in ("todo_task_labels", "todo_comments", "todo_tasks"):
            self.db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
