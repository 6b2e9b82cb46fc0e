"""Signup: one account per email address, access only once verified, and none once revoked.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/signup.py
    propworkload run models/signup.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]

The reference model is a frozen ``Org``: its users by the Idempotency-Key that signed them
up, each with its normalized address, its id once known and its status. Commands sign
addresses up (in the cases and spacing users type them, with two keys, so that signups
meet as retries, reused keys and second accounts), verify a user with the token of its own
verification email or of another user's, ask for access and revoke; the users listing is
observed after every step. Plain runs, ``--faults`` (lost answers, duplicates) and
``--concurrency`` (clients racing, checked for linearizability) all derive from them.
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
)

KEYS = st.sampled_from(["k0", "k1"])  # few keys: signups meet on them
#: Two addresses as users type them: the same address in other cases, with spaces around.
EMAILS = st.sampled_from(
    ["ann@example.com", "Ann@Example.com", "bob@example.com", " BOB@example.com"]
)
#: The invariant an access decision shows, by the user's status.
ACCESS = {
    "pending": "no_access_before_verify",
    "active": "verified_has_access",
    "revoked": "revoked_loses_access",
}


def normalize(email: str) -> str:
    """An address as the service compares and stores it."""
    return email.strip().lower()


@attrs.frozen
class User:
    #: The normalized address.
    email: str
    #: None while the user is known only from a signup whose answer was lost.
    id: str | None = None
    status: str = "pending"


@attrs.frozen
class Org:
    """The reference model: the org's users by the Idempotency-Key that signed them up."""

    users: dict[str, User] = attrs.field(factory=dict)

    def taken(self, email: str) -> bool:
        """Whether a user has this address."""
        return any(u.email == normalize(email) for u in self.users.values())

    def sign_up(self, key: str, email: str, user_id: str | None) -> Org:
        """A new pending user if the key is new and the address free; a signup seen
        before changes nothing but may teach the user's id."""
        user = self.users.get(key)
        if user is None and not self.taken(email):
            user = User(normalize(email))
        elif user is None or user.email != normalize(email):
            return self
        return self._with(key, attrs.evolve(user, id=user.id or user_id))

    def with_status(self, key: str, status: str) -> Org:
        return self._with(key, attrs.evolve(self.users[key], status=status))

    def learn(self, ids: dict[str, str]) -> Org:
        """The org with the ids it lacked taken from a listing (id by address)."""
        learned = {k: attrs.evolve(u, id=u.id or ids.get(u.email)) for k, u in self.users.items()}
        return attrs.evolve(self, users=learned)

    def _with(self, key: str, user: User) -> Org:
        return attrs.evolve(self, users={**self.users, key: user})


def known(org: Org, key: str) -> bool:
    """The user exists and its id is known: it can be verified, asked about, revoked."""
    return key in org.users and org.users[key].id is not None


def can_verify(org: Org, key: str, token_of: str) -> bool:
    """Both users are known, and a user's own token is used while it is not active (once,
    as users do: only a lost answer makes a client send it again)."""
    if not (known(org, key) and known(org, token_of)):
        return False
    return key != token_of or org.users[key].status != "active"


