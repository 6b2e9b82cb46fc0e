"""The sync sample service over real HTTP, and its model: no false alarm (also under
faults, and with concurrent clients), every invariant broken by a seeded bug, each bug
found, named and shrunk to its minimal sequence, and found by concurrent clients too."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, Completed, assert_shrunk, in_process, run_command
from propworkload._target import sample_service
from propworkload.samples import Bug
from propworkload.samples import sync as sync_sample

SYNC_MODEL = ROOT / "models" / "sync.py"
SYNC_WORKLOAD = ROOT / ".workers" / "workloads" / "sync.py"
INVARIANTS = {
    "sync_complete",
    "delivered_once",
    "records_match_model",
    "read_your_writes",
    "no_lost_writes",
}


# -- the service ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One correct sync service for the module; each test uses a store of its own."""
    with sample_service("sync") as url, httpx.Client(base_url=url, trust_env=False) as client:
        yield client


@pytest.fixture
def store() -> str:
    return f"st_{secrets.token_hex(4)}"


def _put(client: httpx.Client, store: str, rid: str, value: str, **body: Any) -> httpx.Response:
    return client.put(f"/stores/{store}/records/{rid}", json={"value": value, **body})


def _changes(client: httpx.Client, store: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/stores/{store}/changes", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ids(page: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(c["id"], c["version"], c["deleted"]) for c in page["data"]]


def test_put_creates_then_updates_and_each_write_takes_the_next_version(
    client: httpx.Client, store: str
) -> None:
    first = _put(client, store, "a", "x")
    other = _put(client, store, "b", "y")
    again = _put(client, store, "a", "z")
    assert (first.status_code, other.status_code, again.status_code) == (201, 201, 200)
    assert again.json() == {"id": "a", "value": "z", "version": 3}
    assert client.get(f"/stores/{store}/records/a").json() == again.json()
    listed = client.get(f"/stores/{store}/records").json()["data"]
    assert listed == [again.json(), {"id": "b", "value": "y", "version": 2}]


def test_a_write_based_on_a_stale_version_is_refused(client: httpx.Client, store: str) -> None:
    _put(client, store, "a", "x")
    _put(client, store, "a", "y")
    stale = _put(client, store, "a", "lost", version=1)
    assert (stale.status_code, stale.json()["error"]) == (409, "version_conflict")
    current = _put(client, store, "a", "z", version=2)
    assert (current.status_code, current.json()["version"]) == (200, 3)
    missing = _put(client, store, "nope", "x", version=1)
    assert (missing.status_code, missing.json()["error"]) == (409, "version_conflict")


def test_a_create_retried_with_its_key_returns_the_original(
    client: httpx.Client, store: str
) -> None:
    url = f"/stores/{store}/records"
    first = client.post(url, json={"value": "x"}, headers={"Idempotency-Key": "k1"})
    retry = client.post(url, json={"value": "x"}, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert first.json()["id"].startswith("rec_")
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    reused = client.post(url, json={"value": "other"}, headers={"Idempotency-Key": "k1"})
    assert (reused.status_code, reused.json()["error"]) == (409, "idempotency_key_reused")
    missing = client.post(url, json={"value": "x"})
    assert (missing.status_code, missing.json()["error"]) == (400, "missing_idempotency_key")
    assert [r["id"] for r in client.get(url).json()["data"]] == [first.json()["id"]]


def test_a_put_or_delete_retried_with_its_key_is_applied_once(
    client: httpx.Client, store: str
) -> None:
    key = {"Idempotency-Key": "w1"}
    url = f"/stores/{store}/records/a"
    first = client.put(url, json={"value": "x"}, headers=key)
    retry = client.put(url, json={"value": "x"}, headers=key)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json() == {"id": "a", "value": "x", "version": 1}
    deleted = client.delete(url, headers={"Idempotency-Key": "d1"})
    again = client.delete(url, headers={"Idempotency-Key": "d1"})
    assert (deleted.status_code, again.status_code) == (204, 204)
    assert again.headers["idempotent-replayed"] == "true"
    assert client.delete(url).status_code == 404
    assert _ids(_changes(client, store)) == [("a", 2, True)]


def test_the_change_feed_pages_and_moves_changed_records_to_the_end(
    client: httpx.Client, store: str
) -> None:
    """A client pulling from its cursor sees records updated and deleted behind it."""
    for rid in "abc":
        _put(client, store, rid, "x")
    first = _changes(client, store, limit=2)
    assert _ids(first) == [("a", 1, False), ("b", 2, False)]
    assert (first["next_cursor"], first["has_more"]) == ("2", True)
    _put(client, store, "a", "y")  # behind the cursor: moves to the end
    assert client.delete(f"/stores/{store}/records/b").status_code == 204
    second = _changes(client, store, cursor=first["next_cursor"], limit=2)
    assert _ids(second) == [("c", 3, False), ("a", 4, False)]
    assert second["has_more"] is True
    third = _changes(client, store, cursor=second["next_cursor"], limit=2)
    assert third["data"] == [{"id": "b", "value": None, "version": 5, "deleted": True}]
    assert (third["next_cursor"], third["has_more"]) == ("5", False)
    done = _changes(client, store, cursor=third["next_cursor"])
    assert (done["data"], done["next_cursor"], done["has_more"]) == ([], "5", False)
    assert client.get(f"/stores/{store}/records/b").status_code == 404
    # A fresh client gets each record once, at its latest version, and the tombstone.
    assert _ids(_changes(client, store)) == [("c", 3, False), ("a", 4, False), ("b", 5, True)]
    empty = _changes(client, f"{store}_empty")
    assert (empty["data"], empty["next_cursor"], empty["has_more"]) == ([], "0", False)


def test_stores_are_isolated(client: httpx.Client, store: str) -> None:
    _put(client, store, "a", "mine")
    _put(client, f"{store}_other", "a", "theirs")
    assert client.get(f"/stores/{store}/records/a").json()["value"] == "mine"
    assert _ids(_changes(client, f"{store}_other")) == [("a", 1, False)]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("PUT", "records/a", {"content": b"{"}, 400, "invalid_json"),
        ("PUT", "records/a", {"json": ["x"]}, 400, "invalid_json"),
        ("PUT", "records/a", {"json": {"value": 5}}, 422, "invalid_value"),
        ("PUT", "records/a", {"json": {"value": "x", "version": 0}}, 422, "invalid_version"),
        ("PUT", "records/a", {"json": {"value": "x", "version": None}}, 422, "invalid_version"),
        ("PUT", "records/a%20b", {"json": {"value": "x"}}, 422, "invalid_id"),
        (
            "PUT",
            "records/a",
            {"json": {"value": "x"}, "headers": {"Idempotency-Key": "a b"}},
            400,
            "invalid_idempotency_key",
        ),
        ("GET", "changes", {"params": {"cursor": "-1"}}, 400, "invalid_cursor"),
        ("GET", "changes", {"params": {"limit": 0}}, 422, "invalid_limit"),
        ("GET", "changes", {"params": {"limit": 101}}, 422, "invalid_limit"),
        ("GET", "records/a", {}, 404, "no_such_record"),
        ("DELETE", "records/a", {}, 404, "no_such_record"),
        ("PATCH", "records/a", {}, 405, "method_not_allowed"),
        ("GET", "nowhere", {}, 404, "not_found"),
    ],
)
def test_bad_requests_get_a_documented_error_and_change_nothing(
    client: httpx.Client,
    store: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    error: str,
) -> None:
    response = client.request(method, f"/stores/{store}/{path}", **kwargs)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.json()["message"]
    if status == 405:
        assert set(response.headers["allow"].replace(" ", "").split(",")) >= {
            "GET",
            "PUT",
            "DELETE",
        }
    assert _changes(client, store)["data"] == []


