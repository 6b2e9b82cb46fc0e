"""Concurrent mode on the one engine: parallel programs are examples like any other, with
faults, budgets, hooks, reports and replay. Most tests serve the payments sample in this
process; the race bugs are also hunted end to end over loopback, as a user runs them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from conftest import (
    PAYMENTS_MODEL,
    RULES_MODEL,
    Completed,
    assert_shrunk,
    in_process,
    payments_workload,
    run_command,
)
from propworkload._faults import Fault
from propworkload._loader import load_model
from propworkload._parallel import execute_program, runs_needed
from propworkload._program import Invocation, Program
from propworkload._runtime import RunState
from propworkload.samples import payments as payments_sample

Service = Callable[..., AbstractContextManager[str]]
RACE_BUGS = [bug for bug in payments_sample.BUGS if "concurrency" in bug.needs]


def _path(result: Completed, label: str) -> Path:
    (line,) = [line for line in result.lines if line.startswith(f"  {label}: ")]
    return Path(line.split(": ", 1)[1])


def _size(result: Completed) -> int:
    match = re.search(r"(?:minimal|failing) parallel program \((\d+) operation", result.out)
    assert match, result.out
    return int(match.group(1))


def test_race_bugs_are_named_and_say_they_need_concurrency() -> None:
    assert len(RACE_BUGS) >= 2
    for bug in RACE_BUGS:
        assert "race" in bug.name
        assert bug.run_options() == ["--concurrency", "3"]
        assert bug.invariant == "linearizable"


def test_correct_service_is_linearizable_under_three_clients() -> None:
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, concurrency=3, seed=1)
    assert result.code == 0, result.out + result.err
    assert result.lines[0].endswith("concurrency=3")
    passed = [line for line in result.lines if line.startswith("INVARIANT PASS")]
    # Each history checked for linearizability; the model functions' checks counted too.
    assert "INVARIANT PASS linearizable checks=300" in passed
    assert "INVARIANT PASS balance_matches_model checks=300" in passed
    summary = result.lines[-1]
    assert summary.startswith("SUMMARY passed examples=100 ") and summary.endswith(" runs=300")


def test_faults_go_into_clients_requests_without_false_alarm() -> None:
    """With --faults, operations' requests get faults (drawn with the program); lost
    answers become unknown outcomes and the correct service is still linearizable."""
    with in_process("payments") as service:
        result = service.run(
            PAYMENTS_MODEL, concurrency=3, faults="lost-response,duplicate,delay", seed=2
        )
    assert result.code == 0, result.out + result.err
    summary = result.lines[-1]
    counts = dict(re.findall(r"(lost-response|duplicate|delay)=(\d+)", summary))
    assert set(counts) == {"lost-response", "duplicate", "delay"}, summary
    assert all(int(n) > 0 for n in counts.values())


def _program(*branches: tuple[Invocation, ...], prefix: tuple[Invocation, ...] = ()) -> Program:
    return Program(prefix=prefix, branches=branches, final=(Invocation("observe"),))


def test_a_program_runs_its_clients_at_once_and_is_checked() -> None:
    """The same key charged by two clients at once: one creates, the other gets the
    original back; with the race bug both create, which no order explains."""
    model, _ = load_model(str(RULES_MODEL))
    pay = Invocation("pay", {"key": "k0", "amount": 5})
    for bugs, verdict in (((), "ok"), (("race-same-key-double-charge",), "illegal")):
        with in_process("payments", *bugs) as service:
            state = RunState(url=service.url, transport=service.transport)
            record = execute_program(model, _program((pay,), (pay,)), state)
        assert record.history is not None and record.history.result.verdict == verdict
        first, second, observe = record.steps
        assert sorted(s.output["status"] for s in (first, second)) == (
            [200, 201] if verdict == "ok" else [201, 201]
        )
        assert {first.client, second.client} == {1, 2} and observe.client == 0
        assert first.ret is not None and second.ret is not None
        if verdict == "illegal":
            # The two calls overlapped in time: each started before the other returned.
            assert first.call < second.ret and second.call < first.ret
            assert record.failure is not None and record.failure.invariant == "linearizable"
            assert record.failure.operation in ("pay", "observe")


def test_a_duplicated_write_may_take_effect_twice() -> None:
    """A refund without an idempotency key, delivered twice by the network, is refunded
    twice by a correct service: the history gets an operation of unknown outcome for the
    copy the client never saw, so it is linearizable; the step shows the fault."""
    model, _ = load_model(str(RULES_MODEL))
    pay = Invocation("pay", {"key": "k0", "amount": 10})
    refund = Invocation("pay_back", {"key": "k0", "amount": 3}, faults=(Fault("duplicate"),))
    with in_process("payments") as service:
        state = RunState(url=service.url, transport=service.transport)
        record = execute_program(model, _program((refund,), prefix=(pay,)), state)
    assert record.failure is None, record.failure
    assert record.history is not None and record.history.result.verdict == "ok"
    assert len(record.history.operations) == len(record.steps) + 1  # the copy
    kinds = [e.fault["kind"] for e in record.steps[1].own_exchanges() if e.fault]
    assert kinds == ["duplicate"]
    assert record.steps[-1].output["charges"] == [["k0", 10, 6]]


def test_waits_before_operations_are_made_and_recorded() -> None:
    """A drawn wait before an operation is slept before the call (the schedule
    perturbation) and recorded with the step."""
    model, _ = load_model(str(RULES_MODEL))
    late = Invocation("look", {"key": "k0"}, delay=0.02)
    with in_process("payments") as service:
        state = RunState(url=service.url, transport=service.transport)
        record = execute_program(model, _program((late,)), state)
    step = record.steps[0]
    assert step.delay == 0.02 and step.call is not None and step.call >= 0.02


def test_runs_needed_grow_as_failures_get_rarer() -> None:
    assert runs_needed(1.0, confidence=0.95, least=3, most=60) == 3
    assert runs_needed(0.5, confidence=0.95, least=3, most=60) == 5  # 1 - 0.5**5 >= 0.95
    assert runs_needed(0.1, confidence=0.95, least=3, most=60) == 29  # 1 - 0.9**29 >= 0.95
    assert runs_needed(0.01, confidence=0.95, least=3, most=60) == 60


FLAKY = f"""
import itertools
import sys

