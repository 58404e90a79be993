"""Apps on SQLite: the pattern every simulated app follows, and the API docs it yields.

An app is a class with a ``name``, a one-line ``description``, its tables (SQLite DDL; every table name starts
with the app's name) and its APIs: methods decorated with ``@api``. The decorator reads the method's signature
(parameter names, annotations, defaults) and the descriptions given to it, and builds an ``APISpec`` that the
``api_docs`` app serves as JSON. Calls arrive as ``App.call(api_name, kwargs)``, which

1. refuses unknown or missing parameters, wrong types and values SQLite cannot store or match (lone surrogates,
   integers beyond 64 bits, strings over ``MAX_STRING_BYTES``) (422, naming the valid parameters); null for an
   optional parameter that is not nullable means its default,
2. resolves ``access_token`` to the logged-in account for APIs that need one (401 when it is missing,
   unknown or logged out),
3. runs the method inside a SQLite savepoint (an error leaves the database as it was), and
4. returns a JSON-able result.

Errors are ``APIError``s with an HTTP-style status; the agent sees ``APIError: 404 Not Found: ...``.

Every app that has accounts gets the shared account block from ``AccountApp``: ``login(username, password)``
→ an access token, ``logout``, ``show_account``, ``change_password`` and ``show_profile`` (someone else's public
profile). The username is the email, or the phone number for apps that say so (``username_field``).
Passwords come only from ``supervisor.show_account_passwords()``. List APIs are paginated with
``page_index`` (from 0) and ``page_limit`` (1–20).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import sqlite3
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

MAX_PAGE_LIMIT = 20
MAX_STRING_BYTES = 32_768
"""The longest string argument, in UTF-8 bytes: a search pattern is the lower-cased query (at most 1.5 times its
bytes) between two '%', and SQLite refuses LIKE patterns over 50,000 bytes."""


# ------------------------------------------------------------------------------------------------- errors


class APIError(Exception):
    """An HTTP-style error an API returns to the agent."""

    status: ClassVar[int] = 400
    reason: ClassVar[str] = "Bad Request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"


class BadRequest(APIError):
    status, reason = 400, "Bad Request"


class Unauthorized(APIError):
    status, reason = 401, "Unauthorized"


class Forbidden(APIError):
    status, reason = 403, "Forbidden"


class NotFound(APIError):
    status, reason = 404, "Not Found"


class Conflict(APIError):
    status, reason = 409, "Conflict"


class Unprocessable(APIError):
    status, reason = 422, "Unprocessable Entity"


# ------------------------------------------------------------------------------------------------- specs

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    """JSON type: string, integer, number, boolean, array (of ``items``), object, or any."""
    description: str
    required: bool
    default: Any = None
    items: str | None = None
    nullable: bool = False

    def as_doc(self) -> dict[str, Any]:
        doc = {"name": self.name, "type": self.type, "required": self.required, "description": self.description}
        if not self.required:
            doc["default"] = self.default
        if self.items:
            doc["items"] = self.items
        if self.nullable:
            doc["nullable"] = True
        return doc


@dataclass(frozen=True)
class APISpec:
    app: str
    name: str
    description: str
    params: tuple[Param, ...]
    response: Any
    """An example of the response's shape (served as the response schema)."""
    needs_login: bool

    def as_doc(self) -> dict[str, Any]:
        return {"app_name": self.app, "api_name": self.name, "description": self.description,
                "parameters": [p.as_doc() for p in self.params], "response_schema": self.response,
                "requires_access_token": self.needs_login}


def api(summary: str, /, *, response: Any = None, login: bool = True, params: Mapping[str, str] | None = None,
        **param_docs: str) -> Callable:
    """Mark a method as an API. ``param_docs`` describe its parameters (every one must be described); a
    parameter whose name is one of this function's own (``response``, ``login``, ``params``) is described in
    ``params`` instead.

    With ``login=True`` the method takes ``access_token`` (documented automatically) and receives the
    account's username as ``self.user`` while it runs.
    """

    def mark(method: Callable) -> Callable:
        method.__api__ = (summary, response, login, {**(params or {}), **param_docs})
        return method

    return mark


