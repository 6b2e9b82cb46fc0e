"""Checkout: a shop's orders are created (reserving stock), paid exactly once, fulfilled or
cancelled (releasing stock).

A real HTTP service (Starlette, state in SQLite) with seeded bugs switched on by name.

API (JSON bodies; ``{shop}`` is the tenant, every id is random)::

    GET  /                                   {"service": "checkout"}
    GET  /openapi.json                       the OpenAPI 3.0 document of this API
    PUT  /shops/{shop}/products/{sku}        {"stock": 0..1000000, "price": 1..1000000}
         200 the product {"shop", "sku", "stock", "price"} (created or replaced)
    GET  /shops/{shop}/products/{sku}        200 the product; 404 "no_such_product"
    GET  /shops/{shop}/products              {"data": [products, oldest first]}
    POST /shops/{shop}/orders                {"items": {sku: 1..1000, ...}} (1 to 20 skus),
                                             header Idempotency-Key
         201 the new order, its stock reserved; 200 the order created earlier with this
         key (header Idempotent-Replayed: true); 409 "out_of_stock" (nothing reserved);
         409 "idempotency_key_reused" (the key was used for other items);
         404 "no_such_product"
    POST /orders/{id}/pay                    {"amount": 1..1000000}, header Idempotency-Key
         200 the order, now "paid", with its payment; 200 the order as it is now when this
         key paid it before (header Idempotent-Replayed: true); 409 "already_paid",
         "order_cancelled" or "amount_mismatch" (the amount is not the order's total)
    POST /orders/{id}/fulfil                 200 the order, "fulfilled" (again: unchanged);
                                             409 "not_paid" or "order_cancelled"
    POST /orders/{id}/cancel                 200 the order, "cancelled", its stock released
                                             (again: unchanged); 409 "already_paid"
    GET  /orders/{id}                        200 the order; 404 "no_such_order"
    GET  /shops/{shop}/orders                {"data": [orders, oldest first]}
    GET  /shops/{shop}/payments              {"data": [payments, oldest first]}
    GET  /shops/{shop}                       {"shop", "products", "orders"}: both lists, read
                                             at one moment

An order is ``{"id", "shop", "idempotency_key", "items", "total", "status", "payments"}``:
``total`` is the sum of quantity times price when it was placed, ``status`` one of
``created``, ``paid``, ``fulfilled``, ``cancelled``, ``payments`` the payments taken for
it (at most one), each ``{"id", "amount", "idempotency_key"}``. A payment in the shop's
list is ``{"id", "order", "amount", "idempotency_key"}``. Errors are ``{"error": code,
"message": text}``: 400 ``missing_idempotency_key`` / ``invalid_json``, 422
``invalid_items`` / ``invalid_amount`` / ``invalid_product``, and the 404 and 409 codes
above (unknown paths 404 ``not_found``, other methods 405 ``method_not_allowed``).

Handlers are ``async`` and never await between reading and writing, so requests are
applied one at a time, except with the ``race-...`` bug, which waits (for "the inventory
service") between checking an order (its key, the stock) and placing it, as real services
do; the other bugs are logic errors some sequence of calls reveals, with faults for
``lost-...``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from typing import Any, TypeGuard

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
from ._http import replayed as _replayed

__all__ = ["BUGS", "DESCRIPTION", "OPENAPI", "create_app"]

DESCRIPTION = "orders reserving stock, paid exactly once, fulfilled or cancelled"

BUGS = (
    Bug(
        name="oversell-last-unit",
        description="the stock check lets an order take one unit more than is left (an "
        "off-by-one), so once the last unit is sold the next order takes one more and the "
        "stock goes negative",
        invariant="stock_non_negative",
        minimal_steps=2,
    ),
    Bug(
        name="order-rejects-exact-stock",
        description="an order for exactly the units that are left is refused as out of stock "
        "(an off-by-one in the stock check)",
        invariant="request_accepted",
        minimal_steps=1,
    ),
    Bug(
        name="pay-twice",
        description="a payment is not checked against the order's status, so a paid order "
        "paid again with another Idempotency-Key is charged a second time",
        invariant="paid_once",
        minimal_steps=3,
    ),
    Bug(
        name="pay-any-amount",
        description="the amount of a payment is not compared with the order's total, so an "
        "order is marked paid for any amount",
        invariant="payment_matches_total",
        minimal_steps=2,
    ),
    Bug(
        name="fulfil-unpaid",
        description="fulfil only refuses cancelled orders, not unpaid ones, so goods ship "
        "for orders nobody paid",
        invariant="fulfil_requires_payment",
        minimal_steps=2,
    ),
    Bug(
        name="cancel-paid-order",
        description="cancel only refuses fulfilled orders, so a paid order can be cancelled "
        "(its stock released, its payment kept)",
        invariant="order_lifecycle",
        minimal_steps=3,
    ),
    Bug(
        name="cancel-restocks-twice",
        description="cancelling an order that is already cancelled answers as it should but "
        "releases its stock again",
        invariant="stock_matches_model",
        minimal_steps=3,
    ),
    Bug(
        name="list-total-from-current-price",
        description="the list of a shop's orders recomputes each total from the products' "
        "current prices instead of showing the total the order was placed for",
        invariant="orders_listed",
        minimal_steps=2,
    ),
    Bug(
        name="lost-checkout-retry-duplicates",
        description="an order's Idempotency-Key is stored but never looked up, so the retry "
        "of a checkout whose answer was lost creates a second order and reserves the stock "
        "twice",
        invariant="order_once_per_key",
        minimal_steps=1,
        needs=("faults",),
        faults=("lost-response",),
    ),
    Bug(
        name="race-oversell",
        description="an order's key and stock are checked, then the inventory service is "
        "asked to hold the units, then the order is placed without checking again, so two "
        "orders at once can both take the last unit (or, with one Idempotency-Key, both be "
        "created)",
        invariant="linearizable",
        minimal_steps=2,
        needs=("concurrency",),
    ),
)

MAX_STOCK = 1_000_000
MAX_PRICE = 1_000_000
MAX_QUANTITY = 1000
MAX_ITEMS = 20
MAX_AMOUNT = 1_000_000
#: Seconds the race bug waits (for "the inventory service") between checking and taking.
RACE_WINDOW = 0.05

_SCHEMA = """
-- No UNIQUE constraints on purpose: the service enforces its rules in code, so that the
-- seeded bugs can break them as real bugs do.
CREATE TABLE products (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    shop TEXT NOT NULL,
    sku TEXT NOT NULL,
    stock INTEGER NOT NULL,
    price INTEGER NOT NULL
);
CREATE INDEX products_by_sku ON products (shop, sku);
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    shop TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    items TEXT NOT NULL,  -- JSON {sku: quantity}
    total INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX orders_by_id ON orders (id);