sys.path.insert(0, {str(PAYMENTS_MODEL.parent)!r})
from payments import Payments
from propworkload import operation


CALLS = itertools.count()


class Flaky(Payments):
    @operation()
    def wobble(self):
        self.http.get("/openapi.json").raise_for_status()
        # What a race that shows one run in seven looks like from outside: every seventh
        # call, so that the test does not itself depend on luck.
        return "bad" if next(CALLS) % 7 == 6 else "good"

    @wobble.model
    def wobble(ledger, output):
        return output == "good", ledger
"""


def test_a_rare_failure_still_shrinks_with_adaptive_runs(tmp_path: Path) -> None:
    """A program that fails one run in seven: once seen, every candidate runs until it
    fails again or enough runs make its absence telling, so the failure shrinks to the
    one operation that shows it, and the trace says how often a replay should run it."""
    model = tmp_path / "flaky.py"
    model.write_text(FLAKY)
    with in_process("payments") as service:
        result = service.run(f"{model}::Flaky", concurrency=2, seed=5, time_budget=900)
    assert result.code == 1, result.out + result.err
    assert _size(result) == 1, result.out
    assert "wobble() -> bad" in result.out
    trace = json.loads(_path(result, "trace").read_text())
    # A replay that runs it fewer than seven times could miss it.
    assert trace["kind"] == "parallel" and trace["replay_runs"] >= 7


def test_explore_keeps_going_with_workers_and_reports(tmp_path: Path, payments: Service) -> None:
    """explore --concurrency with workers, JSON and JUnit reports: a finding does not end
    the exploration, coverage lists the operations."""
    from conftest import run_command as cli

    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with payments("race-same-key-double-charge") as url:
        result = cli(
            [
                *("-m", "propworkload", "explore", str(PAYMENTS_MODEL), "--url", url),
                *("--concurrency", "3", "--workers", "2", "--examples", "120", "--seed", "1"),
                *("--report-json", str(report), "--junit", str(junit)),
            ],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")},
        )
    assert result.code == 1, result.out + result.err
    data = json.loads(report.read_text())
    assert data["concurrency"] == 3 and data["workers"] == 2 and data["result"] == "failed"
    assert data["examples"] >= 120 and data["rounds"] >= 2
    assert {f["invariant"] for f in data["failures"]} == {"linearizable"}
    assert data["failures"][0]["kind"] == "parallel"
    assert set(data["coverage"]["rules"]) == {"charge", "refund", "customer"}
    assert data["coverage"]["invariants"]["linearizable"]["runs"] >= 120
    # Only what a parallel program can reach is a gap: no sequential rule, no marker of
    # the sequential rules, and linearizable was checked.
    assert data["coverage"]["gaps"] == []
    assert "<testsuite" in junit.read_text()
    assert any(line.startswith("COVERAGE rules:") for line in result.lines)


def test_reset_setup_and_teardown_run_for_every_program(tmp_path: Path) -> None:
    """reset() and setup() run before each program's clients start (setup's shared
    values reach every client); teardown() runs after each one, failing ones too."""
    log = tmp_path / "hooks.log"
    model = tmp_path / "hooks.py"
    model.write_text(
        f"""
