"""Jobs: a work queue with idempotent enqueue, leases, ack and nack, and lease expiry.

A real HTTP service (Starlette, state in SQLite) with seeded bugs switched on by name.

API (JSON bodies; a queue's name is 1 to 64 letters, digits, ``-`` or ``_``)::

    GET  /                          {"service": "jobs"}
    GET  /openapi.json              the OpenAPI 3.0 document of this API
    POST /queues/{queue}/jobs       {"payload": "..."} (at most 1000 characters),
                                    header Idempotency-Key (1 to 255 printable ASCII)
         201 the new job; 200 the original job when the key was seen before in this
         queue (header Idempotent-Replayed: true)
    GET  /queues/{queue}/jobs       {"data": [jobs, oldest first]}
    POST /queues/{queue}/leases     {"seconds": 1..3600} (default 30); optional header
                                    Idempotency-Key
         200 {"job", "lease", "expires_at"}: the oldest job that is queued, or whose
         lease has expired (which invalidates that lease), now leased until
         ``expires_at``; 204 when no job is available. A key seen before in this queue
         answers the original lease again (200, Idempotent-Replayed: true).
    POST /jobs/{id}/ack             {"lease": token}
         200 the job, done; 409 {"error": "lease_lost"} when the lease is not the job's
         current one or has expired, {"error": "already_done"} when another lease
         finished the job. The lease that finished the job answers 200 again
         (Idempotent-Replayed: true), so a worker may re-send its ack.
    POST /jobs/{id}/nack            {"lease": token}
         200 the job, queued again with ``attempts`` + 1; 409 as for ack; the lease
         that nacked the job answers 200 again (Idempotent-Replayed: true)
    GET  /jobs/{id}                 the job
    GET  /queues/{queue}/clock      {"queue", "now"}
    POST /queues/{queue}/clock      {"advance": 0..86400} or {"to": t}: move the
                                    queue's test clock forward
         200 {"queue", "now"}; 409 {"error": "clock_backwards"} when ``to`` is before now

A job is ``{"id", "queue", "idempotency_key", "payload", "status", "attempts",
"completions", "lease_expires_at"}``: ``status`` is ``queued``, ``leased`` (a lease that
has not expired) or ``done``; ``attempts`` counts the nacks; ``completions`` the acks
that finished it (one, for a done job); ``lease_expires_at`` is set while leased.

Time is a test clock per queue (like Stripe's test clocks): whole seconds from 0 that move
only when a client advances them, so lease expiry is deterministic. A lease expires when
the queue's clock reaches its ``expires_at``.

Errors are ``{"error": code, "message": text}`` with a 4xx status: 400
``invalid_json``, ``missing_idempotency_key``, ``invalid_idempotency_key``; 404
``no_such_job``, ``not_found``; 405 ``method_not_allowed``; 409 ``lease_lost``,
``already_done``, ``clock_backwards``; 422 ``invalid_queue``, ``invalid_payload``,
``invalid_seconds``, ``invalid_lease``, ``invalid_clock``.

Handlers are ``async`` and never await between reading and writing, so requests are
applied one at a time, except with the ``race-...`` bug, which waits (for "the
scheduler") between choosing a job and leasing it, as real services do; the other bugs
are logic errors some sequence of calls reveals, with faults for ``lost-...``.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from ._http import ref as _ref
from ._http import replayed as _replayed

__all__ = ["BUGS", "DESCRIPTION", "OPENAPI", "create_app"]

DESCRIPTION = "a work queue: idempotent enqueue, leases, ack/nack, lease expiry on a test clock"

BUGS = (
    Bug(
        name="ack-after-expiry",
        description="an ack is matched against every lease the job was ever given and its "
        "expiry is not checked, so a worker whose lease ran out (or was given to another "
        "worker) still completes the job",
        invariant="lease_honoured",
        minimal_steps=4,
    ),
    Bug(
        name="expired-lease-stuck",
        description="a lease takes only jobs marked queued, not those whose lease expired, "
        "so a job whose worker died holding it is never offered again and never finishes",
        invariant="lease_matches_model",
        minimal_steps=4,
    ),
    Bug(
        name="nack-drops-job",
        description="a nack marks the job done instead of putting it back in the queue",
        invariant="jobs_listed",
        minimal_steps=3,
    ),
    Bug(
        name="ack-retry-completes-twice",
        description="an ack re-sent with the lease that already finished the job completes "
        "it again instead of answering the first ack, so the job counts two completions",
        invariant="finished_once",
        minimal_steps=4,
    ),
    Bug(
        name="same-payload-same-id",
        description="job ids derive from the queue and the payload, so two jobs with the "
        "same payload get the same id",
        invariant="unique_ids",
        minimal_steps=2,
    ),
    Bug(
        name="lost-enqueue-retry-duplicates",
        description="the enqueue's Idempotency-Key is stored but never looked up, so the "
        "retry of an enqueue whose answer was lost enqueues the job a second time",
        invariant="enqueued_once",
        minimal_steps=1,
        needs=("faults",),
        faults=("lost-response",),
    ),
    Bug(
        name="race-double-lease",
        description="the lease picks the oldest queued job, then waits for the scheduler "
        "before marking it leased, so two concurrent leases get the same job",
        invariant="linearizable",
        minimal_steps=3,
        needs=("concurrency",),
    ),
)

MAX_PAYLOAD = 1000
MAX_SECONDS = 3600
DEFAULT_SECONDS = 30
MAX_ADVANCE = 86_400
MAX_TIME = 1_000_000_000
#: Seconds the race bug waits (for "the scheduler") between choosing a job and leasing it.
RACE_WINDOW = 0.02

_QUEUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[!-~]{1,255}")

_SCHEMA = """
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    now INTEGER NOT NULL DEFAULT 0
);
-- No UNIQUE constraints on purpose: the service enforces its rules in code, so that the
-- seeded bugs can break them as real bugs do.
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',  -- queued, leased or done
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    lease TEXT,  -- the current lease's token, while leased
    lease_expires_at INTEGER
);
CREATE INDEX jobs_by_id ON jobs (id);
CREATE INDEX jobs_by_key ON jobs (queue, idempotency_key);
CREATE TABLE leases (
    token TEXT PRIMARY KEY,
    job_seq INTEGER NOT NULL REFERENCES jobs (seq),
    queue TEXT NOT NULL,
    idempotency_key TEXT,
    expires_at INTEGER NOT NULL,
    outcome TEXT  -- NULL, 'acked' or 'nacked'
);
CREATE INDEX leases_by_key ON leases (queue, idempotency_key);
"""

_ERROR_CODES = (
    "invalid_json",
    "missing_idempotency_key",
    "invalid_idempotency_key",
    "no_such_job",
    "not_found",
    "method_not_allowed",
    "lease_lost",
    "already_done",
    "clock_backwards",
    "invalid_queue",
    "invalid_payload",
    "invalid_seconds",
    "invalid_lease",
    "invalid_clock",
)


class _Store:
    def __init__(self, bugs: frozenset[str]) -> None:
        self.bugs = bugs
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)

    # -- reading ---------------------------------------------------------------------

    def now(self, queue: str) -> int:
        row = self.db.execute("SELECT now FROM queues WHERE name = ?", (queue,)).fetchone()
        return int(row["now"]) if row else 0

    def view(self, row: sqlite3.Row, now: int | None = None) -> dict[str, Any]:
        """The job as clients see it: a lease that has expired shows as queued."""
        if now is None:
            now = self.now(row["queue"])
        status = row["status"]
        expires = row["lease_expires_at"]
        if status == "leased" and now >= expires:
            status, expires = "queued", None
        return {
            "id": row["id"],
            "queue": row["queue"],
            "idempotency_key": row["idempotency_key"],
            "payload": row["payload"],
            "status": status,
            "attempts": row["attempts"],
            "completions": row["completions"],
            "lease_expires_at": expires if status == "leased" else None,
        }

    def get(self, job_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM jobs WHERE id = ? ORDER BY seq", (job_id,)
        ).fetchone()
        return row

    def by_seq(self, seq: int) -> sqlite3.Row:
        row: sqlite3.Row = self.db.execute("SELECT * FROM jobs WHERE seq = ?", (seq,)).fetchone()
        return row

    def list(self, queue: str) -> list[dict[str, Any]]:
        now = self.now(queue)
        rows = self.db.execute("SELECT * FROM jobs WHERE queue = ? ORDER BY seq", (queue,))
        return [self.view(row, now) for row in rows.fetchall()]

    # -- writing ---------------------------------------------------------------------

    def _ensure_queue(self, queue: str) -> None:
        self.db.execute(
            "INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (queue,)
        )

    def new_job_id(self, queue: str, payload: str) -> str:
        if "same-payload-same-id" in self.bugs:
            digest = hashlib.sha256(f"{queue}:{payload}".encode()).hexdigest()
            return f"job_{digest[:12]}"
        return f"job_{secrets.token_hex(6)}"

    def enqueue(self, queue: str, key: str, payload: str) -> tuple[dict[str, Any], bool]:
        """The job for ``key`` and whether it was created now."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._ensure_queue(queue)
            if "lost-enqueue-retry-duplicates" not in self.bugs:
                existing = self.db.execute(
                    "SELECT * FROM jobs WHERE queue = ? AND idempotency_key = ? ORDER BY seq",
                    (queue, key),
                ).fetchone()
                if existing is not None:
                    return self.view(existing), False
            seq = self.db.execute(
                "INSERT INTO jobs (id, queue, idempotency_key, payload) VALUES (?, ?, ?, ?)",
                (self.new_job_id(queue, payload), queue, key, payload),
            ).lastrowid
            assert seq is not None
            return self.view(self.by_seq(seq)), True

    def earlier_lease(self, queue: str, key: str | None) -> dict[str, Any] | None:
        """The answer to a lease request whose Idempotency-Key was seen before."""
        if key is None:
            return None
        lease = self.db.execute(
            "SELECT * FROM leases WHERE queue = ? AND idempotency_key = ?", (queue, key)
        ).fetchone()
        if lease is None:
            return None
        job = self.by_seq(lease["job_seq"])
        return {"job": self.view(job), "lease": lease["token"], "expires_at": lease["expires_at"]}

    def available(self, queue: str) -> sqlite3.Row | None:
        """The oldest job that may be leased now: queued, or leased until a time past."""
        if "expired-lease-stuck" in self.bugs:
            query = "SELECT * FROM jobs WHERE queue = ? AND status = 'queued' ORDER BY seq"
            row: sqlite3.Row | None = self.db.execute(query, (queue,)).fetchone()
            return row
        row = self.db.execute(
            "SELECT * FROM jobs WHERE queue = ? AND (status = 'queued' OR "
            "(status = 'leased' AND lease_expires_at <= ?)) ORDER BY seq",
            (queue, self.now(queue)),
        ).fetchone()
        return row

    def lease(
        self, queue: str, key: str | None, seconds: int, *, chosen: sqlite3.Row | None = None
    ) -> JSONResponse | Response:
        """Lease the oldest available job (or ``chosen``, picked earlier by the caller:
        race-double-lease) for ``seconds``."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            earlier = self.earlier_lease(queue, key)
            if earlier is not None:
                return _replayed(earlier)
            job = chosen if chosen is not None else self.available(queue)
            if job is None:
                return Response(status_code=204)
            self._ensure_queue(queue)
            token = f"lease_{secrets.token_hex(8)}"
            expires_at = self.now(queue) + seconds
            # The new lease replaces any earlier (expired) one, whose token stops working.
            self.db.execute(
                "UPDATE jobs SET status = 'leased', lease = ?, lease_expires_at = ? WHERE seq = ?",
                (token, expires_at, job["seq"]),
            )
            self.db.execute(
                "INSERT INTO leases (token, job_seq, queue, idempotency_key, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token, job["seq"], queue, key, expires_at),
            )
            leased = self.by_seq(job["seq"])
        body = {"job": self.view(leased), "lease": token, "expires_at": expires_at}
        return JSONResponse(body, status_code=200)

    def _lease_of(self, job: sqlite3.Row, token: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM leases WHERE token = ? AND job_seq = ?", (token, job["seq"])
        ).fetchone()
        return row

    def _holds(self, job: sqlite3.Row, lease: sqlite3.Row) -> bool:
        """Whether ``lease`` is the job's current lease and has not expired."""
        if lease["outcome"] is not None:
            return False
        return bool(job["lease"] == lease["token"] and self.now(job["queue"]) < lease["expires_at"])

    def finish(self, job_id: str, token: str, outcome: str) -> JSONResponse:
        """Ack (``outcome`` "acked") or nack ("nacked") the job under lease ``token``."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            job = self.get(job_id)
            if job is None:
                return _error(404, "no_such_job", f"no job {job_id}")
            lease = self._lease_of(job, token)
            if lease is None:
                return _error(409, "lease_lost", "this lease is not one of this job's")
            if lease["outcome"] == outcome:  # the same call again: answer as before
                if outcome == "acked" and "ack-retry-completes-twice" in self.bugs:
                    self.db.execute(
                        "UPDATE jobs SET completions = completions + 1 WHERE seq = ?",
                        (job["seq"],),
                    )
                    return JSONResponse(self.view(self.by_seq(job["seq"])))
                return _replayed(self.view(job))
            if job["status"] == "done":
                return _error(409, "already_done", f"{job_id} was finished under another lease")
            lenient = outcome == "acked" and "ack-after-expiry" in self.bugs
            if not lenient and not self._holds(job, lease):
                return _error(409, "lease_lost", "the lease expired or was given to another")
            if outcome == "acked" or "nack-drops-job" in self.bugs:
                self.db.execute(
                    "UPDATE jobs SET status = 'done', completions = completions + ?, "
                    "attempts = attempts + ?, lease = NULL, lease_expires_at = NULL "
                    "WHERE seq = ?",
                    (int(outcome == "acked"), int(outcome == "nacked"), job["seq"]),
                )
            else:
                self.db.execute(
                    "UPDATE jobs SET status = 'queued', attempts = attempts + 1, lease = NULL, "
                    "lease_expires_at = NULL WHERE seq = ?",
                    (job["seq"],),
                )
            self.db.execute(
                "UPDATE leases SET outcome = ? WHERE token = ?", (outcome, lease["token"])
            )
            return JSONResponse(self.view(self.by_seq(job["seq"])))

    def set_clock(self, queue: str, advance: int | None, to: int | None) -> JSONResponse:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._ensure_queue(queue)
            now = self.now(queue)
            target = now + advance if advance is not None else to
            assert target is not None
            if target < now:
                return _error(409, "clock_backwards", f"the clock is at {now}, past {target}")
            target = min(target, MAX_TIME)
            self.db.execute("UPDATE queues SET now = ? WHERE name = ?", (target, queue))
        return JSONResponse({"queue": queue, "now": target})


def _integer(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _text(value: Any, low: int, high: int) -> str | None:
    if not isinstance(value, str) or not low <= len(value) <= high:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be stored or sent back
        return None
    return value


def create_app(bugs: frozenset[str] = frozenset()) -> ASGIApp:
    """The jobs app with the named bugs switched on."""
    unknown = set(bugs) - {bug.name for bug in BUGS}
    if unknown:
        raise ValueError(f"unknown jobs bugs: {', '.join(sorted(unknown))}")
    store = _Store(frozenset(bugs))

    def queue_of(request: Request) -> str | JSONResponse:
        queue = request.path_params["queue"]
        if not _QUEUE.fullmatch(queue):
            return _error(422, "invalid_queue", "a queue's name is 1-64 letters, digits, - or _")
        return str(queue)

    async def body_of(request: Request) -> dict[str, Any] | JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        return body

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"service": "jobs"})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def enqueue(request: Request) -> JSONResponse:
        queue = queue_of(request)
        body = await body_of(request)
        if isinstance(queue, JSONResponse):
            return queue
        key = request.headers.get("idempotency-key")
        if key is None or not key:
            return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
        if not _KEY.fullmatch(key):
            return _error(
                400, "invalid_idempotency_key", "an Idempotency-Key is 1-255 printable ASCII"
            )
        if isinstance(body, JSONResponse):
            return body
        payload = _text(body.get("payload"), 0, MAX_PAYLOAD)
        if payload is None:
            return _error(
                422, "invalid_payload", f"payload must be a string of at most {MAX_PAYLOAD}"
            )
        job, created = store.enqueue(queue, key, payload)
        return JSONResponse(job, status_code=201) if created else _replayed(job)

    async def list_jobs(request: Request) -> JSONResponse:
        queue = queue_of(request)
        if isinstance(queue, JSONResponse):
            return queue
        return JSONResponse({"data": store.list(queue)})

    async def lease(request: Request) -> JSONResponse | Response:
        queue = queue_of(request)
        body = await body_of(request)
        if isinstance(queue, JSONResponse):
            return queue
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.fullmatch(key):
            return _error(
                400, "invalid_idempotency_key", "an Idempotency-Key is 1-255 printable ASCII"
            )
        if isinstance(body, JSONResponse):
            return body
        seconds = _integer(body.get("seconds", DEFAULT_SECONDS), 1, MAX_SECONDS)
        if seconds is None:
            return _error(422, "invalid_seconds", f"seconds must be an integer in 1..{MAX_SECONDS}")
        if "race-double-lease" in store.bugs and store.earlier_lease(queue, key) is None:
            # Choose the job, ask the scheduler, then lease it: a second request arriving
            # meanwhile chooses the same job.
            chosen = store.available(queue)
            if chosen is not None:
                await asyncio.sleep(RACE_WINDOW)
                return store.lease(queue, key, seconds, chosen=chosen)
        return store.lease(queue, key, seconds)

    def finishing(outcome: str) -> Any:
        async def finish(request: Request) -> JSONResponse:
            body = await body_of(request)
            if isinstance(body, JSONResponse):
                return body
            token = _text(body.get("lease"), 1, 100)
            if token is None:
                return _error(422, "invalid_lease", "lease must be the token a lease returned")
            return store.finish(request.path_params["job_id"], token, outcome)

        return finish

    async def read_job(request: Request) -> JSONResponse:
        job = store.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "no_such_job", "no such job")
        return JSONResponse(store.view(job))

    async def read_clock(request: Request) -> JSONResponse:
        queue = queue_of(request)
        if isinstance(queue, JSONResponse):
            return queue
        return JSONResponse({"queue": queue, "now": store.now(queue)})

    async def set_clock(request: Request) -> JSONResponse:
        queue = queue_of(request)
        body = await body_of(request)
        if isinstance(queue, JSONResponse):
            return queue
        if isinstance(body, JSONResponse):
            return body
        advance = _integer(body.get("advance"), 0, MAX_ADVANCE)
        to = _integer(body.get("to"), 0, MAX_TIME)
        valid = set(body) in ({"advance"}, {"to"}) and (advance is not None or to is not None)
        if not valid:
            return _error(
                422,
                "invalid_clock",
                f'send {{"advance": 0..{MAX_ADVANCE}}} or {{"to": 0..{MAX_TIME}}}, not both',
            )
        return store.set_clock(queue, advance, to)

    def by_method(get: Any, post: Any) -> Any:
        """One endpoint for a path's GET and POST, so a 405 lists both as allowed."""

        async def endpoint(request: Request) -> Response:
            response: Response = await (post if request.method == "POST" else get)(request)
            return response

        return endpoint

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "message": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/openapi.json", openapi),
            Route("/queues/{queue}/jobs", by_method(list_jobs, enqueue), methods=["GET", "POST"]),
            Route("/queues/{queue}/leases", lease, methods=["POST"]),
            Route(
                "/queues/{queue}/clock", by_method(read_clock, set_clock), methods=["GET", "POST"]
            ),
            Route("/jobs/{job_id}/ack", finishing("acked"), methods=["POST"]),
            Route("/jobs/{job_id}/nack", finishing("nacked"), methods=["POST"]),
            Route("/jobs/{job_id}", read_job),
        ],
        exception_handlers={HTTPException: http_error},
    )