def _param(name: str, parameter: inspect.Parameter, hint: Any, description: str) -> Param:
    nullable = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint = len(args) < len(typing.get_args(hint)), args[0]
        origin = typing.get_origin(hint)
    required = parameter.default is inspect.Parameter.empty
    default = None if required else parameter.default
    if hint is Any:
        return Param(name=name, type="any", description=description, required=required, default=default,
                     nullable=nullable)
    items = None
    if origin is list:
        items = _JSON_TYPES[typing.get_args(hint)[0]]
        base = list
    elif origin is dict:
        base = dict
    else:
        base = hint
    if base not in _JSON_TYPES:
        raise TypeError(f"parameter {name}: unsupported annotation {hint!r}")
    return Param(name=name, type=_JSON_TYPES[base], description=description, required=required,
                 default=default, items=items, nullable=nullable)


def _spec(app_name: str, name: str, method: Callable) -> APISpec:
    description, response, login, docs = method.__api__
    hints = typing.get_type_hints(method)
    params = []
    if login:
        params.append(Param("access_token", "string", f"Your {app_name} access token, from {app_name}.login.", True))
    for pname, parameter in inspect.signature(method).parameters.items():
        if pname == "self":
            continue
        if pname not in docs:
            raise TypeError(f"{app_name}.{name}: parameter {pname!r} has no description")
        params.append(_param(pname, parameter, hints[pname], docs[pname]))
    extra = set(docs) - {p.name for p in params}
    if extra:
        raise TypeError(f"{app_name}.{name}: described parameters {sorted(extra)} are not in the signature")
    return APISpec(app=app_name, name=name, description=description, params=tuple(params), response=response,
                   needs_login=login)


def _is(value: Any, json_type: str) -> bool:
    if json_type == "any":
        return True
    if json_type == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass; True is not an integer here
        return False
    return isinstance(value, {"string": str, "integer": int, "number": (int, float), "array": list,
                              "object": dict}[json_type])


