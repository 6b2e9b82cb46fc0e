"""Sync: records in a store, and a change feed that clients pull page by page with a cursor.

A real HTTP service (Starlette, state in SQLite) with seeded bugs switched on by name.

API (JSON bodies; ``{store}`` and ``{id}`` are 1-64 of ``A-Z a-z 0-9 _ -``)::

    GET    /                               {"service": "sync"}
    GET    /openapi.json                   the OpenAPI 3.0 document of this API
    PUT    /stores/{store}/records/{id}    {"value": "...", "version": N (optional)};
                                           optional header Idempotency-Key
           201 the record, created (or re-created after a delete); 200 the record, updated;
           with "version", only if that is the live record's version, else 409
           {"error": "version_conflict"} (a write based on a stale read is refused)
    POST   /stores/{store}/records         {"value": "..."}, header Idempotency-Key
           201 a new record with an id the service chose
    DELETE /stores/{store}/records/{id}    optional header Idempotency-Key
           204 deleted (a tombstone stays in the change feed); 404 {"error": "no_such_record"}
    GET    /stores/{store}/records/{id}    the record; 404 {"error": "no_such_record"}
    GET    /stores/{store}/records         {"data": [the live records, by id]}
    GET    /stores/{store}/changes?cursor=C&limit=N
           {"data": [changes], "next_cursor": "C2", "has_more": bool}

A record is ``{"id", "value", "version"}``; a change ``{"id", "value", "version",
"deleted"}`` (a tombstone has ``"deleted": true`` and ``"value": null``). Every write and
every delete gives the record the store's next revision: that is its new ``version``, and
its new position in the change feed, which moves it to the end. A page of changes holds
the records and tombstones positioned after the cursor (none: from the start), oldest
first, at most ``limit`` (1..100, default 50); ``next_cursor`` is where the next page
starts and ``has_more`` whether there are changes after it. So a client that keeps pulling
from its cursor until ``has_more`` is false has every record exactly once, with its latest
value, and none of the deleted ones, including records changed while it was pulling.

Idempotency-Key (required on POST, optional on PUT and DELETE, scoped to the store): a
request whose key already succeeded gets the original answer again, with header
``Idempotent-Replayed: true`` (a create's answer then has status 200); a key used before
for a different request is 409 ``idempotency_key_reused``.

Errors are ``{"error": code, "message": text}``: 400 ``invalid_json``,
``missing_idempotency_key``, ``invalid_idempotency_key`` (a key is 1-200 printable ASCII
characters), ``invalid_cursor``; 404 ``no_such_record``, ``not_found`` (no such route); 405
``method_not_allowed``; 409 ``version_conflict``, ``idempotency_key_reused``; 422
``invalid_value``, ``invalid_version``, ``invalid_id``, ``invalid_limit``.

Handlers are ``async`` and never await between reading and writing, so requests are
applied one at a time; the seeded bugs are logic errors some sequence of calls reveals
(with faults for ``lost-...``).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ._bugs import Bug
from ._http import error as _error
from ._http import json_response as _json
from ._http import ref as _ref

__all__ = ["BUGS", "DESCRIPTION", "OPENAPI", "create_app"]

DESCRIPTION = "records, and a change feed clients pull page by page with a cursor; tombstones"

BUGS = (
    Bug(
        name="cursor-skips-boundary",
        description="a page given a cursor starts after cursor + 1 instead of after the cursor "
        "(an off-by-one), so the first change after a page boundary is never delivered",
        invariant="sync_complete",
        minimal_steps=4,
    ),
    Bug(
        name="update-keeps-position",
        description="an update keeps the record's old position in the change feed instead of "
        "moving it to the end, so a client whose cursor has passed it never sees the change",
        invariant="sync_complete",
        minimal_steps=4,
    ),
    Bug(
        name="delete-no-tombstone",
        description="a delete removes the record's row instead of leaving a tombstone in the "
        "change feed, so a replica that already has the record keeps it",
        invariant="sync_complete",
        minimal_steps=4,
    ),
    Bug(
        name="page-repeats-last",
        description="a page given a cursor starts at the cursor instead of after it, so it "
        "repeats the previous page's last change",
        invariant="delivered_once",
        minimal_steps=3,
    ),
    Bug(
        name="recreate-stays-deleted",
        description="re-creating a deleted record with PUT writes its value but leaves its "
        "deleted flag set, so the record is missing from the listing",
        invariant="records_match_model",
        minimal_steps=3,
    ),
    Bug(
        name="read-deleted-record",
        description="reading a deleted record answers 200 with its tombstone instead of 404 "
        "(the lookup does not skip deleted rows)",
        invariant="read_your_writes",
        minimal_steps=3,
    ),
    Bug(
        name="stale-version-overwrites",
        description="a conditional write's version check only rejects versions newer than the "
        "record's (a > where != was meant), so a write based on a stale read overwrites a "
        "newer one",
        invariant="no_lost_writes",
        minimal_steps=3,
    ),
    Bug(
        name="lost-create-retry-duplicates",
        description="a create's Idempotency-Key is stored but never looked up, so the retry "
        "of a create whose answer was lost makes a second record",
        invariant="records_match_model",
        minimal_steps=1,
        needs=("faults",),
        faults=("lost-response",),
    ),
)

MAX_VALUE = 1000
MAX_VERSION = 2**53
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_CURSOR = re.compile(r"[0-9]{1,18}")
_KEY = re.compile(r"[!-~]{1,200}")

_SCHEMA = """
CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL DEFAULT 0
);
-- No UNIQUE constraints on purpose: the service enforces its rules in code, so that the
-- seeded bugs can break them as real bugs do.
CREATE TABLE records (
    store TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT,              -- NULL for a tombstone
    version INTEGER NOT NULL,
    seq INTEGER NOT NULL,    -- the position in the store's change feed
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX records_by_id ON records (store, id);
CREATE INDEX records_by_seq ON records (store, seq);
CREATE TABLE idempotency (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,   -- what was asked, to refuse the key for another request
    status INTEGER NOT NULL,
    body TEXT                -- the JSON answer; NULL for 204
);
CREATE INDEX idempotency_by_key ON idempotency (store, key);
"""


def _record(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "value": row["value"], "version": row["version"]}


def _change(row: sqlite3.Row) -> dict[str, Any]:
    deleted = bool(row["deleted"])
    return {
        "id": row["id"],
        "value": None if deleted else row["value"],
        "version": row["version"],
        "deleted": deleted,
    }


class _Store:
    def __init__(self, bugs: frozenset[str]) -> None:
        self.bugs = bugs
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)

    def next_revision(self, store: str) -> int:
        """Take the store's next revision (inside the caller's transaction)."""
        self.db.execute(
            "INSERT INTO stores (id, revision) VALUES (?, 1) "
            "ON CONFLICT (id) DO UPDATE SET revision = revision + 1",
            (store,),
        )
        row = self.db.execute("SELECT revision FROM stores WHERE id = ?", (store,)).fetchone()
        return int(row["revision"])

    def find(self, store: str, record_id: str, *, with_deleted: bool = True) -> sqlite3.Row | None:
        query = "SELECT rowid, * FROM records WHERE store = ? AND id = ?"
        if not with_deleted:
            query += " AND deleted = 0"
        row: sqlite3.Row | None = self.db.execute(query, (store, record_id)).fetchone()
        return row

    def replayed(self, store: str, key: str | None, request: str) -> Response | None:
        """The original answer to the request with ``key``, if it succeeded before."""
        if key is None:
            return None
        row = self.db.execute(
            "SELECT * FROM idempotency WHERE store = ? AND key = ?", (store, key)
        ).fetchone()
        if row is None:
            return None
        if row["request"] != request:
            return _error(
                409, "idempotency_key_reused", "this Idempotency-Key was used for another request"
            )
        headers = {"Idempotent-Replayed": "true"}
        if row["body"] is None:
            return Response(status_code=row["status"], headers=headers)
        return JSONResponse(json.loads(row["body"]), status_code=200, headers=headers)

    def remember(
        self, store: str, key: str | None, request: str, status: int, body: Any | None
    ) -> None:
        if key is None:
            return
        self.db.execute(
            "INSERT INTO idempotency (store, key, request, status, body) VALUES (?, ?, ?, ?, ?)",
            (store, key, request, status, None if body is None else json.dumps(body)),
        )

    def version_conflict(self, row: sqlite3.Row | None, version: int | None) -> bool:
        """Whether a write based on ``version`` (None: unconditional) must be refused."""
        if version is None:
            return False
        if row is None or row["deleted"]:
            return True
        if "stale-version-overwrites" in self.bugs:
            return bool(version > row["version"])
        return bool(version != row["version"])

    def put(
        self, store: str, record_id: str, value: str, version: int | None, key: str | None
    ) -> Response:
        request = json.dumps(["PUT", record_id, value, version])
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            replay = self.replayed(store, key, request)
            if replay is not None:
                return replay
            row = self.find(store, record_id)
            if self.version_conflict(row, version):
                return _error(
                    409, "version_conflict", f"version {version} is not the record's version"
                )
            revision = self.next_revision(store)
            if row is None:
                self.db.execute(
                    "INSERT INTO records (store, id, value, version, seq) VALUES (?, ?, ?, ?, ?)",
                    (store, record_id, value, revision, revision),
                )
                status = 201
            else:
                status = 201 if row["deleted"] else 200
                # Re-created: no longer deleted (but for recreate-stays-deleted).
                deleted = int(row["deleted"] and "recreate-stays-deleted" in self.bugs)
                if status == 200 and "update-keeps-position" in self.bugs:
                    seq = row["seq"]
                else:
                    seq = revision
                self.db.execute(
                    "UPDATE records SET value = ?, version = ?, seq = ?, deleted = ? "
                    "WHERE rowid = ?",
                    (value, revision, seq, deleted, row["rowid"]),
                )
            body = {"id": record_id, "value": value, "version": revision}
            self.remember(store, key, request, status, body)
        return JSONResponse(body, status_code=status)

    def create(self, store: str, value: str, key: str) -> Response:
        request = json.dumps(["POST", value])
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if "lost-create-retry-duplicates" not in self.bugs:
                replay = self.replayed(store, key, request)
                if replay is not None:
                    return replay
            record_id = f"rec_{secrets.token_hex(6)}"
            revision = self.next_revision(store)
            self.db.execute(
                "INSERT INTO records (store, id, value, version, seq) VALUES (?, ?, ?, ?, ?)",
                (store, record_id, value, revision, revision),
            )
            body = {"id": record_id, "value": value, "version": revision}
            self.remember(store, key, request, 201, body)
        return JSONResponse(body, status_code=201)

    def delete(self, store: str, record_id: str, key: str | None) -> Response:
        request = json.dumps(["DELETE", record_id])
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            replay = self.replayed(store, key, request)
            if replay is not None:
                return replay
            row = self.find(store, record_id)
            if row is None or row["deleted"]:
                return _error(404, "no_such_record", f"no record {record_id}")
            revision = self.next_revision(store)
            if "delete-no-tombstone" in self.bugs:
                self.db.execute("DELETE FROM records WHERE rowid = ?", (row["rowid"],))
            else:
                self.db.execute(
                    "UPDATE records SET value = NULL, version = ?, seq = ?, deleted = 1 "
                    "WHERE rowid = ?",
                    (revision, revision, row["rowid"]),
                )
            self.remember(store, key, request, 204, None)
        return Response(status_code=204)

    def read(self, store: str, record_id: str) -> dict[str, Any] | None:
        with_deleted = "read-deleted-record" in self.bugs
        row = self.find(store, record_id, with_deleted=with_deleted)
        return None if row is None else _record(row)

    def list(self, store: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM records WHERE store = ? AND deleted = 0 ORDER BY id", (store,)
        ).fetchall()
        return [_record(row) for row in rows]

    def changes(self, store: str, cursor: int | None, limit: int) -> dict[str, Any]:
        start = 0 if cursor is None else cursor
        if cursor is not None and "cursor-skips-boundary" in self.bugs:
            start = cursor + 1
        if cursor is not None and "page-repeats-last" in self.bugs:
            start = cursor - 1
        rows = self.db.execute(
            "SELECT * FROM records WHERE store = ? AND seq > ? ORDER BY seq LIMIT ?",
            (store, start, limit + 1),
        ).fetchall()
        page, has_more = rows[:limit], len(rows) > limit
        next_cursor = page[-1]["seq"] if page else (cursor or 0)
        return {
            "data": [_change(row) for row in page],
            "next_cursor": str(next_cursor),
            "has_more": has_more,
        }


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    """The request's JSON object, or the error response."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "invalid_json", "the body must be a JSON object")
    value = body.get("value")
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return _error(
            422, "invalid_value", f"value must be a string of at most {MAX_VALUE} characters"
        )
    return body


