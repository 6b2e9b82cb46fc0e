"""Checkout: an order reserves stock, is paid exactly once, then fulfilled or cancelled;
stock never goes negative; a retried checkout does not create a second order.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/checkout.py
    propworkload run models/checkout.py --url http://127.0.0.1:8000

The reference model is a frozen ``Shop``: its products (stock, price) and its orders by
Idempotency-Key; each transition returns a new shop. Every example stocks a fresh shop
(``reset``) with the ``CATALOG``; rules order (one of the ``BASKETS``), pay (the total, or
a wrong amount), fulfil, cancel and restock, and check each answer against the shop;
``service_matches_model`` compares the service's products, orders and payments with it
after every step. With ``--concurrency K``, clients at once order the last units of one
product, pay and read its stock (the operations at the end of the class).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import (
    UNKNOWN,
    Bundle,
    Model,
    Possible,
    invariant,
    main,
    multiple,
    operation,
    precondition,
    rule,
    sometimes,
)

SKUS = ("a", "b")
#: What the ``order`` rule orders, simplest first (shrinking goes there). Each fits the
#: catalog's stock (see ``Checkout.CATALOG``), so the first order of an example is always
#: accepted; later ones find the stock used up: the one unit of a, some or all of b.
BASKETS = (
    {"b": 1},
    {"a": 1},
    {"b": 2},
    {"a": 1, "b": 1},
    {"b": 3},
    {"a": 1, "b": 2},
)
#: Concurrent mode: the product clients race for (the catalog holds one unit of it).
RACED = "a"

#: What an order's outcome answers: accepted (201 or 200) or the error code.
ACCEPTED = ("created", "replayed")


@attrs.frozen
class Product:
    stock: int
    price: int

    def view(self) -> dict[str, int]:
        return {"stock": self.stock, "price": self.price}


@attrs.frozen
class Order:
    """An order as the model expects it."""

    key: str
    #: None while the order is only known from a request whose answer never came.
    id: str | None
    #: (sku, quantity) pairs, sorted by sku.
    items: tuple[tuple[str, int], ...]
    total: int
    status: str = "created"
    #: The Idempotency-Key and amount of the payment the service took, if any.
    pay_key: str | None = None
    paid: int | None = None

    def view(self) -> dict[str, Any]:
        """What the service should list for this order."""
        return {
            "key": self.key,
            "id": self.id,
            "items": dict(self.items),
            "total": self.total,
            "status": self.status,
        }


def _items(items: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(items.items()))


@attrs.frozen
class Shop:
    """The reference model: the shop's products by sku and orders by Idempotency-Key."""

    products: dict[str, Product] = attrs.field(factory=dict)
    orders: dict[str, Order] = attrs.field(factory=dict)

    def stock(self) -> dict[str, dict[str, int]]:
        return {sku: product.view() for sku, product in sorted(self.products.items())}

    def restock(self, sku: str, stock: int, price: int) -> Shop:
        products = {**self.products, sku: Product(stock=stock, price=price)}
        return attrs.evolve(self, products=products)

    # -- orders ---------------------------------------------------------------------

    def order_outcome(self, key: str, items: tuple[tuple[str, int], ...]) -> str:
        """What the service answers to an order: ``created``, ``replayed`` (the key
        ordered before), or the error code."""
        existing = self.orders.get(key)
        if existing is not None:
            return "replayed" if existing.items == items else "idempotency_key_reused"
        if any(sku not in self.products for sku, _ in items):
            return "no_such_product"
        if any(self.products[sku].stock < quantity for sku, quantity in items):
            return "out_of_stock"
        return "created"

    def order(self, key: str, order_id: str | None, items: tuple[tuple[str, int], ...]) -> Shop:
        """The shop once the order for ``key`` is sent: created with its stock taken if it
        is accepted; ordering a key again changes nothing but may teach the order's id."""
        outcome = self.order_outcome(key, items)
        if outcome == "replayed":
            existing = self.orders[key]
            if existing.id is not None or order_id is None:
                return self
            return attrs.evolve(
                self, orders={**self.orders, key: attrs.evolve(existing, id=order_id)}
            )
        if outcome != "created":
            return self
        products = dict(self.products)
        for sku, quantity in items:
            products[sku] = attrs.evolve(products[sku], stock=products[sku].stock - quantity)
        total = sum(quantity * self.products[sku].price for sku, quantity in items)
        order = Order(key=key, id=order_id, items=items, total=total)
        return Shop(products=products, orders={**self.orders, key: order})

    def _with(self, order: Order) -> Shop:
        return attrs.evolve(self, orders={**self.orders, order.key: order})

    # -- payments -------------------------------------------------------------------

    def pay_outcome(self, key: str, amount: int, pay_key: str) -> str:
        """``paid``, ``replayed`` (this payment was taken before), or the error code."""
        order = self.orders.get(key)
        if order is None:
            return "no_such_order"
        if order.pay_key == pay_key:
            return "replayed"
        if order.status == "cancelled":
            return "order_cancelled"
        if order.status != "created":
            return "already_paid"
        if amount != order.total:
            return "amount_mismatch"
        return "paid"

    def pay(self, key: str, amount: int, pay_key: str) -> Shop:
        if self.pay_outcome(key, amount, pay_key) != "paid":
            return self
        order = self.orders[key]
        return self._with(attrs.evolve(order, status="paid", pay_key=pay_key, paid=amount))

    # -- fulfil and cancel ----------------------------------------------------------

    def fulfil_outcome(self, key: str) -> str:
        status = self.orders[key].status
        if status in ("paid", "fulfilled"):
            return "fulfilled"
        return "order_cancelled" if status == "cancelled" else "not_paid"

    def fulfil(self, key: str) -> Shop:
        if self.fulfil_outcome(key) != "fulfilled":
            return self
        return self._with(attrs.evolve(self.orders[key], status="fulfilled"))

    def cancel_outcome(self, key: str) -> str:
        return (
            "cancelled" if self.orders[key].status in ("created", "cancelled") else "already_paid"
        )

    def cancel(self, key: str) -> Shop:
        order = self.orders[key]
        if order.status != "created":  # cancelling again changes nothing
            return self
        products = dict(self.products)
        for sku, quantity in order.items:
            products[sku] = attrs.evolve(products[sku], stock=products[sku].stock + quantity)
        return Shop(
            products=products, orders={**self.orders, key: attrs.evolve(order, status="cancelled")}
        )

    # -- observations ---------------------------------------------------------------

    def agrees_with(self, listed: dict[str, dict[str, Any]]) -> Shop | None:
        """This shop, with the order ids it lacked taken from the service's listing (by
        key); None if the listing contradicts it."""
        if set(listed) != set(self.orders):
            return None
        orders = {}
        for key, order in self.orders.items():
            shown = listed[key]
            expected = order.view()
            if {k: v for k, v in expected.items() if k != "id"} != {
                k: v for k, v in _view(shown).items() if k != "id"
            }:
                return None
            if order.id is not None and order.id != shown["id"]:
                return None
            orders[key] = attrs.evolve(order, id=shown["id"])
        return attrs.evolve(self, orders=orders)


