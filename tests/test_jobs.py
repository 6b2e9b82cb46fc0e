"""The jobs sample service over real HTTP, and the jobs model against it: no false alarm
(plain, under every fault, with clients at once), and every seeded bug found, named and
shrunk to its minimum."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, Completed, assert_shrunk, in_process, run_command
from propworkload._loader import load_model
from propworkload._model import invariants_of, rules_of
from propworkload._operations import operations_of
from propworkload._target import sample_service
from propworkload.samples import Bug
from propworkload.samples import jobs as jobs_sample

JOBS_WORKLOAD = ROOT / ".workers" / "workloads" / "jobs.py"
JOBS_MODEL = ROOT / "models" / "jobs.py"
INVARIANTS = {
    "enqueued_once",
    "unique_ids",
    "finished_once",
    "lease_matches_model",
    "lease_honoured",
    "jobs_listed",
}


def jobs_workload(url: str, tmp_path: Path, *args: str) -> Completed:
    """Run the jobs workload entry (as a simulator does) against ``url``."""
    env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command([str(JOBS_WORKLOAD), *args], env=env)


# -- the service ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with sample_service("jobs") as url:
        yield url


@pytest.fixture
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, trust_env=False) as client:
        yield client


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue of this test's own (tests share one service)."""
    return f"q_{request.node.name[:40].replace('[', '_').replace(']', '_')}"


def _enqueue(client: httpx.Client, queue: str, key: str, payload: str = "p") -> httpx.Response:
    return client.post(
        f"/queues/{queue}/jobs", json={"payload": payload}, headers={"Idempotency-Key": key}
    )


