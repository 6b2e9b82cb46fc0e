"""The signup sample service over real HTTP, and its model against it: no false alarm (also
under faults and concurrent clients, from the one description of each command), every
seeded bug found, named and shrunk to its minimum, and every invariant of the model broken
by some bug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, Completed, assert_shrunk, in_process, run_command
from propworkload import UNKNOWN, Possible, Replay
from propworkload._loader import load_model
from propworkload._model import invariants_of, rules_of
from propworkload._parallel import ProgramShape
from propworkload._spec import evaluate
from propworkload._target import sample_service
from propworkload.samples import Bug
from propworkload.samples import signup as signup_sample

MODEL = ROOT / "models" / "signup.py"
WORKLOAD = ROOT / ".workers" / "workloads" / "signup.py"
INVARIANTS = {
    "one_account_per_email",
    "signup_idempotent",
    "no_access_before_verify",
    "verified_has_access",
    "revoked_loses_access",
    "token_required",
    "verify_accepted",
    "users_listed",
}


def _run(url: str, tmp_path: Path, *args: str) -> Completed:
    """Run the signup workload entry (as a simulator does) against ``url``."""
    env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command([str(WORKLOAD), *args], env=env)


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


# -- the service ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with sample_service("signup") as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, trust_env=False) as client:
        yield client


def _sign_up(client: httpx.Client, org: str, email: str, key: str) -> httpx.Response:
    return client.post(
        f"/orgs/{org}/signups", json={"email": email}, headers={"Idempotency-Key": key}
    )


def _token(client: httpx.Client, org: str, email: str) -> str:
    (message,) = client.get(f"/orgs/{org}/outbox", params={"email": email}).json()["messages"]
    return str(message["token"])


def test_one_account_per_address_and_retries_replay(client: httpx.Client) -> None:
    """A retry with the key replays the user; the address in another case, or with spaces,
    under another key is taken; the key for another address is refused."""
    first = _sign_up(client, "org-a", " Ann@Example.com ", "k0")
    again = _sign_up(client, "org-a", " Ann@Example.com ", "k0")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["email"] == "ann@example.com"
    assert first.json()["status"] == "pending"
    assert again.headers["idempotent-replayed"] == "true"
    taken = _sign_up(client, "org-a", "ANN@example.COM", "k1")
    assert (taken.status_code, taken.json()["error"]) == (409, "email_taken")
    reused = _sign_up(client, "org-a", "bob@example.com", "k0")
    assert (reused.status_code, reused.json()["error"]) == (409, "idempotency_key_reused")
    assert client.get("/orgs/org-a/users").json()["data"] == [first.json()]
    assert client.get("/orgs/org-a").json() == {"id": "org-a", "users": 1}


def test_access_only_after_verification_and_until_revocation(client: httpx.Client) -> None:
    user = _sign_up(client, "org-b", "ann@example.com", "k0").json()
    access = f"/users/{user['id']}/access"
    verify = f"/users/{user['id']}/verify"
    denied = client.get(access)
    assert (denied.status_code, denied.json()["error"]) == (403, "no_access")
    wrong = client.post(verify, json={"token": "0" * 32})
    assert (wrong.status_code, wrong.json()["error"]) == (403, "invalid_token")
    token = _token(client, "org-b", "ANN@example.com")
    verified = client.post(verify, json={"token": token})
    assert (verified.status_code, verified.json()["status"]) == (200, "active")
    assert client.post(verify, json={"token": token}).status_code == 200  # idempotent
    assert client.get(access).json() == {"user": user["id"], "access": True}
    revoked = client.post(f"/users/{user['id']}/revoke")
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    assert client.get(access).status_code == 403
    back = client.post(verify, json={"token": token})
    assert (back.status_code, back.json()["error"]) == (409, "user_revoked")
    assert client.get(f"/users/{user['id']}").json()["status"] == "revoked"


def test_a_users_token_verifies_only_that_user(client: httpx.Client) -> None:
    ann = _sign_up(client, "org-c", "ann@example.com", "k0").json()
    _sign_up(client, "org-c", "bob@example.com", "k1")
    bobs = _token(client, "org-c", "bob@example.com")
    assert client.post(f"/users/{ann['id']}/verify", json={"token": bobs}).status_code == 403


def test_orgs_are_isolated(client: httpx.Client) -> None:
    """The same address and key in two orgs: two users; lists and outboxes stay apart."""
    a = _sign_up(client, "org-d1", "ann@example.com", "k0").json()
    b = _sign_up(client, "org-d2", "ann@example.com", "k0").json()
    assert a["id"] != b["id"]
    assert [u["id"] for u in client.get("/orgs/org-d2/users").json()["data"]] == [b["id"]]
    (message,) = client.get("/orgs/org-d1/outbox").json()["messages"]
    assert message["user"] == a["id"]


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"json": {"email": "a@b.c"}}, 400, "missing_idempotency_key"),
        ({"content": b"{", "headers": {"Idempotency-Key": "k"}}, 400, "invalid_json"),
        ({"json": {"email": "nobody"}, "headers": {"Idempotency-Key": "k"}}, 422, "invalid_email"),
        ({"json": {"email": 5}, "headers": {"Idempotency-Key": "k"}}, 422, "invalid_email"),
    ],
)
def test_bad_signups_are_rejected(
    client: httpx.Client, kwargs: dict[str, object], status: int, error: str
) -> None:
    """Invalid requests get a 4xx with an error code, and change nothing."""
    response = client.post("/orgs/org-e/signups", **kwargs)  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert client.get("/orgs/org-e/users").json()["data"] == []


def test_unknown_things_are_404_and_errors_are_json(client: httpx.Client) -> None:
    for method, path in [
        ("GET", "/users/usr_nope"),
        ("GET", "/users/usr_nope/access"),
        ("POST", "/users/usr_nope/revoke"),
        ("GET", "/orgs/not.an.org/users"),
        ("GET", "/nowhere"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert set(response.json()) == {"error", "message"}
    missing = client.post("/users/usr_nope/verify", json={})
    assert (missing.status_code, missing.json()["error"]) == (422, "invalid_request")
    wrong_method = client.get("/orgs/org-f/signups")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")


def test_openapi_document_covers_every_route(client: httpx.Client) -> None:
    """The served document is the module's, with an operation per route, and links from
    the signup's answers to the operations that take the user's id."""
    document = client.get("/openapi.json").json()
    assert document == signup_sample.OPENAPI
    assert document["openapi"].startswith("3.0")
    assert set(document["paths"]) == {
        "/",
        "/orgs/{org}",
        "/orgs/{org}/signups",
        "/orgs/{org}/users",
        "/orgs/{org}/outbox",
        "/users/{user_id}",
        "/users/{user_id}/verify",
        "/users/{user_id}/access",
        "/users/{user_id}/revoke",
    }
    for status in ("200", "201"):
        links = document["paths"]["/orgs/{org}/signups"]["post"]["responses"][status]["links"]
        targets = {link["operationId"] for link in links.values()}
        assert {"getUser", "getAccess", "revokeUser", "getOutbox"} <= targets
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (method, path)
            assert all(r.get("content") for r in operation["responses"].values()), path


def test_unknown_bug_is_refused() -> None:
    with pytest.raises(ValueError, match="no-such-bug"):
        signup_sample.create_app(frozenset({"no-such-bug"}))


# -- the model against it --------------------------------------------------------------


def test_every_invariant_has_a_seeded_bug() -> None:
    """Each invariant the model checks is the one some seeded bug breaks first (no check
    that cannot fail); race bugs break linearizability."""
    bugs = signup_sample.BUGS
    assert {bug.invariant for bug in bugs if "concurrency" not in bug.needs} == INVARIANTS
    sequential = [bug.needs for bug in bugs].index(("faults",))
    assert len(bugs[:sequential]) >= 3 and all(not bug.needs for bug in bugs[:sequential])
    for bug in bugs:
        if bug.needs == ("faults",):
            assert bug.name.startswith("lost-") and bug.faults == ("lost-response",)
        if "concurrency" in bug.needs:
            assert bug.name.startswith("race-") and bug.invariant == "linearizable"


@pytest.mark.slow
def test_correct_service_passes_with_every_invariant_checked(tmp_path: Path) -> None:
    with sample_service("signup") as url:
        result = _run(url, tmp_path)
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED ") and "model=signup" in result.lines[0]
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=")


@pytest.mark.slow
@pytest.mark.parametrize("bug", signup_sample.BUGS, ids=lambda bug: bug.name)
def test_seeded_bug_is_found_named_and_shrunk(bug: Bug, tmp_path: Path) -> None:
    """What the bug needs (faults, clients at once) on top of default settings finds it:
    exit 1, its invariant named, shrunk to its minimum."""
    with in_process("signup", bug.name) as service:
        result = service.run_args(MODEL, "--seed", "1", *bug.run_options())
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith(f"INVARIANT FAIL {bug.invariant} expected=")
    if "concurrency" in bug.needs:
        assert_shrunk(result.out, bug.minimal_steps + 1, least=bug.minimal_steps)
    else:
        assert "minimal sequence (" in result.out, result.out
        assert_shrunk(result.out, bug.minimal_steps, least=bug.minimal_steps)
    if bug.faults:
        steps = [line for line in result.lines if line.startswith("    ") and " -> " in line]
        assert bug.faults[0] in steps[-1]


@pytest.mark.slow
def test_no_false_alarm_under_faults_or_concurrent_clients(tmp_path: Path) -> None:
    """Lost answers, duplicates, timeouts and resets are tolerated (retries, outcomes kept
    unknown until the listing tells); three clients at once, with faults too, see only
    histories some order of the commands explains."""
    with sample_service("signup") as url:
        faults = _run(url, tmp_path, "--faults", "all", "--seed", "1")
        clients = _run(url, tmp_path, "--concurrency", "3", "--seed", "1", "--examples", "30")
        both = _run(
            url,
            tmp_path,
            "--faults",
            "all",
            "--concurrency",
            "3",
            "--seed",
            "1",
            "--examples",
            "30",
        )
    assert faults.code == 0, faults.out + faults.err
    assert _passed(faults) == INVARIANTS
    for result in (clients, both):
        assert result.code == 0, result.out + result.err
        (passed,) = [line for line in result.lines if "PASS linearizable" in line]
        assert passed.startswith("INVARIANT PASS linearizable checks=90")


# -- the model's description -------------------------------------------------------------


def test_the_model_is_commands_and_one_observation() -> None:
    """Every mode derives from four commands and the listing: no rule, invariant or
    operation is written for one mode alone."""
    model, _ = load_model(str(MODEL))
    commands = {"sign_up", "verify", "access", "revoke"}
    assert set(rules_of(model)) == commands
    assert set(invariants_of(model)) == {"users"}
    shape = ProgramShape(model, concurrency=3, steps=6)
    assert {op.name for op in shape.drawable} == commands
    assert [op.name for op in shape.final] == ["users"]


def _apply(name: str, org: Any, out: Any, **arguments: str) -> tuple[Any, list[str]]:
    """The org after command ``name`` answered ``out`` in ``org`` (None if no state
    explains it), and the checks that failed."""
    model, _ = load_model(str(MODEL))
    after, failed, _ = evaluate(Possible(org), vars(model)[name], out, arguments)
    return after and after.only(), sorted({check.name for check in failed})


def _org() -> Any:
    """The model's initial state: an org without users."""
    model, _ = load_model(str(MODEL))
    assert model.model_state is not None
    return model.model_state()


