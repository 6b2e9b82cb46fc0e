"""Signup: accounts per email, email verification, access for verified users, revocation.

A real HTTP service (Starlette, state in SQLite) with seeded bugs switched on by name.
Every org is a tenant: its users, emails and outbox are its own.

API (JSON bodies; errors are ``{"error": code, "message": text}``)::

    GET  /                                  {"service": "signup"}
    GET  /openapi.json                      the OpenAPI 3.0 document of this API
    POST /orgs/{org}/signups                {"email": "ann@example.com"}, header Idempotency-Key
         201 the new user, status "pending", and a verification email in the outbox;
         200 the original user when the key was seen before (header Idempotent-Replayed);
         409 "email_taken" when another key signed the address up (addresses compare
         trimmed and case-insensitively), 409 "idempotency_key_reused" when the key was
         used for another address; 400 "missing_idempotency_key",
         "invalid_idempotency_key" (not 1-255 printable ASCII), "invalid_json";
         422 "invalid_email"
    GET  /orgs/{org}                        {"id": org, "users": how many it has}
    GET  /orgs/{org}/users                  {"data": [users, oldest first]}
    GET  /orgs/{org}/outbox[?email=E]       {"messages": [{"to", "user", "subject",
                                            "token"}]}: the verification emails sent
                                            (to E), oldest first, as a mail catcher shows
    GET  /users/{id}                        the user; 404 "no_such_user"
    POST /users/{id}/verify                 {"token": "..."} (from the email)
         200 the user, now "active" (again 200 for an active user and its token);
         409 "user_revoked" (checked first: revocation is final); 403 "invalid_token"
         (not this user's token); 400 "invalid_json";
         422 "invalid_request" when the token is missing
    GET  /users/{id}/access                 200 {"user", "access": true} for an active
                                            user; 403 "no_access" for pending or revoked
    POST /users/{id}/revoke                 200 the user, now "revoked" (idempotent)

A user is ``{"id", "org", "email", "status"}``: the email as stored, normalized (trimmed,
lower case); the status ``pending``, ``active`` or ``revoked``. An org name is 1 to 64
letters, digits, ``_`` or ``-`` (others answer 404 "no_such_org"). Unknown paths answer
404 "not_found", unsupported methods 405 "method_not_allowed" (with ``Allow``).

Handlers are ``async`` and never await between reading and writing, so requests are
applied one at a time, except with the ``race-...`` bug, which waits (for "the mail
provider") between checking the address and creating the user, as real services do;
the other bugs are logic errors some sequence of calls reveals, with faults for
``lost-...``. Access decisions are cached per user; verify and revoke evict them.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ._bugs import Bug
from ._http import error as _error
from ._http import json_object as _json_body
from ._http import json_response as _json
from ._http import ref as _ref

__all__ = ["BUGS", "DESCRIPTION", "OPENAPI", "create_app"]

DESCRIPTION = "signups per email with verification by email token, access and revocation"

BUGS = (
    Bug(
        name="email-case-duplicate",
        description="the check for an address already signed up compares it as typed, "
        "case-sensitively, with the stored lower-case one, so Ann@Example.com gets a "
        "second account beside ann@example.com",
        invariant="one_account_per_email",
        minimal_steps=2,
    ),
    Bug(
        name="access-before-verify",
        description="access is granted to every user who is not revoked, so a pending "
        "user has access before verifying their email",
        invariant="no_access_before_verify",
        minimal_steps=2,
    ),
    Bug(
        name="list-hides-revoked",
        description="the users list leaves revoked users out (a filter copied from the "
        "member directory), though the API lists every user",
        invariant="users_listed",
        minimal_steps=2,
    ),
    Bug(
        name="retry-checks-email-first",
        description="the address is checked before the Idempotency-Key is looked up, so "
        "the retry of a signup is told 409 email_taken instead of getting its user back",
        invariant="signup_idempotent",
        minimal_steps=2,
    ),
    Bug(
        name="verify-other-users-token",
        description="a verification token is looked up among all of the org's tokens, not "
        "the user's own, so one user's token verifies another user's address",
        invariant="token_required",
        minimal_steps=3,
    ),
    Bug(
        name="cached-denial-after-verify",
        description="verification does not evict the cached access decision, so a user "
        "who checked their access before verifying is still refused after",
        invariant="verified_has_access",
        minimal_steps=3,
    ),
    Bug(
        name="revoke-keeps-access",
        description="revocation does not evict the cached access decision, so a revoked "
        "user who had checked their access keeps it",
        invariant="revoked_loses_access",
        minimal_steps=4,
    ),
    Bug(
        name="lost-verify-retry-rejected",
        description="verification tokens are single-use, so the retry of a verification "
        "whose answer was lost is told invalid_token, though the user was verified",
        invariant="verify_accepted",
        minimal_steps=2,
        needs=("faults",),
        faults=("lost-response",),
    ),
    Bug(
        name="race-duplicate-signup",
        description="the address is checked with the mail provider between finding it free "
        "and creating the user, so two concurrent signups of one address both create one",
        invariant="linearizable",
        minimal_steps=2,
        needs=("concurrency",),
    ),
)

#: Seconds the race bug waits (for "the mail provider") between checking and writing.
RACE_WINDOW = 0.02
MAX_EMAIL = 254

_ORG = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_SCHEMA = """
-- No UNIQUE constraints on purpose: the service enforces its rules in code, so that the
-- seeded bugs can break them as real bugs do.
CREATE TABLE users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    org TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    token TEXT  -- NULL once used, with lost-verify-retry-rejected
);
CREATE INDEX users_by_id ON users (id);
CREATE INDEX users_by_org ON users (org, email);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    recipient TEXT NOT NULL,
    user_id TEXT NOT NULL,
    token TEXT NOT NULL
);
CREATE INDEX outbox_by_org ON outbox (org);
"""

SUBJECT = "Verify your email address"


def normalize(email: str) -> str:
    """An address as the service stores and compares it: trimmed, lower case."""
    return email.strip().lower()


def _valid_email(email: Any) -> bool:
    if not isinstance(email, str):
        return False
    trimmed = email.strip()
    if not 3 <= len(trimmed) <= MAX_EMAIL or _CONTROL.search(trimmed):
        return False
    try:
        trimmed.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        return False
    # Lenient, as address validation should be: a local part (quoted ones may hold spaces
    # and @) and a domain without spaces. Whether it receives mail is what verifying shows.
    local, at, domain = trimmed.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in domain)


class _Store:
    def __init__(self, bugs: frozenset[str]) -> None:
        self.bugs = bugs
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        #: Access decisions by user id (granted or not), evicted when the user changes.
        self.access_cache: dict[str, bool] = {}

    @staticmethod
    def view(row: sqlite3.Row) -> dict[str, Any]:
        return {"id": row["id"], "org": row["org"], "email": row["email"], "status": row["status"]}

    def by_key(self, org: str, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM users WHERE org = ? AND idempotency_key = ? ORDER BY seq", (org, key)
        ).fetchone()
        return row

    def email_taken(self, org: str, email: str) -> bool:
        wanted = email.strip() if "email-case-duplicate" in self.bugs else normalize(email)
        row = self.db.execute(
            "SELECT 1 FROM users WHERE org = ? AND email = ?", (org, wanted)
        ).fetchone()
        return row is not None

    def lookup(self, org: str, key: str, email: str) -> JSONResponse | None:
        """The answer to a signup that creates nothing: a replay or a refusal."""
        if "retry-checks-email-first" in self.bugs and self.email_taken(org, email):
            return _error(409, "email_taken", "this address has an account already")
        existing = self.by_key(org, key)
        if existing is not None:
            if normalize(existing["email"]) != normalize(email):
                return _error(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used to sign up another address",
                )
            return JSONResponse(
                self.view(existing), status_code=200, headers={"Idempotent-Replayed": "true"}
            )
        if self.email_taken(org, email):
            return _error(409, "email_taken", "this address has an account already")
        return None

    def create(self, org: str, key: str, email: str) -> dict[str, Any]:
        user_id = f"usr_{secrets.token_hex(6)}"
        token = secrets.token_hex(16)
        stored = normalize(email)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO users (id, org, email, status, idempotency_key, token) "
                "VALUES (?, ?, ?, 'pending', ?, ?)",
                (user_id, org, stored, key, token),
            )
            self.db.execute(
                "INSERT INTO outbox (org, recipient, user_id, token) VALUES (?, ?, ?, ?)",
                (org, stored, user_id, token),
            )
        return {"id": user_id, "org": org, "email": stored, "status": "pending"}

    def get(self, user_id: str) -> sqlite3.Row | None:
        if not user_id.isascii():  # ids are usr_ and hex
            return None
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM users WHERE id = ? ORDER BY seq", (user_id,)
        ).fetchone()
        return row

    def token_matches(self, row: sqlite3.Row, token: str) -> bool:
        if not token.isascii():  # tokens are hex
            return False
        if "verify-other-users-token" in self.bugs:
            found = self.db.execute(
                "SELECT 1 FROM users WHERE org = ? AND token = ?", (row["org"], token)
            ).fetchone()
            return found is not None
        stored = row["token"]
        return stored is not None and secrets.compare_digest(stored, token)

    def verify(self, user_id: str, token: str) -> JSONResponse:
        row = self.get(user_id)
        if row is None:
            return _error(404, "no_such_user", f"no user {user_id}")
        if row["status"] == "revoked":
            return _error(409, "user_revoked", f"{user_id} is revoked")
        if not self.token_matches(row, token):
            return _error(403, "invalid_token", "this token does not verify this user")
        used = None if "lost-verify-retry-rejected" in self.bugs else row["token"]
        self.db.execute(
            "UPDATE users SET status = 'active', token = ? WHERE seq = ?", (used, row["seq"])
        )
        if "cached-denial-after-verify" not in self.bugs:
            self.access_cache.pop(user_id, None)
        return JSONResponse({**self.view(row), "status": "active"})

    def access(self, user_id: str) -> bool | None:
        if user_id in self.access_cache:
            return self.access_cache[user_id]
        row = self.get(user_id)
        if row is None:
            return None
        status: str = row["status"]
        # Active users have access (with access-before-verify, all but revoked ones).
        granted = status != "revoked" if "access-before-verify" in self.bugs else status == "active"
        self.access_cache[user_id] = granted
        return granted

    def revoke(self, user_id: str) -> dict[str, Any] | None:
        row = self.get(user_id)
        if row is None:
            return None
        self.db.execute("UPDATE users SET status = 'revoked' WHERE seq = ?", (row["seq"],))
        if "revoke-keeps-access" not in self.bugs:
            self.access_cache.pop(user_id, None)
        return {**self.view(row), "status": "revoked"}

    def users(self, org: str) -> list[dict[str, Any]]:
        query = "SELECT * FROM users WHERE org = ?"
        if "list-hides-revoked" in self.bugs:
            query += " AND status != 'revoked'"
        rows = self.db.execute(query + " ORDER BY seq", (org,))
        return [self.view(row) for row in rows]

    def outbox(self, org: str, email: str | None) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM outbox WHERE org = ? ORDER BY seq", (org,))
        wanted = None if email is None else normalize(email)
        return [
            {
                "to": row["recipient"],
                "user": row["user_id"],
                "subject": SUBJECT,
                "token": row["token"],
            }
            for row in rows
            if wanted is None or normalize(row["recipient"]) == wanted
        ]


def create_app(bugs: frozenset[str] = frozenset()) -> ASGIApp:
    """The signup app with the named bugs switched on."""
    unknown = set(bugs) - {bug.name for bug in BUGS}
    if unknown:
        raise ValueError(f"unknown signup bugs: {', '.join(sorted(unknown))}")
    store = _Store(frozenset(bugs))

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"service": "signup"})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    def org_of(request: Request) -> str | JSONResponse:
        org: str = request.path_params["org"]
        if not _ORG.fullmatch(org):
            return _error(404, "no_such_org", "an org name is 1-64 letters, digits, _ or -")
        return org

    async def sign_up(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        key = request.headers.get("idempotency-key")
        if not key:
            return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
        if not _KEY.fullmatch(key):
            return _error(
                400, "invalid_idempotency_key", "an Idempotency-Key is 1-255 printable characters"
            )
        body = await _json_body(request)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        email = body.get("email")
        if not _valid_email(email):
            return _error(422, "invalid_email", "email must be an address such as a@example.com")
        assert isinstance(email, str)
        answer = store.lookup(org, key, email)
        if answer is not None:
            return answer
        if "race-duplicate-signup" in store.bugs:
            # Ask the mail provider whether the address can receive mail before creating
            # the user: a second signup of the address arriving meanwhile finds it free.
            await asyncio.sleep(RACE_WINDOW)
        return JSONResponse(store.create(org, key, email), status_code=201)

    async def read_org(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        return JSONResponse({"id": org, "users": len(store.users(org))})

    async def list_users(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        return JSONResponse({"data": store.users(org)})

    async def outbox(request: Request) -> JSONResponse:
        org = org_of(request)
        if isinstance(org, JSONResponse):
            return org
        return JSONResponse({"messages": store.outbox(org, request.query_params.get("email"))})

    async def read_user(request: Request) -> JSONResponse:
        row = store.get(request.path_params["user_id"])
        if row is None:
            return _error(404, "no_such_user", "no such user")
        return JSONResponse(store.view(row))

    async def verify(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        token = body.get("token")
        if not isinstance(token, str):
            return _error(422, "invalid_request", "send the token from the email as token")
        return store.verify(request.path_params["user_id"], token)

    async def access(request: Request) -> JSONResponse:
        user_id = request.path_params["user_id"]
        granted = store.access(user_id)
        if granted is None:
            return _error(404, "no_such_user", "no such user")
        if not granted:
            return _error(403, "no_access", f"{user_id} is not verified or is revoked")
        return JSONResponse({"user": user_id, "access": True})

    async def revoke(request: Request) -> JSONResponse:
        user = store.revoke(request.path_params["user_id"])
        if user is None:
            return _error(404, "no_such_user", "no such user")
        return JSONResponse(user)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return _error(exc.status_code, code, str(exc.detail), **(exc.headers or {}))

    return Starlette(
        routes=[
            Route("/", index),
            Route("/openapi.json", openapi),
            Route("/orgs/{org}", read_org),
            Route("/orgs/{org}/signups", sign_up, methods=["POST"]),
            Route("/orgs/{org}/users", list_users),
            Route("/orgs/{org}/outbox", outbox),
            Route("/users/{user_id}", read_user),
            Route("/users/{user_id}/verify", verify, methods=["POST"]),
            Route("/users/{user_id}/access", access),
            Route("/users/{user_id}/revoke", revoke, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


# -- OpenAPI ---------------------------------------------------------------------------


def _error_response(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_ORG_PARAM = {
    "name": "org",
    "in": "path",
    "required": True,
    "description": "The org (tenant): 1-64 letters, digits, _ or -.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}
_USER_PARAM = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": "A user's id, as a signup returned it.",
    "schema": {"type": "string"},
}
_NO_ORG = _error_response("no_such_org: the org name is not 1-64 letters, digits, _ or -")
_NO_USER = _error_response("no_such_user: no user has this id")
_USER_LINKS = {
    "GetUser": {"operationId": "getUser", "parameters": {"user_id": "$response.body#/id"}},
    "GetAccess": {"operationId": "getAccess", "parameters": {"user_id": "$response.body#/id"}},
    "RevokeUser": {"operationId": "revokeUser", "parameters": {"user_id": "$response.body#/id"}},
    "ListUsers": {"operationId": "listUsers", "parameters": {"org": "$request.path.org"}},
    "GetOutbox": {
        "operationId": "getOutbox",
        "parameters": {"org": "$request.path.org", "email": "$response.body#/email"},
    },
}

#: The OpenAPI document served at ``GET /openapi.json``.
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "signup",
        "version": "1.0.0",
        "description": "Sign up with an email address, verify it with the token the "
        "verification email carries, get access; revoked users lose it. Errors are "
        '{"error": code, "message": text}.',
    },
    "paths": {
        "/": {
            "get": {
                "operationId": "getService",
                "summary": "The service's name",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["service"],
                            "properties": {"service": {"type": "string", "enum": ["signup"]}},
                        },
                        "The service's name",
                    )
                },
            }
        },
        "/orgs/{org}/signups": {
            "post": {
                "operationId": "signUp",
                "summary": "Sign up an address: a pending user and a verification email",
                "parameters": [
                    _ORG_PARAM,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "description": "The same key for retries of one signup.",
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["email"],
                                "properties": {
                                    "email": {
                                        "type": "string",
                                        "format": "email",
                                        "maxLength": MAX_EMAIL,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("User"), "The new user, pending", links=_USER_LINKS),
                    "200": _json(
                        _ref("User"),
                        "The user this Idempotency-Key created before",
                        headers={
                            "Idempotent-Replayed": {
                                "description": "true: a replay of the original answer",
                                "schema": {"type": "string", "enum": ["true"]},
                            }
                        },
                        links=_USER_LINKS,
                    ),
                    "400": _error_response(
                        "missing_idempotency_key, invalid_idempotency_key or invalid_json"
                    ),
                    "404": _NO_ORG,
                    "409": _error_response(
                        "email_taken: the address has an account (compared trimmed and "
                        "case-insensitively); idempotency_key_reused: the key signed up "
                        "another address"
                    ),
                    "422": _error_response("invalid_email: email is not an address"),
                },
            }
        },
        "/orgs/{org}": {
            "get": {
                "operationId": "getOrg",
                "summary": "An org: its name and how many users it has (none for a new one)",
                "parameters": [_ORG_PARAM],
                "responses": {
                    "200": _json(
                        _ref("Org"), "The org", links={"ListUsers": _USER_LINKS["ListUsers"]}
                    ),
                    "404": _NO_ORG,
                },
            }
        },
        "/orgs/{org}/users": {
            "get": {
                "operationId": "listUsers",
                "summary": "The org's users, oldest first",
                "parameters": [_ORG_PARAM],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": _ref("User")}},
                        },
                        "The org's users, oldest first",
                    ),
                    "404": _NO_ORG,
                },
            }
        },
        "/orgs/{org}/outbox": {
            "get": {
                "operationId": "getOutbox",
                "summary": "The verification emails sent, oldest first (a mail catcher)",
                "parameters": [
                    _ORG_PARAM,
                    {
                        "name": "email",
                        "in": "query",
                        "required": False,
                        "description": "Only the emails to this address (trimmed, any case).",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": _ref("Message")}},
                        },
                        "The emails",
                        links={
                            "VerifyUser": {
                                "operationId": "verifyUser",
                                "parameters": {"user_id": "$response.body#/messages/0/user"},
                                "requestBody": {"token": "$response.body#/messages/0/token"},
                            }
                        },
                    ),
                    "404": _NO_ORG,
                },
            }
        },
        "/users/{user_id}": {
            "get": {
                "operationId": "getUser",
                "summary": "A user",
                "parameters": [_USER_PARAM],
                "responses": {"200": _json(_ref("User"), "The user"), "404": _NO_USER},
            }
        },
        "/users/{user_id}/verify": {
            "post": {
                "operationId": "verifyUser",
                "summary": "Verify a user's address with the token its email carries",
                "parameters": [_USER_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        _ref("User"), "The user, active (also for an active user and its token)"
                    ),
                    "400": _error_response("invalid_json: the body is not a JSON object"),
                    "403": _error_response("invalid_token: not this user's token"),
                    "404": _NO_USER,
                    "409": _error_response("user_revoked: a revoked user cannot verify"),
                    "422": _error_response("invalid_request: no token string"),
                },
            }
        },
        "/users/{user_id}/access": {
            "get": {
                "operationId": "getAccess",
                "summary": "Whether the user has access: only active users do",
                "parameters": [_USER_PARAM],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["user", "access"],
                            "properties": {
                                "user": {"type": "string"},
                                "access": {"type": "boolean", "enum": [True]},
                            },
                        },
                        "The user is active: access",
                    ),
                    "403": _error_response("no_access: the user is pending or revoked"),
                    "404": _NO_USER,
                },
            }
        },
        "/users/{user_id}/revoke": {
            "post": {
                "operationId": "revokeUser",
                "summary": "Revoke a user: no access, and no verifying back",
                "parameters": [_USER_PARAM],
                "responses": {
                    "200": _json(_ref("User"), "The user, revoked"),
                    "404": _NO_USER,
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Org": {
                "type": "object",
                "required": ["id", "users"],
                "properties": {
                    "id": {"type": "string"},
                    "users": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": False,
            },
            "User": {
                "type": "object",
                "required": ["id", "org", "email", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "org": {"type": "string"},
                    "email": {"type": "string"},
                    "status": {"type": "string", "enum": ["pending", "active", "revoked"]},
                },
                "additionalProperties": False,
            },
            "Message": {
                "type": "object",
                "required": ["to", "user", "subject", "token"],
                "properties": {
                    "to": {"type": "string"},
                    "user": {"type": "string"},
                    "subject": {"type": "string"},
                    "token": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
        }
    },
}
