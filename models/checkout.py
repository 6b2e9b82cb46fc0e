"""Checkout: an order reserves stock, is paid exactly once, then fulfilled or cancelled;
stock never goes negative; a retried checkout does not create a second order.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/checkout.py
    propworkload run models/checkout.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]

Each command's model function checks the answer against the reference ``Shop`` (products;
orders by Idempotency-Key) and returns the next shop. A request the shop accepts must be
accepted (``request_accepted``); one it refuses is checked under what accepting it breaks
(``stock_non_negative``, ``order_once_per_key``, ``paid_once``, ``payment_matches_total``,
``fulfil_requires_payment``, ``order_lifecycle``). The ``overview`` observation compares
the service's products, orders and payments with the shop. Plain runs, ``--faults`` and
``--concurrency`` (clients racing for the last units) all derive from this description.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import (
    UNKNOWN,
    Model,
    check,
    command,
    expect_status,
    from_state,
    main,
    observation,
    sampled_from_state,
    sometimes,
)

SKUS = ("a", "b")
Items = tuple[tuple[str, int], ...]  # (sku, quantity) pairs, sorted by sku


@attrs.frozen
class Product:
    stock: int
    price: int


#: What every example's shop starts with (``setup`` stocks the service with it).
CATALOG = {"a": Product(stock=2, price=5), "b": Product(stock=5, price=3)}


#: What a request on an order answers, by the order's status (as in ``STATUSES``).
STATUSES = ("created", "paid", "fulfilled", "cancelled")
ANSWERS = {
    "pay": ("paid", "already_paid", "already_paid", "order_cancelled"),
    "fulfil": ("not_paid", "fulfilled", "fulfilled", "order_cancelled"),
    "cancel": ("cancelled", "already_paid", "already_paid", "cancelled"),
}


@attrs.frozen
class Order:
    items: Items
    total: int
    #: None while the order is known only from a request whose answer was lost.
    id: str | None = None
    status: str = "created"
    paid: int | None = None  # the amount of the payment taken for it, if any


@attrs.frozen
class Shop:
    """The reference model: the products by sku and the orders by Idempotency-Key."""

    products: dict[str, Product] = attrs.field(factory=lambda: dict(CATALOG))
    orders: dict[str, Order] = attrs.field(factory=dict)

    def _with(self, key: str, **changes: Any) -> Shop:
        order = attrs.evolve(self.orders[key], **changes)
        return attrs.evolve(self, orders={**self.orders, key: order})

    def _stocked(self, items: Items, sign: int) -> dict[str, Product]:
        products = dict(self.products)
        for sku, n in items:
            products[sku] = attrs.evolve(products[sku], stock=products[sku].stock + sign * n)
        return products

    def order_outcome(self, key: str, items: Items) -> str:
        """``created``, ``replayed`` (this key ordered these items before) or the error."""
        old = self.orders.get(key)
        if old is not None:
            return "replayed" if old.items == items else "idempotency_key_reused"
        fits = all(self.products[sku].stock >= quantity for sku, quantity in items)
        return "created" if fits else "out_of_stock"

    def order(self, key: str, items: Items, order_id: str | None) -> Shop:
        outcome = self.order_outcome(key, items)
        if outcome == "replayed":  # nothing taken; the answer may teach the order's id
            return self._with(key, id=self.orders[key].id or order_id)
        if outcome != "created":
            return self
        total = sum(quantity * self.products[sku].price for sku, quantity in items)
        return Shop(self._stocked(items, -1), {**self.orders, key: Order(items, total, order_id)})

    def answer(self, action: str, key: str) -> str:
        """What the service answers to ``action`` on the order, by the order's status; no
        such order where the linearizability checker tries a client's command before the
        order the client saw (an order of the operations that cannot be)."""
        order = self.orders.get(key)
        return ANSWERS[action][STATUSES.index(order.status)] if order else "no_such_order"

    def cancel(self, key: str) -> Shop:
        order = self.orders[key]
        if order.status != "created":  # cancelling again changes nothing
            return self
        return Shop(self._stocked(order.items, +1), self._with(key, status="cancelled").orders)


def known(shop: Shop, key: str) -> bool:
    """The order exists and its id is known: it can be paid, fulfilled and cancelled."""
    return key in shop.orders and shop.orders[key].id is not None


KNOWN = sampled_from_state(lambda shop: [key for key in shop.orders if known(shop, key)])


def basket(sku: str, quantity: int, also: int) -> Items:
    """``quantity`` of ``sku``, and ``also`` units of the other product."""
    other = {"a": "b", "b": "a"}[sku]
    return tuple(sorted({sku: quantity, **({other: also} if also else {})}.items()))


def outcome(response: httpx.Response, accepted: str) -> str:
    """``accepted`` for a 2xx answer, else the error code."""
    return accepted if response.is_success else str(response.json()["error"])


class Checkout(Model):
    """A shop's checkout: orders reserve stock, are paid once, fulfilled or cancelled."""

    sample = "checkout"
    tenant_prefix = "shop_"
    model_state = Shop

    def setup(self) -> None:
        """Stock the example's fresh shop with the catalog."""
        for sku, product in CATALOG.items():
            self._put(sku, product.stock, product.price)

    def _put(self, sku: str, stock: int, price: int) -> None:
        body = {"stock": stock, "price": price}
        expect_status(self.http.put(f"/shops/{self.tenant}/products/{sku}", json=body), 200)

    # A new key, the shop's next order's (clients at once share it: they race on one key).
    # The boundaries, exactly the units left and one more, come up among plain quantities.
    @command(
        key=from_state(lambda shop: f"o{len(shop.orders)}"),
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 2)
        | from_state(lambda shop, sku: shop.products[sku].stock or 1)
        | from_state(lambda shop, sku: shop.products[sku].stock + 1),
        also=st.integers(0, 1),
        idempotent=True,
    )
    def order(self, key: str, sku: str, quantity: int, also: int) -> dict[str, Any]:
        # Which attempt this is: the answer to a retry is checked as one about the key.
        attempts = self.shared.setdefault("attempts", Counter())
        attempts[self.operation_key] += 1
        response = self.http.post(
            f"/shops/{self.tenant}/orders",
            json={"items": dict(basket(sku, quantity, also))},
            headers={"Idempotency-Key": key},
        )
        status = expect_status(response, 200, 201, 409).status_code
        seen = {201: "created", 200: "replayed"}.get(status) or outcome(response, "")
        sometimes(seen == "out_of_stock", "order refused: out of stock")
        retry = attempts[self.operation_key] > 1
        return {"outcome": seen, "id": response.json().get("id"), "retry": retry}

    @order.model
    def order(shop: Shop, out: Any, key: str, sku: str, quantity: int, also: int) -> Shop:
        items = basket(sku, quantity, also)
        if out is UNKNOWN:
            return shop.order(key, items, None)
        expected, seen = shop.order_outcome(key, items), out["outcome"]
        # A new key may be answered as a replay: an attempt whose answer was lost made it.
        seen = "created" if (expected, seen) == ("created", "replayed") else seen
        # A retry refused where a first attempt is accepted: the key was not honoured.
        accepts = "order_once_per_key" if out["retry"] else "request_accepted"
        names = {"created": accepts, "out_of_stock": "stock_non_negative"}
        name = names.get(expected, "order_once_per_key")
        check(name, expected=expected, actual=seen, key=key, items=dict(items))
        return shop.order(key, items, out["id"]) if out["id"] else shop

    # Not idempotent, as fulfil: a copy that lands after another client's order (a PUT of
    # the stock) or payment (a fulfil refused before it) does something the first did not.
    @command(sku=st.sampled_from(SKUS), stock=st.integers(0, 3), price=st.integers(1, 9))
    def restock(self, sku: str, stock: int, price: int) -> None:
        """Set a product's stock and price (orders placed before keep their total)."""
        self._put(sku, stock, price)

    @restock.model
    def restock(shop: Shop, out: None, sku: str, stock: int, price: int) -> Shop:
        return attrs.evolve(shop, products={**shop.products, sku: Product(stock, price)})

    @command(
        key=KNOWN,
        amount=from_state(lambda shop, key: shop.orders[key].total)  # or one more: wrong
        | from_state(lambda shop, key: shop.orders[key].total + 1),
        requires=known,
        idempotent=True,
    )
    def pay(self, key: str, amount: int) -> str:
        response = self.http.post(
            f"/orders/{self.state.orders[key].id}/pay",
            json={"amount": amount},
            headers={"Idempotency-Key": self.operation_key},
        )
        return outcome(expect_status(response, 200, 409), "paid")

    @pay.model
    def pay(shop: Shop, seen: str, key: str, amount: int) -> Shop:
        expected = shop.answer("pay", key)
        if expected == "paid" and amount != shop.orders[key].total:
            expected = "amount_mismatch"
        if seen is not UNKNOWN:
            names = {"already_paid": "paid_once", "amount_mismatch": "payment_matches_total"}
            name = "request_accepted" if expected == "paid" else names.get(expected)
            check(name or "order_lifecycle", expected=expected, actual=seen, key=key)
        return shop._with(key, status="paid", paid=amount) if expected == "paid" else shop

    @command(key=KNOWN, requires=known)
    def fulfil(self, key: str) -> str:
        response = self.http.post(f"/orders/{self.state.orders[key].id}/fulfil")
        return outcome(expect_status(response, 200, 409), "fulfilled")

    @fulfil.model
    def fulfil(shop: Shop, seen: str, key: str) -> Shop:
        expected = shop.answer("fulfil", key)
        if seen is not UNKNOWN:
            name = "request_accepted" if expected == "fulfilled" else "fulfil_requires_payment"
            check(name, expected=expected, actual=seen, key=key)
        return shop._with(key, status="fulfilled") if expected == "fulfilled" else shop

    @command(key=KNOWN, requires=known, idempotent=True)
    def cancel(self, key: str) -> str:
        response = self.http.post(f"/orders/{self.state.orders[key].id}/cancel")
        return outcome(expect_status(response, 200, 409), "cancelled")

    @cancel.model
    def cancel(shop: Shop, seen: str, key: str) -> Shop:
        expected = shop.answer("cancel", key)
        if seen is not UNKNOWN:
            name = "request_accepted" if expected == "cancelled" else "order_lifecycle"
            check(name, expected=expected, actual=seen, key=key)
        return shop.cancel(key) if expected == "cancelled" else shop

    @observation
    def overview(self) -> dict[str, Any]:
        """The shop as the service shows it: products and orders, read at one moment."""
        seen = expect_status(self.http.get(f"/shops/{self.tenant}"), 200).json()
        orders = []
        for o in seen["orders"]:
            items = tuple(sorted(o["items"].items()))
            payments = [p["amount"] for p in o["payments"]]
            orders.append((o["idempotency_key"], o["id"], items, o["total"], o["status"], payments))
        products = {p["sku"]: (p["stock"], p["price"]) for p in seen["products"]}
        return {"products": products, "orders": orders}

    @overview.model
    def overview(shop: Shop, seen: dict[str, Any]) -> Shop:
        listed, products = seen["orders"], seen["products"]
        negative = sorted(sku for sku, (stock, _) in products.items() if stock < 0)
        check("stock_non_negative", expected=[], actual=negative)
        twice = sorted(key for key, n in Counter(o[0] for o in listed).items() if n > 1)
        check("order_once_per_key", expected=[], actual=twice)
        ids = {key: order_id for key, order_id, *_ in listed}
        # The payments of the orders both sides know (which orders exist: orders_listed).
        payments = {key: amounts for key, *_, amounts in listed if key in shop.orders}
        expected = {k: [o.paid] if o.paid else [] for k, o in shop.orders.items() if k in ids}
        counts = {k: len(v) for k, v in payments.items()}
        check("paid_once", expected={k: len(v) for k, v in expected.items()}, actual=counts)
        check("payment_matches_total", expected=expected, actual=payments)
        # Sorted by key: a shop is a dict, equal whatever order its orders came in.
        model = [
            (k, o.id or ids.get(k), o.items, o.total, o.status) for k, o in shop.orders.items()
        ]
        check("orders_listed", expected=sorted(model), actual=sorted(o[:5] for o in listed))
        stock = {sku: (p.stock, p.price) for sku, p in shop.products.items()}
        check("stock_matches_model", expected=stock, actual=products)
        # The listing teaches the ids of orders whose answer was lost.
        learned = {k: attrs.evolve(o, id=o.id or ids.get(k)) for k, o in shop.orders.items()}
        return attrs.evolve(shop, orders=learned)


if __name__ == "__main__":
    main(Checkout)