def _key(request: Request, *, required: bool) -> str | JSONResponse | None:
    """The request's Idempotency-Key (None if it has none), or the error response."""
    key = request.headers.get("idempotency-key")
    if key is None and required:
        return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
    if key is not None and not _KEY.fullmatch(key):
        return _error(
            400, "invalid_idempotency_key", "an Idempotency-Key is 1-200 printable characters"
        )
    return key


def _version(body: dict[str, Any]) -> int | JSONResponse | None:
    if "version" not in body:
        return None
    version = body["version"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        return _error(422, "invalid_version", "version must be a record's version (1 or more)")
    return version


def _names(request: Request) -> tuple[str, str | None] | JSONResponse:
    """The store and record id in the path, or the error response."""
    store = request.path_params["store"]
    record_id = request.path_params.get("record_id")
    for name in (store, record_id):
        if name is not None and not _NAME.fullmatch(name):
            return _error(422, "invalid_id", "store and record ids are 1-64 of A-Z a-z 0-9 _ -")
    return store, record_id


def _route(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route for all the methods of ``path`` (so that a 405 lists them all in Allow)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


def create_app(bugs: frozenset[str] = frozenset()) -> ASGIApp:
    """The sync app with the named bugs switched on."""
    unknown = set(bugs) - {bug.name for bug in BUGS}
    if unknown:
        raise ValueError(f"unknown sync bugs: {', '.join(sorted(unknown))}")
    store = _Store(frozenset(bugs))

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"service": "sync"})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def put_record(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        version = _version(body)
        if isinstance(version, JSONResponse):
            return version
        key = _key(request, required=False)
        if isinstance(key, JSONResponse):
            return key
        assert names[1] is not None
        return store.put(names[0], names[1], body["value"], version, key)

    async def create_record(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        key = _key(request, required=True)
        if isinstance(key, JSONResponse):
            return key
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        assert key is not None
        return store.create(names[0], body["value"], key)

    async def delete_record(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        key = _key(request, required=False)
        if isinstance(key, JSONResponse):
            return key
        assert names[1] is not None
        return store.delete(names[0], names[1], key)

    async def read_record(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        assert names[1] is not None
        record = store.read(names[0], names[1])
        if record is None:
            return _error(404, "no_such_record", f"no record {names[1]}")
        return JSONResponse(record)

    async def list_records(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        return JSONResponse({"data": store.list(names[0])})

    async def changes(request: Request) -> Response:
        names = _names(request)
        if isinstance(names, JSONResponse):
            return names
        raw_cursor = request.query_params.get("cursor")
        if raw_cursor is not None and not _CURSOR.fullmatch(raw_cursor):
            return _error(400, "invalid_cursor", "cursor must be a next_cursor of this feed")
        raw_limit = request.query_params.get("limit")
        limit = DEFAULT_LIMIT
        if raw_limit is not None:
            if not re.fullmatch(r"[0-9]{1,3}", raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
                return _error(422, "invalid_limit", f"limit must be an integer in 1..{MAX_LIMIT}")
            limit = int(raw_limit)
        cursor = None if raw_cursor is None else int(raw_cursor)
        return JSONResponse(store.changes(names[0], cursor, limit))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            response = _error(405, "method_not_allowed", "this path does not take that method")
            response.headers.update(exc.headers or {})  # Allow: the methods it takes
            return response
        return _error(exc.status_code, "not_found", "no such path")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/openapi.json", openapi),
            _route("/stores/{store}/records", GET=list_records, POST=create_record),
            _route(
                "/stores/{store}/records/{record_id}",
                GET=read_record,
                PUT=put_record,
                DELETE=delete_record,
            ),
            _route("/stores/{store}/changes", GET=changes),
        ],
        exception_handlers={HTTPException: http_error},
    )


# -- the OpenAPI document ---------------------------------------------------------------


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "a malformed request (invalid_json, missing_idempotency_key, "
        "invalid_idempotency_key, invalid_cursor)",
        404: "no such record (no_such_record), or no such path (not_found)",
        409: "the version is not the live record's (version_conflict), or the "
        "Idempotency-Key was used for another request (idempotency_key_reused)",
        422: "an invalid value, version, id or limit (invalid_value, invalid_version, "
        "invalid_id, invalid_limit)",
    }
    return {str(status): _json(_ref("Error"), described[status]) for status in statuses}


_STORE = {
    "name": "store",
    "in": "path",
    "required": True,
    "description": "the store (tenant) the records belong to",
    "schema": {"type": "string", "pattern": _NAME_PATTERN},
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "the record's id",
    "schema": {"type": "string", "pattern": _NAME_PATTERN},
}
_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"}
_OPTIONAL_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a retry with the same key gets the original answer again",
    "schema": _KEY_SCHEMA,
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "present (true) when the answer is the original one, replayed for a "
        "retry with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("RecordInput")}},
}
_PUT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("RecordWrite")}},
}
# Schemathesis' stateful tests follow these from a created record to what takes its id.
_RECORD_LINKS = {
    "GetRecord": {
        "operationId": "getRecord",
        "parameters": {"store": "$request.path.store", "id": "$response.body#/id"},
    },
    "UpdateRecord": {
        "operationId": "putRecord",
        "parameters": {"store": "$request.path.store", "id": "$response.body#/id"},
    },
    "DeleteRecord": {
        "operationId": "deleteRecord",
        "parameters": {"store": "$request.path.store", "id": "$response.body#/id"},
    },
    "ListChanges": {
        "operationId": "listChanges",
        "parameters": {"store": "$request.path.store"},
    },
}