def test_openapi_document_describes_every_operation_with_links(client: httpx.Client) -> None:
    assert client.get("/").json() == {"service": "sync"}
    document = client.get("/openapi.json").json()
    assert document == sync_sample.OPENAPI
    assert document["openapi"].startswith("3.0")
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/"),
        ("POST", "/stores/{store}/records"),
        ("GET", "/stores/{store}/records"),
        ("PUT", "/stores/{store}/records/{id}"),
        ("GET", "/stores/{store}/records/{id}"),
        ("DELETE", "/stores/{store}/records/{id}"),
        ("GET", "/stores/{store}/changes"),
    }
    created = document["paths"]["/stores/{store}/records"]["post"]["responses"]["201"]
    assert created["links"]["GetRecord"]["parameters"]["id"] == "$response.body#/id"


def test_unknown_bug_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sync bugs: nope"):
        sync_sample.create_app(frozenset({"nope"}))


# -- the model ------------------------------------------------------------------------


def _run(url: str, tmp_path: Path, *args: str) -> Completed:
    """The sync workload entry (as a simulator runs it) against ``url``."""
    env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command([str(SYNC_WORKLOAD), *args], env=env)


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


def test_every_invariant_has_a_seeded_bug() -> None:
    """Each invariant of the model is the one some seeded bug breaks first, and plain
    sequential runs find a bug for each."""
    assert {bug.invariant for bug in sync_sample.BUGS} == INVARIANTS
    assert {bug.invariant for bug in sync_sample.BUGS if not bug.needs} == INVARIANTS
    sequential = [not bug.needs for bug in sync_sample.BUGS]
    assert sequential == sorted(sequential, reverse=True)  # sequential bugs come first
    assert sum(sequential) >= 3
    for bug in sync_sample.BUGS:
        if bug.needs:
            assert bug.needs == ("faults",) and bug.name.startswith("lost-")
            assert bug.faults == ("lost-response",)