def _lease(
    client: httpx.Client, queue: str, seconds: int = 30, key: str | None = None
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(f"/queues/{queue}/leases", json={"seconds": seconds}, headers=headers)


def _finish(client: httpx.Client, lease: dict[str, Any], outcome: str = "ack") -> httpx.Response:
    return client.post(f"/jobs/{lease['job']['id']}/{outcome}", json={"lease": lease["lease"]})


def _advance(client: httpx.Client, queue: str, seconds: int) -> int:
    response = client.post(f"/queues/{queue}/clock", json={"advance": seconds})
    assert response.status_code == 200, response.text
    return int(response.json()["now"])


def test_retried_enqueue_returns_the_original_job(client: httpx.Client, queue: str) -> None:
    first = _enqueue(client, queue, "k0", "send-email")
    again = _enqueue(client, queue, "k0", "send-email")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    job = first.json()
    assert (job["status"], job["attempts"], job["completions"], job["payload"]) == (
        "queued",
        0,
        0,
        "send-email",
    )
    assert client.get(f"/queues/{queue}/jobs").json()["data"] == [job]
    assert client.get(f"/jobs/{job['id']}").json() == job


def test_leases_take_the_oldest_job_then_nothing(client: httpx.Client, queue: str) -> None:
    a, b = (_enqueue(client, queue, key).json()["id"] for key in ("k0", "k1"))
    first, second = _lease(client, queue, 5), _lease(client, queue, 5)
    assert [first.json()["job"]["id"], second.json()["job"]["id"]] == [a, b]
    assert first.json()["expires_at"] == 5
    assert first.json()["job"]["status"] == "leased"
    assert first.json()["job"]["lease_expires_at"] == 5
    empty = _lease(client, queue)
    assert (empty.status_code, empty.content) == (204, b"")


def test_a_lease_expires_on_the_queue_clock_and_its_token_stops_working(
    client: httpx.Client, queue: str
) -> None:
    """Leased for 2 s: still held at 1 s; at 2 s the job is offered again under a new
    lease, and the old one can neither ack nor nack it."""
    job_id = _enqueue(client, queue, "k0").json()["id"]
    old = _lease(client, queue, 2).json()
    assert _advance(client, queue, 1) == 1
    assert _lease(client, queue).status_code == 204
    assert _advance(client, queue, 1) == 2
    listed = client.get(f"/queues/{queue}/jobs").json()["data"]
    assert (listed[0]["status"], listed[0]["lease_expires_at"]) == ("queued", None)
    new = _lease(client, queue, 10).json()
    assert (new["job"]["id"], new["expires_at"]) == (job_id, 12)
    assert new["lease"] != old["lease"]
    for outcome in ("ack", "nack"):
        lost = _finish(client, old, outcome)
        assert (lost.status_code, lost.json()["error"]) == (409, "lease_lost")
    done = _finish(client, new)
    assert (done.status_code, done.json()["status"], done.json()["completions"]) == (
        200,
        "done",
        1,
    )
    assert _lease(client, queue).status_code == 204


def test_an_expired_lease_cannot_ack_even_if_nobody_took_the_job(
    client: httpx.Client, queue: str
) -> None:
    _enqueue(client, queue, "k0")
    lease = _lease(client, queue, 1).json()
    _advance(client, queue, 1)
    lost = _finish(client, lease)
    assert (lost.status_code, lost.json()["error"]) == (409, "lease_lost")


def test_an_ack_sent_again_is_answered_again_and_counted_once(
    client: httpx.Client, queue: str
) -> None:
    _enqueue(client, queue, "k0")
    lease = _lease(client, queue).json()
    first, again = _finish(client, lease), _finish(client, lease)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["completions"] == 1
    nack = _finish(client, lease, "nack")
    assert (nack.status_code, nack.json()["error"]) == (409, "already_done")


def test_nack_requeues_the_job_with_one_more_attempt(client: httpx.Client, queue: str) -> None:
    _enqueue(client, queue, "k0")
    first = _lease(client, queue).json()
    nacked = _finish(client, first, "nack")
    assert (nacked.json()["status"], nacked.json()["attempts"]) == ("queued", 1)
    assert _finish(client, first, "nack").headers["idempotent-replayed"] == "true"
    second = _lease(client, queue).json()
    assert second["job"]["id"] == first["job"]["id"]
    assert _finish(client, first).json()["error"] == "lease_lost"
    _finish(client, second)
    late = _finish(client, first)
    assert (late.status_code, late.json()["error"]) == (409, "already_done")


def test_a_lease_retried_with_its_key_is_answered_again(client: httpx.Client, queue: str) -> None:
    _enqueue(client, queue, "k0")
    _enqueue(client, queue, "k1")
    first = _lease(client, queue, key="lease-1")
    again = _lease(client, queue, key="lease-1")
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = _lease(client, queue, key="lease-2")
    assert other.json()["job"]["idempotency_key"] == "k1"


def test_the_clock_moves_forward_only(client: httpx.Client, queue: str) -> None:
    assert client.get(f"/queues/{queue}/clock").json() == {"queue": queue, "now": 0}
    assert client.post(f"/queues/{queue}/clock", json={"to": 7}).json()["now"] == 7
    assert client.post(f"/queues/{queue}/clock", json={"to": 7}).json()["now"] == 7
    back = client.post(f"/queues/{queue}/clock", json={"to": 6})
    assert (back.status_code, back.json()["error"]) == (409, "clock_backwards")
    assert _advance(client, queue, 3) == 10


def test_queues_are_isolated(client: httpx.Client, queue: str) -> None:
    _enqueue(client, f"{queue}-a", "k0")
    _advance(client, f"{queue}-a", 5)
    assert client.get(f"/queues/{queue}-b/jobs").json()["data"] == []
    assert _lease(client, f"{queue}-b").status_code == 204
    assert client.get(f"/queues/{queue}-b/clock").json()["now"] == 0


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("POST", "/queues/q/jobs", {"json": {"payload": "p"}}, 400, "missing_idempotency_key"),
        ("POST", "/queues/q/jobs", {"json": {"payload": 5}, "key": "k"}, 422, "invalid_payload"),
        ("POST", "/queues/q/jobs", {"content": b"[1]", "key": "k"}, 400, "invalid_json"),
        ("POST", "/queues/q.x/jobs", {"json": {"payload": "p"}, "key": "k"}, 422, "invalid_queue"),
        (
            "POST",
            "/queues/q/jobs",
            {"json": {"payload": "p"}, "key": "a b"},
            400,
            "invalid_idempotency_key",
        ),
        ("POST", "/queues/q/leases", {"json": {"seconds": 0}}, 422, "invalid_seconds"),
        ("POST", "/queues/q/leases", {"json": {"seconds": True}}, 422, "invalid_seconds"),
        ("POST", "/queues/q/leases", {"json": {}, "key": ""}, 400, "invalid_idempotency_key"),
        ("POST", "/queues/q/clock", {"json": {"advance": 1, "to": 2}}, 422, "invalid_clock"),
        ("POST", "/queues/q/clock", {"json": {"advance": -1}}, 422, "invalid_clock"),
        ("POST", "/jobs/job_nope/ack", {"json": {"lease": "x"}}, 404, "no_such_job"),
        ("POST", "/jobs/job_nope/nack", {"json": {}}, 422, "invalid_lease"),
        ("GET", "/jobs/job_nope", {}, 404, "no_such_job"),
        ("PUT", "/queues/q/jobs", {}, 405, "method_not_allowed"),
        ("GET", "/nowhere", {}, 404, "not_found"),
    ],
)
def test_bad_requests_are_rejected_with_an_error_code(
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    error: str,
) -> None:
    key = kwargs.pop("key", None)
    headers = {} if key is None else {"Idempotency-Key": key}
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert client.get("/queues/q/jobs").json()["data"] == []


