"""Traces, replay verdicts, pytest regressions, the failure database and redaction,
against the real payments service."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    PAYMENTS_MODEL,
    ROOT,
    RULES_MODEL,
    Completed,
    InProcess,
    in_process,
    read_until,
    run_command,
    spawn_cli,
)
from propworkload._asgi import InProcessTransport

Service = Callable[..., AbstractContextManager[str]]
CLI = Callable[..., Completed]


def _trace_of(result: Completed) -> Path:
    (line,) = [line for line in result.lines if line.startswith("  trace: ")]
    return Path(line.split("trace: ", 1)[1])


@pytest.fixture(scope="module")
def retry_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of the retry-after-refund bug, made once for the tests below by the
    rule-style model (its Bundle of keys shows in the trace and the emitted test)."""
    from propworkload._target import sample_service

    artifacts = tmp_path_factory.mktemp("artifacts")
    with sample_service("payments", ("retry-after-refund",)) as url:
        result = run_command(
            ["-m", "propworkload", "run", str(RULES_MODEL), "--seed", "1"],
            env={"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(artifacts)},
        )
    assert result.code == 1, result.out + result.err
    return _trace_of(result)


def test_trace_has_the_documented_fields(retry_trace: Path) -> None:
    """The trace holds model, seed, versions, target, blob, steps with exchanges, the
    failure and whether it reproduced, as docs/trace-format.md says."""
    trace = json.loads(retry_trace.read_text())
    assert trace["format"] == "propworkload-trace" and trace["version"] == 2
    assert trace["model"] == {"file": str(RULES_MODEL), "class": "Payments", "name": "payments"}
    assert trace["seed"] == 1
    assert {"propworkload_version", "hypothesis_version", "target", "tenant"} <= set(trace)
    assert trace["status"] == "minimal" and trace["reproduced"] is True
    assert isinstance(trace["reproduction_blob"], str) and trace["reproduction_blob"]
    assert trace["failure"]["invariant"] == "charged_once"
    assert trace["failure"]["ids"]["key"] == "k0"
    charge, refund, retry = trace["steps"]
    assert (charge["rule"], charge["arguments"], charge["result"]) == (
        "charge",
        {"amount": 1},
        "k0",
    )
    assert charge["targets"] == ["keys"]
    assert refund["bundle_arguments"] == {"key": {"bundle": "keys", "consumes": False}}
    exchange = retry["exchanges"][0]
    assert (exchange["method"], exchange["status"], exchange["phase"]) == ("POST", 201, "rule")
    assert exchange["target"].startswith("/customers/cus_")
    assert json.loads(exchange["request_body"]) == {"amount": 1}
    assert exchange["duration_ms"] > 0


def test_replay_against_the_fixed_service_says_what_differed(
    retry_trace: Path, payments: Service, propworkload: CLI
) -> None:
    """Against the correct service: exit 0, 'did not reproduce', and the retry's response
    is shown to differ (the original charge came back instead of a new one)."""
    with payments() as url:
        result = propworkload("replay", str(retry_trace), "--url", url)
    assert result.code == 0, result.out + result.err
    assert "REPLAY did not reproduce: charged_once held through all 3 steps" in result.lines
    differences = result.out.split("what differed from the recording:\n", 1)[1]
    assert "step 3 retry_charge: POST /customers/cus_" in differences
    assert "status 200, recorded 201" in differences
    assert "body.id=ch_" in differences and "the replay's name for recorded ch_" in differences


def test_replay_repeat_gives_a_flakiness_verdict(
    retry_trace: Path, payments: Service, propworkload: CLI
) -> None:
    """--repeat N replays N times in fresh namespaces and prints reproduced k/N."""
    with payments("retry-after-refund") as url:
        result = propworkload("replay", str(retry_trace), "--url", url, "--repeat", "3")
    assert result.code == 1
    assert [line for line in result.lines if line.startswith("run ")] == [
        "run 1/3: reproduced",
        "run 2/3: reproduced",
        "run 3/3: reproduced",
    ]
    assert result.lines[-1] == "REPLAY reproduced 3/3"


def test_emitted_pytest_fails_on_the_bug_and_passes_when_fixed(
    retry_trace: Path, payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """The regression test is readable Python that fails while the bug is there."""
    test_file = tmp_path / "regressions" / "test_retry.py"
    emitted = propworkload("replay", str(retry_trace), "--emit-pytest", str(test_file))
    assert emitted.code == 0, emitted.out + emitted.err
    source = test_file.read_text()
    assert "        k0 = run.charge(amount=1)\n" in source
    assert "        run.refund(key=k0, amount=None)\n" in source
    assert "        run.retry_charge(key=k0)\n" in source
    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    with payments("retry-after-refund") as url:
        buggy = run_command(pytest_args, env={"APP_URL": url}, cwd=tmp_path)
    with payments() as url:
        fixed = run_command(pytest_args, env={"APP_URL": url}, cwd=tmp_path)
    assert buggy.code == 1, buggy.out
    assert "InvariantFailure: charged_once expected=1 actual=2" in buggy.out
    assert fixed.code == 0, fixed.out


def _one_line(result: Completed, code: int) -> str:
    assert result.code == code, result.out + result.err
    assert "Traceback" not in result.out + result.err
    (line,) = result.err.strip().splitlines()
    return line


def test_corrupt_trace(propworkload: CLI, tmp_path: Path) -> None:
    """A trace that is not JSON: exit 2, one line."""
    path = tmp_path / "bad.json"
    path.write_text('{"not": "a trace"')
    assert "not valid JSON" in _one_line(propworkload("replay", str(path)), 2)


def test_trace_of_unknown_version(retry_trace: Path, propworkload: CLI, tmp_path: Path) -> None:
    """A trace from a future schema: exit 2, one line naming both versions."""
    trace = json.loads(retry_trace.read_text())
    trace["version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(trace))
    line = _one_line(propworkload("replay", str(path)), 2)
    assert "trace version 99 is not supported" in line and "versions 1, 2" in line


def test_trace_whose_model_is_missing(retry_trace: Path, propworkload: CLI, tmp_path: Path) -> None:
    """A trace naming a model file that is gone: exit 2, one line with the fix."""
    trace = json.loads(retry_trace.read_text())
    trace["model"]["file"] = str(tmp_path / "gone.py")
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(trace))
    line = _one_line(propworkload("replay", str(path)), 2)
    assert "gone.py is missing; pass --model PATH" in line


def test_trace_naming_an_unknown_rule(
    retry_trace: Path, propworkload: CLI, tmp_path: Path, payments: Service
) -> None:
    """A trace whose rule the model no longer has: exit 2, one line naming the rule."""
    trace = json.loads(retry_trace.read_text())
    trace["steps"][1]["rule"] = "refund_everything"
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(trace))
    with payments() as url:
        line = _one_line(propworkload("replay", str(path), "--url", url), 2)
    assert "runs rule 'refund_everything', which Payments does not have" in line


ALWAYS_FAILING = f"""
import sys

sys.path.insert(0, {str(RULES_MODEL.parent)!r})
from payments_rules import Payments
from propworkload import invariant


class NoChargesAllowed(Payments):
    @invariant()
    def no_charges(self):
        self.check("no_charges", expected=0, actual=len(self.amounts))
"""


def test_trace_from_the_embedded_service_replays_on_a_fresh_one(
    propworkload: CLI, tmp_path: Path
) -> None:
    """With no URL, a run's trace remembers the embedded sample service, and replay starts
    a new one instead of calling the old, gone port."""
    model = tmp_path / "strict.py"
    model.write_text(ALWAYS_FAILING)
    result = propworkload("run", str(model), "--seed", "1")
    assert result.code == 1, result.out + result.err
    assert json.loads(_trace_of(result).read_text())["sample"] == "payments"
    replayed = propworkload("replay", str(_trace_of(result)))
    assert replayed.code == 1, replayed.out + replayed.err
    assert "target=embedded-payments-sample" in replayed.lines[0]
    assert "REPLAY reproduced: no_charges failed again at step 1" in replayed.lines


def test_sigterm_before_any_failure_is_not_a_pass(payments: Service, tmp_path: Path) -> None:
    """A run stopped by SIGTERM that found nothing exits 143, not 0."""
    with payments() as url:
        proc = spawn_cli(
            ["run", str(PAYMENTS_MODEL), "--examples", "100000"],
            env={"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "SEED ")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert out.splitlines()[-1].endswith("stopped=terminated")


def test_failure_database_retries_saved_failures_and_reports_dropped_ones(
    payments: Service, propworkload: CLI
) -> None:
    """A later run retries the saved failure first; when the bug is fixed, the summary says
    the saved failure no longer reproduces instead of dropping it silently. A pinned seed
    leaves the database alone, so that it always runs the same steps."""
    args = ("run", str(PAYMENTS_MODEL), "--examples", "30")
    with payments("retry-credits-balance") as url:
        first = propworkload(*args, env={"APP_URL": url})
        again = propworkload(*args, env={"APP_URL": url})
        pinned = propworkload(*args, "--seed", "4", env={"APP_URL": url})
    with payments() as url:
        fixed = propworkload(*args, env={"APP_URL": url})
    assert first.code == 1 and "saved-failures" not in first.lines[-1]
    assert again.code == 1
    assert again.lines[-1].endswith("saved-failures=1 reproduced=1")
    assert pinned.code == 1 and "saved-failures" not in pinned.lines[-1]
    # The pinned run saved its own minimal failure too, perhaps a different one.
    assert fixed.code == 0
    saved = int(fixed.lines[-1].split("saved-failures=")[1].split()[0])
    assert saved >= 1 and fixed.lines[-1].endswith(f"saved-failures={saved} reproduced=0")
    assert any(line.startswith(f"SAVED {saved} saved failure") for line in fixed.lines)


SLOW_MODEL = f"""
import sys
import time

sys.path.insert(0, {str(ROOT / "models")!r})
from payments import Payments
from propworkload import invariant


class SlowPayments(Payments):
    @invariant()
    def pace(self):
        time.sleep(0.02)  # makes shrinking last long enough to be interrupted
"""


def test_sigterm_while_shrinking_leaves_a_replayable_trace(
    payments: Service, tmp_path: Path
) -> None:
    """SIGTERM mid-shrink: the run prints the best failure so far, exits 1, and its trace
    replays."""
    model = tmp_path / "slow.py"
    model.write_text(SLOW_MODEL)
    artifacts = tmp_path / "artifacts"
    with payments("retry-credits-balance") as url:
        env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(artifacts)}
        proc = spawn_cli(
            ["run", str(model), "--seed", "3"],
            env=env,
        )
        read_until(proc, "FOUND ")
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
        lines = rest.splitlines()
        assert proc.returncode == 1, rest + err
        assert any("shrinking stopped: terminated" in line for line in lines), rest
        assert lines[-1].startswith("SUMMARY failed") and "stopped=terminated" in lines[-1]
        trace = next(line for line in lines if line.startswith("  trace: ")).split(": ", 1)[1]
        replayed = run_command(["-m", "propworkload", "replay", trace, "--url", url])
    assert replayed.code == 1, replayed.out + replayed.err
    assert "REPLAY reproduced: balance_matches_model" in replayed.out


REDACTION_MODEL = """
from propworkload import Model, invariant, rule


class Leaky(Model):
    @rule()
    def charge(self):
        self.http.post(
            f"/customers/{self.tenant}/charges?token=qs-secret-1",
            json={"amount": 3, "password": "pw-secret-2", "card": {"api_token": "tok-secret-3"}},
            headers={"Authorization": "Bearer auth-secret-4", "Idempotency-Key": "k0"},
        )
        self.charged = True

    @invariant()
    def never_charged(self):
        if getattr(self, "charged", False):
            self.check("never_charged", expected={"password": "pw-secret-2"}, actual={})
"""


def test_secrets_never_reach_the_trace_or_the_console(
    payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """Authorization, secret-looking query values and JSON fields are redacted."""
    model = tmp_path / "leaky.py"
    model.write_text(REDACTION_MODEL)
    with payments() as url:
        with_credentials = url.replace("http://", "http://ops:url-secret-5@")
        result = propworkload("run", str(model), "--url", with_credentials, "--seed", "1")
    assert result.code == 1, result.out + result.err
    assert "target=http://[redacted]@127.0.0.1:" in result.lines[0]
    text = _trace_of(result).read_text()
    secrets = ("qs-secret-1", "pw-secret-2", "tok-secret-3", "auth-secret-4", "url-secret-5")
    for secret in secrets:
        assert secret not in text
        assert secret not in result.out + result.err
    exchange = json.loads(text)["steps"][0]["exchanges"][0]
    assert exchange["request_headers"]["authorization"] == "[redacted]"
    assert json.loads(exchange["request_body"])["password"] == "[redacted]"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of our own on a free loopback port, stopped after the test."""
    import shutil
    import socket

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_failure_database_shared_through_redis(
    redis_url: str, payments: Service, tmp_path: Path
) -> None:
    """Two 'machines' (separate artifact folders) share saved failures through Redis."""
    args = [
        "-m",
        "propworkload",
        "run",
        str(PAYMENTS_MODEL),
        "--examples",
        "30",
        "--database",
        redis_url,
    ]
    with payments("retry-credits-balance") as url:
        first = run_command(
            args, env={"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "a")}
        )
        second = run_command(
            args, env={"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "b")}
        )
    assert first.code == 1, first.out + first.err
    assert second.code == 1, second.out + second.err
    assert second.lines[-1].endswith("saved-failures=1 reproduced=1")


STOPS_THE_DATABASE = """
import redis

from propworkload import Model, invariant, rule


class StopsTheDatabase(Model):
    sample = "payments"

    def __init__(self):
        super().__init__()
        self.steps = 0

    @rule()
    def stop_redis(self):
        redis.Redis.from_url({url!r}).shutdown(nosave=True)
        self.http.get("/openapi.json")
        self.steps += 1

    @invariant()
    def no_steps(self):
        self.check("no_steps", expected=0, actual=self.steps)
"""


def test_a_redis_database_lost_mid_run_is_one_note(redis_url: str, tmp_path: Path) -> None:
    """Redis goes away during the run (here: the model shuts it down, then fails, and
    Hypothesis saves the failure): one note, and the run's own verdict; the error neither
    ends the run unsaid nor is blamed on the model."""
    model = tmp_path / "stops.py"
    model.write_text(STOPS_THE_DATABASE.format(url=redis_url))
    with in_process("payments") as service:
        result = service.run(model, seed=1, examples=5, database=redis_url)
    assert result.code == 1, result.out + result.err
    assert "outside any rule" not in result.out + result.err
    assert any(line.startswith("INVARIANT FAIL no_steps") for line in result.lines)
    notes = [line for line in result.lines if line.startswith("NOTE ")]
    assert len(notes) == 1, result.out
    assert notes[0].startswith(f"NOTE the failure database {redis_url} failed (ConnectionError")


TYPED_MODEL = """
from decimal import Decimal

from hypothesis import strategies as st
from propworkload import Model, rule


class Typed(Model):
    sample = "payments"

    @rule(pair=st.tuples(st.integers(0, 3), st.integers(0, 3)),
          price=st.decimals(min_value=0, max_value=5, places=2))
    def send(self, pair, price):
        assert isinstance(pair, tuple) and isinstance(price, Decimal), (pair, price)
        self.http.get("/openapi.json")
        self.check("small", holds=sum(pair) + price < 6, expected="< 6", actual=[pair, price])
"""


def test_rule_arguments_replay_as_the_same_python_values(
    payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """A rule drawn a tuple and a Decimal gets a tuple and a Decimal back on replay (and in
    the emitted regression), not a list and a string."""
    model = tmp_path / "typed.py"
    model.write_text(TYPED_MODEL)
    with payments() as url:
        found = propworkload("run", str(model), "--url", url, "--seed", "3")
        assert found.code == 1, found.out + found.err
        trace = _trace_of(found)
        replayed = propworkload("replay", str(trace), "--url", url)
        emitted = tmp_path / "test_typed_regression.py"
        assert propworkload("replay", str(trace), "--emit-pytest", str(emitted)).code == 0
        regression = run_command(
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(emitted)],
            env={"APP_URL": url},
        )
    steps = json.loads(trace.read_text())["steps"]
    assert "$tuple" in json.dumps(steps[-1]["arguments"])
    assert replayed.code == 1, replayed.out + replayed.err
    assert "REPLAY reproduced: small failed again" in replayed.out
    text = emitted.read_text()
    assert "pair=(" in text and "run.value({'$decimal'" in text
    assert regression.code == 1 and "InvariantFailure" in regression.out, regression.out


def test_emit_pytest_refuses_names_that_are_not_python(
    retry_trace: Path, propworkload: CLI, tmp_path: Path
) -> None:
    """A trace whose rule name is not a Python name (damaged, or written by hand) is
    refused in one line, never written into the test's code."""
    trace = json.loads(retry_trace.read_text())
    trace["steps"][0]["rule"] = "charge(); import os  #"
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(trace))
    result = propworkload("replay", str(damaged), "--emit-pytest", str(tmp_path / "t.py"))
    assert result.code == 2, result.out + result.err
    assert "which is not a Python name" in result.err
    assert not (tmp_path / "t.py").exists()


FRAGILE = """
from propworkload import Model, expect_status, invariant, rule

WHERE = {where!r}


class Fragile(Model):
    sample = "payments"

    def __init__(self):
        super().__init__()
        self.count = 0
        if WHERE == "init":
            expect_status(self.http.get("/openapi.json"), 200)

    @rule()
    def ping(self):
        expect_status(self.http.get("/openapi.json"), 200)
        self.count += 1

    @rule()
    def pong(self):
        expect_status(self.http.get("/openapi.json"), 200)
        self.count += 1

    @invariant()
    def at_most_one(self):
        self.check("at_most_one", holds=self.count <= 1, expected="<=1", actual=self.count)

    def teardown(self):
        if WHERE == "teardown":
            expect_status(self.http.get("/openapi.json"), 200)
"""


async def _answers_500(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that answers every request 500 with a short text body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 500, "headers": []})
    await send({"type": "http.response.body", "body": b"oops\n"})


@pytest.fixture
def broken() -> Iterator[InProcess]:
    """A service that answers 500 to everything, served in this process."""
    transport = InProcessTransport(_answers_500)
    try:
        yield InProcess(url="http://broken.test", transport=transport)
    finally:
        transport.close()


def _fragile_trace(tmp_path: Path, where: str) -> Path:
    model = tmp_path / "fragile.py"
    model.write_text(FRAGILE.format(where=where))
    with in_process("payments") as service:
        result = service.run(model, seed=1, examples=20)
    assert result.code == 1, result.out + result.err
    return _trace_of(result)


@pytest.mark.parametrize("where", ["init", "teardown", "nowhere"])
def test_replay_against_a_service_answering_500_gives_a_verdict(
    where: str, broken: InProcess, tmp_path: Path
) -> None:
    """Against a service that answers 500 to everything (the model raises making the
    example, in a step, or in its teardown): a verdict and exit 1, never a traceback."""
    replayed = broken.replay(_fragile_trace(tmp_path, where))
    assert replayed.code == 1, replayed.out + replayed.err
    assert replayed.lines[1].startswith("INVARIANT FAIL unexpected_error "), replayed.out
    assert "UnexpectedStatus: 500 from GET /openapi.json" in replayed.lines[1]
    verdict = next(line for line in replayed.lines[1:] if line.startswith("REPLAY "))
    assert verdict.startswith("REPLAY failed differently: unexpected_error in "), replayed.out


def test_an_unexpected_error_in_another_rule_is_not_reproduced(
    broken: InProcess, tmp_path: Path
) -> None:
    """A trace whose failure is an unexpected error in one rule is not reproduced by an
    unexpected error in another (here: every request answered 500)."""
    path = _fragile_trace(tmp_path, "nowhere")
    trace = json.loads(path.read_text())
    first = trace["steps"][0]["rule"]
    other = "pong" if first == "ping" else "ping"
    trace["failure"] = {
        "invariant": "unexpected_error",
        "expected": "no exception",
        "actual": "UnexpectedStatus: 404",
        "ids": {"rule": other},
        "step": 2,
        "error": "UnexpectedStatus: 404",
        "rule": other,
    }
    path.write_text(json.dumps(trace))
    replayed = broken.replay(path)
    assert replayed.code == 1, replayed.out + replayed.err
    assert f"REPLAY failed differently: unexpected_error in {first}" in replayed.out
    assert "REPLAY reproduced" not in replayed.out


def test_a_trace_whose_arguments_no_longer_fit_the_model(tmp_path: Path) -> None:
    """A step whose arguments the model's command no longer takes (a parameter renamed):
    exit 2, one line, as for a renamed rule, before any request (it was an unexpected
    TypeError, reported as a reproduced or different failure)."""
    with in_process("payments", "retry-after-refund") as service:
        run = service.run(PAYMENTS_MODEL, seed=1)
        assert run.code == 1, run.out + run.err
        path = _trace_of(run)
        trace = json.loads(path.read_text())
        step = trace["steps"][1]
        step["arguments"] = {
            ("cents" if name == "amount" else name): value
            for name, value in step["arguments"].items()
        }
        path.write_text(json.dumps(trace))
        replayed = service.replay(path)
    assert replayed.code == 2, replayed.out + replayed.err
    assert "INVARIANT" not in replayed.out
    (line,) = replayed.err.splitlines()
    assert f"step 2 calls {step['rule']}(key, cents)" in line
    assert f"Payments.{step['rule']} takes (key, amount)" in line
