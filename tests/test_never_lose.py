"""A failure seen is never lost or hidden, and a pass means something was checked: signals
at every phase, runs that check almost nothing, progress on slow runs, trace names."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import PAYMENTS_MODEL, Completed, in_process, read_until, run_command, spawn_cli
from propworkload import _commands
from propworkload._record import ExampleRecord, Failure
from propworkload._signals import handling_signals
from propworkload._trace import Artifacts, TraceWriter

Service = Callable[..., AbstractContextManager[str]]


@pytest.mark.parametrize("wait", [0.0, 1.0], ids=["right-after-seed", "mid-run"])
def test_sigterm_at_any_phase_ends_with_a_summary_and_143(
    payments: Service, tmp_path: Path, wait: float
) -> None:
    """Right after the SEED line (the probe, Hypothesis starting) or mid-run, SIGTERM
    ends the run in order: a SUMMARY that does not say passed, and status 143."""
    with payments() as url:
        proc = spawn_cli(
            ["run", str(PAYMENTS_MODEL), "--url", url, "--examples", "100000"],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "SEED ")
        time.sleep(wait)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    summary = out.splitlines()[-1]
    assert summary.startswith("SUMMARY stopped ") and summary.endswith("stopped=terminated")
    assert "Traceback" not in err and "error:" not in err, err


def test_terminated_explore_reports_stopped_not_passed(payments: Service, tmp_path: Path) -> None:
    """Explore stopped by SIGTERM: 143, and neither its SUMMARY nor its JSON report says
    the run passed."""
    report = tmp_path / "report.json"
    with payments() as url:
        proc = spawn_cli(
            [
                "explore",
                str(PAYMENTS_MODEL),
                "--url",
                url,
                "--time-budget",
                "120",
                "--report-json",
                str(report),
            ],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "SEED ")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert out.splitlines()[-1].startswith("SUMMARY stopped "), out
    data = json.loads(report.read_text())
    assert (data["result"], data["stopped"]) == ("stopped", "terminated")


def test_terminated_replay_exits_143(payments: Service, tmp_path: Path) -> None:
    """Replay stopped by SIGTERM between its runs: 143 and one line saying so (click took
    the stop for Ctrl-C: 130, "error: interrupted")."""
    with payments("retry-after-refund") as url:
        found = run_command(
            ["-m", "propworkload", "run", str(PAYMENTS_MODEL), "--url", url, "--seed", "3"],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        assert found.code == 1, found.out
        trace = next((tmp_path / "traces").glob("*.json"))
        proc = spawn_cli(
            ["replay", str(trace), "--url", url, "--repeat", "100000"],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "run 2/")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert err.strip() == "propworkload: error: terminated", err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_swallowed_where_it_landed_still_ends_the_run(tmp_path: Path) -> None:
    """Python ignores an exception raised in a garbage-collector callback ("Exception
    ignored in: gc_callback"): a signal whose StopRun lands there must still stop the
    run, at the next step."""
    model = tmp_path / "swallowed.py"
    model.write_text(SWALLOWED)
    with in_process("payments") as service, handling_signals():
        result = service.run(model, examples=100000, time_budget=120)
    assert result.code == 143, result.out + result.err
    assert result.lines[-1].startswith("SUMMARY stopped ")


SWALLOWED = """
import gc, os, signal
from propworkload import Model, invariant, rule

def _signal_inside_gc(phase, info):
    # The handler runs at the next bytecode, inside this callback: its StopRun is
    # swallowed by the garbage collector.
    if phase == "start":
        gc.callbacks.remove(_signal_inside_gc)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass

class Swallowed(Model):
    steps = 0

    @rule()
    def step(self):
        self.steps += 1
        if self.steps == 3 and _signal_inside_gc not in gc.callbacks:
            gc.callbacks.append(_signal_inside_gc)
            gc.collect()
        self.http.get(f"/customers/{self.tenant}/balance")

    @invariant()
    def fine(self):
        self.check("fine", expected=True, actual=True)
"""


class _GetsOnly(BaseHTTPRequestHandler):
    """Answers every GET; never answers a POST (it waits until the server closes)."""

    closing = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"value": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.closing.wait(60)


@contextmanager
def _gets_only() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GetsOnly)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _GetsOnly.closing.set()
        server.shutdown()
        server.server_close()
        _GetsOnly.closing.clear()


COUNTER = """
from hypothesis import strategies as st
from propworkload import Model, invariant, rule

class Counter(Model):
    http_timeout = 0.3

    def __init__(self):
        super().__init__()
        self.value = 0

    @rule(by=st.integers(min_value=1, max_value=10))
    def add(self, by):
        self.http.post(f"/counters/{self.tenant}", json={"add": by}).raise_for_status()
        self.value += by

    @invariant()
    def value_matches(self):
        actual = self.http.get(f"/counters/{self.tenant}").json()["value"]
        self.check("value_matches", expected=self.value, actual=actual)
"""


def _run_counter(tmp_path: Path, url: str, *args: str) -> Completed:
    from conftest import run_command

    model = tmp_path / "counter.py"
    model.write_text(COUNTER)
    return run_command(
        ["-m", "propworkload", "run", str(model), "--url", url, *args],
        env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")},
    )


def test_a_run_that_drops_almost_every_example_does_not_pass(tmp_path: Path) -> None:
    """Every POST goes unanswered, so every example is dropped (its outcome unknown):
    nothing was checked, so the run exits 3 and says how many were dropped. Dropped
    examples do not count, so the run goes on to its budget: 20 s (the default's 120 took
    85 s of the suite; every example is dropped however many the budget holds)."""
    with _gets_only() as url:
        args = ("--examples", "3", "--seed", "1", "--time-budget", "20")
        result = _run_counter(tmp_path, url, *args)
    assert result.code == 3, result.out + result.err
    (error,) = [line for line in result.err.splitlines() if "error:" in line]
    assert "of the" in error and "examples were dropped" in error, error
    assert "SUMMARY passed" not in result.out


def test_run_prints_progress_lines_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``run`` says how it is going every few seconds (on stderr, so that its output
    stays the workload's lines): a slow run can be told from a hung one."""
    monkeypatch.setattr(_commands, "RUN_PROGRESS_INTERVAL", 0.05)
    model = tmp_path / "slow.py"
    model.write_text(SLOW)
    with in_process("payments") as service:
        result = service.run(model, examples=3, seed=1)
    assert result.code == 0, result.out + result.err
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("PROGRESS ")]
    assert lines and all("examples=" in line and "elapsed=" in line for line in lines), err
    assert not any(line.startswith("PROGRESS") for line in result.lines)