CREATE INDEX orders_by_key ON orders (shop, idempotency_key);
CREATE TABLE payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    order_seq INTEGER NOT NULL REFERENCES orders (seq),
    shop TEXT NOT NULL,
    amount INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL
);
CREATE INDEX payments_by_order ON payments (order_seq, idempotency_key);
CREATE INDEX payments_by_shop ON payments (shop);
"""


def _count(value: Any, low: int, high: int) -> TypeGuard[int]:
    """Whether ``value`` is an integer (not a bool) in ``low..high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class _Store:
    def __init__(self, bugs: frozenset[str]) -> None:
        self.bugs = bugs
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)

    # -- products -----------------------------------------------------------------

    def product(self, shop: str, sku: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM products WHERE shop = ? AND sku = ? ORDER BY seq", (shop, sku)
        ).fetchone()
        return row

    @staticmethod
    def product_view(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "shop": row["shop"],
            "sku": row["sku"],
            "stock": row["stock"],
            "price": row["price"],
        }

    def put_product(self, shop: str, sku: str, stock: int, price: int) -> dict[str, Any]:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.product(shop, sku)
            if row is None:
                self.db.execute(
                    "INSERT INTO products (shop, sku, stock, price) VALUES (?, ?, ?, ?)",
                    (shop, sku, stock, price),
                )
            else:
                self.db.execute(
                    "UPDATE products SET stock = ?, price = ? WHERE seq = ?",
                    (stock, price, row["seq"]),
                )
            saved = self.product(shop, sku)
        assert saved is not None
        return self.product_view(saved)

    def products(self, shop: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM products WHERE shop = ? ORDER BY seq", (shop,))
        return [self.product_view(row) for row in rows]

    # -- orders -------------------------------------------------------------------

    def order_view(self, row: sqlite3.Row, *, listing: bool = False) -> dict[str, Any]:
        items: dict[str, int] = json.loads(row["items"])
        total = row["total"]
        if listing and "list-total-from-current-price" in self.bugs:
            total = 0
            for sku, quantity in items.items():
                product = self.product(row["shop"], sku)
                total += quantity * (product["price"] if product is not None else 0)
        payments = self.db.execute(
            "SELECT * FROM payments WHERE order_seq = ? ORDER BY seq", (row["seq"],)
        ).fetchall()
        return {
            "id": row["id"],
            "shop": row["shop"],
            "idempotency_key": row["idempotency_key"],
            "items": items,
            "total": total,
            "status": row["status"],
            "payments": [
                {
                    "id": payment["id"],
                    "amount": payment["amount"],
                    "idempotency_key": payment["idempotency_key"],
                }
                for payment in payments
            ],
        }

    def order_by_key(self, shop: str, key: str) -> sqlite3.Row | None:
        if "lost-checkout-retry-duplicates" in self.bugs:
            return None
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM orders WHERE shop = ? AND idempotency_key = ? ORDER BY seq",
            (shop, key),
        ).fetchone()
        return row

    def order(self, order_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM orders WHERE id = ? ORDER BY seq", (order_id,)
        ).fetchone()
        return row

    def check_order(
        self, shop: str, key: str, items: dict[str, int]
    ) -> JSONResponse | dict[str, sqlite3.Row]:
        """The answer to an order that is replayed or refused, else its products by sku."""
        earlier = self.order_by_key(shop, key)
        if earlier is not None:
            if json.loads(earlier["items"]) != items:
                return _error(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for an order of other items",
                )
            return _replayed(self.order_view(earlier))
        products = {}
        for sku in items:
            product = self.product(shop, sku)
            if product is None:
                return _error(404, "no_such_product", f"no product {sku!r} in this shop")
            products[sku] = product
        for sku, quantity in items.items():
            stock = products[sku]["stock"]
            if "oversell-last-unit" in self.bugs:
                enough = quantity <= stock + 1
            elif "order-rejects-exact-stock" in self.bugs:
                enough = quantity < stock
            else:
                enough = quantity <= stock
            if not enough:
                return _error(409, "out_of_stock", f"{quantity} of {sku!r} asked for, {stock} left")
        return products

    def place_order(
        self, shop: str, key: str, items: dict[str, int], products: dict[str, sqlite3.Row]
    ) -> dict[str, Any]:
        """Take the stock and record the order (the checks are done)."""
        order_id = f"ord_{secrets.token_hex(6)}"
        total = sum(quantity * products[sku]["price"] for sku, quantity in items.items())
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for sku, quantity in items.items():
                self.db.execute(
                    "UPDATE products SET stock = stock - ? WHERE seq = ?",
                    (quantity, products[sku]["seq"]),
                )
            seq = self.db.execute(
                "INSERT INTO orders (id, shop, idempotency_key, items, total, status) "
                "VALUES (?, ?, ?, ?, ?, 'created')",
                (order_id, shop, key, json.dumps(items), total),
            ).lastrowid
            row = self.db.execute("SELECT * FROM orders WHERE seq = ?", (seq,)).fetchone()
        return self.order_view(row)

    def pay(self, order_id: str, key: str, amount: int) -> JSONResponse:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.order(order_id)
            if row is None:
                return _error(404, "no_such_order", f"no order {order_id}")
            earlier = self.db.execute(
                "SELECT 1 FROM payments WHERE order_seq = ? AND idempotency_key = ?",
                (row["seq"], key),
            ).fetchone()
            if earlier is not None:
                return _replayed(self.order_view(row))
            status = row["status"]
            if status == "cancelled":
                return _error(409, "order_cancelled", f"{order_id} is cancelled")
            if status != "created" and "pay-twice" not in self.bugs:
                return _error(409, "already_paid", f"{order_id} is already paid")
            if amount != row["total"] and "pay-any-amount" not in self.bugs:
                return _error(
                    409,
                    "amount_mismatch",
                    f"the amount {amount} is not the order's total {row['total']}",
                )
            self.db.execute(
                "INSERT INTO payments (id, order_seq, shop, amount, idempotency_key) "
                "VALUES (?, ?, ?, ?, ?)",
                (f"pay_{secrets.token_hex(6)}", row["seq"], row["shop"], amount, key),
            )
            if status == "created":
                self.db.execute("UPDATE orders SET status = 'paid' WHERE seq = ?", (row["seq"],))
            row = self.db.execute("SELECT * FROM orders WHERE seq = ?", (row["seq"],)).fetchone()
        return JSONResponse(self.order_view(row))

    def fulfil(self, order_id: str) -> JSONResponse:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.order(order_id)
            if row is None:
                return _error(404, "no_such_order", f"no order {order_id}")
            status = row["status"]
            if status == "cancelled":
                return _error(409, "order_cancelled", f"{order_id} is cancelled")
            if status == "created" and "fulfil-unpaid" not in self.bugs:
                return _error(409, "not_paid", f"{order_id} is not paid")
            self.db.execute("UPDATE orders SET status = 'fulfilled' WHERE seq = ?", (row["seq"],))
            row = self.db.execute("SELECT * FROM orders WHERE seq = ?", (row["seq"],)).fetchone()
        return JSONResponse(self.order_view(row))

    def cancel(self, order_id: str) -> JSONResponse:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.order(order_id)
            if row is None:
                return _error(404, "no_such_order", f"no order {order_id}")
            status = row["status"]
            refused = ("fulfilled",) if "cancel-paid-order" in self.bugs else ("paid", "fulfilled")
            if status in refused:
                return _error(409, "already_paid", f"{order_id} is paid: it cannot be cancelled")
            if status != "cancelled" or "cancel-restocks-twice" in self.bugs:
                for sku, quantity in json.loads(row["items"]).items():
                    self.db.execute(
                        "UPDATE products SET stock = stock + ? WHERE shop = ? AND sku = ?",
                        (quantity, row["shop"], sku),
                    )
                self.db.execute(
                    "UPDATE orders SET status = 'cancelled' WHERE seq = ?", (row["seq"],)
                )
            row = self.db.execute("SELECT * FROM orders WHERE seq = ?", (row["seq"],)).fetchone()
        return JSONResponse(self.order_view(row))

    def orders(self, shop: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM orders WHERE shop = ? ORDER BY seq", (shop,)
        ).fetchall()
        return [self.order_view(row, listing=True) for row in rows]

    def payments(self, shop: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT payments.*, orders.id AS order_id FROM payments "
            "JOIN orders ON orders.seq = payments.order_seq "
            "WHERE payments.shop = ? ORDER BY payments.seq",
            (shop,),
        ).fetchall()
        return [
            {
                "id": row["id"],
                "order": row["order_id"],
                "amount": row["amount"],
                "idempotency_key": row["idempotency_key"],
            }
            for row in rows
        ]


