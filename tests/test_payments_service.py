"""The payments sample service itself, over real HTTP: the behaviour the model relies on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest


@pytest.fixture
def client(payments: Callable[..., AbstractContextManager[str]]) -> Iterator[httpx.Client]:
    with payments() as url, httpx.Client(base_url=url, trust_env=False) as client:
        yield client


def _charge(
    client: httpx.Client, amount: int, key: str = "k0", customer: str = "cus_a"
) -> httpx.Response:
    return client.post(
        f"/customers/{customer}/charges", json={"amount": amount}, headers={"Idempotency-Key": key}
    )


def test_retry_with_same_key_returns_the_original_charge(client: httpx.Client) -> None:
    """Same key twice: one charge, 201 then 200 with the same id."""
    first = _charge(client, 50)
    second = _charge(client, 50)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    listed = client.get("/customers/cus_a/charges").json()["data"]
    assert [c["id"] for c in listed] == [first.json()["id"]]
    assert client.get("/customers/cus_a/balance").json()["balance"] == 50


def test_refunds_never_exceed_the_charge(client: httpx.Client) -> None:
    """Partial refunds up to what remains; beyond it 409; a full refund takes the rest."""
    charge_id = _charge(client, 10).json()["id"]
    assert client.post(f"/charges/{charge_id}/refunds", json={"amount": 4}).status_code == 201
    over = client.post(f"/charges/{charge_id}/refunds", json={"amount": 7})
    assert (over.status_code, over.json()["error"]) == (409, "refund_exceeds_charge")
    full = client.post(f"/charges/{charge_id}/refunds", json={})
    assert (full.status_code, full.json()["amount"]) == (201, 6)
    again = client.post(f"/charges/{charge_id}/refunds", json={})
    assert (again.status_code, again.json()["error"]) == (409, "already_refunded")
    charge = client.get(f"/charges/{charge_id}").json()
    assert (charge["refunded"], charge["status"]) == (10, "refunded")
    assert client.get("/customers/cus_a/balance").json()["balance"] == 0


def test_customers_are_isolated(client: httpx.Client) -> None:
    """The same key for two customers makes two charges; lists and balances stay apart."""
    a = _charge(client, 5, customer="cus_a").json()
    b = _charge(client, 7, customer="cus_b").json()
    assert a["id"] != b["id"]
    assert client.get("/customers/cus_b/balance").json()["balance"] == 7
    assert [c["id"] for c in client.get("/customers/cus_a/charges").json()["data"]] == [a["id"]]


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"json": {"amount": 0}, "headers": {"Idempotency-Key": "k"}}, 422, "invalid_amount"),
        ({"json": {"amount": "5"}, "headers": {"Idempotency-Key": "k"}}, 422, "invalid_amount"),
        ({"json": {"amount": 5}}, 400, "missing_idempotency_key"),
        ({"content": b"{", "headers": {"Idempotency-Key": "k"}}, 400, "invalid_json"),
    ],
)
def test_bad_charge_requests_are_rejected(
    client: httpx.Client, kwargs: dict[str, object], status: int, error: str
) -> None:
    """Invalid requests get a 4xx with an error code, and change nothing."""
    response = client.post("/customers/cus_a/charges", **kwargs)  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert client.get("/customers/cus_a/charges").json()["data"] == []


def test_unknown_charge_is_404(client: httpx.Client) -> None:
    """Reading or refunding a charge that does not exist is a 404."""
    assert client.get("/charges/ch_nope").status_code == 404
    assert client.post("/charges/ch_nope/refunds", json={}).status_code == 404