SLOW = """
import time
from propworkload import Model, invariant, rule

class Slow(Model):
    @rule()
    def wait(self):
        time.sleep(0.02)
        self.http.get(f"/customers/{self.tenant}/balance")

    @invariant()
    def fine(self):
        self.check("fine", expected=True, actual=True)
"""


def test_two_runs_with_one_seed_in_one_second_keep_both_traces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Trace names cannot collide: two runs of one model with one seed, started in the
    same second, write two traces."""
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20261205-120000")
    artifacts = Artifacts()
    writers = [
        TraceWriter(
            model_file=None,
            model_class="Payments",
            model_name="payments",
            seed=42,
            target="http://127.0.0.1:9",
            artifacts=artifacts,
        )
        for _ in range(2)
    ]
    paths = []
    for n, writer in enumerate(writers):
        example = ExampleRecord(number=1)
        example.failure = Failure(
            invariant="charged_once", expected=1, actual=n + 2, ids={}, step=0
        )
        paths.append(writer(example, None))
    assert paths[0] != paths[1]
    actual = [json.loads(path.read_text())["failure"]["actual"] for path in paths]
    assert actual == [2, 3]


def test_yes_no_checks_failing_each_way_are_different_failures() -> None:
    """A refund refused that should pass is another bug than one accepted that should be
    refused: each is its own kind (shrunk, traced and reported on its own)."""

    def failure(expected: bool, actual: bool) -> Failure:
        return Failure(
            invariant="refund_accepted", expected=expected, actual=actual, ids={}, step=1
        )

    assert failure(True, False).kind != failure(False, True).kind
    assert failure(True, False).kind == failure(True, False).kind
