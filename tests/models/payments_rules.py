"""The payments model in the rule style: ``@rule``s that drive ``Possible`` by hand, a
``Bundle`` of idempotency keys and ``@operation`` pairs for concurrent clients.

``models/payments.py`` is the same behaviour as commands and observations. This one stays
as the tests' proof that plain Hypothesis state machines keep working: Bundles and their
traces, rules emitted as pytest regressions, operations with hand-written transitions.
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
    operation,
    rule,
    sometimes,
)


@attrs.frozen
class Charge:
    """A charge as the model expects it."""

    key: str
    #: None while the charge is only known from a request whose answer never came.
    id: str | None
    amount: int
    refunded: int = 0
    #: Idempotency keys of the refunds applied to it: the service applies each once.
    refund_keys: frozenset[str] = frozenset()

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

    def charge(self, key: str, charge_id: str | None, amount: int) -> Ledger:
        """The ledger once ``key`` is charged; charging a key again changes nothing but
        may teach the charge's id."""
        existing = self.charges.get(key)
        if existing is not None:
            if existing.id is not None or charge_id is None:
                return self
            charge = attrs.evolve(existing, id=charge_id)
        else:
            charge = Charge(key=key, id=charge_id, amount=amount)
        return attrs.evolve(self, charges={**self.charges, key: charge})

    def accepts_refund(self, key: str, amount: int | None, refund_key: str | None) -> bool:
        """Whether the service should accept a refund of ``amount`` (None: what remains);
        a refund whose key was applied before is answered as accepted again."""
        charge = self.charges[key]
        if refund_key is not None and refund_key in charge.refund_keys:
            return True
        wanted = charge.remaining if amount is None else amount
        return 0 < wanted <= charge.remaining

    def refund(self, key: str, amount: int | None, refund_key: str | None) -> Ledger:
        """The ledger after refunding ``amount`` (None: what remains) under ``refund_key``,
        if it is accepted; a key applied before changes nothing."""
        charge = self.charges[key]
        if not self.accepts_refund(key, amount, refund_key) or (
            refund_key is not None and refund_key in charge.refund_keys
        ):
            return self
        wanted = charge.remaining if amount is None else amount
        refunded = attrs.evolve(
            charge,
            refunded=charge.refunded + wanted,
            refund_keys=charge.refund_keys | ({refund_key} if refund_key else set()),
        )
        return attrs.evolve(self, charges={**self.charges, key: refunded})

    def agrees_with(self, listed: dict[str, dict[str, Any]]) -> Ledger | None:
        """This ledger, with the ids it lacked taken from the service's listing of its
        charges (by key, oldest first), in the listing's order (a charge whose request
        landed late comes late); None if the listing contradicts it."""
        if set(listed) != set(self.charges):
            return None
        charges = {}
        for key, shown in listed.items():
            charge = self.charges[key]
            if (charge.amount, charge.refunded) != (shown["amount"], shown["refunded"]):
                return None
            if charge.id is not None and charge.id != shown["id"]:
                return None
            charges[key] = attrs.evolve(charge, id=shown["id"])
        return Ledger(charges=charges)


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
    """Charges with idempotency keys, partial and full refunds, and a customer balance.

    Every write carries an Idempotency-Key and goes through ``self.retry``: when an answer
    is lost (``--faults``, or a real network), the same request is sent again. When no
    attempt is answered the outcome is unknown: the model keeps the operation pending
    (``Possible.maybe``, keyed by its idempotency key, so that a retry replaces it and an
    answer settles it), and every later observation considers it landed or not.
    """

    sample = "payments"
    tenant_prefix = "cus_"

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.ledgers = Possible(Ledger())
        self.amounts: dict[str, int] = {}
        self.refunds_sent = 0

    def _charge(self, key: str, amount: int) -> httpx.Response:
        return self.http.post(
            f"/customers/{self.tenant}/charges",
            json={"amount": amount},
            headers={"Idempotency-Key": key},
        )

    def _known_id(self, key: str) -> str | None:
        """The charge's id, if the charge surely exists and its id is known."""
        ids = self.ledgers.values(lambda ledger: getattr(ledger.charges.get(key), "id", None))
        return ids[0] if len(ids) == 1 else None

    def _charged(self, key: str, amount: int, response: httpx.Response | None) -> None:
        if response is None:  # every attempt failed: it may or may not have been charged
            if self.ledgers.values(lambda ledger: key in ledger.charges) != [True]:
                self.ledgers = self.ledgers.maybe(
                    lambda ledger: ledger.charge(key, None, amount), key=key
                )
            return
        # 201 created; 200 when an earlier attempt (whose answer was lost) created it.
        charge_id = _expect(response, 200, 201).json()["id"]
        self.ledgers = self.ledgers.then(
            lambda ledger: ledger.charge(key, charge_id, amount), key=key
        )

    @rule(target=keys, amount=st.integers(min_value=1, max_value=1000))
    def charge(self, amount: int) -> str:
        key = f"k{len(self.amounts)}"
        self.amounts[key] = amount
        self._charged(key, amount, self.retry(lambda: self._charge(key, amount)))
        return key

    @rule(key=keys)
    def retry_charge(self, key: str) -> None:
        """The same request again, as a client does when it is unsure the first one landed."""
        amount = self.amounts[key]
        response = self.retry(lambda: self._charge(key, amount))
        sometimes(
            response is not None and response.status_code == 200,
            "retry returned the existing charge",
        )
        self._charged(key, amount, response)

    @rule(key=keys, amount=st.none() | st.integers(min_value=1, max_value=1000))
    def refund(self, key: str, amount: int | None) -> None:
        """Refund ``amount`` of the charge, or all that remains of it when None."""
        self._refund(key, amount)

    @rule(key=keys)
    def refund_rest(self, key: str) -> None:
        """A partial refund of exactly what remains (the boundary a limit check can get
        wrong), as a client that computed the rest itself sends it."""
        remaining = self.ledgers.values(
            lambda ledger: ledger.charges[key].remaining if key in ledger.charges else None
        )
        if len(remaining) == 1 and remaining[0]:
            self._refund(key, remaining[0])

    def _refund(self, key: str, amount: int | None) -> None:
        charge_id = self._known_id(key)
        if charge_id is None:
            return  # the charge's fate is unknown (a lost answer): nothing to refund yet
        sometimes(
            amount is None
            and any(0 < lg.charges[key].refunded < lg.charges[key].amount for lg in self.ledgers),
            "full refund after a partial one",
        )
        refund_key = f"{key}-r{self.refunds_sent}"
        self.refunds_sent += 1
        body = {} if amount is None else {"amount": amount}
        response = self.retry(
            lambda: self.http.post(
                f"/charges/{charge_id}/refunds",
                json=body,
                headers={"Idempotency-Key": refund_key},
            )
        )
        if response is None:
            self.ledgers = self.ledgers.maybe(
                lambda ledger: ledger.refund(key, amount, refund_key), key=refund_key
            )
            return
        accepted = _expect(response, 201, 409).status_code == 201
        possible = self.ledgers.values(
            lambda ledger: ledger.accepts_refund(key, amount, refund_key)
        )
        # A refund beyond what remains must be turned away, and one within it taken.
        self.check(
            "refund_within_charge" if accepted else "refund_accepted",
            holds=accepted in possible,
            expected=self.ledgers.expected(
                lambda ledger: (
                    "accepted" if ledger.accepts_refund(key, amount, refund_key) else "rejected"
                )
            ),
            actual="accepted" if accepted else "rejected",
            charge=charge_id,
            key=key,
        )
        self.ledgers = self.ledgers.where(
            lambda ledger: ledger.accepts_refund(key, amount, refund_key) == accepted
        ).then(lambda ledger: ledger.refund(key, amount, refund_key), key=refund_key)

    @rule(key=keys)
    def read(self, key: str) -> None:
        charge_id = self._known_id(key)
        if charge_id is None:
            return
        response = self.retry(lambda: self.http.get(f"/charges/{charge_id}"))
        if response is None:
            return  # a read changes nothing; there is just nothing to compare
        actual = _view(_expect(response, 200).json())
        self.check(
            "read_your_writes",
            holds=actual in self.ledgers.values(lambda ledger: ledger.charges[key].view()),
            expected=self.ledgers.expected(lambda ledger: ledger.charges[key].view()),
            actual=actual,
            charge=charge_id,
            key=key,
        )
        self.ledgers = self.ledgers.where(lambda ledger: ledger.charges[key].view() == actual)

    @rule(key=keys)
    def refund_half(self, key: str) -> None:
        """A partial refund of half of what remains (a returned part of an order): a
        refund the charge can take twice, so one delivered twice must count once."""
        remaining = self.ledgers.values(
            lambda ledger: ledger.charges[key].remaining if key in ledger.charges else None
        )
        if len(remaining) == 1 and remaining[0] and remaining[0] >= 2:
            self._refund(key, remaining[0] // 2)

    @invariant()
    def service_matches_model(self) -> None:
        listed = _expect(self.http.get(f"/customers/{self.tenant}/charges"), 200).json()["data"]
        balance = _expect(self.http.get(f"/customers/{self.tenant}/balance"), 200).json()
        balance = balance["balance"]
        per_key = Counter(charge["idempotency_key"] for charge in listed)
        for key in self.amounts:

            def count(ledger: Ledger, key: str = key) -> int:
                return int(key in ledger.charges)

            self.check(
                "charged_once",
                holds=per_key[key] in self.ledgers.values(count),
                expected=self.ledgers.expected(count),
                actual=per_key[key],
                customer=self.tenant,
                key=key,
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
        # The listing shows which pending operations have landed so far (others may still
        # land, even between this read and the next): keep the ledgers that agree with it.
        by_key = {charge["idempotency_key"]: charge for charge in listed}
        self.ledgers = self.ledgers.refine(lambda ledger: ledger.agrees_with(by_key))
        self.check(
            "balance_matches_model",
            holds=balance in self.ledgers.values(lambda ledger: ledger.balance),
            expected=self.ledgers.expected(lambda ledger: ledger.balance),
            actual=balance,
            customer=self.tenant,
        )
        actual = [_view(charge) for charge in listed]
        views = self.ledgers.values(lambda ledger: [c.view() for c in ledger.charges.values()])
        self.check(
            "charges_listed",
            holds=actual in views,
            expected=self.ledgers.expected(
                lambda ledger: [c.view() for c in ledger.charges.values()]
            ),
            actual=actual,
            customer=self.tenant,
        )

    # -- concurrent mode (--concurrency K) ------------------------------------------
    # Clients at once charge, refund and read two shared keys, so that they race on
    # them; each operation's real call returns what it observed, and its model
    # transition (on the same Ledger as the rules above) says whether that was possible.

    model_state = Ledger
    final_operations = ("observe",)

    def _charge_id(self, key: str) -> str | None:
        """The id of the charge for ``key``: learned by a client, or found in the list."""
        if key not in self.shared:
            listed = _expect(self.http.get(f"/customers/{self.tenant}/charges"), 200).json()
            for charge in listed["data"]:
                self.shared.setdefault(charge["idempotency_key"], charge["id"])
        return self.shared.get(key)

    @operation(key=st.sampled_from(["k0", "k1"]), amount=st.integers(min_value=1, max_value=1000))
    def pay(self, key: str, amount: int) -> dict[str, Any]:
        body = _expect(self._charge(key, amount), 200, 201)
        charge = body.json()
        self.shared.setdefault(key, charge["id"])
        return {"status": body.status_code, "id": charge["id"], "amount": charge["amount"]}

    @pay.model
    def pay(ledger: Ledger, output: Any, key: str, amount: int) -> tuple[bool, Ledger]:
        if output is UNKNOWN:
            return True, ledger.charge(key, None, amount)
        existing = ledger.charges.get(key)
        if existing is None:  # created now
            ok = output["status"] == 201 and output["amount"] == amount
        else:  # the original charge, answered again
            ok = (
                output["status"] == 200
                and output["amount"] == existing.amount
                and existing.id in (None, output["id"])
            )
        return ok, ledger.charge(key, output["id"], amount)

    @operation(
        key=st.sampled_from(["k0", "k1"]),
        amount=st.none() | st.integers(min_value=1, max_value=1000),
    )
    def pay_back(self, key: str, amount: int | None) -> dict[str, Any]:
        charge_id = self._charge_id(key)
        if charge_id is None:
            return {"status": "no charge"}
        body = {} if amount is None else {"amount": amount}
        response = _expect(self.http.post(f"/charges/{charge_id}/refunds", json=body), 201, 409)
        return {"status": response.status_code}

    @pay_back.model
    def pay_back(ledger: Ledger, output: Any, key: str, amount: int | None) -> tuple[bool, Ledger]:
        if key not in ledger.charges:
            return output is UNKNOWN or output["status"] == "no charge", ledger
        accepted = ledger.accepts_refund(key, amount, None)
        if output is UNKNOWN:
            return True, ledger.refund(key, amount, None)
        ok = output["status"] == (201 if accepted else 409)
        return ok, ledger.refund(key, amount, None)

    @operation(key=st.sampled_from(["k0", "k1"]))
    def look(self, key: str) -> dict[str, Any]:
        charge_id = self._charge_id(key)
        if charge_id is None:
            return {"status": "no charge"}
        charge = _expect(self.http.get(f"/charges/{charge_id}"), 200).json()
        return {"id": charge["id"], "amount": charge["amount"], "refunded": charge["refunded"]}

    @look.model
    def look(ledger: Ledger, output: Any, key: str) -> tuple[bool, Ledger]:
        charge = ledger.charges.get(key)
        if output is UNKNOWN:
            return True, ledger
        if charge is None:
            return output.get("status") == "no charge", ledger
        seen = (output.get("amount"), output.get("refunded"))
        ok = seen == (charge.amount, charge.refunded) and charge.id in (None, output["id"])
        return ok, ledger

    @operation()
    def observe(self) -> dict[str, Any]:
        listed = _expect(self.http.get(f"/customers/{self.tenant}/charges"), 200).json()["data"]
        balance = _expect(self.http.get(f"/customers/{self.tenant}/balance"), 200).json()
        charges = sorted([c["idempotency_key"], c["amount"], c["refunded"]] for c in listed)
        return {"charges": charges, "balance": balance["balance"]}

    @observe.model
    def observe(ledger: Ledger, output: Any) -> tuple[bool, Ledger]:
        if output is UNKNOWN:
            return True, ledger
        expected = sorted([c.key, c.amount, c.refunded] for c in ledger.charges.values())
        return output == {"charges": expected, "balance": ledger.balance}, ledger


if __name__ == "__main__":
    main(Payments)
