"""The checkout sample service over real HTTP, and the checkout model against it: one
description of commands and an observation runs plainly, under faults and with clients at
once without a false alarm; every seeded bug is found, named and shrunk to its minimum (the
boundary ones with any seed, with no rule written for the boundary); and every invariant
of the model is broken by some bug."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, Completed, assert_shrunk, in_process, run_command
from propworkload._loader import load_model
from propworkload._model import invariants_of, rules_of
from propworkload._parallel import ProgramShape
from propworkload._target import sample_service
from propworkload.samples import checkout
from propworkload.samples._bugs import Bug

WORKLOAD = ROOT / ".workers" / "workloads" / "checkout.py"
MODEL = ROOT / "models" / "checkout.py"
INVARIANTS = {
    "stock_non_negative",
    "request_accepted",
    "paid_once",
    "payment_matches_total",
    "fulfil_requires_payment",
    "order_lifecycle",
    "stock_matches_model",
    "orders_listed",
    "order_once_per_key",
}


def _workload(url: str, tmp_path: Path, *args: str) -> Completed:
    """Run the checkout workload entry (as a simulator does) against ``url``."""
    env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command([str(WORKLOAD), *args], env=env)


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


# -- the service ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with sample_service("checkout") as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, trust_env=False) as client:
        yield client


def _order(
    client: httpx.Client, shop: str, items: dict[str, int], key: str = "k0"
) -> httpx.Response:
    return client.post(
        f"/shops/{shop}/orders", json={"items": items}, headers={"Idempotency-Key": key}
    )


def _pay(client: httpx.Client, order_id: str, amount: int, key: str = "p0") -> httpx.Response:
    return client.post(
        f"/orders/{order_id}/pay", json={"amount": amount}, headers={"Idempotency-Key": key}
    )


def _stock(client: httpx.Client, shop: str) -> dict[str, int]:
    products = client.get(f"/shops/{shop}/products").json()["data"]
    return {p["sku"]: p["stock"] for p in products}


@pytest.fixture
def stocked(client: httpx.Client, request: pytest.FixtureRequest) -> str:
    shop = re.sub(r"[^A-Za-z0-9_]", "_", f"shop_{request.node.name}")
    for sku, stock, price in (("a", 2, 5), ("b", 1, 3)):
        response = client.put(
            f"/shops/{shop}/products/{sku}", json={"stock": stock, "price": price}
        )
        assert response.status_code == 200
    return shop


def test_an_order_reserves_stock_once_per_key(client: httpx.Client, stocked: str) -> None:
    """201 with the total, stock taken; the same key again 200 with the same order and
    nothing taken; the same key for other items 409."""
    first = _order(client, stocked, {"a": 2, "b": 1})
    assert first.status_code == 201
    order = first.json()
    assert (order["items"], order["total"], order["status"]) == ({"a": 2, "b": 1}, 13, "created")
    assert order["payments"] == []
    again = _order(client, stocked, {"b": 1, "a": 2})
    assert (again.status_code, again.json()["id"]) == (200, order["id"])
    assert again.headers["idempotent-replayed"] == "true"
    other = _order(client, stocked, {"a": 1})
    assert (other.status_code, other.json()["error"]) == (409, "idempotency_key_reused")
    assert _stock(client, stocked) == {"a": 0, "b": 0}
    listed = client.get(f"/shops/{stocked}/orders").json()["data"]
    assert [o["id"] for o in listed] == [order["id"]]
    assert client.get(f"/orders/{order['id']}").json() == order
    overview = client.get(f"/shops/{stocked}").json()
    assert overview["orders"] == listed
    assert overview["products"] == client.get(f"/shops/{stocked}/products").json()["data"]


def test_out_of_stock_reserves_nothing(client: httpx.Client, stocked: str) -> None:
    refused = _order(client, stocked, {"a": 1, "b": 2})
    assert (refused.status_code, refused.json()["error"]) == (409, "out_of_stock")
    unknown = _order(client, stocked, {"a": 1, "zz": 1}, key="k1")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "no_such_product")
    assert _stock(client, stocked) == {"a": 2, "b": 1}
    assert client.get(f"/shops/{stocked}/orders").json()["data"] == []
    # The exact stock that is left can be ordered.
    assert _order(client, stocked, {"b": 1}, key="k2").status_code == 201


def test_an_order_is_paid_exactly_once(client: httpx.Client, stocked: str) -> None:
    order_id = _order(client, stocked, {"a": 1}).json()["id"]
    wrong = _pay(client, order_id, 6)
    assert (wrong.status_code, wrong.json()["error"]) == (409, "amount_mismatch")
    paid = _pay(client, order_id, 5)
    assert paid.status_code == 200
    assert paid.json()["status"] == "paid"
    assert [p["amount"] for p in paid.json()["payments"]] == [5]
    replayed = _pay(client, order_id, 5)
    assert (replayed.status_code, replayed.headers["idempotent-replayed"]) == (200, "true")
    twice = _pay(client, order_id, 5, key="p1")
    assert (twice.status_code, twice.json()["error"]) == (409, "already_paid")
    payments = client.get(f"/shops/{stocked}/payments").json()["data"]
    assert [(p["order"], p["amount"], p["idempotency_key"]) for p in payments] == [
        (order_id, 5, "p0")
    ]


def test_fulfil_needs_payment_and_cancel_releases_stock(client: httpx.Client, stocked: str) -> None:
    unpaid = _order(client, stocked, {"a": 2}).json()["id"]
    refused = client.post(f"/orders/{unpaid}/fulfil")
    assert (refused.status_code, refused.json()["error"]) == (409, "not_paid")
    for _ in range(2):  # cancelling again changes nothing
        cancelled = client.post(f"/orders/{unpaid}/cancel")
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
        assert _stock(client, stocked) == {"a": 2, "b": 1}
    assert client.post(f"/orders/{unpaid}/fulfil").json()["error"] == "order_cancelled"
    assert _pay(client, unpaid, 10).json()["error"] == "order_cancelled"
    paid = _order(client, stocked, {"b": 1}, key="k1").json()["id"]
    assert _pay(client, paid, 3).status_code == 200
    assert client.post(f"/orders/{paid}/cancel").json()["error"] == "already_paid"
    for _ in range(2):
        fulfilled = client.post(f"/orders/{paid}/fulfil")
        assert (fulfilled.status_code, fulfilled.json()["status"]) == (200, "fulfilled")
    assert client.post(f"/orders/{paid}/cancel").json()["error"] == "already_paid"
    assert _stock(client, stocked) == {"a": 2, "b": 0}


def test_totals_keep_the_price_of_their_time(client: httpx.Client, stocked: str) -> None:
    order = _order(client, stocked, {"a": 1}).json()
    client.put(f"/shops/{stocked}/products/a", json={"stock": 5, "price": 7})
    assert client.get(f"/shops/{stocked}/orders").json()["data"][0]["total"] == 5
    assert client.get(f"/orders/{order['id']}").json()["total"] == 5
    assert _order(client, stocked, {"a": 1}, key="k1").json()["total"] == 7


def test_shops_are_isolated(client: httpx.Client, stocked: str) -> None:
    """The same key in another shop is another order; a shop without the product has none."""
    assert _order(client, stocked, {"a": 1}).status_code == 201
    other = _order(client, f"{stocked}_other", {"a": 1})
    assert (other.status_code, other.json()["error"]) == (404, "no_such_product")
    assert client.get(f"/shops/{stocked}_other/orders").json()["data"] == []
    assert client.get(f"/shops/{stocked}_other/products/a").status_code == 404


KEY = {"Idempotency-Key": "k"}


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "error"),
    [
        ("orders", {"json": {"items": {"a": 1}}}, 400, "missing_idempotency_key"),
        ("orders", {"content": b"[", "headers": KEY}, 400, "invalid_json"),
        ("orders", {"json": {"items": {}}, "headers": KEY}, 422, "invalid_items"),
        ("orders", {"json": {"items": {"a": 0}}, "headers": KEY}, 422, "invalid_items"),
        ("orders", {"json": {"items": {"a": True}}, "headers": KEY}, 422, "invalid_items"),
        ("orders", {"json": {"items": ["a"]}, "headers": KEY}, 422, "invalid_items"),
        ("products/a", {"json": {"stock": -1, "price": 5}}, 422, "invalid_product"),
        ("products/a", {"json": {"stock": 1}}, 422, "invalid_product"),
    ],
)
def test_bad_requests_are_rejected(
    client: httpx.Client,
    stocked: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    error: str,
) -> None:
    """Invalid requests get a 4xx with an error code, and change nothing."""
    method = "PUT" if path.startswith("products") else "POST"
    response = client.request(method, f"/shops/{stocked}/{path}", **kwargs)  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert client.get(f"/shops/{stocked}/orders").json()["data"] == []
    assert _stock(client, stocked) == {"a": 2, "b": 1}


def test_bad_payments_and_unknown_orders(client: httpx.Client, stocked: str) -> None:
    order_id = _order(client, stocked, {"a": 1}).json()["id"]
    for amount in (0, "5", None):
        response = _pay(client, order_id, amount)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]) == (422, "invalid_amount")
    response = client.post(f"/orders/{order_id}/pay", json={"amount": 5})
    assert response.json()["error"] == "missing_idempotency_key"
    for path in ("/orders/ord_nope", "/orders/ord_nope/fulfil", "/orders/ord_nope/cancel"):
        method = "GET" if path.count("/") == 2 else "POST"
        response = client.request(method, path)
        assert (response.status_code, response.json()["error"]) == (404, "no_such_order")
    assert _pay(client, "ord_nope", 5).json()["error"] == "no_such_order"


def test_openapi_document_and_http_errors(client: httpx.Client) -> None:
    """The OpenAPI document is served; every documented operation is routed and answers
    JSON; links name operations that exist; unknown paths and methods answer in JSON."""
    document = client.get("/openapi.json").json()
    assert document == checkout.OPENAPI
    assert client.get("/").json() == {"service": "checkout"}
    operations = {
        op["operationId"]: (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert len(operations) == 12
    for method, path, op in operations.values():
        concrete = path.replace("{shop}", "s").replace("{sku}", "a").replace("{id}", "x")
        response = client.request(method.upper(), concrete, json={})
        assert str(response.status_code) in op["responses"], (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        for answer in op["responses"].values():
            for link in answer.get("links", {}).values():
                assert link["operationId"] in operations
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = client.delete("/shops/s/orders")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_unknown_bug_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown checkout bugs: nope"):
        checkout.create_app(frozenset({"nope"}))


# -- the model against it ------------------------------------------------------------


def test_every_invariant_has_a_seeded_bug() -> None:
    """Each invariant the model checks is the one some seeded bug breaks first; the bugs
    list the sequential ones first, then those that need faults or clients at once."""
    assert {bug.invariant for bug in checkout.BUGS if bug.invariant != "linearizable"} == (
        INVARIANTS
    )
    needs = [bool(bug.needs) for bug in checkout.BUGS]
    assert needs == sorted(needs) and needs.count(False) >= 3
    for bug in checkout.BUGS:
        if "faults" in bug.needs:
            assert bug.name.startswith("lost-") or "deliver" in bug.name
        if "concurrency" in bug.needs:
            assert bug.name.startswith("race-") and bug.invariant == "linearizable"


def test_one_description_serves_every_mode() -> None:
    """The commands are the rules of plain runs and the operations clients run at once;
    the observation is the invariant after every step and the end of every program."""
    model, _ = load_model(str(MODEL))
    assert set(rules_of(model)) == {"order", "restock", "pay", "fulfil", "cancel"}
    assert set(invariants_of(model)) == {"overview"}
    shape = ProgramShape(model, concurrency=3, steps=6)
    assert {op.name for op in shape.drawable} == set(rules_of(model))
    assert [invocation.name for invocation in shape.final] == ["overview"]


@pytest.mark.slow
def test_correct_service_passes(tmp_path: Path) -> None:
    """No false alarm at the default settings; every invariant is checked and passes."""
    with sample_service("checkout") as url:
        result = _workload(url, tmp_path, "--seed", "1")
    assert result.code == 0, result.out + result.err
    assert result.lines[0] == f"SEED 1 model=checkout target={url}"
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=")


@pytest.mark.slow
def test_no_false_alarm_under_faults_or_clients_at_once(tmp_path: Path) -> None:
    """Lost answers, duplicates, timeouts and resets are tolerated; three clients at once
    on the correct service are always linearizable, with faults too."""
    with sample_service("checkout") as url:
        faults = _workload(url, tmp_path, "--seed", "1", "--faults", "all", "--examples", "30")
        clients = _workload(url, tmp_path, "--seed", "1", "--concurrency", "3", "--examples", "30")
        together = ["--faults", "all", "--concurrency", "3", "--examples", "30"]
        both = _workload(url, tmp_path, "--seed", "1", *together)
    assert faults.code == 0, faults.out + faults.err
    assert {"stock_matches_model", "orders_listed", "order_once_per_key"} <= _passed(faults)
    (summary,) = [line for line in faults.lines if line.startswith("SUMMARY")]
    assert "lost-response=" in summary
    assert clients.code == 0, clients.out + clients.err
    linearizable = [line for line in clients.lines if "PASS linearizable" in line]
    assert linearizable[0].startswith("INVARIANT PASS linearizable checks=90"), clients.out
    assert both.code == 0, both.out + both.err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("name", ["order-rejects-exact-stock", "oversell-last-unit"])
def test_boundaries_come_up_without_a_rule_for_them(name: str, seed: int) -> None:
    """Orders of exactly the units left and of one more are drawn from the shop's state
    (``from_state``) among plain quantities: no rule was written for either boundary, and
    each bug at one is found with seeds no one tuned for."""
    (bug,) = [bug for bug in checkout.BUGS if bug.name == name]
    with in_process("checkout", name) as service:
        result = service.run(MODEL, seed=seed)
    assert result.code == 1, result.out + result.err
    assert f"INVARIANT FAIL {bug.invariant} expected=" in result.out


@pytest.mark.slow
@pytest.mark.parametrize("bug", checkout.BUGS, ids=lambda bug: bug.name)
def test_seeded_bug_is_found_named_and_shrunk(bug: Bug, tmp_path: Path) -> None:
    """The run options the bug needs find it: exit 1, its invariant named on the one
    failure line, shrunk to its minimal length (a race: within one operation)."""
    with in_process("checkout", bug.name) as service:
        result = service.run_args(MODEL, "--seed", "1", *bug.run_options())
    assert result.code == 1, result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith(f"INVARIANT FAIL {bug.invariant} expected="), result.out
    assert "Traceback" not in result.out + result.err
    if "concurrency" in bug.needs:
        assert_shrunk(result.out, bug.minimal_steps + 1, least=bug.minimal_steps)
    else:
        # At most the bug's known minimal length (oversell-last-unit can take 1 step).
        assert_shrunk(result.out, bug.minimal_steps)