@pytest.mark.slow
def test_correct_service_passes_every_invariant(tmp_path: Path) -> None:
    with sample_service("sync") as url:
        result = _run(url, tmp_path, "--seed", "1")
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED 1 model=sync ")
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=")


@pytest.mark.slow
def test_no_false_alarm_under_every_fault(tmp_path: Path) -> None:
    """Lost answers, duplicates, timeouts and resets: retries with the same keys, and
    writes of unknown outcome kept possible, never fail a correct service."""
    with sample_service("sync") as url:
        result = _run(url, tmp_path, "--seed", "1", "--faults", "all", "--examples", "40")
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    for kind in ("lost-response", "duplicate", "timeout-before-send", "reset", "delay"):
        assert f"{kind}=" in summary


@pytest.mark.slow
@pytest.mark.parametrize("bug", sync_sample.BUGS, ids=lambda bug: bug.name)
def test_seeded_bug_is_found_named_shrunk_and_replayed(bug: Bug, tmp_path: Path) -> None:
    """Default settings (with the faults a bug needs) find it: exit 1, its invariant
    named, shrunk to its minimal sequence; the trace replays it in a fresh store."""
    with in_process("sync", bug.name) as service:
        found = service.run_args(SYNC_MODEL, "--seed", "1", *bug.run_options())
        assert found.code == 1, found.out + found.err
        (trace,) = [line for line in found.lines if line.startswith("  trace: ")]
        replayed = service.replay(trace.split("trace: ", 1)[1])
        plain = None
        if bug.needs:
            plain = service.run_args(SYNC_MODEL, "--seed", "1", "--examples", "30")
    fail = [line for line in found.lines if line.startswith("INVARIANT FAIL")]
    assert len(fail) == 1, found.out
    assert fail[0].startswith(f"INVARIANT FAIL {bug.invariant} expected=")
    assert "minimal sequence (" in found.out, found.out
    assert_shrunk(found.out, bug.minimal_steps, least=bug.minimal_steps)
    assert "Traceback" not in found.out + found.err
    assert replayed.code == 1, replayed.out + replayed.err
    assert f"REPLAY reproduced: {bug.invariant} failed again at step" in replayed.out
    if plain is not None:  # the bug hides from plain runs: it takes the faults to show it
        assert plain.code == 0, plain.out + plain.err
        steps = [line for line in found.lines if line.startswith("    ") and " -> " in line]
        assert bug.faults[0] in steps[-1]


@pytest.mark.slow
@pytest.mark.parametrize("faults", [[], ["--faults", "all"]], ids=["plain", "faults"])
def test_concurrent_clients_raise_no_false_alarm(faults: list[str]) -> None:
    """Three clients at once, each syncing into its own replica (under every fault too):
    their pages, the final listing and a fresh client's sync of the feed fit an order of
    the operations on a correct service."""
    with in_process("sync") as service:
        options = ["--seed", "3", "--examples", "30", "--concurrency", "3", *faults]
        result = service.run_args(SYNC_MODEL, *options)
    assert result.code == 0, result.out + result.err
    assert {"linearizable", "sync_complete", "records_match_model"} <= _passed(result)
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=30 ")


@pytest.mark.slow
def test_concurrent_clients_find_a_seeded_bug() -> None:
    """No operation was written for concurrent mode: the commands are what the clients
    run and the observations end each program, so a record re-created but missing from
    the final listing is a history that fits no order of the operations."""
    with in_process("sync", "recreate-stays-deleted") as service:
        result = service.run_args(SYNC_MODEL, "--seed", "2", "--concurrency", "3")
    assert result.code == 1, result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL linearizable expected=linearizable actual=records()")
    assert "minimal parallel program (" in result.out, result.out
    assert_shrunk(result.out, 3, least=3)