def _items(body: dict[str, Any]) -> dict[str, int] | None:
    items = body.get("items")
    if not isinstance(items, dict) or not 1 <= len(items) <= MAX_ITEMS:
        return None
    if not all(_count(quantity, 1, MAX_QUANTITY) for quantity in items.values()):
        return None
    return items


def create_app(bugs: frozenset[str] = frozenset()) -> ASGIApp:
    """The checkout app with the named bugs switched on."""
    unknown = set(bugs) - {bug.name for bug in BUGS}
    if unknown:
        raise ValueError(f"unknown checkout bugs: {', '.join(sorted(unknown))}")
    store = _Store(frozenset(bugs))

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"service": "checkout"})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def product(request: Request) -> JSONResponse:
        shop, sku = request.path_params["shop"], request.path_params["sku"]
        if request.method == "PUT":
            body = await _json_body(request, empty=False)
            if body is None:
                return _error(400, "invalid_json", "the body must be a JSON object")
            stock, price = body.get("stock"), body.get("price")
            if not _count(stock, 0, MAX_STOCK) or not _count(price, 1, MAX_PRICE):
                return _error(
                    422,
                    "invalid_product",
                    f"stock must be an integer in 0..{MAX_STOCK}, price in 1..{MAX_PRICE}",
                )
            return JSONResponse(store.put_product(shop, sku, stock, price))
        row = store.product(shop, sku)
        if row is None:
            return _error(404, "no_such_product", f"no product {sku!r} in this shop")
        return JSONResponse(store.product_view(row))

    async def products(request: Request) -> JSONResponse:
        return JSONResponse({"data": store.products(request.path_params["shop"])})

    async def orders(request: Request) -> JSONResponse:
        shop = request.path_params["shop"]
        if request.method == "GET":
            return JSONResponse({"data": store.orders(shop)})
        key = request.headers.get("idempotency-key")
        if not key:
            return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
        body = await _json_body(request, empty=False)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        items = _items(body)
        if items is None:
            return _error(
                422,
                "invalid_items",
                f"items must map 1 to {MAX_ITEMS} skus to quantities in 1..{MAX_QUANTITY}",
            )
        checked = store.check_order(shop, key, items)
        if isinstance(checked, JSONResponse):
            return checked
        if "race-oversell" in store.bugs:
            # Ask the inventory service to hold the units, then place the order as checked
            # before: an order placed meanwhile (the same key, the last unit) was checked
            # against the same state.
            await asyncio.sleep(RACE_WINDOW)
        return JSONResponse(store.place_order(shop, key, items, checked), status_code=201)

    async def pay(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if not key:
            return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
        body = await _json_body(request, empty=False)
        if body is None:
            return _error(400, "invalid_json", "the body must be a JSON object")
        amount = body.get("amount")
        if not _count(amount, 1, MAX_AMOUNT):
            return _error(422, "invalid_amount", f"amount must be an integer in 1..{MAX_AMOUNT}")
        return store.pay(request.path_params["order_id"], key, amount)

    async def fulfil(request: Request) -> JSONResponse:
        return store.fulfil(request.path_params["order_id"])

    async def cancel(request: Request) -> JSONResponse:
        return store.cancel(request.path_params["order_id"])

    async def read_order(request: Request) -> JSONResponse:
        row = store.order(request.path_params["order_id"])
        if row is None:
            return _error(404, "no_such_order", "no such order")
        return JSONResponse(store.order_view(row))

    async def payments(request: Request) -> JSONResponse:
        return JSONResponse({"data": store.payments(request.path_params["shop"])})

    async def overview(request: Request) -> JSONResponse:
        shop = request.path_params["shop"]
        return JSONResponse(
            {"shop": shop, "products": store.products(shop), "orders": store.orders(shop)}
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        # Unknown paths and methods answer in JSON too (with the Allow header for 405).
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
            Route("/shops/{shop}/products", products),
            Route("/shops/{shop}/products/{sku}", product, methods=["GET", "PUT"]),
            Route("/shops/{shop}/orders", orders, methods=["GET", "POST"]),
            Route("/shops/{shop}/payments", payments),
            Route("/shops/{shop}", overview),
            Route("/orders/{order_id}/pay", pay, methods=["POST"]),
            Route("/orders/{order_id}/fulfil", fulfil, methods=["POST"]),
            Route("/orders/{order_id}/cancel", cancel, methods=["POST"]),
            Route("/orders/{order_id}", read_order),
        ],
        exception_handlers={HTTPException: http_error},
    )