def _unstorable(value: Any) -> str | None:
    """What in ``value`` (or nested in it) SQLite cannot bind or match, or None. SQLite takes only valid UTF-8
    text and 64-bit integers, and refuses LIKE patterns over 50,000 bytes; without this check such arguments
    raised in the host (a crash) instead of giving the agent a 422. Iterative: nesting depth is the agent's."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                size = len(item.encode("utf-8"))
            except UnicodeEncodeError:
                return "text that is not valid Unicode (a lone surrogate)"
            if size > MAX_STRING_BYTES:
                return f"a string of {size} bytes (at most {MAX_STRING_BYTES} bytes of UTF-8)"
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            return "an integer outside the 64-bit range"
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
    return None


def _check_value(spec: APISpec, param: Param, value: Any) -> Any:
    if value is None:
        if param.nullable or not param.required:
            return None
        raise Unprocessable(f"{spec.app}.{spec.name}: {param.name} must not be null")
    problem = _unstorable(value)
    if problem:
        raise Unprocessable(f"{spec.app}.{spec.name}: {param.name} holds {problem}")
    ok = _is(value, param.type) and (param.type != "array" or not param.items
                                     or all(_is(v, param.items) for v in value))
    if ok and param.type == "number" and not math.isfinite(value):
        raise Unprocessable(f"{spec.app}.{spec.name}: {param.name} must be a finite number, got {value}")
    if not ok:
        raise Unprocessable(f"{spec.app}.{spec.name}: {param.name} must be of type {param.type}"
                            f"{f' of {param.items}' if param.items else ''}, got {type(value).__name__}")
    return float(value) if param.type == "number" else value


# --------------------------------------------------------------------------------------------------- apps


@dataclass
class Context:
    """What every app of one world shares: the database, the frozen clock, and the other apps."""

    db: sqlite3.Connection
    now: str
    """The frozen current time (ISO, seconds)."""
    apps: dict[str, App] = field(default_factory=dict)
    api_calls: int = 0


class App:
    """Base of every simulated app. Subclasses set ``name``, ``description``, ``tables`` and ``@api`` methods."""

    name: ClassVar[str]
    description: ClassVar[str]
    tables: ClassVar[str] = ""
    """SQLite DDL; every table name starts with ``<name>_``."""

    def __init__(self, context: Context):
        self.ctx = context
        self.user: str | None = None
        self.specs: dict[str, APISpec] = {}
        for attr in sorted(dir(type(self))):
            method = getattr(type(self), attr)
            if callable(method) and hasattr(method, "__api__"):
                self.specs[attr] = _spec(self.name, attr, method)

    @property
    def db(self) -> sqlite3.Connection:
        return self.ctx.db

    @property
    def now(self) -> str:
        return self.ctx.now

    def create_tables(self) -> None:
        self.db.executescript(self.tables)

    def call(self, api_name: str, kwargs: Mapping[str, Any]) -> Any:
        """Validate, authenticate and run one API call inside a savepoint."""
        spec = self.specs.get(api_name)
        if spec is None:
            raise NotFound(f"{self.name} has no API {api_name!r}. See apis.api_docs.show_api_descriptions("
                           f"app_name='{self.name}') for the list.")
        names = {p.name for p in spec.params}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise Unprocessable(f"{self.name}.{api_name} got unknown parameters {unknown}; its parameters are "
                                f"{[p.name for p in spec.params]}")
        args = {}
        for param in spec.params:
            if param.name not in kwargs:
                if param.required:
                    raise Unprocessable(f"{self.name}.{api_name} is missing the required parameter {param.name!r}")
                continue
            value = _check_value(spec, param, kwargs[param.name])
            if value is None and not param.nullable:
                continue  # null for an optional parameter means its default: the method need not handle None
            args[param.name] = value
        self.ctx.api_calls += 1
        token = args.pop("access_token", None)
        self.user = self.authenticate(token) if spec.needs_login else None
        self.db.execute("SAVEPOINT api_call")
        try:
            result = getattr(self, api_name)(**args)
        except BaseException:
            self.db.execute("ROLLBACK TO api_call")
            self.db.execute("RELEASE api_call")
            raise
        finally:
            self.user = None
        self.db.execute("RELEASE api_call")
        return result

    def authenticate(self, token: str | None) -> str:
        raise Unauthorized(f"{self.name} has no accounts")

    # helpers for subclasses
    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def row(self, sql: str, params: tuple = (), *, missing: str | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        if not found and missing is not None:
            raise NotFound(missing)
        return found[0] if found else None

    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))
        return int(cursor.lastrowid)

    def add_comment(self, table: str, parent: str, parent_id: int, comment: str) -> dict[str, Any]:
        """Insert the user's ``comment`` on row ``parent_id`` of a comments ``table`` keyed by ``parent``."""
        if not comment.strip():
            raise Unprocessable("comment must not be empty")
        comment_id = self.insert(table, {parent: parent_id, "author": self.user, "comment": comment,
                                         "created_at": self.now})
        return {"comment_id": comment_id, "message": "Comment added."}

    def comment_page(self, table: str, parent: str, parent_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
        """One page of the comments on row ``parent_id``, oldest first."""
        return self.rows(f"SELECT comment_id, {parent}, author AS author_email, comment, created_at FROM {table} "
                         f"WHERE {parent} = ? ORDER BY created_at, comment_id LIMIT ? OFFSET ?",
                         (parent_id, limit, offset))


def paginate(page_index: int, page_limit: int) -> tuple[int, int]:
    """(LIMIT, OFFSET) for a page, or 422 for a bad page."""
    if page_index < 0:
        raise Unprocessable(f"page_index must be >= 0, got {page_index}")
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise Unprocessable(f"page_limit must be between 1 and {MAX_PAGE_LIMIT}, got {page_limit}")
    return page_limit, page_index * page_limit


PAGE_DOCS = {"page_index": "The page to return, from 0.", "page_limit": f"Items per page, 1 to {MAX_PAGE_LIMIT}."}


class AccountApp(App):
    """An app with accounts: the shared login block (tables ``<name>_accounts``, ``<name>_tokens``)."""

    username_field: ClassVar[str] = "email"

    def create_tables(self) -> None:
        self.db.executescript(f"""
            CREATE TABLE {self.name}_accounts (
                username TEXT PRIMARY KEY, password TEXT NOT NULL, first_name TEXT NOT NULL,
                last_name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE {self.name}_tokens (token TEXT PRIMARY KEY, username TEXT NOT NULL);
        """)
        super().create_tables()

    def add_account(self, person: Any, password: str, created_at: str) -> str:
        username = getattr(person, self.username_field)
        self.insert(f"{self.name}_accounts", {
            "username": username, "password": password, "first_name": person.first_name,
            "last_name": person.last_name, "email": person.email, "phone": person.phone, "created_at": created_at})
        return username

    def authenticate(self, token: str | None) -> str:
        found = self.row(f"SELECT username FROM {self.name}_tokens WHERE token = ?", (token,))
        if found is None:
            raise Unauthorized(f"invalid or expired access_token for {self.name}: call "
                               f"apis.{self.name}.login(username=..., password=...) first")
        return found["username"]

    @api("Log in; returns an access token for the other APIs of this app.", login=False,
         response={"access_token": "string", "token_type": "Bearer"},
         username="Your username: your email address (your phone number for the phone app).",
         password="Your password for this app (see apis.supervisor.show_account_passwords).")
    def login(self, username: str, password: str) -> dict[str, str]:
        account = self.row(f"SELECT password FROM {self.name}_accounts WHERE username = ?", (username,))
        if account is None or account["password"] != password:
            raise Unauthorized(f"wrong username or password for {self.name}")
        count = self.row(f"SELECT COUNT(*) AS n FROM {self.name}_tokens")["n"]
        token = hashlib.sha256(f"{self.name}|{username}|{count}|{self.now}".encode()).hexdigest()[:32]
        self.insert(f"{self.name}_tokens", {"token": token, "username": username})
        return {"access_token": token, "token_type": "Bearer"}

    @api("Log out: the access token stops working.", response={"message": "string"})
    def logout(self) -> dict[str, str]:
        self.db.execute(f"DELETE FROM {self.name}_tokens WHERE username = ?", (self.user,))
        return {"message": "Logged out."}

    @api("Show your account.", response={"username": "string", "first_name": "string", "last_name": "string",
                                         "email": "string", "phone": "string", "created_at": "string"})
    def show_account(self) -> dict[str, Any]:
        account = self.row(f"SELECT username, first_name, last_name, email, phone, created_at FROM "
                           f"{self.name}_accounts WHERE username = ?", (self.user,))
        return account

    @api("Change your password.", response={"message": "string"},
         old_password="Your current password.", new_password="The new password (at least 8 characters).")
    def change_password(self, old_password: str, new_password: str) -> dict[str, str]:
        account = self.row(f"SELECT password FROM {self.name}_accounts WHERE username = ?", (self.user,))
        if account["password"] != old_password:
            raise Unauthorized("old_password is wrong")
        if len(new_password) < 8:
            raise Unprocessable("new_password must have at least 8 characters")
        self.db.execute(f"UPDATE {self.name}_accounts SET password = ? WHERE username = ?", (new_password, self.user))
        return {"message": "Password changed."}

    @api("Show another user's public profile.", response={"first_name": "string", "last_name": "string",
                                                          "email": "string"},
         email="The user's email address.")
    def show_profile(self, email: str) -> dict[str, Any]:
        return self.row(f"SELECT first_name, last_name, email FROM {self.name}_accounts WHERE email = ?", (email,),
                        missing=f"no {self.name} user with email {email}")


# ------------------------------------------------------------------------------------------------ snapshots


def snapshot(db: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every table's rows, sorted (the state an evaluator compares), tokens excluded (logins are not changes)."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables
            if not t.endswith("_tokens")}


@dataclass(frozen=True)
class TableDiff:
    added: tuple[tuple, ...]
    removed: tuple[tuple, ...]


def diff(before: Mapping[str, list[tuple]], after: Mapping[str, list[tuple]]) -> dict[str, TableDiff]:
    """Per changed table, the rows only in ``after`` (added) and only in ``before`` (removed); an updated row
    appears as one removed and one added."""
    out = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, []), after.get(table, [])
        old_set, new_set = set(old), set(new)
        added = tuple(r for r in new if r not in old_set)
        removed = tuple(r for r in old if r not in new_set)
        if added or removed:
            out[table] = TableDiff(added=added, removed=removed)
    return out