def _view(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": order["idempotency_key"],
        "id": order["id"],
        "items": order["items"],
        "total": order["total"],
        "status": order["status"],
    }


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """The response, if its status is one the API documents for this call."""
    if response.status_code not in statuses:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url.path} returned {response.status_code}, "
            f"expected {' or '.join(map(str, statuses))}: {response.text[:200]}"
        )
    return response


def _outcome(response: httpx.Response, accepted: str) -> str:
    """``accepted`` for a 2xx answer, else the error code."""
    if response.is_success:
        return accepted
    return str(response.json().get("error"))


class Checkout(Model):
    """A shop's checkout: orders reserve stock, are paid once, fulfilled or cancelled.

    Every request goes through ``self.retry``; orders and payments carry an
    Idempotency-Key, and fulfil, cancel and restock are idempotent by nature. When no
    attempt is answered the outcome is unknown: the model keeps the operation pending
    (``Possible.maybe``, keyed by its idempotency key) and every later observation
    considers it landed or not.

    Each answer is checked against the shop: a request the shop should accept must be
    accepted (``request_accepted``), and one it should refuse must be refused, checked
    under the invariant that accepting it breaks (an order beyond the stock:
    ``stock_non_negative``; a second payment: ``paid_once``; a payment of another amount:
    ``payment_matches_total``; fulfilling an unpaid order: ``fulfil_requires_payment``;
    paying a cancelled order or cancelling a paid one: ``order_lifecycle``).
    """

    sample = "checkout"
    tenant_prefix = "shop_"

    #: The products each example's shop starts with.
    CATALOG = {"a": Product(stock=1, price=5), "b": Product(stock=3, price=3)}

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.shops = Possible(Shop(products=dict(self.CATALOG)))
        self.items: dict[str, tuple[tuple[str, int], ...]] = {}
        self.payments_sent = 0

    def reset(self) -> None:
        """Stock the example's fresh shop with the catalog."""
        for sku, product in self.CATALOG.items():
            self._put(sku, product.stock, product.price).raise_for_status()

    def _put(self, sku: str, stock: int, price: int) -> httpx.Response:
        return self.http.put(
            f"/shops/{self.tenant}/products/{sku}", json={"stock": stock, "price": price}
        )

    def _order(self, key: str, items: tuple[tuple[str, int], ...]) -> httpx.Response:
        return self.http.post(
            f"/shops/{self.tenant}/orders",
            json={"items": dict(items)},
            headers={"Idempotency-Key": key},
        )

    def _known(self, key: str) -> Order | None:
        """The order for ``key``, if it surely exists and its id is known."""
        orders = self.shops.values(lambda shop: shop.orders.get(key))
        ids = {getattr(order, "id", None) for order in orders}
        if len(ids) != 1 or None in ids:
            return None
        return orders[0]  # type: ignore[no-any-return]

    def _name(
        self,
        accepted: bool,
        outcomes: list[str],
        accepts: tuple[str, ...],
        refusals: dict[str, str],
    ) -> str:
        """The invariant an answer is checked under: ``request_accepted`` for a request the
        model accepts, else the one ``refusals`` names for the model's reason to refuse it
        (what accepting it would break). Under several possible outcomes, one that agrees
        with the answer names the check."""
        agreeing = [o for o in outcomes if (o in accepts) == accepted] or outcomes
        refused = [o for o in agreeing if o not in accepts]
        if not refused:
            return "request_accepted"
        return refusals.get(refused[0], "request_accepted")

    # -- rules ----------------------------------------------------------------------

    @rule(target=orders, items=st.sampled_from(BASKETS))
    def order(self, items: dict[str, int]) -> Any:
        key = f"o{len(self.items)}"
        wanted = _items(items)
        self.items[key] = wanted
        response = self.retry(lambda: self._order(key, wanted))
        if response is None:  # every attempt failed: it may or may not have been placed
            self.shops = self.shops.maybe(lambda shop: shop.order(key, None, wanted), key=key)
            return key
        # 201 created; 200 when an earlier attempt (whose answer was lost) created it.
        outcome = _outcome(_expect(response, 200, 201, 409), "created")
        accepted = outcome == "created"
        outcomes = self.shops.values(lambda shop: shop.order_outcome(key, wanted))
        sometimes(outcome == "out_of_stock", "order refused: out of stock")
        self.check(
            self._name(accepted, outcomes, ACCEPTED, {"out_of_stock": "stock_non_negative"}),
            holds=accepted in [o in ACCEPTED for o in outcomes],
            expected=self.shops.expected(lambda shop: shop.order_outcome(key, wanted)),
            actual=outcome,
            shop=self.tenant,
            key=key,
        )
        order_id = response.json()["id"] if accepted else None
        self.shops = self.shops.where(
            lambda shop: (shop.order_outcome(key, wanted) in ACCEPTED) == accepted
        ).then(lambda shop: shop.order(key, order_id, wanted), key=key)
        return key if accepted else multiple()

    @precondition(lambda self: bool(self.items))
    @rule(
        sku=st.sampled_from(SKUS),
        stock=st.integers(min_value=0, max_value=3),
        price=st.integers(min_value=1, max_value=9),
    )
    def restock(self, sku: str, stock: int, price: int) -> None:
        """Set a product's stock and price (orders placed before keep their total). Only
        once an order was sent: each example starts with the catalog, and a sequence that
        shows a failure starts with an order (which keeps shrinking simple)."""
        response = self.retry(lambda: self._put(sku, stock, price))
        if response is None:
            self.shops = self.shops.maybe(lambda shop: shop.restock(sku, stock, price))
            return
        _expect(response, 200)
        self.shops = self.shops.then(lambda shop: shop.restock(sku, stock, price))

    @rule(key=orders)
    def pay(self, key: str) -> None:
        """Pay the order's total."""
        self._pay(key, 0)

    @rule(key=orders)
    def pay_wrong_amount(self, key: str) -> None:
        """Pay one more than the order's total (a client that computed it wrong)."""
        self._pay(key, 1)

    def _pay(self, key: str, off: int) -> None:
        order = self._known(key)
        if order is None:
            return  # the order's fate is unknown (a lost answer): nothing to pay yet
        totals = self.shops.values(lambda shop: shop.orders[key].total)
        if len(totals) != 1:
            return  # its total depends on when it landed: unknown too
        amount = totals[0] + off
        pay_key = f"{key}-p{self.payments_sent}"
        self.payments_sent += 1
        response = self.retry(
            lambda: self.http.post(
                f"/orders/{order.id}/pay",
                json={"amount": amount},
                headers={"Idempotency-Key": pay_key},
            )
        )
        if response is None:
            self.shops = self.shops.maybe(lambda shop: shop.pay(key, amount, pay_key), key=pay_key)
            return
        outcome = _outcome(_expect(response, 200, 409), "paid")
        accepted = outcome == "paid"
        outcomes = self.shops.values(lambda shop: shop.pay_outcome(key, amount, pay_key))
        refusals = {
            "already_paid": "paid_once",
            "amount_mismatch": "payment_matches_total",
            "order_cancelled": "order_lifecycle",
        }
        self.check(
            self._name(accepted, outcomes, ("paid", "replayed"), refusals),
            holds=accepted in [o in ("paid", "replayed") for o in outcomes],
            expected=self.shops.expected(lambda shop: shop.pay_outcome(key, amount, pay_key)),
            actual=outcome,
            order=order.id,
            key=key,
        )
        self.shops = self.shops.where(
            lambda shop: (
                (shop.pay_outcome(key, amount, pay_key) in ("paid", "replayed")) == accepted
            )
        ).then(lambda shop: shop.pay(key, amount, pay_key), key=pay_key)

    @rule(key=orders)
    def fulfil(self, key: str) -> None:
        order = self._known(key)
        if order is None:
            return
        response = self.retry(lambda: self.http.post(f"/orders/{order.id}/fulfil"))
        if response is None:
            self.shops = self.shops.maybe(lambda shop: shop.fulfil(key))
            return
        outcome = _outcome(_expect(response, 200, 409), "fulfilled")
        accepted = outcome == "fulfilled"
        outcomes = self.shops.values(lambda shop: shop.fulfil_outcome(key))
        sometimes(accepted and "fulfilled" in outcomes, "paid order fulfilled")
        refusals = {
            "not_paid": "fulfil_requires_payment",
            "order_cancelled": "fulfil_requires_payment",
        }
        self.check(
            self._name(accepted, outcomes, ("fulfilled",), refusals),
            holds=accepted in [o == "fulfilled" for o in outcomes],
            expected=self.shops.expected(lambda shop: shop.fulfil_outcome(key)),
            actual=outcome,
            order=order.id,
            key=key,
        )
        self.shops = self.shops.where(
            lambda shop: (shop.fulfil_outcome(key) == "fulfilled") == accepted
        ).then(lambda shop: shop.fulfil(key))

    @rule(key=orders)
    def cancel(self, key: str) -> None:
        order = self._known(key)
        if order is None:
            return
        response = self.retry(lambda: self.http.post(f"/orders/{order.id}/cancel"))
        if response is None:
            self.shops = self.shops.maybe(lambda shop: shop.cancel(key))
            return
        outcome = _outcome(_expect(response, 200, 409), "cancelled")
        accepted = outcome == "cancelled"
        outcomes = self.shops.values(lambda shop: shop.cancel_outcome(key))
        self.check(
            self._name(accepted, outcomes, ("cancelled",), {"already_paid": "order_lifecycle"}),
            holds=accepted in [o == "cancelled" for o in outcomes],
            expected=self.shops.expected(lambda shop: shop.cancel_outcome(key)),
            actual=outcome,
            order=order.id,
            key=key,
        )
        self.shops = self.shops.where(
            lambda shop: (shop.cancel_outcome(key) == "cancelled") == accepted
        ).then(lambda shop: shop.cancel(key))

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def service_matches_model(self) -> None:
        """The shop as the service shows it (products and orders, read at once) against
        the model: stock never negative, one order per key, one payment per paid order,
        of its total, the orders as the model lists them, the products' stock and price."""
        overview = _expect(self.http.get(f"/shops/{self.tenant}"), 200).json()
        products, listed = overview["products"], overview["orders"]
        stock = {p["sku"]: {"stock": p["stock"], "price": p["price"]} for p in products}
        for sku, product in stock.items():
            self.check(
                "stock_non_negative",
                holds=product["stock"] >= 0,
                expected=">=0",
                actual=product["stock"],
                shop=self.tenant,
                sku=sku,
            )
        per_key = Counter(order["idempotency_key"] for order in listed)
        for key in self.items:

            def placed(model: Shop, key: str = key) -> int:
                return int(key in model.orders)

            self.check(
                "order_once_per_key",
                holds=per_key[key] in self.shops.values(placed),
                expected=self.shops.expected(placed),
                actual=per_key[key],
                shop=self.tenant,
                key=key,
            )
        for listed_order in listed:
            key, payments = listed_order["idempotency_key"], listed_order["payments"]

            def payments_of(model: Shop, key: str = key) -> int:
                order = model.orders.get(key)
                return int(order is not None and order.paid is not None)

            self.check(
                "paid_once",
                holds=len(payments) in self.shops.values(payments_of),
                expected=self.shops.expected(payments_of),
                actual=len(payments),
                order=listed_order["id"],
                key=key,
            )

            def total(model: Shop, key: str = key) -> int | None:
                order = model.orders.get(key)
                return None if order is None else order.total

            for payment in payments:
                self.check(
                    "payment_matches_total",
                    holds=payment["amount"] in self.shops.values(total),
                    expected=self.shops.expected(total),
                    actual=payment["amount"],
                    order=listed_order["id"],
                    key=key,
                )
        # The listing shows which pending operations have landed so far (others may still
        # land, even between this read and the next): keep the shops that agree with it.
        by_key = {order["idempotency_key"]: order for order in listed}
        self.shops = self.shops.refine(lambda model: model.agrees_with(by_key))
        actual = sorted((_view(order) for order in listed), key=lambda view: view["key"])

        def views(model: Shop) -> list[dict[str, Any]]:
            return sorted((o.view() for o in model.orders.values()), key=lambda view: view["key"])

        self.check(
            "orders_listed",
            holds=actual in self.shops.values(views),
            expected=self.shops.expected(views),
            actual=actual,
            shop=self.tenant,
        )
        self.check(
            "stock_matches_model",
            holds=stock in self.shops.values(Shop.stock),
            expected=self.shops.expected(Shop.stock),
            actual=stock,
            shop=self.tenant,
        )
        self.shops = self.shops.where(lambda model: model.stock() == stock)

    # -- concurrent mode (--concurrency K) ------------------------------------------
    # Clients at once order product RACED (two keys), pay and read its stock, so that
    # they race for its last unit; each operation's real call returns what it observed,
    # and its model transition (on the same Shop as the rules above) says whether that
    # was possible. reset() stocks every program's fresh shop with the catalog before
    # any client starts, as it does for every example.

    model_state = staticmethod(lambda: Shop(products=dict(Checkout.CATALOG)))
    final_operations = ("observe",)

    def _order_of(self, key: str) -> tuple[str, int] | None:
        """The id and total of the order for ``key``: learned by a client, or listed."""
        if key not in self.shared:
            listed = _expect(self.http.get(f"/shops/{self.tenant}/orders"), 200).json()
            for order in listed["data"]:
                self.shared.setdefault(order["idempotency_key"], (order["id"], order["total"]))
        found: tuple[str, int] | None = self.shared.get(key)
        return found

    @operation(key=st.sampled_from(["o0", "o1"]), quantity=st.integers(min_value=1, max_value=2))
    def checkout(self, key: str, quantity: int) -> dict[str, Any]:
        response = _expect(self._order(key, ((RACED, quantity),)), 200, 201, 409)
        body = response.json()
        if response.is_success:
            self.shared.setdefault(key, (body["id"], body["total"]))
            return {"status": response.status_code, "total": body["total"]}
        return {"status": response.status_code, "error": body["error"]}

    @checkout.model
    def checkout(shop: Shop, output: Any, key: str, quantity: int) -> tuple[bool, Shop]:
        items = ((RACED, quantity),)
        after = shop.order(key, None, items)
        if output is UNKNOWN:
            return True, after
        outcome = shop.order_outcome(key, items)
        expected: dict[str, Any]
        if outcome == "created":
            expected = {"status": 201, "total": after.orders[key].total}
        elif outcome == "replayed":
            expected = {"status": 200, "total": shop.orders[key].total}
        else:
            expected = {"status": 409, "error": outcome}
        return output == expected, after

    @operation(key=st.sampled_from(["o0", "o1"]), pay_key=st.sampled_from(["p0", "p1"]))
    def pay_order(self, key: str, pay_key: str) -> dict[str, Any]:
        found = self._order_of(key)
        if found is None:
            return {"status": "no order"}
        order_id, amount = found
        response = _expect(
            self.http.post(
                f"/orders/{order_id}/pay",
                json={"amount": amount},
                headers={"Idempotency-Key": pay_key},
            ),
            200,
            409,
        )
        outcome = _outcome(response, "paid")
        return {"amount": amount, "outcome": outcome}

    @pay_order.model
    def pay_order(shop: Shop, output: Any, key: str, pay_key: str) -> tuple[bool, Shop]:
        if key not in shop.orders:
            return output is UNKNOWN or output == {"status": "no order"}, shop
        if output is UNKNOWN:
            return True, shop.pay(key, shop.orders[key].total, pay_key)
        if "amount" not in output:
            return False, shop
        amount = output["amount"]
        outcome = shop.pay_outcome(key, amount, pay_key)
        seen = "paid" if outcome == "replayed" else outcome
        return output["outcome"] == seen, shop.pay(key, amount, pay_key)

    @operation()
    def look(self) -> dict[str, Any]:
        response = _expect(self.http.get(f"/shops/{self.tenant}/products/{RACED}"), 200)
        return {"stock": response.json()["stock"]}

    @look.model
    def look(shop: Shop, output: Any) -> tuple[bool, Shop]:
        if output is UNKNOWN:
            return True, shop
        return output == {"stock": shop.products[RACED].stock}, shop

    @operation()
    def observe(self) -> dict[str, Any]:
        shop = self.tenant
        overview = _expect(self.http.get(f"/shops/{shop}"), 200).json()
        products, listed = overview["products"], overview["orders"]
        return {
            "stock": {p["sku"]: p["stock"] for p in sorted(products, key=lambda p: p["sku"])},
            "orders": sorted(
                [
                    o["idempotency_key"],
                    o["total"],
                    o["status"],
                    [p["amount"] for p in o["payments"]],
                ]
                for o in listed
            ),
        }

    @observe.model
    def observe(shop: Shop, output: Any) -> tuple[bool, Shop]:
        if output is UNKNOWN:
            return True, shop
        expected = {
            "stock": {sku: product.stock for sku, product in sorted(shop.products.items())},
            "orders": sorted(
                [o.key, o.total, o.status, [] if o.paid is None else [o.paid]]
                for o in shop.orders.values()
            ),
        }
        return output == expected, shop


if __name__ == "__main__":
    main(Checkout)