def test_openapi_document_names_every_operation_and_links_them(client: httpx.Client) -> None:
    """The served document is the module's, covers every route, and links the ids that
    creates return to the operations that take them (for Schemathesis's stateful runs)."""
    document = client.get("/openapi.json").json()
    assert document == jobs_sample.OPENAPI
    assert client.get("/").json() == {"service": "jobs"}
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/"),
        ("POST", "/queues/{queue}/jobs"),
        ("GET", "/queues/{queue}/jobs"),
        ("POST", "/queues/{queue}/leases"),
        ("GET", "/queues/{queue}/clock"),
        ("POST", "/queues/{queue}/clock"),
        ("GET", "/jobs/{job_id}"),
        ("POST", "/jobs/{job_id}/ack"),
        ("POST", "/jobs/{job_id}/nack"),
    }
    ids = {
        operation["operationId"]
        for item in document["paths"].values()
        for key, operation in item.items()
        if key != "parameters"
    }
    created = document["paths"]["/queues/{queue}/jobs"]["post"]["responses"]["201"]["links"]
    leased = document["paths"]["/queues/{queue}/leases"]["post"]["responses"]["200"]["links"]
    assert created["GetJob"]["parameters"] == {"job_id": "$response.body#/id"}
    assert leased["AckJob"]["requestBody"] == {"lease": "$response.body#/lease"}
    for link in [*created.values(), *leased.values()]:
        assert link["operationId"] in ids


def test_unknown_bug_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown jobs bugs: nope"):
        jobs_sample.create_app(frozenset({"nope"}))


# -- the model -----------------------------------------------------------------------


def test_one_description_serves_every_mode() -> None:
    """The model is commands and one observation: the rules and invariant of sequential
    runs and the operations of parallel programs are those, nothing written twice."""
    model, _ = load_model(str(JOBS_MODEL))
    commands = ["ack", "advance", "enqueue", "lease", "nack"]
    assert sorted(rules_of(model)) == commands
    assert invariants_of(model) == ["listing"]
    assert sorted(operations_of(model)) == sorted([*commands, "listing"])


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


def test_every_invariant_has_a_seeded_bug() -> None:
    """Each invariant of the model is the one some seeded bug breaks first (no check that
    cannot fail); sequential bugs come first, then those that need faults or clients at
    once, named as such."""
    sequential = [bug.invariant for bug in jobs_sample.BUGS if not bug.needs]
    with_faults = [bug for bug in jobs_sample.BUGS if bug.needs == ("faults",)]
    racing = [bug for bug in jobs_sample.BUGS if bug.needs == ("concurrency",)]
    assert len(sequential) >= 3 and with_faults and racing
    assert [bool(bug.needs) for bug in jobs_sample.BUGS] == sorted(
        bool(bug.needs) for bug in jobs_sample.BUGS
    )
    assert set(sequential) | {bug.invariant for bug in with_faults} == INVARIANTS
    for bug in with_faults:
        assert bug.name.startswith("lost-") and bug.faults == ("lost-response",)
    for bug in racing:
        assert bug.name.startswith("race-") and bug.invariant == "linearizable"


#: The runs the end-to-end tests check: the sample's bugs switched on, and the workload's
#: options (after --seed 1); a bug that needs faults or clients at once is also run plain.
FALSE_ALARM_RUNS: dict[str, tuple[str, ...]] = {
    "test_correct_service_passes_every_invariant": ("--examples", "50"),
    "test_correct_service_under_every_fault_has_no_false_alarm": (
        "--faults",
        "all",
        "--examples",
        "50",
    ),
    "test_correct_service_is_linearizable_under_three_clients": (
        "--concurrency",
        "3",
        "--examples",
        "50",
    ),
    "test_correct_service_under_faults_and_three_clients_has_no_false_alarm": (
        "--faults",
        "all",
        "--concurrency",
        "3",
        "--examples",
        "50",
    ),
}


