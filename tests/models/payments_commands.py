"""Payments: a charge is made exactly once per idempotency key, and refunds never exceed it.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/payments.py
    propworkload run models/payments.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]

Each command is described once: its arguments, the real call, and a model function that
checks what the call observed against the reference ``Ledger`` and returns the next
ledger. Plain runs, ``--faults`` (lost answers, duplicates) and ``--concurrency`` (clients
racing, checked for linearizability) all derive from it.
"""

from __future__ import annotations

from collections import Counter

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
)

KEYS = st.sampled_from(["k0", "k1"])  # few keys: charges and refunds meet on them
AMOUNT = st.integers(min_value=1, max_value=1000)


@attrs.frozen
class Charge:
    amount: int
    #: None while the charge is known only from a request whose answer was lost.
    id: str | None = None
    refunded: int = 0

    @property
    def rest(self) -> int:
        return self.amount - self.refunded


@attrs.frozen
class Ledger:
    """The reference model: the customer's charges by idempotency key."""

    charges: dict[str, Charge] = attrs.field(factory=dict)

    @property
    def balance(self) -> int:
        return sum(c.rest for c in self.charges.values())

    def charge(self, key: str, amount: int, charge_id: str | None) -> Ledger:
        old = self.charges.get(key)
        new = (
            Charge(amount, charge_id) if old is None else attrs.evolve(old, id=old.id or charge_id)
        )
        return attrs.evolve(self, charges={**self.charges, key: new})

    def accepts(self, key: str, amount: int | None) -> bool:
        """Whether a refund of ``amount`` (None: all that remains) fits the charge."""
        rest = self.charges[key].rest
        return 0 < (rest if amount is None else amount) <= rest

    def refund(self, key: str, amount: int | None) -> Ledger:
        charge = self.charges[key]
        taken = charge.rest if amount is None else amount
        refunded = attrs.evolve(charge, refunded=charge.refunded + taken)
        return attrs.evolve(self, charges={**self.charges, key: refunded})


def known(ledger: Ledger, key: str) -> bool:
    """The charge exists and its id is known: it can be refunded and read."""
    return key in ledger.charges and ledger.charges[key].id is not None


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
        # A key seen before answers with its charge; a new key may too, when an attempt
        # whose answer was lost made it.
        check(
            "charged_once",
            holds=out["amount"] == (old.amount if old else amount)
            and (old is None or (not out["created"] and old.id in (None, out["id"]))),
            expected=f"the charge {old.id} of {old.amount}" if old else f"a charge of {amount}",
            actual=f"{'a new' if out['created'] else 'the'} charge {out['id']} of {out['amount']}",
            key=key,
        )
        return ledger.charge(key, amount, str(out["id"]))

    @command(
        key=KEYS,
        amount=st.none()
        | AMOUNT
        | from_state(lambda ledger, key: ledger.charges[key].rest or None)  # exactly the rest
        | from_state(lambda ledger, key: ledger.charges[key].rest // 2 or None),
        requires=known,
        idempotent=True,
    )
    def refund(self, key: str, amount: int | None) -> bool:
        """Refund ``amount`` of the charge, or all that remains of it when None."""
        response = self.http.post(
            f"/charges/{self.state.charges[key].id}/refunds",
            json={} if amount is None else {"amount": amount},
            headers={"Idempotency-Key": self.operation_key},
        )
        return expect_status(response, 201, 409).status_code == 201

    @refund.model
    def refund(ledger: Ledger, accepted: bool, key: str, amount: int | None) -> Ledger:
        fits = ledger.accepts(key, amount)
        if accepted is not UNKNOWN:
            name = "refund_within_charge" if accepted else "refund_accepted"
            check(name, expected=fits, actual=accepted, key=key, amount=amount)
        return ledger.refund(key, amount) if fits and accepted is not False else ledger

    @observation
    def reads(self) -> dict[str, object]:
        """Each charge whose id the model knows, read alone."""
        known = {key: c.id for key, c in self.state.charges.items() if c.id}
        bodies = {
            key: expect_status(self.http.get(f"/charges/{i}"), 200).json()
            for key, i in known.items()
        }
        return {key: (b["id"], b["amount"], b["refunded"]) for key, b in bodies.items()}

    @reads.model
    def reads(ledger: Ledger, seen: dict[str, object]) -> None:
        for key, view in seen.items():
            c = ledger.charges.get(key)
            check(
                "read_your_writes",
                expected=c and (c.id, c.amount, c.refunded),
                actual=view,
                key=key,
            )

    @observation
    def customer(self) -> dict[str, object]:
        listed = self.http.get(f"/customers/{self.tenant}/charges")
        balance = self.http.get(f"/customers/{self.tenant}/balance")
        return {
            "charges": [
                (c["idempotency_key"], c["id"], c["amount"], c["refunded"])
                for c in expect_status(listed, 200).json()["data"]
            ],
            "balance": expect_status(balance, 200).json()["balance"],
        }

    @customer.model
    def customer(ledger: Ledger, seen: dict[str, object]) -> Ledger:
        listed, balance = seen["charges"], seen["balance"]
        ids = {key: charge_id for key, charge_id, _, _ in listed}
        per_key = Counter(key for key, *_ in listed)
        check("charged_once", expected=dict.fromkeys(ledger.charges, 1), actual=dict(per_key))
        shared = sorted(i for i, n in Counter(i for _, i, _, _ in listed).items() if n > 1)
        check("unique_ids", expected=[], actual=shared)
        over = [(key, refunded, amount) for key, _, amount, refunded in listed if refunded > amount]
        check("refund_within_charge", expected=[], actual=over)
        check("balance_non_negative", holds=balance >= 0, expected=">=0", actual=balance)
        check("balance_matches_model", expected=ledger.balance, actual=balance)
        # Sorted by key: a ledger is a dict, equal whatever order its charges came in.
        expected = [
            (k, c.id or ids.get(k), c.amount, c.refunded) for k, c in ledger.charges.items()
        ]
        check("charges_listed", expected=sorted(expected), actual=sorted(listed))
        # The listing teaches the ids of charges whose answer was lost.
        learned = {k: attrs.evolve(c, id=c.id or ids.get(k)) for k, c in ledger.charges.items()}
        return attrs.evolve(ledger, charges=learned)


if __name__ == "__main__":
    main(Payments)