def test_a_new_key_is_replayed_only_on_a_retry() -> None:
    """A retry finds the user its lost first attempt made; a first attempt told that the
    new key's user exists is told of an account the model does not know."""

    def sign_up(**answer: object) -> tuple[Any, list[str]]:
        out = {"id": None, "attempt": 1, **answer}
        return _apply("sign_up", _org(), out, key="k0", email="Ann@Example.com")

    after, failed = sign_up(outcome="replayed", id="usr_1", attempt=2)
    assert failed == [] and after.users["k0"].id == "usr_1"
    assert sign_up(outcome="replayed", id="usr_1") == (None, ["one_account_per_email"])
    assert sign_up(outcome="email_taken") == (None, ["one_account_per_email"])


def test_a_revocation_between_verifying_and_asking_is_no_false_alarm() -> None:
    """Verify asks for access after verifying: a denial is fine only if the user was
    revoked meanwhile (by another client), as the status read after shows."""
    org = _org().sign_up("k0", "ann@example.com", "usr_1")
    raced = {"outcome": "active", "access": "denied", "status": "revoked"}
    after, failed = _apply("verify", org, raced, key="k0", token_of="k0")
    assert failed == [] and after.users["k0"].status == "active"
    stale = {**raced, "status": "active"}
    assert _apply("verify", org, stale, key="k0", token_of="k0") == (
        None,
        ["verified_has_access"],
    )
    after, _ = _apply("verify", org, UNKNOWN, key="k0", token_of="k0")
    assert after.users["k0"].status == "active"


def test_an_unanswered_signup_is_pending_until_the_listing_tells() -> None:
    """Every attempt of a signup lost its answer: the user may or may not exist, and the
    listing after the step settles it and teaches the user's id."""
    model, _ = load_model(str(MODEL))
    with (
        in_process("signup") as service,
        Replay(model, url=service.url, transport=service.transport) as run,
    ):
        with run.faults("lost-response", "lost-response", "lost-response"):
            run.sign_up(key="k0", email=" Ann@Example.com")
        assert "3 attempts failed" in str(run.record.steps[0].unknown)
        user = run.machine.possible.only().users["k0"]
        assert (user.email, user.status) == ("ann@example.com", "pending")
        assert user.id is not None and user.id.startswith("usr_")
        run.sign_up(key="k0", email="ann@example.com")  # the retry: its user, replayed
        assert run.record.steps[1].output["outcome"] == "replayed"