def _run(key: str, tmp_path: Path) -> tuple[Completed, Completed | None]:
    """The workload's run for ``key`` (a test of FALSE_ALARM_RUNS, or a bug's name), and
    for a bug that needs more than a plain run, a plain run too."""
    if key in FALSE_ALARM_RUNS:
        with sample_service("jobs") as url:
            return jobs_workload(url, tmp_path, "--seed", "1", *FALSE_ALARM_RUNS[key]), None
    # Each bug in this process (the workload entry's own runs are the ones above).
    bug = next(bug for bug in jobs_sample.BUGS if bug.name == key)
    with in_process("jobs", bug.name) as service:
        found = service.run_args(JOBS_MODEL, "--seed", "1", *bug.run_options())
        plain = None
        if bug.needs:
            plain = service.run_args(JOBS_MODEL, "--seed", "1", "--examples", "20")
    return found, plain


Runs = Callable[[str], tuple[Completed, Completed | None]]


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """``runs(key)``: the result of ``_run(key)``. The runs of every test selected in this
    session start together, two at a time: a run is a client and a service taking turns,
    so two keep both cores busy and the file takes half the time."""
    keys = []
    for item in request.session.items:
        if item.path.resolve() != Path(__file__).resolve():
            continue
        name = getattr(item, "originalname", item.name)
        if name == "test_seeded_bug_is_found_and_named":
            keys.append(item.callspec.params["bug"].name)  # type: ignore[attr-defined]
        elif name in FALSE_ALARM_RUNS:
            keys.append(name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(_run, key, tmp_path_factory.mktemp("run")) for key in keys}
        yield lambda key: futures[key].result()
        for future in futures.values():
            future.cancel()


@pytest.mark.slow
def test_correct_service_passes_every_invariant(runs: Runs) -> None:
    result, _ = runs("test_correct_service_passes_every_invariant")
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=")
    assert int(summary.split("examples=")[1].split()[0]) >= 50


@pytest.mark.slow
def test_correct_service_under_every_fault_has_no_false_alarm(runs: Runs) -> None:
    result, _ = runs("test_correct_service_under_every_fault_has_no_false_alarm")
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert "lost-response=" in summary and "duplicate=" in summary
    assert "abandoned" not in summary  # every unknown outcome was handled by the model


@pytest.mark.slow
def test_correct_service_is_linearizable_under_three_clients(runs: Runs) -> None:
    """The commands of the one description are the clients' operations: every program
    (each run three times) is checked, and the clients' acks and nacks are checked too."""
    result, _ = runs("test_correct_service_is_linearizable_under_three_clients")
    assert result.code == 0, result.out + result.err
    assert "INVARIANT PASS linearizable checks=150" in result.out
    assert "lease_honoured" in _passed(result)


@pytest.mark.slow
def test_correct_service_under_faults_and_three_clients_has_no_false_alarm(runs: Runs) -> None:
    """Clients at once with faults: a lease answered 204 whose unseen copy leased a job
    after another client's enqueue is no false alarm (the lease asks again with its key)."""
    result, _ = runs("test_correct_service_under_faults_and_three_clients_has_no_false_alarm")
    assert result.code == 0, result.out + result.err
    assert "INVARIANT PASS linearizable checks=150" in result.out
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert "duplicate=" in summary and "abandoned" not in summary


@pytest.mark.slow
@pytest.mark.parametrize("bug", jobs_sample.BUGS, ids=lambda bug: bug.name)
def test_seeded_bug_is_found_and_named(bug: Bug, runs: Runs) -> None:
    """The options the bug needs find it on seed 1: exit 1, its invariant named, shrunk
    to its minimum; a bug that needs faults or clients at once hides from a plain run."""
    result, plain = runs(bug.name)
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith(f"INVARIANT FAIL {bug.invariant} expected=")
    if "concurrency" in bug.needs:
        assert_shrunk(result.out, bug.minimal_steps + 1, least=bug.minimal_steps)
    else:
        assert "minimal sequence (" in result.out, result.out
        assert_shrunk(result.out, bug.minimal_steps, least=bug.minimal_steps)
    assert (plain is not None) == bool(bug.needs)
    if plain is not None:
        assert plain.code == 0, plain.out + plain.err
