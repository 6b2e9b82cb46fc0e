"""Injected faults against the real payments service, proven by the service's own request
counts; the Possible states of a model; fault options on the command line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    PAYMENTS_MODEL,
    Completed,
    FlakyProxy,
    assert_shrunk,
    in_process,
    payments_workload,
    run_command,
)
from propworkload import Possible, TargetUnreachable
from propworkload._faults import (
    EXTENSION,
    FAULT_KINDS,
    Fault,
    FaultTransport,
    InjectedFault,
    ScriptedFaults,
)
from propworkload._possible import TooManyPossibilities
from propworkload._runtime import RunState, StopRun
from propworkload.samples import payments as payments_sample

Service = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def service(payments: Service) -> Iterator[str]:
    with payments() as url:
        yield url


@contextmanager
def _client(url: str, faults: list[Fault | None]) -> Iterator[httpx.Client]:
    """A client whose requests get ``faults``, in order."""
    with httpx.HTTPTransport() as inner:  # FaultTransport leaves its inner one open
        transport = FaultTransport(inner, ScriptedFaults(faults))
        with httpx.Client(base_url=url, transport=transport, timeout=5) as client:
            yield client


def _received(url: str, key: str, customer: str = "cus_f") -> int:
    """How many charge requests with ``key`` the service says it received."""
    counts = httpx.get(f"{url}/_stats/requests").json()["requests"]
    return int(counts.get(f"POST /customers/{customer}/charges {key}", 0))


def _charges(url: str, customer: str = "cus_f") -> list[dict[str, object]]:
    return list(httpx.get(f"{url}/customers/{customer}/charges").json()["data"])


def _charge(client: httpx.Client, key: str) -> httpx.Response:
    return client.post(
        "/customers/cus_f/charges", json={"amount": 7}, headers={"Idempotency-Key": key}
    )


def test_lost_response_is_delivered_and_processed_but_times_out(service: str) -> None:
    with (
        _client(service, [Fault("lost-response")]) as client,
        pytest.raises(httpx.ReadTimeout) as raised,
    ):
        _charge(client, "k-lost")
    assert isinstance(raised.value, InjectedFault)
    assert _received(service, "k-lost") == 1
    assert [c["idempotency_key"] for c in _charges(service)] == ["k-lost"]


def test_timeout_before_send_never_reaches_the_service(service: str) -> None:
    with (
        _client(service, [Fault("timeout-before-send")]) as client,
        pytest.raises(httpx.TimeoutException),
    ):
        _charge(client, "k-unsent")
    assert _received(service, "k-unsent") == 0
    assert _charges(service) == []


def test_duplicate_is_delivered_twice_and_the_client_sees_the_first_answer(service: str) -> None:
    with _client(service, [Fault("duplicate")]) as client:
        response = _charge(client, "k-dup")
    assert response.status_code == 201  # the first delivery created the charge
    assert response.request.extensions[EXTENSION].second_status == 200  # the copy replayed
    assert _received(service, "k-dup") == 2
    assert len(_charges(service)) == 1


def test_delay_answers_late(service: str) -> None:
    with _client(service, [Fault("delay", delay=0.15)]) as client:
        started = time.perf_counter()
        response = _charge(client, "k-late")
        elapsed = time.perf_counter() - started
    assert response.status_code == 201
    assert elapsed >= 0.15
    assert _received(service, "k-late") == 1


def test_reset_fails_the_request_and_delivers_it_at_most_once(service: str) -> None:
    """A reset right after sending: the client sees a read error; the service got the
    request once or not at all (which is why its outcome is unknown)."""
    with _client(service, [Fault("reset")] * 10) as client:
        for i in range(10):
            with pytest.raises(httpx.ReadError):
                _charge(client, f"k-reset-{i}")
    counts = [_received(service, f"k-reset-{i}") for i in range(10)]
    assert set(counts) <= {0, 1}
    assert sum(counts) >= 1  # sent before the reset: on loopback it usually arrives
    assert len(_charges(service)) == sum(counts)


def test_reset_that_cannot_connect_is_a_connect_error(free_url: str) -> None:
    with _client(free_url, [Fault("reset")]) as client, pytest.raises(httpx.ConnectError):
        _charge(client, "k-nowhere")


def test_no_fault_passes_through(service: str) -> None:
    with _client(service, [None]) as client:
        assert _charge(client, "k-plain").status_code == 201
    assert _received(service, "k-plain") == 1


# -- Possible ---------------------------------------------------------------------


def test_possible_keeps_unknown_outcomes_pending_until_seen() -> None:
    states = Possible(0).then(lambda n: n + 5)
    assert states.known and states.only() == 5
    states = states.maybe(lambda n: n + 3)  # a charge of 3 timed out
    assert sorted(states) == [5, 8]
    assert states.expected(lambda n: n) == {"one of": [5, 8]}
    assert 4 not in states.values(lambda n: n)  # bounds: acknowledged 5 <= b <= attempted 8
    assert states.where(lambda n: n == 8).only() == 8  # seen landed: settled
    # Seen not landed (yet): it may still land later, so both stay possible.
    not_yet = states.where(lambda n: n == 5)
    assert sorted(not_yet) == [5, 8] and not not_yet.known
    # A later known operation applies whether or not the pending one landed first.
    # (landed before: 80; not yet: 50, and it may still land: 53).
    assert sorted(not_yet.then(lambda n: n * 10)) == [50, 53, 80]
    # An observation no state agrees with leaves the states (a check reports it).
    assert sorted(states.where(lambda n: n == 4)) == [5, 8]
    assert states.refine(lambda n: n * 10 if n == 5 else None).values(lambda n: n) == [50, 53]


def test_possible_settles_pending_operations_by_key() -> None:
    states = Possible(0).maybe(lambda n: n + 3, key="k0")
    states = states.maybe(lambda n: n + 3, key="k0")  # a retry, unknown too: still one
    assert sorted(states) == [0, 3] and states.pending == 1
    settled = states.then(lambda n: n + 3 if n == 0 else n, key="k0")  # answered at last
    assert settled.known and settled.only() == 3


def test_possible_bounds_its_growth() -> None:
    states = Possible(0)
    with pytest.raises(TooManyPossibilities):
        for i in range(20):  # each unknown charge of 2**i doubles the possible balances
            states = states.maybe(lambda n, i=i: n + 2**i)
    assert len(states) == 2**Possible.pending_limit


# -- options --------------------------------------------------------------------


def test_unknown_fault_kind_is_a_usage_error(propworkload: Callable[..., Completed]) -> None:
    result = propworkload("run", "models/payments.py", "--faults", "lost-response,bogus")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "unknown fault bogus" in line
    for kind in FAULT_KINDS:
        assert kind in line


# -- the payments model under faults ------------------------------------------------

FAULT_BUGS = [bug for bug in payments_sample.BUGS if bug.faults]


def _trace(result: Completed) -> dict[str, Any]:
    # The failure's own trace: the first after its INVARIANT FAIL line (a failure of
    # another kind seen on the way, not shrunk, is listed after it with its own).
    lines = result.lines[
        next(i for i, x in enumerate(result.lines) if x.startswith("INVARIANT FAIL")) :
    ]
    line = next(line for line in lines if line.startswith("  trace: "))
    return dict(json.loads(Path(line.split("trace: ", 1)[1]).read_text()))


def _faults_in(trace: dict[str, Any]) -> list[str]:
    return [
        exchange["fault"]["kind"]
        for step in trace["steps"]
        for exchange in step["exchanges"]
        if exchange.get("fault")
    ]


def test_fault_only_bugs_say_which_faults_reveal_them() -> None:
    assert len(FAULT_BUGS) >= 2
    for bug in FAULT_BUGS:
        assert "lost" in bug.name or "deliver" in bug.name
        assert bug.needs == ("faults",)
        assert set(bug.faults) <= set(FAULT_KINDS)


@pytest.mark.slow
@pytest.mark.parametrize("bug", FAULT_BUGS, ids=lambda bug: bug.name)
def test_fault_only_bug_is_found_with_faults_and_not_without(
    bug: payments_sample.Bug, payments: Service, tmp_path: Path
) -> None:
    """Without faults the model never sends a refund twice, so the bug hides; with the
    faults that reveal it, it is found, named, shrunk to its minimum with the one fault it
    needs shown in the sequence, and the trace replays it (the fault re-injected). A lost
    answer is retried and the retry's answer checked: the refund whose answer was lost
    is made again, and the 409 of its retry is the failure."""
    with in_process("payments", bug.name) as service:
        # Without faults nothing is ever sent twice: 30 examples show it as well as 100.
        plain = service.run_args(PAYMENTS_MODEL, "--seed", "1", "--examples", "30")
        found = service.run_args(PAYMENTS_MODEL, "--seed", "1", *bug.run_options())
        assert found.code == 1, found.out + found.err
        (trace_line,) = [line for line in found.lines if line.startswith("  trace: ")]
        replayed = service.replay(trace_line.split("trace: ", 1)[1])
    assert plain.code == 0, plain.out + plain.err
    assert found.code == 1, found.out + found.err
    (fail,) = [line for line in found.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith(f"INVARIANT FAIL {bug.invariant} expected=")
    assert "minimal sequence (" in found.out, found.out
    assert replayed.code == 1, replayed.out + replayed.err
    assert f"REPLAY reproduced: {bug.invariant} failed again" in replayed.out
    if assert_shrunk(found.out, bug.minimal_steps, least=bug.minimal_steps).stopped:
        return  # a busy machine cut shrinking short: the faults it needs are not known
    assert _faults_in(_trace(found)) == [bug.faults[0]]
    steps = [line for line in found.lines if line.startswith("    ") and " -> " in line]
    assert bug.faults[0] in steps[-1]
    if bug.faults[0] == "lost-response":
        assert steps[-1].endswith("[refund_accepted failed]") and "then 409" in steps[-1]


@pytest.mark.slow
def test_shrinking_keeps_only_the_fault_the_failure_needs(tmp_path: Path) -> None:
    """Every kind of fault at a high rate while searching; the minimal sequence keeps
    just the one lost answer (or a reset that was delivered) the bug needs. (In this
    process: over loopback its shrinking took a minute.)"""
    with in_process("payments", "lost-refund-retry-rejected") as service:
        found = service.run_args(
            PAYMENTS_MODEL, "--seed", "2", "--faults", "all", "--fault-rate", "0.5"
        )
    assert found.code == 1, found.out + found.err
    if assert_shrunk(found.out, 2, least=2).stopped:
        return  # a busy machine: shrinking was cut short
    trace = _trace(found)
    assert len(trace["steps"]) == 2
    (fault,) = _faults_in(trace)
    assert fault in {"lost-response", "reset"}


@pytest.mark.slow
def test_emitted_regression_reinjects_the_faults(payments: Service, tmp_path: Path) -> None:
    """The pytest regression of a fault-found failure injects the same fault: it fails
    against the buggy service and passes against the fixed one."""
    with payments("lost-refund-retry-rejected") as url:
        found = payments_workload(url, tmp_path, "--seed", "1", "--faults", "lost-response")
        assert found.code == 1, found.out + found.err
        (line,) = [line for line in found.lines if line.startswith("  trace: ")]
        test_file = tmp_path / "test_regression.py"
        emitted = run_command(
            [
                "-m",
                "propworkload",
                "replay",
                line.split("trace: ", 1)[1],
                "--url",
                url,
                "--emit-pytest",
                str(test_file),
            ]
        )
        assert emitted.code == 0, emitted.out + emitted.err
        assert "with run.faults('lost-response'" in test_file.read_text()
        failing = run_command(
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], env={"APP_URL": url}
        )
    assert failing.code == 1, failing.out
    assert "refund_accepted" in failing.out
    with payments() as url:
        passing = run_command(
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], env={"APP_URL": url}
        )
    assert passing.code == 0, passing.out


@pytest.mark.slow
def test_correct_service_under_every_fault_has_no_false_alarm(
    payments: Service, tmp_path: Path
) -> None:
    with payments() as url:
        result = payments_workload(url, tmp_path, "--faults", "all", "--examples", "50")
    assert result.code == 0, result.out + result.err
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed")
    for kind in FAULT_KINDS:
        assert f"{kind}=" in summary  # every kind was injected
    assert "abandoned" not in summary  # the model handled every unknown outcome


def test_every_request_unanswered_is_still_no_false_alarm(
    payments: Service, tmp_path: Path
) -> None:
    """No request ever arrives: every outcome is unknown, nothing may be concluded. Most
    examples are dropped (their outcome unknown), so the run goes on to its budget, and
    whether the share dropped reaches the limit (exit 3, almost nothing checked) depends
    on how many examples that budget holds: either is right, a failure never is."""
    with payments() as url:
        result = payments_workload(
            url,
            tmp_path,
            *("--seed", "1", "--examples", "10", "--time-budget", "20"),
            *("--faults", "timeout-before-send", "--fault-rate", "1"),
        )
    assert result.code in (0, 3), result.out + result.err
    assert not any(line.startswith("INVARIANT FAIL") for line in result.lines), result.out


@pytest.mark.slow
def test_failures_saved_with_faults_are_kept_apart_from_plain_runs(
    payments: Service, tmp_path: Path
) -> None:
    """A failure that needs a fault is not retried (and dropped) by a run without it."""
    database = str(tmp_path / "db")
    with in_process("payments", "lost-refund-retry-rejected") as service:
        found = service.run_args(
            PAYMENTS_MODEL, "--faults", "lost-response", "--database", database
        )
        # Saved failures are retried before the search: a few examples show that none was.
        plain = service.run_args(PAYMENTS_MODEL, "--database", database, "--examples", "10")
        again = service.run_args(
            PAYMENTS_MODEL, "--faults", "lost-response", "--database", database
        )
    assert found.code == 1, found.out + found.err
    assert plain.code == 0 and "SAVED" not in plain.out, plain.out
    assert again.code == 1 and "saved-failures=1 reproduced=1" in again.out, again.out


# -- faults from outside: a flaky network between the tool and the service ----------


def test_real_network_faults_are_unknown_outcomes_not_failures(
    payments: Service, flaky_proxy: Callable[..., FlakyProxy], tmp_path: Path
) -> None:
    """Through a proxy that cuts one answer in six, the correct service passes: the model
    retries and keeps both outcomes of what it could not settle; invariants that cannot
    read the service skip that check."""
    with payments() as url:
        proxy = flaky_proxy(url, every=6)
        # 15 examples cut hundreds of answers (each example takes half a second of them).
        result = payments_workload(proxy.url, tmp_path, "--seed", "1", "--examples", "15")
    assert result.code == 0, result.out + result.err
    assert proxy.cut > 20
    assert "Traceback" not in result.out + result.err


def test_a_service_that_can_never_be_observed_is_not_a_pass(
    payments: Service, flaky_proxy: Callable[..., FlakyProxy], tmp_path: Path
) -> None:
    """Every answer after the first is cut: nothing can be checked, so the run says so
    (exit 3) instead of passing, however far its budget (spent: examples are dropped)
    let it go."""
    with payments() as url:
        proxy = flaky_proxy(url, every=1, spare=1)
        args = ("--seed", "1", "--examples", "10", "--time-budget", "20")
        result = payments_workload(proxy.url, tmp_path, *args)
    assert result.code == 3, result.out + result.err
    (line,) = [line for line in result.err.splitlines() if "error:" in line]
    # Which of the three reasons comes first depends on timing: on a loaded machine the
    # run may pass 10 s without an answer and stop as unreachable.
    assert any(
        reason in line
        for reason in ("nothing was checked", "no example could finish", "cannot reach")
    ), line


UNHANDLED = """
from propworkload import Model, rule, invariant