class Signup(Model):
    """Signups with idempotency keys, email verification, access and revocation."""

    sample = "signup"
    tenant_prefix = "org_"
    model_state = Org

    @command(key=KEYS, email=EMAILS, idempotent=True)
    def sign_up(self, key: str, email: str) -> dict[str, Any]:
        """Sign ``email`` up with Idempotency-Key ``key``: a new signup, or a retry."""
        # Which attempt this is: only a retry after a lost answer may replay a new key.
        attempt = self.shared[self.operation_key] = self.shared.get(self.operation_key, 0) + 1
        response = self.http.post(
            f"/orgs/{self.tenant}/signups",
            json={"email": email},
            headers={"Idempotency-Key": key},
        )
        body = expect_status(response, 200, 201, 409).json()
        outcome = {201: "created", 200: "replayed"}.get(response.status_code, body.get("error"))
        return {"outcome": outcome, "id": body.get("id"), "attempt": attempt}

    @sign_up.model
    def sign_up(org: Org, out: dict[str, Any], key: str, email: str) -> Org:
        if out is UNKNOWN:
            return org.sign_up(key, email, None)
        user = org.users.get(key)
        if user is not None:  # the key's user again; for another address, a refusal
            same = user.email == normalize(email)
            expected = (
                ("replayed", user.id or out["id"]) if same else ("idempotency_key_reused", None)
            )
            actual = (out["outcome"], out["id"])
            check("signup_idempotent", expected=expected, actual=actual, key=key, email=email)
        else:
            wanted = "email_taken" if org.taken(email) else "created"
            # A retry finds the user that its first attempt, whose answer was lost, made.
            made = wanted == "created" and out["attempt"] > 1 and out["outcome"] == "replayed"
            check(
                "one_account_per_email",
                holds=made or out["outcome"] == wanted,
                expected=wanted,
                actual=out["outcome"],
                key=key,
                email=email,
            )
        return org.sign_up(key, email, out["id"])

    def _token(self, key: str) -> str:
        """The token of the verification email sent to ``key``'s user, from the outbox."""
        user = self.state.users[key]
        response = self.http.get(f"/orgs/{self.tenant}/outbox", params={"email": user.email})
        messages = expect_status(response, 200).json()["messages"]
        tokens = [m["token"] for m in messages if m["user"] == user.id]
        if not tokens:
            raise AssertionError(f"no verification email for {user.id} in the outbox")
        return str(tokens[-1])

    def _access(self, user_id: str) -> str:
        response = expect_status(self.http.get(f"/users/{user_id}/access"), 200, 403)
        return "granted" if response.status_code == 200 else "denied"

    @command(
        key=KEYS,
        token_of=from_state(lambda org, key: key) | KEYS,  # mostly the user's own email
        requires=can_verify,
        idempotent=True,
    )
    def verify(self, key: str, token_of: str) -> dict[str, Any]:
        """Verify ``key``'s user with the token of ``token_of``'s verification email;
        once verified, the app asks for access (as it does once the link is clicked)."""
        user_id = self.state.users[key].id
        response = self.http.post(f"/users/{user_id}/verify", json={"token": self._token(token_of)})
        status = expect_status(response, 200, 403, 409).status_code
        outcome = {200: "active", 403: "invalid_token", 409: "user_revoked"}[status]
        if outcome != "active":
            return {"outcome": outcome}
        access = self._access(user_id)
        # The status read after tells a revocation that landed in between (another
        # client's) from a stale denial.
        later = expect_status(self.http.get(f"/users/{user_id}"), 200).json()["status"]
        return {"outcome": outcome, "access": access, "status": later}

    @verify.model
    def verify(org: Org, out: dict[str, Any], key: str, token_of: str) -> Org | None:
        user = org.users[key]
        if user.status == "revoked":  # checked first: revocation is final
            name, expected = "revoked_loses_access", "user_revoked"
        elif token_of != key:
            name, expected = "token_required", "invalid_token"
        else:
            name, expected = "verify_accepted", "active"
        if out is not UNKNOWN:
            check(name, expected=expected, actual=out["outcome"], user=user.id, token_of=token_of)
            if out["outcome"] == "active":
                check(
                    "verified_has_access",
                    holds=out["access"] == "granted" or out["status"] == "revoked",
                    expected="granted",
                    actual=out["access"],
                    user=user.id,
                )
        return org.with_status(key, "active") if expected == "active" else None

    @command(key=KEYS, requires=known, idempotent=True)
    def access(self, key: str) -> str:
        return self._access(self.state.users[key].id)

    @access.model
    def access(org: Org, out: str, key: str) -> None:
        user = org.users[key]
        if out is not UNKNOWN:
            expected = "granted" if user.status == "active" else "denied"
            check(ACCESS[user.status], expected=expected, actual=out, user=user.id)

    @command(key=KEYS, requires=known, idempotent=True)
    def revoke(self, key: str) -> str:
        response = self.http.post(f"/users/{self.state.users[key].id}/revoke")
        return str(expect_status(response, 200).json()["status"])

    @revoke.model
    def revoke(org: Org, out: str, key: str) -> Org:
        return org.with_status(key, "revoked")

    @observation
    def users(self) -> list[tuple[str, str, str]]:
        """The org's users, as (address, id, status), sorted."""
        listed = expect_status(self.http.get(f"/orgs/{self.tenant}/users"), 200).json()["data"]
        return sorted((u["email"], u["id"], u["status"]) for u in listed)

    @users.model
    def users(org: Org, listed: list[tuple[str, str, str]]) -> Org:
        twice = sorted(e for e, n in Counter(e for e, _, _ in listed).items() if n > 1)
        check("one_account_per_email", expected=[], actual=twice)
        # The listing teaches the ids of users whose signup's answer was lost.
        org = org.learn({email: user_id for email, user_id, _ in listed})
        expected = sorted((u.email, u.id, u.status) for u in org.users.values())
        check("users_listed", expected=expected, actual=listed)
        return org


if __name__ == "__main__":
    main(Signup)
