"""Payments: a charge is made exactly once per idempotency key, and refunds never exceed it.

Each command is described once (its arguments, the real call, a model function checking what
it observed against the reference ``Ledger``); plain runs, ``--faults`` and ``--concurrency``
all derive from it. ``python3 models/payments.py`` runs it against $APP_URL or the sample.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
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
    sometimes,
)

KEYS = st.sampled_from(["k0", "k1", "k2", "k3"])  # few: charges, retries and refunds meet
AMOUNT = st.integers(min_value=1, max_value=1000)


@attrs.frozen
class Charge:
    amount: int
    id: str | None = None  # None while only a lost answer knows it
    refunded: int = 0

    @property
    def rest(self) -> int:
        return self.amount - self.refunded


@attrs.frozen
class Ledger:
    """The reference model: the customer's charges by idempotency key."""

    charges: dict[str, Charge] = attrs.field(factory=dict)

    def charge(self, key: str, amount: int, charge_id: str | None) -> Ledger:
        old = self.charges.get(key, Charge(amount))
        new = attrs.evolve(old, id=old.id or charge_id)
        return attrs.evolve(self, charges={**self.charges, key: new})

    def refund(self, key: str, amount: int | None) -> tuple[bool, Ledger]:
        """Whether a refund of ``amount`` (None: all that remains) fits, and the ledger after."""
        charge = self.charges[key]
        taken = charge.rest if amount is None else amount
        if not 0 < taken <= charge.rest:
            return False, self
        refunded = attrs.evolve(charge, refunded=charge.refunded + taken)
        return True, attrs.evolve(self, charges={**self.charges, key: refunded})


class Payments(Model):
    """Charges with idempotency keys, partial and full refunds, and a customer balance."""

    sample = "payments"
    tenant_prefix = "cus_"
    model_state = Ledger

    @command(key=KEYS, amount=AMOUNT, idempotent=True)
    def charge(self, key: str, amount: int) -> dict[str, object]:
        response = self.http.post(
            f"/customers/{self.tenant}/charges",
            json={"amount": amount},
            headers={"Idempotency-Key": key},
        )
        body = expect_status(response, 200, 201).json()
        return {"created": response.status_code == 201, "id": body["id"], "amount": body["amount"]}

    @charge.model
    def charge(ledger: Ledger, out: dict[str, object], key: str, amount: int) -> Ledger:
        if out is UNKNOWN:
            return ledger.charge(key, amount, None)
        old = ledger.charges.get(key)
        want = {**out, "amount": amount}  # a new key: a new charge, or one a lost answer made
        if old:  # a key seen before: its charge again
            want = {"created": False, "id": old.id or out["id"], "amount": old.amount}
        check("charged_once", expected=want, actual=out, key=key)
        sometimes(old and not out["created"], "retry returned the existing charge")
        return ledger.charge(key, amount, str(out["id"]))

    @command(
        key=KEYS,
        amount=from_state(lambda ledger, key: ledger.charges[key].rest // 2 or None)
        | AMOUNT
        | st.none()  # all that remains
        | from_state(lambda ledger, key: ledger.charges[key].rest or None),  # exactly the rest
        requires=lambda ledger, key: key in ledger.charges and ledger.charges[key].id is not None,
        idempotent=True,
    )
    def refund(self, key: str, amount: int | None) -> bool:
        response = self.http.post(
            f"/charges/{self.state.charges[key].id}/refunds",
            json={} if amount is None else {"amount": amount},
            headers={"Idempotency-Key": self.operation_key},
        )
        return expect_status(response, 201, 409).status_code == 201

    @refund.model
    def refund(ledger: Ledger, accepted: bool, key: str, amount: int | None) -> Ledger:
        fits, after = ledger.refund(key, amount)
        sometimes(
            accepted and amount is None and ledger.charges[key].refunded,
            "full refund after a partial one",
        )
        if accepted is not UNKNOWN:
            name = "refund_within_charge" if accepted else "refund_accepted"
            check(name, expected=fits, actual=accepted, key=key, amount=amount)
        return ledger if accepted is False else after

    @observation
    def customer(self) -> dict[str, Any]:
        """The customer's charges and balance, and each charge the model knows, read alone."""
        get = lambda path: expect_status(self.http.get(path), 200).json()  # noqa: E731
        listed = get(f"/customers/{self.tenant}/charges")["data"]
        reads = {k: get(f"/charges/{c.id}") for k, c in self.state.charges.items() if c.id}
        return {
            "listed": [(c["idempotency_key"], c["id"], c["amount"], c["refunded"]) for c in listed],
            "balance": get(f"/customers/{self.tenant}/balance")["balance"],
            "reads": {k: (b["id"], b["amount"], b["refunded"]) for k, b in reads.items()},
        }

    @customer.model
    def customer(ledger: Ledger, seen: dict[str, Any]) -> Ledger:
        listed, balance = seen["listed"], seen["balance"]
        ids = {key: charge_id for key, charge_id, _, _ in listed}
        per_key = Counter(key for key, *_ in listed)
        check("charged_once", expected=dict.fromkeys(ledger.charges, 1), actual=dict(per_key))
        shared = sorted(i for i, n in Counter(i for _, i, _, _ in listed).items() if n > 1)
        check("unique_ids", expected=[], actual=shared)
        over = [(key, refunded, amount) for key, _, amount, refunded in listed if refunded > amount]
        check("refund_within_charge", expected=[], actual=over)
        check("balance_non_negative", holds=balance >= 0, expected=">=0", actual=balance)
        rest = sum(c.rest for c in ledger.charges.values())
        check("balance_matches_model", expected=rest, actual=balance)
        # Sorted: a ledger is a dict, equal whatever order its charges came in.
        want = [(k, c.id or ids.get(k), c.amount, c.refunded) for k, c in ledger.charges.items()]
        check("charges_listed", expected=sorted(want), actual=sorted(listed))
        for key, view in seen["reads"].items():  # each known charge, read alone
            c = ledger.charges[key]
            check("read_your_writes", expected=(c.id, c.amount, c.refunded), actual=view, key=key)
        # The listing teaches the ids of charges whose answer was lost.
        learned = {k: attrs.evolve(c, id=c.id or ids.get(k)) for k, c in ledger.charges.items()}
        return attrs.evolve(ledger, charges=learned)


if __name__ == "__main__":
    main(Payments)
