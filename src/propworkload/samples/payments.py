"""Payments: charges with idempotency keys, partial and full refunds, a customer balance.

A real HTTP service (Starlette, state in SQLite) with seeded bugs switched on by name.

API (JSON bodies)::

    GET  /                                  {"service": "payments"}
    POST /customers/{customer}/charges      {"amount": 1..1000000}, header Idempotency-Key
         201 the new charge; 200 the original charge when the key was seen before
    POST /charges/{id}/refunds              {"amount": n} partial, {} full (what remains);
                                            optional header Idempotency-Key
         201 {"id", "charge", "amount"}; 409 {"error": "refund_exceeds_charge"}
         or {"error": "already_refunded"}; a key seen before for this charge answers
         201 with the original refund (409 "idempotency_key_reused" if the amount differs)
    GET  /charges/{id}                      the charge
    GET  /customers/{customer}/charges      {"data": [charges, oldest first]}
    GET  /customers/{customer}/balance      {"customer", "balance"}: charged minus refunded
    GET  /openapi.json                      this API as an OpenAPI 3.0 document
    GET  /_stats/requests                   {"requests": {"POST /path key": n}}: how many
                                            requests the service received, by method, path
                                            and Idempotency-Key (the tests' ground truth)

A charge is ``{"id", "customer", "idempotency_key", "amount", "refunded", "status"}``.

Handlers are ``async`` and never await between reading and writing, so requests are
applied one at a time, except with the ``race-...`` bugs, which wait (for "the card
processor") between reading and writing, as real services do; the other bugs are logic
errors some sequence of calls reveals, with faults for ``lost-...``/``deliver-...``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sqlite3
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ._bugs import Bug
from ._http import error as _error
from ._http import json_object as _json_body
from ._http import json_response as _json

__all__ = ["BUGS", "DESCRIPTION", "OPENAPI", "create_app"]

DESCRIPTION = "charges with idempotency keys, partial and full refunds, a customer balance"

BUGS = (
    Bug(
        name="retry-after-refund",
        description="a retry with the same Idempotency-Key after a refund creates a second "
        "charge (the key lookup skips refunded charges)",
        invariant="charged_once",
        minimal_steps=3,
    ),
    Bug(
        name="refund-over-remaining",
        description="a partial refund is checked against the charge's amount, not what "
        "remains of it, so refunds can add up to more than the charge",
        invariant="refund_within_charge",
        minimal_steps=3,
    ),
    Bug(
        name="refund-refunded",
        description="a full refund of a charge that is already fully refunded is accepted "
        "and refunds the whole amount again",
        invariant="refund_within_charge",
        minimal_steps=3,
    ),
    Bug(
        name="refund-rejects-exact-remaining",
        description="a partial refund of exactly what remains of a charge is rejected "
        "(an off-by-one in the limit check)",
        invariant="refund_accepted",
        minimal_steps=2,
    ),
    Bug(
        name="balance-negative",
        description="a full refund after a partial one debits the whole charge from the "
        "balance, which goes negative",
        invariant="balance_non_negative",
        minimal_steps=3,
    ),
    Bug(
        name="retry-credits-balance",
        description="a retry returns the original charge but credits the balance again",
        invariant="balance_matches_model",
        minimal_steps=2,
    ),
    Bug(
        name="same-amount-same-id",
        description="charge ids derive from customer and amount, so two charges of the same "
        "amount get the same id",
        invariant="unique_ids",
        minimal_steps=2,
    ),
    Bug(
        name="list-hides-partial-refund",
        description="the list of a customer's charges shows partially refunded charges as "
        "not refunded at all",
        invariant="charges_listed",
        minimal_steps=2,
    ),
    Bug(
        name="duplicate-delivery-refunds-twice",
        description="a refund's Idempotency-Key is stored but never looked up, so a refund "
        "delivered twice (a duplicate, or a retry after a lost answer) is applied twice",
        invariant="balance_matches_model",
        minimal_steps=2,
        needs=("faults",),
        faults=("duplicate",),
    ),
    Bug(
        name="lost-refund-retry-rejected",
        description="a refund is checked against what remains before its Idempotency-Key is "
        "looked up, so the retry of a full refund whose answer was lost is told the charge "
        "is already refunded, though the refund happened",
        invariant="refund_accepted",
        minimal_steps=2,
        needs=("faults",),
        faults=("lost-response",),
    ),
    Bug(
        name="race-same-key-double-charge",
        description="the card is authorised between looking up the Idempotency-Key and "
        "recording the charge, so two concurrent requests with a new key both charge",
        invariant="linearizable",
        minimal_steps=2,
        needs=("concurrency",),
    ),
    Bug(
        name="race-refund-lost-update",
        description="a refund writes the refunded total it read before asking the "
        "processor, so of two concurrent refunds one is lost from the charge (but not "
        "from the balance)",
        invariant="linearizable",
        minimal_steps=3,
        needs=("concurrency",),
    ),
    Bug(
        name="read-stale-refund",
        description="reading a charge serves it from a cache that refunds do not invalidate",
        invariant="read_your_writes",
        minimal_steps=2,
    ),
)

MAX_AMOUNT = 1_000_000
#: Seconds the race bugs wait (for "the card processor") between reading and writing.
RACE_WINDOW = 0.02

_SCHEMA = """
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL DEFAULT 0
);
-- No UNIQUE constraints on purpose: the service enforces its rules in code, so that the
-- seeded bugs can break them as real bugs do.
CREATE TABLE charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    customer TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    amount INTEGER NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX charges_by_id ON charges (id);
CREATE INDEX charges_by_key ON charges (customer, idempotency_key);
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    charge_seq INTEGER NOT NULL REFERENCES charges (seq),
    amount INTEGER NOT NULL,
    idempotency_key TEXT,
    requested INTEGER  -- the amount asked for; NULL for a full refund
);
CREATE INDEX refunds_by_key ON refunds (charge_seq, idempotency_key);
"""


_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_CHARGE = {
    "type": "object",
    "required": ["id", "customer", "idempotency_key", "amount", "refunded", "status"],
    "properties": {
        "id": {"type": "string"},
        "customer": {"type": "string"},
        "idempotency_key": {"type": "string"},
        "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
        "refunded": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": ["succeeded", "partially_refunded", "refunded"]},
    },
}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


#: Idempotency keys: 1 to 255 printable ASCII characters, no spaces (as Stripe's).
_KEY = re.compile(r"[!-~]{1,255}")
_KEY_RULE = "an Idempotency-Key is 1 to 255 printable ASCII characters without spaces"
_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}
_CHARGE_LINKS = {
    "RefundCharge": {
        "operationId": "createRefund",
        "parameters": {"charge_id": "$response.body#/id"},
    },
    "ReadCharge": {"operationId": "readCharge", "parameters": {"charge_id": "$response.body#/id"}},
    "ListCharges": {
        "operationId": "listCharges",
        "parameters": {"customer": "$response.body#/customer"},
    },
    "Balance": {"operationId": "balance", "parameters": {"customer": "$response.body#/customer"}},
}
_AMOUNT = {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT}
_AMOUNT_BODY = {"type": "object", "properties": {"amount": _AMOUNT}}

#: The API as an OpenAPI 3.0 document (served at ``/openapi.json``), with links from a
#: new charge to the operations that take its id, for tools that chain calls.
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "payments (propworkload sample service)", "version": "1.0"},
    "paths": {
        "/customers/{customer}/charges": {
            "parameters": [_path_param("customer")],
            "post": {
                "operationId": "createCharge",
                "parameters": [{**_KEY_HEADER, "required": True}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {**_AMOUNT_BODY, "required": ["amount"]}}
                    },
                },
                "responses": {
                    "201": _json(_CHARGE, "the new charge", links=_CHARGE_LINKS),
                    "200": _json(_CHARGE, "the charge made earlier with this key"),
                    "400": _json(_ERROR, "no Idempotency-Key, or not a JSON object"),
                    "422": _json(_ERROR, "invalid amount"),
                },
            },
            "get": {
                "operationId": "listCharges",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": _CHARGE}},
                        },
                        "the customer's charges, oldest first",
                    )
                },
            },
        },
        "/customers/{customer}/balance": {
            "parameters": [_path_param("customer")],
            "get": {
                "operationId": "balance",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["customer", "balance"],
                            "properties": {
                                "customer": {"type": "string"},
                                "balance": {"type": "integer", "minimum": 0},
                            },
                        },
                        "charged minus refunded",
                    )
                },
            },
        },
        "/charges/{charge_id}": {
            "parameters": [_path_param("charge_id")],
            "get": {
                "operationId": "readCharge",
                "responses": {
                    "200": _json(_CHARGE, "the charge"),
                    "404": _json(_ERROR, "no such charge"),
                },
            },
        },
        "/charges/{charge_id}/refunds": {
            "parameters": [_path_param("charge_id")],
            "post": {
                "operationId": "createRefund",
                "parameters": [_KEY_HEADER],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                # No amount (or null): refund all that remains.
                                "properties": {"amount": {**_AMOUNT, "nullable": True}},
                            }
                        }
                    }
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["id", "charge", "amount"],
                            "properties": {
                                "id": {"type": "string"},
                                "charge": {"type": "string"},
                                "amount": {"type": "integer", "minimum": 1},
                            },
                        },
                        "the refund (or the earlier one with this key)",
                    ),
                    "400": _json(_ERROR, "not a JSON object"),
                    "404": _json(_ERROR, "no such charge"),
                    "409": _json(_ERROR, "more than remains, already refunded, or key reused"),
                    "422": _json(_ERROR, "invalid amount"),
                },
            },
        },
    },
}


def _status(amount: int, refunded: int) -> str:
    if refunded == 0:
        return "succeeded"
    return "refunded" if refunded >= amount else "partially_refunded"


class _Store:
    def __init__(self, bugs: frozenset[str]) -> None:
        self.bugs = bugs
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        # Only used with read-stale-refund: charges as they were when last read or created.
        self.read_cache: dict[str, dict[str, Any]] = {}

    def view(self, row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "customer": row["customer"],
            "idempotency_key": row["idempotency_key"],
            "amount": row["amount"],
            "refunded": row["refunded"],
            "status": _status(row["amount"], row["refunded"]),
        }

    def new_charge_id(self, customer: str, amount: int) -> str:
        if "same-amount-same-id" in self.bugs:
            digest = hashlib.sha256(f"{customer}:{amount}".encode()).hexdigest()
            return f"ch_{digest[:12]}"
        return f"ch_{secrets.token_hex(6)}"

    def find_by_key(self, customer: str, key: str) -> sqlite3.Row | None:
        query = "SELECT * FROM charges WHERE customer = ? AND idempotency_key = ?"
        if "retry-after-refund" in self.bugs:
            query += " AND refunded = 0"
        row: sqlite3.Row | None = self.db.execute(
            query + " ORDER BY seq", (customer, key)
        ).fetchone()
        return row

    def charge(
        self, customer: str, key: str, amount: int, *, looked_up: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """The charge for ``key`` and whether it was created now. ``looked_up``: the
        caller already found no charge for the key (race-same-key-double-charge)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            existing = None if looked_up else self.find_by_key(customer, key)
            if existing is not None:
                if "retry-credits-balance" in self.bugs:
                    self._credit(customer, existing["amount"])
                return self.view(existing), False
            charge_id = self.new_charge_id(customer, amount)
            seq = self.db.execute(
                "INSERT INTO charges (id, customer, idempotency_key, amount) VALUES (?, ?, ?, ?)",
                (charge_id, customer, key, amount),
            ).lastrowid
            self._credit(customer, amount)
            row = self.db.execute("SELECT * FROM charges WHERE seq = ?", (seq,)).fetchone()
        view = self.view(row)
        if "read-stale-refund" in self.bugs:
            self.read_cache[charge_id] = view
        return view, True

    def _credit(self, customer: str, amount: int) -> None:
        self.db.execute(
            "INSERT INTO customers (id, balance) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance",
            (customer, amount),
        )

    def get(self, charge_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM charges WHERE id = ? ORDER BY seq", (charge_id,)
        ).fetchone()
        return row

    def _earlier_refund(self, charge_seq: int, key: str | None) -> sqlite3.Row | None:
        if key is None or "duplicate-delivery-refunds-twice" in self.bugs:
            return None
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM refunds WHERE charge_seq = ? AND idempotency_key = ?",
            (charge_seq, key),
        ).fetchone()
        return row

    def _replayed(
        self, charge_id: str, earlier: sqlite3.Row, requested: int | None
    ) -> JSONResponse:
        if earlier["requested"] != requested:
            return _error(
                409, "idempotency_key_reused", "this Idempotency-Key was used for another refund"
            )
        return JSONResponse(
            {"id": earlier["id"], "charge": charge_id, "amount": earlier["amount"]},
            status_code=201,
            headers={"Idempotent-Replayed": "true"},
        )

    def refund(
        self,
        charge_id: str,
        amount: int | None,
        key: str | None,
        *,
        snapshot: sqlite3.Row | None = None,
    ) -> JSONResponse:
        """Refund ``amount`` of the charge. ``snapshot``: the charge as the caller read
        it earlier, to decide and write with (race-refund-lost-update)."""
        requested = amount
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = snapshot if snapshot is not None else self.get(charge_id)
            if row is None:
                return _error(404, "no_such_charge", f"no charge {charge_id}")
            earlier = self._earlier_refund(row["seq"], key)
            if earlier is not None and "lost-refund-retry-rejected" not in self.bugs:
                return self._replayed(charge_id, earlier, requested)
            remaining = row["amount"] - row["refunded"]
            debit: int
            if amount is None:  # full refund: whatever remains
                if remaining == 0:
                    if "refund-refunded" not in self.bugs:
                        return _error(409, "already_refunded", f"{charge_id} is fully refunded")
                    remaining = row["amount"]
                amount = remaining
                debit = amount
                if "balance-negative" in self.bugs and row["refunded"] > 0:
                    debit = row["amount"]
            else:
                limit = row["amount"] if "refund-over-remaining" in self.bugs else remaining
                off_by_one = "refund-rejects-exact-remaining" in self.bugs and amount == limit
                if amount > limit or off_by_one:
                    return _error(
                        409,
                        "refund_exceeds_charge",
                        f"refund of {amount} exceeds the {remaining} that remains",
                    )
                debit = amount
            if earlier is not None:  # only with lost-refund-retry-rejected
                return self._replayed(charge_id, earlier, requested)
            refund_id = f"re_{secrets.token_hex(6)}"
            # With a snapshot the new total is computed from it: a lost update when another
            # refund was written in between.
            if snapshot is not None:
                self.db.execute(
                    "UPDATE charges SET refunded = ? WHERE seq = ?",
                    (row["refunded"] + amount, row["seq"]),
                )
            else:
                self.db.execute(
                    "UPDATE charges SET refunded = refunded + ? WHERE seq = ?",
                    (amount, row["seq"]),
                )
            self.db.execute(
                "INSERT INTO refunds (id, charge_seq, amount, idempotency_key, requested) "
                "VALUES (?, ?, ?, ?, ?)",
                (refund_id, row["seq"], amount, key, requested),
            )
            self._credit(row["customer"], -debit)
        if "read-stale-refund" not in self.bugs:
            self.read_cache.pop(charge_id, None)
        return JSONResponse(
            {"id": refund_id, "charge": charge_id, "amount": amount}, status_code=201
        )

    def read(self, charge_id: str) -> dict[str, Any] | None:
        if "read-stale-refund" in self.bugs and charge_id in self.read_cache:
            return self.read_cache[charge_id]
        row = self.get(charge_id)
        if row is None:
            return None
        view = self.view(row)
        if "read-stale-refund" in self.bugs:
            self.read_cache[charge_id] = view
        return view

    def list(self, customer: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM charges WHERE customer = ? ORDER BY seq", (customer,)
        ).fetchall()
        views = [self.view(row) for row in rows]
        if "list-hides-partial-refund" in self.bugs:
            for view in views:
                if view["refunded"] < view["amount"]:
                    view["refunded"] = 0
                    view["status"] = "succeeded"
        return views

    def balance(self, customer: str) -> int:
        row = self.db.execute("SELECT balance FROM customers WHERE id = ?", (customer,)).fetchone()
        return int(row["balance"]) if row else 0