import sys

sys.path.insert(0, {str(PAYMENTS_MODEL.parent)!r})
from payments import Payments
from propworkload import operation

LOG = {str(log)!r}


def note(text):
    with open(LOG, "a") as out:
        out.write(text + "\\n")


class Hooks(Payments):
    def reset(self):
        note("reset")

    def setup(self):
        self.shared["made"] = self.tenant
        note("setup")

    def teardown(self):
        note("teardown")

    @operation()
    def peek(self):
        return self.shared.get("made") == self.tenant

    @peek.model
    def peek(ledger, output):
        return output is True, ledger

    @operation()
    def boom(self):
        raise AssertionError("boom")

    @boom.model
    def boom(ledger, output):
        return True, ledger
"""
    )
    with in_process("payments") as service:
        result = service.run(f"{model}::Hooks", concurrency=2, seed=1, examples=40)
    assert result.code == 1, result.out + result.err  # boom: failing programs too
    notes = log.read_text().split()
    programs = notes.count("reset")
    assert programs > 40
    assert notes.count("setup") == notes.count("teardown") == programs
    for i in range(0, len(notes), 3):
        assert notes[i : i + 3] == ["reset", "setup", "teardown"]
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL unexpected_error") and "boom" in fail
    assert "peek() -> False" not in result.out  # every client saw what setup() shared


def test_a_reset_that_raises_stops_a_concurrent_run(tmp_path: Path) -> None:
    model = tmp_path / "probe.py"
    model.write_text(
        f"import sys\nsys.path.insert(0, {str(PAYMENTS_MODEL.parent)!r})\n"
        "from payments import Payments\n\n\nclass Probe(Payments):\n"
        "    def reset(self):\n        raise RuntimeError('reset was called')\n"
    )
    with in_process("payments") as service:
        result = service.run(f"{model}::Probe", concurrency=2, examples=3)
    assert result.code == 3, result.out + result.err
    assert "Probe.reset() failed: RuntimeError: reset was called" in result.err


VALUES = """
from decimal import Decimal

from propworkload import Model, main, operation, rule


class Values(Model):
    sample = "payments"
    model_state = dict

    @rule()
    def noop(self):
        pass

    @operation()
    def pair(self):
        self.http.get("/openapi.json")
        return (1, 2), Decimal("1.50"), b"\\x00"

    @pair.model
    def pair(state, output):
        return output == ((1, 2), Decimal("1.50"), b"\\x00"), state

    @operation()
    def opaque(self):
        return object() if self.shared.get("odd") else None

    @opaque.model
    def opaque(state, output):
        return True, state
"""


def test_operation_outputs_reach_transitions_as_python_values(tmp_path: Path) -> None:
    model = tmp_path / "values.py"
    model.write_text(VALUES)
    with in_process("payments") as service:
        result = service.run(model, concurrency=2, examples=20, seed=1)
    assert result.code == 0, result.out + result.err


def test_a_value_no_trace_can_record_is_a_model_error(tmp_path: Path) -> None:
    model = tmp_path / "values.py"
    model.write_text(VALUES.replace('self.shared.get("odd")', "True"))
    with in_process("payments") as service:
        result = service.run(model, concurrency=2, examples=20, seed=1)
    assert result.code == 2, result.out + result.err
    assert "the output of operation opaque: a object (<object object at" in result.err


def test_concurrency_needs_operations_and_a_model_state(tmp_path: Path) -> None:
    model = tmp_path / "plain.py"
    model.write_text(
        "from propworkload import Model, rule\n\n\nclass Plain(Model):\n"
        "    sample = 'payments'\n\n    @rule()\n    def noop(self):\n        pass\n"
    )
    with in_process("payments") as service:
        missing = service.run(model, concurrency=2)
    assert missing.code == 2 and "model_state" in missing.err


BROKEN_OPERATION = f"""
import sys