# -- the OpenAPI document ----------------------------------------------------------------


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "The body is not a JSON object, or the Idempotency-Key is missing or invalid.",
        404: "No such job, or no such path.",
        409: "The request conflicts with the job's or the clock's state.",
        422: "A parameter or body field is invalid.",
    }
    return {
        str(status): {"description": described[status], "content": _json(_ref("Error"))}
        for status in statuses
    }


_QUEUE_PARAMETER = {
    "name": "queue",
    "in": "path",
    "required": True,
    "description": "The queue's name (queues exist as soon as they are used).",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}
_JOB_PARAMETER = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "A job's id, as enqueueing it returned.",
    "schema": {"type": "string", "minLength": 1},
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this answers a request seen before (same key or lease).",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_LEASE_BODY = {
    "required": True,
    "content": _json(_ref("LeaseToken")),
}
_TO_JOB = {"job_id": "$response.body#/id"}
_TO_LEASED_JOB = {"job_id": "$response.body#/job/id"}
_SAME_QUEUE = {"queue": "$request.path.queue"}
_JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": _TO_JOB},
    "ListJobs": {"operationId": "listJobs", "parameters": {"queue": "$response.body#/queue"}},
    "LeaseJob": {"operationId": "leaseJob", "parameters": {"queue": "$response.body#/queue"}},
}
_LEASE_LINKS = {
    "AckJob": {
        "operationId": "ackJob",
        "parameters": _TO_LEASED_JOB,
        "requestBody": {"lease": "$response.body#/lease"},
    },
    "NackJob": {
        "operationId": "nackJob",
        "parameters": _TO_LEASED_JOB,
        "requestBody": {"lease": "$response.body#/lease"},
    },
    "GetJob": {"operationId": "getJob", "parameters": _TO_LEASED_JOB},
    "ListJobs": {"operationId": "listJobs", "parameters": _SAME_QUEUE},
}
_CLOCK_LINKS = {
    "LeaseJob": {"operationId": "leaseJob", "parameters": _SAME_QUEUE},
    "ListJobs": {"operationId": "listJobs", "parameters": _SAME_QUEUE},
}