def _amount(body: dict[str, Any], *, required: bool) -> int | JSONResponse | None:
    amount = body.get("amount")
    if amount is None and not required:
        return None
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
        return _error(422, "invalid_amount", f"amount must be an integer in 1..{MAX_AMOUNT}")
    return amount


def create_app(bugs: frozenset[str] = frozenset()) -> ASGIApp:
    """The payments app with the named bugs switched on."""
    unknown = set(bugs) - {bug.name for bug in BUGS}
    if unknown:
        raise ValueError(f"unknown payments bugs: {', '.join(sorted(unknown))}")
    store = _Store(frozenset(bugs))

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"service": "payments"})

    async def create_charge(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if not key:
            return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
        if not _KEY.fullmatch(key):
            return _error(400, "invalid_idempotency_key", _KEY_RULE)
        body = await _json_body(request)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        amount = _amount(body, required=True)
        if isinstance(amount, JSONResponse):
            return amount
        assert amount is not None
        customer = request.path_params["customer"]
        if "race-same-key-double-charge" in store.bugs and store.find_by_key(customer, key) is None:
            # Authorise the card before recording the key: a second request with the same
            # key arriving meanwhile finds no charge either.
            await asyncio.sleep(RACE_WINDOW)
            charge, created = store.charge(customer, key, amount, looked_up=True)
        else:
            charge, created = store.charge(customer, key, amount)
        if created:
            return JSONResponse(charge, status_code=201)
        return JSONResponse(charge, status_code=200, headers={"Idempotent-Replayed": "true"})

    async def create_refund(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        amount = _amount(body, required=False)
        if isinstance(amount, JSONResponse):
            return amount
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.fullmatch(key):
            return _error(400, "invalid_idempotency_key", _KEY_RULE)
        charge_id = request.path_params["charge_id"]
        if "race-refund-lost-update" in store.bugs:
            # Read the charge, ask the processor, then write what was read plus the refund.
            snapshot = store.get(charge_id)
            await asyncio.sleep(RACE_WINDOW)
            if snapshot is not None:
                return store.refund(charge_id, amount, key, snapshot=snapshot)
        return store.refund(charge_id, amount, key)

    async def charges(request: Request) -> JSONResponse:
        # One route for both methods, so that a 405 lists both in its Allow header.
        if request.method == "POST":
            return await create_charge(request)
        return await list_charges(request)

    async def read_charge(request: Request) -> JSONResponse:
        charge = store.read(request.path_params["charge_id"])
        if charge is None:
            return _error(404, "no_such_charge", "no such charge")
        return JSONResponse(charge)

    async def list_charges(request: Request) -> JSONResponse:
        return JSONResponse({"data": store.list(request.path_params["customer"])})

    async def balance(request: Request) -> JSONResponse:
        customer = request.path_params["customer"]
        return JSONResponse({"customer": customer, "balance": store.balance(customer)})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def request_counts(request: Request) -> JSONResponse:
        return JSONResponse({"requests": dict(received)})

    app = Starlette(
        routes=[
            Route("/_stats/requests", request_counts),
            Route("/", index),
            Route("/openapi.json", openapi),
            Route("/customers/{customer}/charges", charges, methods=["GET", "POST"]),
            Route("/customers/{customer}/balance", balance),
            Route("/charges/{charge_id}/refunds", create_refund, methods=["POST"]),
            Route("/charges/{charge_id}", read_charge),
        ]
    )
    received: Counter[str] = Counter()

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_stats/"):
            headers = dict(scope["headers"])
            key = headers.get(b"idempotency-key", b"").decode("latin-1")
            received[f"{scope['method']} {scope['path']} {key}".rstrip()] += 1
        await app(scope, receive, send)

    return counted
