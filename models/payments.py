"""Payments: a charge is made exactly once per idempotency key, and refunds never exceed it.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/payments.py
    propworkload run models/payments.py --url http://127.0.0.1:8000

The reference model is a frozen ``Ledger``: each transition returns a new ledger, so a
model state is cheap to keep and compare. Rules drive the service and move the ledger;
``service_matches_model`` compares the service with the ledger after every step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import Bundle, Model, invariant, main, rule, sometimes


@attrs.frozen
class Charge:
    """A charge as the model expects it."""

    key: str
    id: str
    amount: int
    refunded: int = 0

    @property
    def remaining(self) -> int:
        return self.amount - self.refunded

    def view(self) -> dict[str, Any]:
        """What the service should show for this charge."""
        return {"id": self.id, "key": self.key, "amount": self.amount, "refunded": self.refunded}


@attrs.frozen
class Ledger:
    """The reference model: charges by idempotency key."""

    charges: dict[str, Charge] = attrs.field(factory=dict)

    @property
    def balance(self) -> int:
        """Charged minus refunded, over all of the customer's charges."""
        return sum(c.remaining for c in self.charges.values())

    def charge(self, key: str, charge_id: str, amount: int) -> Ledger:
        return attrs.evolve(
            self, charges={**self.charges, key: Charge(key=key, id=charge_id, amount=amount)}
        )

    def refund(self, key: str, amount: int | None) -> tuple[Ledger, bool]:
        """The ledger after refunding ``amount`` (None: what remains), and whether the
        service should accept the refund at all."""
        charge = self.charges[key]
        wanted = charge.remaining if amount is None else amount
        if wanted == 0 or wanted > charge.remaining:
            return self, False
        refunded = attrs.evolve(charge, refunded=charge.refunded + wanted)
        return attrs.evolve(self, charges={**self.charges, key: refunded}), True


def _view(charge: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": charge["id"],
        "key": charge["idempotency_key"],
        "amount": charge["amount"],
        "refunded": charge["refunded"],
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


class Payments(Model):
    """Charges with idempotency keys, partial and full refunds, and a customer balance."""

    sample = "payments"
    tenant_prefix = "cus_"

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()

    def _charge(self, key: str, amount: int) -> httpx.Response:
        return self.http.post(
            f"/customers/{self.tenant}/charges",
            json={"amount": amount},
            headers={"Idempotency-Key": key},
        )

    @rule(target=keys, amount=st.integers(min_value=1, max_value=1000))
    def charge(self, amount: int) -> str:
        key = f"k{len(self.ledger.charges)}"
        response = _expect(self._charge(key, amount), 201)
        self.ledger = self.ledger.charge(key, response.json()["id"], amount)
        return key

    @rule(key=keys)
    def retry_charge(self, key: str) -> None:
        """The same request again, as a client does when it is unsure the first one landed."""
        response = _expect(self._charge(key, self.ledger.charges[key].amount), 200, 201)
        sometimes(response.status_code == 200, "retry returned the existing charge")

    @rule(key=keys, amount=st.none() | st.integers(min_value=1, max_value=1000))
    def refund(self, key: str, amount: int | None) -> None:
        """Refund ``amount`` of the charge, or all that remains of it when None."""
        charge_id = self.ledger.charges[key].id
        partly_refunded = 0 < self.ledger.charges[key].refunded < self.ledger.charges[key].amount
        sometimes(partly_refunded and amount is None, "full refund after a partial one")
        body = {} if amount is None else {"amount": amount}
        response = _expect(self.http.post(f"/charges/{charge_id}/refunds", json=body), 201, 409)
        self.ledger, accepted = self.ledger.refund(key, amount)
        outcome = "accepted" if response.status_code == 201 else "rejected"
        # A refund beyond what remains must be turned away, and one within it taken.
        self.check(
            "refund_accepted" if accepted else "refund_within_charge",
            expected="accepted" if accepted else "rejected",
            actual=outcome,
            charge=charge_id,
            key=key,
        )

    @rule(key=keys)
    def read(self, key: str) -> None:
        expected = self.ledger.charges[key]
        response = _expect(self.http.get(f"/charges/{expected.id}"), 200)
        self.check(
            "read_your_writes",
            expected=expected.view(),
            actual=_view(response.json()),
            charge=expected.id,
            key=key,
        )

    @invariant()
    def service_matches_model(self) -> None:
        listed = _expect(self.http.get(f"/customers/{self.tenant}/charges"), 200).json()["data"]
        balance = _expect(self.http.get(f"/customers/{self.tenant}/balance"), 200).json()
        balance = balance["balance"]
        per_key = Counter(charge["idempotency_key"] for charge in listed)
        for key in self.ledger.charges:
            self.check(
                "charged_once", expected=1, actual=per_key[key], customer=self.tenant, key=key
            )
        shared = sorted(i for i, n in Counter(charge["id"] for charge in listed).items() if n > 1)
        self.check("unique_ids", expected=[], actual=shared, customer=self.tenant)
        for charge in listed:
            self.check(
                "refund_within_charge",
                holds=charge["refunded"] <= charge["amount"],
                expected=f"<={charge['amount']}",
                actual=charge["refunded"],
                charge=charge["id"],
                key=charge["idempotency_key"],
            )
        self.check(
            "balance_non_negative",
            holds=balance >= 0,
            expected=">=0",
            actual=balance,
            customer=self.tenant,
        )
        self.check(
            "balance_matches_model",
            expected=self.ledger.balance,
            actual=balance,
            customer=self.tenant,
        )
        self.check(
            "charges_listed",
            expected=[c.view() for c in self.ledger.charges.values()],
            actual=[_view(charge) for charge in listed],
            customer=self.tenant,
        )


if __name__ == "__main__":
    main(Payments)
