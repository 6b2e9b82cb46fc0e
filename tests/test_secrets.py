"""Secrets never leave the process: URL passwords, and every secret value learned at run
time (sent in a redacted header, field or URL part, or received in one), in the console,
errors, traces, reports, JUnit files and emitted tests."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import PAYMENTS_MODEL, Completed, run_command

Service = Callable[..., AbstractContextManager[str]]
CLI = Callable[..., Completed]

#: Has an ``@``, which the URL-shaped redaction of printed text alone does not get past.
PASSWORD = "s3cr@t-pa55w0rd"
MARK = "pa55w0rd"


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://user:{PASSWORD}@")


def _trace_of(result: Completed) -> Path:
    (line,) = [line for line in result.lines if line.startswith("  trace: ")]
    return Path(line.split("trace: ", 1)[1])


def _leaks(text: str, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in text]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--time-budget", "10"],
        ["run", "--time-budget", "10", "--concurrency", "2"],
        ["explore", "--time-budget", "10"],
        ["explore", "--time-budget", "10", "--workers", "2"],
    ],
    ids=["run", "run-concurrency", "explore", "explore-workers"],
)
def test_unreachable_credentialed_url_is_never_printed(
    args: list[str], propworkload: CLI, free_url: str
) -> None:
    """An unreachable target with a password: exit 3, and no line shows the password."""
    command, *options = args
    result = propworkload(command, str(PAYMENTS_MODEL), "--url", _with_password(free_url), *options)
    assert (result.code, _leaks(result.out + result.err, MARK)) == (3, []), result.out + result.err
    assert "cannot reach http://[redacted]@127.0.0.1:" in result.err


def test_url_check_error_hides_the_password(propworkload: CLI, free_url: str) -> None:
    """A URL that fails the check (a port out of range) is named without its password."""
    bad = _with_password(free_url).rsplit(":", 1)[0] + ":99999"
    result = propworkload("run", str(PAYMENTS_MODEL), "--url", bad)
    assert result.code == 2
    assert _leaks(result.out + result.err, MARK) == []
    assert "--url='http://[redacted]@127.0.0.1:99999' has port 99999" in result.err


def test_credentialed_run_traces_and_replays_without_the_password(
    payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """A run with a password in its URL keeps it out of the output and the trace; the
    trace does not replay without the URL (it never kept the password), and replays with
    it, printing the target redacted."""
    with payments("retry-after-refund") as url:
        target = _with_password(url)
        found = propworkload("run", str(PAYMENTS_MODEL), "--url", target, "--seed", "1")
        assert found.code == 1, found.out + found.err
        trace = _trace_of(found)
        assert _leaks(found.out + found.err + trace.read_text(), MARK) == []

        alone = propworkload("replay", str(trace))
        assert alone.code == 2
        assert alone.out == ""
        assert alone.err == (
            "propworkload: error: the trace's target had a password, which traces never "
            "keep; give the URL with --url or APP_URL\n"
        )

        again = propworkload("replay", str(trace), "--url", target)
        assert again.code == 1, again.out + again.err
        assert _leaks(again.out + again.err, MARK) == []
        assert again.lines[0].startswith(f"REPLAY {trace} model=payments target=http://[redacted]@")
        assert "REPLAY reproduced: charged_once failed again at step 3" in again.lines


# -- a service that echoes secrets back ------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """POST /login answers with the credentials it was sent: the Authorization and
    X-Api-Key headers as JSON fields (and the token in a header), and a session cookie."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, body: dict[str, object], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({}, {})

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(size) or b"{}")
        authorization = self.headers.get("Authorization", "")
        self._answer(
            {
                "authorization": authorization,
                "seen_key": self.headers.get("X-Api-Key", ""),
                "user": sent.get("user"),
                "greeting": f"hello {sent.get('password', '')}",
            },
            {"X-Echo": authorization, "Set-Cookie": "sid=cookie-s3ss10n; Path=/"},
        )


@pytest.fixture
def echo_url() -> Iterator[str]:
    """The echo service on a free loopback port, stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


ECHO_MODEL = """
from propworkload import Model, invariant, rule

TOKEN = "tok-3ch0ed-7f3a9"
API_KEY = "key-3ch0ed-5b21c"