# -- the OpenAPI document ------------------------------------------------------------


def _errors(*codes: tuple[int, str]) -> dict[str, Any]:
    return {str(status): _json(_ref("Error"), text) for status, text in codes}


_SHOP = {
    "name": "shop",
    "in": "path",
    "required": True,
    "description": "The shop (tenant) the products, orders and payments belong to.",
    "schema": {"type": "string", "example": "demo"},
}
_SKU = {
    "name": "sku",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "a"},
}
_ORDER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "An order's id, as created.",
    "schema": {"type": "string"},
}
_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "A retry with the same key is answered with the original result.",
    "schema": {"type": "string", "minLength": 1},
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "Present (true) when the answer replays an earlier request's.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_BAD_REQUEST = (400, "missing_idempotency_key, or invalid_json (the body is no JSON object)")


def _order_links() -> dict[str, Any]:
    order_id = {"id": "$response.body#/id"}
    return {
        "GetOrder": {"operationId": "getOrder", "parameters": order_id},
        "PayOrder": {
            "operationId": "payOrder",
            "parameters": order_id,
            "requestBody": {"amount": "$response.body#/total"},
        },
        "FulfilOrder": {"operationId": "fulfilOrder", "parameters": order_id},
        "CancelOrder": {"operationId": "cancelOrder", "parameters": order_id},
    }