def _record_answer(description: str, *, links: bool) -> dict[str, Any]:
    answer = _json(_ref("Record"), description)
    answer["headers"] = _REPLAYED
    if links:
        answer["links"] = _RECORD_LINKS
    return answer


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "sync",
        "version": "1.0.0",
        "description": "Records in a store and a change feed that clients pull page by page "
        "with a cursor: a client that pulls until has_more is false has every record exactly "
        "once, with its latest value, and none of the deleted ones.",
    },
    "paths": {
        "/": {
            "get": {
                "operationId": "index",
                "summary": "the service's name",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["service"],
                            "properties": {"service": {"type": "string", "enum": ["sync"]}},
                        },
                        "the service",
                    )
                },
            }
        },
        "/stores/{store}/records": {
            "parameters": [_STORE],
            "post": {
                "operationId": "createRecord",
                "summary": "create a record with an id the service chooses",
                "parameters": [{**_OPTIONAL_KEY, "required": True}],
                "requestBody": _BODY,
                "responses": {
                    "201": _record_answer("the new record", links=True),
                    "200": _record_answer(
                        "the record the Idempotency-Key created before", links=False
                    ),
                    **_errors(400, 409, 422),
                },
            },
            "get": {
                "operationId": "listRecords",
                "summary": "the store's live records, by id",
                "responses": {
                    "200": _json(_ref("RecordList"), "the live records"),
                    **_errors(422),
                },
            },
        },
        "/stores/{store}/records/{id}": {
            "parameters": [_STORE, _ID],
            "put": {
                "operationId": "putRecord",
                "summary": "create or replace the record",
                "parameters": [_OPTIONAL_KEY],
                "requestBody": _PUT_BODY,
                "responses": {
                    "201": _record_answer(
                        "the record, created (or re-created after a delete)", links=True
                    ),
                    "200": _record_answer("the record, updated", links=False),
                    **_errors(400, 409, 422),
                },
            },
            "get": {
                "operationId": "getRecord",
                "summary": "the record",
                "responses": {
                    "200": _json(_ref("Record"), "the record"),
                    **_errors(404, 422),
                },
            },
            "delete": {
                "operationId": "deleteRecord",
                "summary": "delete the record, leaving a tombstone in the change feed",
                "parameters": [_OPTIONAL_KEY],
                "responses": {
                    "204": {"description": "deleted", "headers": _REPLAYED},
                    **_errors(400, 404, 409, 422),
                },
            },
        },
        "/stores/{store}/changes": {
            "parameters": [_STORE],
            "get": {
                "operationId": "listChanges",
                "summary": "one page of the change feed, after the cursor",
                "parameters": [
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "the next_cursor of the previous page; none: from the start",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "at most this many changes",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": {
                    "200": {
                        **_json(_ref("ChangesPage"), "a page of changes, oldest first"),
                        "links": {
                            "NextPage": {
                                "operationId": "listChanges",
                                "parameters": {
                                    "store": "$request.path.store",
                                    "cursor": "$response.body#/next_cursor",
                                },
                            }
                        },
                    },
                    **_errors(400, 422),
                },
            },
        },
    },
    "components": {
        "schemas": {
            "RecordInput": {
                "type": "object",
                "required": ["value"],
                "properties": {"value": {"type": "string", "maxLength": MAX_VALUE}},
            },
            "RecordWrite": {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"type": "string", "maxLength": MAX_VALUE},
                    "version": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_VERSION,
                        "description": "write only if this is the record's version (the "
                        "version the client last saw); else 409 version_conflict",
                    },
                },
            },
            "Record": {
                "type": "object",
                "required": ["id", "value", "version"],
                "properties": {
                    "id": {"type": "string"},
                    "value": {"type": "string"},
                    "version": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
            "RecordList": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "array", "items": _ref("Record")}},
            },
            "Change": {
                "type": "object",
                "required": ["id", "value", "version", "deleted"],
                "properties": {
                    "id": {"type": "string"},
                    "value": {"type": "string", "nullable": True},
                    "version": {"type": "integer", "minimum": 1},
                    "deleted": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
            "ChangesPage": {
                "type": "object",
                "required": ["data", "next_cursor", "has_more"],
                "properties": {
                    "data": {"type": "array", "items": _ref("Change")},
                    "next_cursor": {"type": "string", "pattern": "^[0-9]+$"},
                    "has_more": {"type": "boolean"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
        }
    },
}