class Echo(Model):
    sample = None

    @rule()
    def login(self):
        answer = self.http.post(
            "/login",
            json={"user": "ann"},
            headers={"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY},
        )
        self.seen = answer.json()
        MODE

    @invariant()
    def nothing_echoed(self):
        seen = getattr(self, "seen", None)
        if seen:
            self.check(
                "nothing_echoed", expected="", actual=seen["authorization"], key=seen["seen_key"]
            )
"""
ECHOED = ("tok-3ch0ed-7f3a9", "key-3ch0ed-5b21c")


@pytest.mark.parametrize(
    "mode",
    [
        "pass",
        'assert not self.seen["authorization"], f"the service echoed {self.seen}"',
    ],
    ids=["echoed-into-failure", "in-assertion-message"],
)
def test_secrets_echoed_back_reach_no_file_and_no_line(
    mode: str, echo_url: str, propworkload: CLI, tmp_path: Path
) -> None:
    """A token the service echoes back (a JSON field named authorization, a header), as a
    failure's value or in an assertion's message, reaches no line, trace, report or
    JUnit file."""
    model = tmp_path / "echo.py"
    model.write_text(ECHO_MODEL.replace("MODE", mode))
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    result = propworkload(
        "explore",
        str(model),
        "--url",
        echo_url,
        "--examples",
        "3",
        "--junit",
        str(junit),
        "--report-json",
        str(report),
    )
    assert result.code == 1, result.out + result.err
    trace = _trace_of(result)
    written = trace.read_text() + junit.read_text() + report.read_text()
    assert _leaks(result.out + result.err + written, *ECHOED) == []
    assert (
        "[redacted]" in json.loads(trace.read_text())["steps"][0]["exchanges"][0]["response_body"]
    )


SECRET_VALUES_MODEL = """
from propworkload import Model, invariant, rule

PASSWORD, TOKEN = "hunter2-pw", "s3cr3t-tok"


class Login(Model):
    sample = None

    @rule()
    def login(self):
        self.http.post("/login", json={"user": "ann", "password": PASSWORD, "token": TOKEN})
        self.logged_in = True

    @invariant()
    def logged_out(self):
        if getattr(self, "logged_in", False):
            self.check("logged_out", expected=0, actual=1, token=TOKEN, password=PASSWORD)
"""


def test_emitted_pytest_hides_secret_values(
    echo_url: str, propworkload: CLI, tmp_path: Path
) -> None:
    """The emitted regression test, failing, prints its InvariantFailure with the secret
    values redacted; the file itself holds none of them."""
    model = tmp_path / "login.py"
    model.write_text(SECRET_VALUES_MODEL)
    found = propworkload("run", str(model), "--url", echo_url, "--seed", "1")
    assert found.code == 1, found.out + found.err
    emitted = tmp_path / "test_regression.py"
    assert propworkload("replay", str(_trace_of(found)), "--emit-pytest", str(emitted)).code == 0
    regression = run_command(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(emitted)],
        env={"APP_URL": echo_url},
        cwd=tmp_path,
    )
    assert regression.code == 1, regression.out + regression.err
    assert "InvariantFailure: logged_out expected=0 actual=1" in regression.out
    secrets = ("hunter2-pw", "s3cr3t-tok")
    written = _trace_of(found).read_text() + emitted.read_text()
    assert _leaks(found.out + found.err + written, *secrets) == []
    assert _leaks(regression.out + regression.err, *secrets) == []


# -- the registry of secrets learned at run time ---------------------------------------


def test_secret_learned_at_run_time_is_scrubbed_from_later_strings() -> None:
    """What was sent in a redacted header (a Bearer token, Basic credentials decoded),
    field or URL part, or received in one (a cookie), is scrubbed from any later text;
    values too short to be secrets, and the rule's own arguments, are not learned."""
    from propworkload._record import ExampleRecord, RecordingTransport
    from propworkload._redact import scrub

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"Set-Cookie": "sid=cookie-v4lue; Path=/"})

    basic = base64.b64encode(b"ops:b4sic-pw").decode()
    record = ExampleRecord(number=1)
    record.begin_step("login", {"password": "generated-pw"})
    transport = RecordingTransport(httpx.MockTransport(handler), record)
    with httpx.Client(base_url="http://svc.test", transport=transport) as client:
        client.post("/a?api_key=qu3ry-key", headers={"Authorization": "Bearer b3arer-tok"})
        client.post("/b", headers={"Authorization": f"Basic {basic}", "X-Api-Token": "abc"})
        client.post("/c", json={"password": "generated-pw", "token": "f1eld-tok"})
    later = "b3arer-tok b4sic-pw qu3ry-key cookie-v4lue f1eld-tok abc generated-pw"
    assert scrub(later) == "[redacted] [redacted] [redacted] [redacted] [redacted] abc generated-pw"


def test_console_stream_scrubs_a_secret_split_across_writes() -> None:
    """The console stream scrubs whole lines, so a secret printed in pieces is caught."""
    from propworkload._redact import ScrubbingStream, learn

    learn("spl1t-secret")
    out = io.StringIO()
    stream = ScrubbingStream(out)
    print("a", "spl1t", end="", file=stream)
    print("-secret b", file=stream, flush=True)
    assert out.getvalue() == "a [redacted] b\n"


ARGUMENT_MODEL = """
from hypothesis import strategies as st

from propworkload import Model, invariant, rule

CORRECT = "c0rrect-pw"


class Login(Model):
    sample = None

    def setup(self):
        self.http.post("/login", json={"user": "ann", "password": CORRECT})
        self.correct = False

    @rule(password=st.sampled_from(["wr0ng-pw", CORRECT]))
    def login(self, password):
        self.http.post("/login", json={"user": "ann", "password": password})
        self.correct = password == CORRECT

    @invariant()
    def never_correct(self):
        self.check("never_correct", expected=False, actual=self.correct)
"""


def test_an_argument_learned_as_a_secret_stays_in_the_trace(
    echo_url: str, propworkload: CLI, tmp_path: Path
) -> None:
    """A rule's argument is kept in the trace, as replay needs it, even when the same
    value was learned as a secret before (sent in a password field by setup())."""
    model = tmp_path / "login.py"
    model.write_text(ARGUMENT_MODEL)
    found = propworkload("run", str(model), "--url", echo_url, "--seed", "1")
    assert found.code == 1, found.out + found.err
    trace = _trace_of(found)
    (step,) = json.loads(trace.read_text())["steps"]
    assert step["arguments"] == {"password": "c0rrect-pw"}
    assert json.loads(step["exchanges"][0]["request_body"])["password"] == "[redacted]"
    again = propworkload("replay", str(trace), "--url", echo_url)
    assert again.code == 1, again.out + again.err
    assert "REPLAY reproduced: never_correct failed again at step 1" in again.lines
