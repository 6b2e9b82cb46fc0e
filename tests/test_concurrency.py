"""Concurrent mode against the real payments service: race bugs found only with
--concurrency, minimal parallel programs, HTML timelines, replay k/N, no false alarm."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from conftest import PAYMENTS_MODEL, Completed, payments_workload, run_command
from propworkload._concurrent import Program, execute_program
from propworkload._loader import load_model
from propworkload._runtime import RunState
from propworkload.samples import payments as payments_sample

Service = Callable[..., AbstractContextManager[str]]
RACE_BUGS = [bug for bug in payments_sample.BUGS if "concurrency" in bug.needs]


def _path(result: Completed, label: str) -> Path:
    (line,) = [line for line in result.lines if line.startswith(f"  {label}: ")]
    return Path(line.split(": ", 1)[1])


def test_race_bugs_are_named_and_say_they_need_concurrency() -> None:
    assert len(RACE_BUGS) >= 2
    for bug in RACE_BUGS:
        assert "race" in bug.name
        assert bug.run_options() == ["--concurrency", "3"]
        assert bug.invariant == "linearizable"


def test_correct_service_is_linearizable_under_three_clients(
    payments: Service, tmp_path: Path
) -> None:
    with payments() as url:
        result = payments_workload(url, tmp_path, "--concurrency", "3", "--seed", "1")
    assert result.code == 0, result.out + result.err
    assert result.lines[0].endswith("concurrency=3")
    (passed,) = [line for line in result.lines if line.startswith("INVARIANT PASS")]
    assert passed.startswith("INVARIANT PASS linearizable histories=300 ")


@pytest.mark.slow
@pytest.mark.parametrize("bug", RACE_BUGS, ids=lambda bug: bug.name)
def test_race_bug_is_found_with_clients_at_once_and_not_one_at_a_time(
    bug: payments_sample.Bug, payments: Service, tmp_path: Path
) -> None:
    with payments(bug.name) as url:
        found = payments_workload(url, tmp_path, "--seed", "1", *bug.run_options())
        plain = payments_workload(url, tmp_path, "--seed", "1", "--examples", "60")
        assert found.code == 1, found.out + found.err
        trace = _path(found, "trace")
        replayed = run_command(["-m", "propworkload", "replay", str(trace), "--url", url])
        # A racy program may pass some runs (more of them while other tests load the
        # machine); thirty runs all passing would be a real miss.
        replayed_more = run_command(
            ["-m", "propworkload", "replay", str(trace), "--url", url, "--repeat", "30"]
        )
    assert plain.code == 0, plain.out + plain.err
    (fail,) = [line for line in found.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL linearizable expected=linearizable actual=")
    assert "fits no order of the operations" in fail
    # Shrunk to the known minimum (threads' timing could, rarely, leave one more).
    size = int(found.out.split("minimal parallel program (", 1)[1].split()[0])
    assert bug.minimal_steps <= size <= bug.minimal_steps + 1, found.out
    assert any(line.startswith("    at once: client 1") for line in found.lines)
    page = _path(found, "timeline").read_text()
    assert "not linearizable" in page and 'class="op first"' in page
    data = json.loads(trace.read_text())
    assert data["kind"] == "concurrent" and data["repeat"] == 3
    assert Program.from_json(data["program"]).size == size
    # Replay runs the program as many times as the search did, and says how often it
    # failed again.
    assert replayed.code in (0, 1), replayed.out + replayed.err
    assert replayed.lines[-1].startswith("REPLAY reproduced ")
    assert replayed.lines[-1].endswith("/3")
    assert replayed_more.code == 1, replayed_more.out + replayed_more.err
    assert replayed_more.lines[-1].endswith("/30")
    assert not replayed_more.lines[-1].startswith("REPLAY reproduced 0/")


def test_a_program_runs_its_clients_at_once_and_is_checked(payments: Service) -> None:
    """The same key charged by two clients at once: one creates, the other gets the
    original back; with the race bug both create, which no order explains."""
    model, _ = load_model(str(PAYMENTS_MODEL))
    program = Program(
        prefix=(),
        branches=((("pay", {"key": "k0", "amount": 5}),), (("pay", {"key": "k0", "amount": 5}),)),
        final=(("observe", {}),),
    )
    for bugs, verdict in (((), "ok"), (("race-same-key-double-charge",), "illegal")):
        with payments(*bugs) as url, httpx.HTTPTransport() as transport:
            outcome = execute_program(model, program, RunState(url=url, transport=transport))
        assert outcome.result.verdict == verdict
        statuses = sorted(call.output["status"] for call in outcome.history[:2])
        assert statuses == ([200, 201] if verdict == "ok" else [201, 201])
        clients = {call.client for call in outcome.history[:2]}
        assert clients == {1, 2}
        # The two calls overlapped in time: each started before the other returned.
        a, b = outcome.history[:2]
        assert a.ret is not None and b.ret is not None
        if verdict == "illegal":
            assert a.call < b.ret and b.call < a.ret


def test_concurrency_needs_operations_and_excludes_faults(
    propworkload: Callable[..., Completed], tmp_path: Path, payments: Service
) -> None:
    model = tmp_path / "plain.py"
    model.write_text(
        "from propworkload import Model, rule\n\n\nclass Plain(Model):\n"
        "    sample = 'payments'\n\n    @rule()\n    def noop(self):\n        pass\n"
    )
    with payments() as url:
        missing = propworkload("run", str(model), "--url", url, "--concurrency", "2")
        both = propworkload(
            "run", "models/payments.py", "--url", url, "--concurrency", "2", "--faults", "all"
        )
    for result, text in ((missing, "model_state"), (both, "cannot be combined")):
        assert result.code == 2, result.out + result.err
        (line,) = result.err.strip().splitlines()
        assert text in line


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


def test_an_operation_that_raises_is_an_unexpected_error_not_a_crash(
    propworkload: Callable[..., Completed], payments: Service, tmp_path: Path
) -> None:
    model = tmp_path / "broken.py"
    model.write_text(BROKEN_OPERATION)
    with payments() as url:
        result = propworkload(
            "run", f"{model}::Broken", "--url", url, "--concurrency", "2", "--seed", "1"
        )
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.out + result.err
    (fail,) = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert fail.startswith("INVARIANT FAIL unexpected_error")
    assert "crash raised AssertionError: the service answered 500" in fail


def test_replay_refuses_a_concurrent_trace_of_another_model(
    propworkload: Callable[..., Completed], payments: Service, tmp_path: Path
) -> None:
    with payments("race-same-key-double-charge") as url:
        found = propworkload(
            "run", "models/payments.py", "--url", url, "--concurrency", "2", "--seed", "1"
        )
        assert found.code == 1, found.out + found.err
        trace = _path(found, "trace")
        data = json.loads(trace.read_text())
        data["program"]["final"] = [{"operation": "renamed", "arguments": {}}]
        trace.write_text(json.dumps(data))
        replayed = propworkload("replay", str(trace), "--url", url)
    assert replayed.code == 2, replayed.out + replayed.err
    assert "'renamed', which Payments does not have" in replayed.err


def test_explore_runs_clients_at_once_with_progress(
    propworkload: Callable[..., Completed], payments: Service
) -> None:
    with payments() as url:
        result = propworkload(
            "explore",
            "models/payments.py",
            "--url",
            url,
            "--concurrency",
            "3",
            "--examples",
            "30",
            "--repeat",
            "2",
        )
        repeat_alone = propworkload("run", "models/payments.py", "--url", url, "--repeat", "2")
    assert result.code == 0, result.out + result.err
    assert any(
        line.startswith("INVARIANT PASS linearizable histories=60 ") for line in result.lines
    )
    assert repeat_alone.code == 2 and "--repeat needs --concurrency" in repeat_alone.err