#: The OpenAPI 3.0 document served at ``GET /openapi.json``.
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "jobs",
        "version": "1.0.0",
        "description": "A work queue: idempotent enqueue, leases with expiry on a per-queue "
        "test clock, ack and nack. A sample service of propworkload.",
    },
    "paths": {
        "/": {
            "get": {
                "operationId": "getService",
                "summary": "The service's name.",
                "responses": {
                    "200": {
                        "description": "The service.",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["service"],
                                "properties": {"service": {"type": "string", "enum": ["jobs"]}},
                            }
                        ),
                    }
                },
            }
        },
        "/queues/{queue}/jobs": {
            "parameters": [_QUEUE_PARAMETER],
            "post": {
                "operationId": "enqueueJob",
                "summary": "Enqueue a job, once per Idempotency-Key.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "description": "A retry with the same key answers the original job.",
                        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    }
                ],
                "requestBody": {"required": True, "content": _json(_ref("EnqueueRequest"))},
                "responses": {
                    "201": {
                        "description": "The new job, queued.",
                        "content": _json(_ref("Job")),
                        "links": _JOB_LINKS,
                    },
                    "200": {
                        "description": "The job enqueued earlier with this Idempotency-Key.",
                        "headers": _REPLAYED_HEADER,
                        "content": _json(_ref("Job")),
                        "links": _JOB_LINKS,
                    },
                    **_errors(400, 404, 422),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "The queue's jobs, oldest first.",
                "responses": {
                    "200": {"description": "The jobs.", "content": _json(_ref("JobList"))},
                    **_errors(404, 422),
                },
            },
        },
        "/queues/{queue}/leases": {
            "parameters": [_QUEUE_PARAMETER],
            "post": {
                "operationId": "leaseJob",
                "summary": "Lease the oldest available job (queued, or its lease expired).",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A retry with the same key answers the original lease.",
                        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    }
                ],
                "requestBody": {"required": False, "content": _json(_ref("LeaseRequest"))},
                "responses": {
                    "200": {
                        "description": "The leased job, its lease token and expiry.",
                        "headers": _REPLAYED_HEADER,
                        "content": _json(_ref("Lease")),
                        "links": _LEASE_LINKS,
                    },
                    "204": {"description": "No job is available."},
                    **_errors(400, 404, 422),
                },
            },
        },
        "/queues/{queue}/clock": {
            "parameters": [_QUEUE_PARAMETER],
            "get": {
                "operationId": "getClock",
                "summary": "The queue's test clock.",
                "responses": {
                    "200": {"description": "The clock.", "content": _json(_ref("Clock"))},
                    **_errors(404, 422),
                },
            },
            "post": {
                "operationId": "advanceClock",
                "summary": "Move the queue's test clock forward (leases expire by it).",
                "requestBody": {"required": True, "content": _json(_ref("ClockRequest"))},
                "responses": {
                    "200": {
                        "description": "The clock, moved.",
                        "content": _json(_ref("Clock")),
                        "links": _CLOCK_LINKS,
                    },
                    **_errors(400, 404, 409, 422),
                },
            },
        },
        "/jobs/{job_id}": {
            "parameters": [_JOB_PARAMETER],
            "get": {
                "operationId": "getJob",
                "summary": "A job.",
                "responses": {
                    "200": {"description": "The job.", "content": _json(_ref("Job"))},
                    **_errors(404),
                },
            },
        },
        "/jobs/{job_id}/ack": {
            "parameters": [_JOB_PARAMETER],
            "post": {
                "operationId": "ackJob",
                "summary": "Finish the job under its current lease.",
                "requestBody": _LEASE_BODY,
                "responses": {
                    "200": {
                        "description": "The job, done (again, for the lease that finished it).",
                        "headers": _REPLAYED_HEADER,
                        "content": _json(_ref("Job")),
                        "links": {"GetJob": {"operationId": "getJob", "parameters": _TO_JOB}},
                    },
                    **_errors(400, 404, 409, 422),
                },
            },
        },
        "/jobs/{job_id}/nack": {
            "parameters": [_JOB_PARAMETER],
            "post": {
                "operationId": "nackJob",
                "summary": "Hand the job back for another attempt.",
                "requestBody": _LEASE_BODY,
                "responses": {
                    "200": {
                        "description": "The job, queued again (attempts + 1).",
                        "headers": _REPLAYED_HEADER,
                        "content": _json(_ref("Job")),
                        "links": _JOB_LINKS,
                    },
                    **_errors(400, 404, 409, 422),
                },
            },
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string", "enum": list(_ERROR_CODES)},
                    "message": {"type": "string"},
                },
            },
            "Job": {
                "type": "object",
                "required": [
                    "id",
                    "queue",
                    "idempotency_key",
                    "payload",
                    "status",
                    "attempts",
                    "completions",
                    "lease_expires_at",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "queue": {"type": "string"},
                    "idempotency_key": {"type": "string"},
                    "payload": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "leased", "done"]},
                    "attempts": {"type": "integer", "minimum": 0},
                    "completions": {"type": "integer", "minimum": 0},
                    "lease_expires_at": {"type": "integer", "nullable": True},
                },
            },
            "JobList": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "array", "items": _ref("Job")}},
            },
            "Lease": {
                "type": "object",
                "required": ["job", "lease", "expires_at"],
                "properties": {
                    "job": _ref("Job"),
                    "lease": {"type": "string"},
                    "expires_at": {"type": "integer"},
                },
            },
            "Clock": {
                "type": "object",
                "required": ["queue", "now"],
                "properties": {
                    "queue": {"type": "string"},
                    "now": {"type": "integer", "minimum": 0},
                },
            },
            "EnqueueRequest": {
                "type": "object",
                "required": ["payload"],
                "properties": {"payload": {"type": "string", "maxLength": MAX_PAYLOAD}},
            },
            "LeaseRequest": {
                "type": "object",
                "properties": {
                    "seconds": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_SECONDS,
                        "default": DEFAULT_SECONDS,
                    }
                },
            },
            "LeaseToken": {
                "type": "object",
                "required": ["lease"],
                "properties": {"lease": {"type": "string", "minLength": 1, "maxLength": 100}},
            },
            "ClockRequest": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["advance"],
                        "properties": {
                            "advance": {"type": "integer", "minimum": 0, "maximum": MAX_ADVANCE}
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["to"],
                        "properties": {
                            "to": {"type": "integer", "minimum": 0, "maximum": MAX_TIME}
                        },
                        "additionalProperties": False,
                    },
                ]
            },
        }
    },
}