sys.path.insert(0, {str(PAYMENTS_MODEL.parent)!r})
from payments import Ledger, Payments
from propworkload import operation


class Broken(Payments):
    @operation()
    def crash(self):
        raise AssertionError("the service answered 500")

    @crash.model
    def crash(ledger, output):
        return True, ledger
"""


def test_an_operation_that_raises_is_an_unexpected_error_not_a_crash(tmp_path: Path) -> None:
    model = tmp_path / "broken.py"
    model.write_text(BROKEN_OPERATION)
    with in_process("payments") as service:
        result = service.run(f"{model}::Broken", concurrency=2, seed=1)
    assert result.code == 1, result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL unexpected_error")
    assert "AssertionError: the service answered 500" in fail
    assert_shrunk(result.out, 1)


def test_a_time_budget_bounds_many_clients() -> None:
    """200 clients, 1000 examples: the time budget ends the search (once it is spent,
    whatever the machine's speed) and the run passes."""
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, concurrency=200, examples=1000, time_budget=2)
    assert result.code == 0, result.out + result.err
    assert "stopped=time-budget" in result.lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize("bug", RACE_BUGS, ids=lambda bug: bug.name)
def test_race_bug_is_found_replayed_and_emitted(
    bug: payments_sample.Bug, payments: Service, tmp_path: Path
) -> None:
    """End to end over loopback: found with clients at once (never one at a time),
    shrunk, replayed by default as many times as the search needed, and written as a
    pytest regression that fails against the racy service."""
    with payments(bug.name) as url:
        found = payments_workload(url, tmp_path, "--seed", "1", *bug.run_options())
        plain = payments_workload(url, tmp_path, "--seed", "1", "--examples", "30")
        assert found.code == 1, found.out + found.err
        trace = _path(found, "trace")
        replayed = run_command(["-m", "propworkload", "replay", str(trace), "--url", url])
        emitted = tmp_path / "test_emitted_race.py"
        written = run_command(
            ["-m", "propworkload", "replay", str(trace), "--emit-pytest", str(emitted)]
        )
        regression = run_command(
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(emitted)],
            env={"APP_URL": url},
        )
    assert plain.code == 0, plain.out + plain.err
    (fail,) = [line for line in found.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL linearizable expected=linearizable actual=")
    assert "fits no order of t" in fail  # (a long result cuts the line short)
    # Shrunk to the known minimum (threads' timing could, rarely, leave one more).
    assert_shrunk(found.out, bug.minimal_steps + 1, least=bug.minimal_steps)
    assert any(line.startswith("    at once: client") for line in found.lines)
    page = _path(found, "timeline").read_text()
    assert "not linearizable" in page and 'class="op first"' in page
    data = json.loads(trace.read_text())
    assert data["kind"] == "parallel" and data["concurrency"] == 3
    runs = data["replay_runs"]
    assert replayed.code == 1, replayed.out + replayed.err
    assert replayed.lines[0].endswith(f"runs={runs}")
    assert replayed.lines[-1].startswith("REPLAY reproduced ")
    assert replayed.lines[-1].endswith(f"/{runs}")
    assert written.code == 0, written.out + written.err
    assert f"run.program(PROGRAM, repeat={runs})" in emitted.read_text()
    assert regression.code == 1, regression.out + regression.err


def test_replay_refuses_a_parallel_trace_of_another_model(
    propworkload: Callable[..., Completed], tmp_path: Path
) -> None:
    with in_process("payments", "race-same-key-double-charge") as service:
        found = service.run(PAYMENTS_MODEL, concurrency=2, seed=1)
    assert found.code == 1, found.out + found.err
    trace = _path(found, "trace")
    data = json.loads(trace.read_text())
    data["program"]["final"] = [{"operation": "renamed", "arguments": {}}]
    trace.write_text(json.dumps(data))
    replayed = propworkload("replay", str(trace), "--url", "http://127.0.0.1:9")
    assert replayed.code == 2, replayed.out + replayed.err
    assert "'renamed', which Payments does not have" in replayed.err


def test_repeat_needs_concurrency() -> None:
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, repeat=2)
    assert result.code == 2 and "--repeat needs --concurrency" in result.err