class NoRetries(Model):
    sample = "payments"

    def __init__(self):
        super().__init__()
        self.keys = []

    @rule()
    def charge(self):
        key = f"k{len(self.keys)}"
        self.http.post(f"/customers/{self.tenant}/charges", json={"amount": 1},
                       headers={"Idempotency-Key": key})
        self.keys.append(key)

    @invariant()
    def each_key_once(self):
        listed = self.http.get(f"/customers/{self.tenant}/charges").json()["data"]
        self.check("each_key_once", expected=self.keys,
                   actual=[c["idempotency_key"] for c in listed])
"""


def test_unhandled_transport_error_drops_the_example_instead_of_failing(
    propworkload: Callable[..., Completed], payments: Service, tmp_path: Path
) -> None:
    """A rule that lets a timeout escape leaves the model unsure of the service: the
    example is dropped (counted as abandoned), not reported as a bug."""
    model = tmp_path / "noretries.py"
    model.write_text(UNHANDLED)
    with payments() as url:
        result = propworkload(
            "run", str(model), "--url", url, "--seed", "1", "--faults", "lost-response"
        )
    assert result.code == 0, result.out + result.err
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert "abandoned=" in summary
    assert int(summary.split("abandoned=")[1].split()[0]) > 0


def test_connection_errors_end_the_run_only_when_the_target_is_gone() -> None:
    state = RunState(url="http://127.0.0.1:9", transport=httpx.HTTPTransport())
    refused = httpx.ConnectError("refused")
    with pytest.raises(StopRun):
        state.connect_failed(refused)  # never answered: unreachable
    state.answered()
    state.connect_failed(refused)  # answered a moment ago: a network fault
    state.unreachable_after = 0.0
    with pytest.raises(StopRun) as stopped:
        state.connect_failed(refused)
    assert isinstance(stopped.value.error, TargetUnreachable)


def test_explore_injects_faults_in_every_worker(
    propworkload: Callable[..., Completed], payments: Service, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    with payments() as url:
        result = propworkload(
            "explore",
            "models/payments.py",
            "--url",
            url,
            "--examples",
            "40",
            "--workers",
            "2",
            "--faults",
            "all",
            "--report-json",
            str(report),
        )
    assert result.code == 0, result.out + result.err
    faults = json.loads(report.read_text())["coverage"]["faults"]
    assert set(faults) == set(FAULT_KINDS)
    assert any(line.startswith("COVERAGE faults injected: ") for line in result.lines)