def _order_action(operation_id: str, summary: str, *conflicts: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": [_ORDER_ID],
            "responses": {
                "200": _json(_ref("Order"), "The order as it is now."),
                **_errors((404, "no_such_order"), (409, ", ".join(conflicts))),
            },
        }
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "checkout",
        "version": "1.0.0",
        "description": "A propworkload sample service: " + DESCRIPTION + ".",
    },
    "paths": {
        "/": {
            "get": {
                "operationId": "getService",
                "summary": "The service's name.",
                "responses": {"200": _json(_ref("Service"), "The service.")},
            }
        },
        "/shops/{shop}": {
            "get": {
                "operationId": "getShop",
                "summary": "The shop at a glance: its products and its orders, read at once.",
                "parameters": [_SHOP],
                "responses": {"200": _json(_ref("Shop"), "The shop.")},
            }
        },
        "/shops/{shop}/products": {
            "get": {
                "operationId": "listProducts",
                "summary": "The shop's products, oldest first.",
                "parameters": [_SHOP],
                "responses": {"200": _json(_ref("ProductList"), "The products.")},
            }
        },
        "/shops/{shop}/products/{sku}": {
            "put": {
                "operationId": "putProduct",
                "summary": "Create or replace a product: its stock and price.",
                "parameters": [_SHOP, _SKU],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ProductInput")}},
                },
                "responses": {
                    "200": _json(
                        _ref("Product"),
                        "The product.",
                        links={
                            "GetProduct": {
                                "operationId": "getProduct",
                                "parameters": {
                                    "shop": "$request.path.shop",
                                    "sku": "$request.path.sku",
                                },
                            },
                            "CreateOrder": {
                                "operationId": "createOrder",
                                "description": "Order one unit of the product.",
                                "parameters": {"shop": "$request.path.shop"},
                                "requestBody": {"items": {"$response.body#/sku": 1}},
                            },
                        },
                    ),
                    **_errors((400, "invalid_json"), (422, "invalid_product")),
                },
            },
            "get": {
                "operationId": "getProduct",
                "summary": "A product.",
                "parameters": [_SHOP, _SKU],
                "responses": {
                    "200": _json(_ref("Product"), "The product."),
                    **_errors((404, "no_such_product")),
                },
            },
        },
        "/shops/{shop}/orders": {
            "post": {
                "operationId": "createOrder",
                "summary": "Check out: create an order and reserve its stock.",
                "parameters": [_SHOP, _KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("OrderInput")}},
                },
                "responses": {
                    "201": _json(_ref("Order"), "The new order.", links=_order_links()),
                    "200": _json(
                        _ref("Order"),
                        "The order created earlier with this Idempotency-Key, as it is now.",
                        headers=_REPLAYED,
                        links=_order_links(),
                    ),
                    **_errors(
                        _BAD_REQUEST,
                        (404, "no_such_product"),
                        (409, "out_of_stock (nothing reserved), or idempotency_key_reused"),
                        (422, "invalid_items"),
                    ),
                },
            },
            "get": {
                "operationId": "listOrders",
                "summary": "The shop's orders, oldest first.",
                "parameters": [_SHOP],
                "responses": {"200": _json(_ref("OrderList"), "The orders.")},
            },
        },
        "/shops/{shop}/payments": {
            "get": {
                "operationId": "listPayments",
                "summary": "The payments of the shop's orders, oldest first.",
                "parameters": [_SHOP],
                "responses": {"200": _json(_ref("PaymentList"), "The payments.")},
            }
        },
        "/orders/{id}": {
            "get": {
                "operationId": "getOrder",
                "summary": "An order.",
                "parameters": [_ORDER_ID],
                "responses": {
                    "200": _json(_ref("Order"), "The order."),
                    **_errors((404, "no_such_order")),
                },
            }
        },
        "/orders/{id}/pay": {
            "post": {
                "operationId": "payOrder",
                "summary": "Pay an order its total, once.",
                "parameters": [_ORDER_ID, _KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PaymentInput")}},
                },
                "responses": {
                    "200": _json(
                        _ref("Order"),
                        "The order, paid (or as it is now, when this key paid it before).",
                        headers=_REPLAYED,
                        links={
                            "FulfilOrder": {
                                "operationId": "fulfilOrder",
                                "parameters": {"id": "$response.body#/id"},
                            },
                            "CancelOrder": {
                                "operationId": "cancelOrder",
                                "parameters": {"id": "$response.body#/id"},
                            },
                        },
                    ),
                    **_errors(
                        _BAD_REQUEST,
                        (404, "no_such_order"),
                        (409, "already_paid, order_cancelled, or amount_mismatch"),
                        (422, "invalid_amount"),
                    ),
                },
            }
        },
        "/orders/{id}/fulfil": _order_action(
            "fulfilOrder", "Fulfil a paid order.", "not_paid", "order_cancelled"
        ),
        "/orders/{id}/cancel": _order_action(
            "cancelOrder", "Cancel an unpaid order and release its stock.", "already_paid"
        ),
    },
    "components": {
        "schemas": {
            "Service": {
                "type": "object",
                "required": ["service"],
                "properties": {"service": {"type": "string", "enum": ["checkout"]}},
            },
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
            "ProductInput": {
                "type": "object",
                "required": ["stock", "price"],
                "properties": {
                    "stock": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
                    "price": {"type": "integer", "minimum": 1, "maximum": MAX_PRICE},
                },
                "example": {"stock": 3, "price": 5},
            },
            "Product": {
                "type": "object",
                "required": ["shop", "sku", "stock", "price"],
                "properties": {
                    "shop": {"type": "string"},
                    "sku": {"type": "string"},
                    "stock": {"type": "integer", "minimum": 0},
                    "price": {"type": "integer", "minimum": 1},
                },
            },
            "Shop": {
                "type": "object",
                "required": ["shop", "products", "orders"],
                "properties": {
                    "shop": {"type": "string"},
                    "products": {"type": "array", "items": _ref("Product")},
                    "orders": {"type": "array", "items": _ref("Order")},
                },
            },
            "ProductList": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "array", "items": _ref("Product")}},
            },
            "OrderInput": {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {
                        "type": "object",
                        "description": "Quantities by sku.",
                        "minProperties": 1,
                        "maxProperties": MAX_ITEMS,
                        "additionalProperties": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_QUANTITY,
                        },
                    }
                },
                "example": {"items": {"a": 1}},
            },
            "Order": {
                "type": "object",
                "required": [
                    "id",
                    "shop",
                    "idempotency_key",
                    "items",
                    "total",
                    "status",
                    "payments",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "shop": {"type": "string"},
                    "idempotency_key": {"type": "string"},
                    "items": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 1},
                    },
                    "total": {"type": "integer", "minimum": 0},
                    "status": {
                        "type": "string",
                        "enum": ["created", "paid", "fulfilled", "cancelled"],
                    },
                    "payments": {
                        "type": "array",
                        "description": "The payments taken for the order: at most one.",
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["id", "amount", "idempotency_key"],
                            "properties": {
                                "id": {"type": "string"},
                                "amount": {"type": "integer", "minimum": 1},
                                "idempotency_key": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "OrderList": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "array", "items": _ref("Order")}},
            },
            "PaymentInput": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT}},
                "example": {"amount": 5},
            },
            "Payment": {
                "type": "object",
                "required": ["id", "order", "amount", "idempotency_key"],
                "properties": {
                    "id": {"type": "string"},
                    "order": {"type": "string"},
                    "amount": {"type": "integer", "minimum": 1},
                    "idempotency_key": {"type": "string"},
                },
            },
            "PaymentList": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "array", "items": _ref("Payment")}},
            },
        }
    },
}