def test_in_process_transport_answers_from_many_threads() -> None:
    """The in-process transport serves requests from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    with (
        in_process("payments") as service,
        httpx.Client(base_url=service.url, transport=service.transport) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(pool.map(lambda _: client.get("/openapi.json").status_code, range(32)))
    assert statuses == [200] * 32


@pytest.mark.slow
def test_sigterm_ends_a_concurrent_run_in_order(payments: Service, tmp_path: Path) -> None:
    """SIGTERM while clients run: the run ends with its summary and status 143, as a
    sequential run does."""
    import signal
    import time

    from conftest import read_until, spawn_cli

    with payments() as url:
        proc = spawn_cli(
            [
                *("run", str(PAYMENTS_MODEL), "--url", url, "--concurrency", "3"),
                *("--examples", "100000", "--time-budget", "600"),
            ],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "SEED ")
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    last = out.splitlines()[-1]
    assert last.startswith("SUMMARY stopped") and "stopped=terminated" in last, out


UNRECORDABLE_RULE = """
from hypothesis import strategies as st
from propworkload import Model, rule


class Odd(Model):
    sample = "payments"

    @rule(thing=st.builds(object))
    def use(self, thing):
        self.http.get("/openapi.json")
"""


def test_a_rule_argument_no_trace_can_record_is_a_model_error(tmp_path: Path) -> None:
    model = tmp_path / "odd.py"
    model.write_text(UNRECORDABLE_RULE)
    with in_process("payments") as service:
        result = service.run(model, examples=5)
    assert result.code == 2, result.out + result.err
    assert "the arguments of rule use: a object (<object object at" in result.err
    assert "\n" not in result.err.strip()


def test_a_clients_failure_names_its_place_in_the_program() -> None:
    """An operation that raises in client 2, after a prefix of two: the failure's step is
    the operation's place in the whole program (what the console and replay show)."""
    model, _ = load_model(str(RULES_MODEL))
    look = Invocation("look", {"key": "k0"})
    bad = Invocation("pay_back", {"key": "k0", "amount": 0})  # refused: 422, not 201/409
    with in_process("payments") as service:
        state = RunState(url=service.url, transport=service.transport)
        program = _program(
            (look,), (look, bad), prefix=(Invocation("pay", {"key": "k0", "amount": 5}), look)
        )
        record = execute_program(model, program, state)
    assert record.failure is not None and record.failure.invariant == "unexpected_error"
    failing = record.steps[record.failure.step - 1]
    assert (failing.rule, failing.client) == ("pay_back", 2), record.failure


RETRYING = f"""
import sys

sys.path.insert(0, {str(RULES_MODEL.parent)!r})
from payments_rules import Payments
from propworkload import UNKNOWN, operation


class Retrying(Payments):
    @operation()
    def ping(self):
        response = self.retry(lambda: self.http.post("/customers/c/charges", json={{}}), attempts=1)
        return None if response is None else response.status_code

    @ping.model
    def ping(ledger, output):
        return output is UNKNOWN or output == 400, ledger
"""


def test_an_operation_whose_retries_all_failed_has_an_unknown_outcome(tmp_path: Path) -> None:
    """``Model.retry`` gave up (every attempt lost): whatever the operation returns then,
    the checker takes its outcome as unknown, as for a transport error."""
    model_file = tmp_path / "retrying.py"
    model_file.write_text(RETRYING)
    model, _ = load_model(f"{model_file}::Retrying")
    lost = Invocation("ping", faults=(Fault("lost-response"),))
    with in_process("payments") as service:
        state = RunState(url=service.url, transport=service.transport)
        record = execute_program(model, _program((lost,), (Invocation("ping"),)), state)
    assert record.steps[0].unknown is not None and record.steps[0].output is None
    assert record.failure is None, record.failure


def test_concurrency_needs_two_steps() -> None:
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, concurrency=2, steps=1)
    assert result.code == 2 and "--steps must be at least 2 with --concurrency" in result.err
