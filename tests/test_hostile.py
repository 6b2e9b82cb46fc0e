"""Hostile input at every command: services that answer garbage, bodies too large or without
end, a byte at a time, HTML for JSON, half an answer or a 500; damaged traces; random
options. The contract holds throughout: the documented exit status, at most one error line,
no traceback, nothing secret."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PAYMENTS_MODEL, Completed, in_process, run_command
from propworkload import PropworkloadError
from propworkload._cli import cli_main
from propworkload._commands import replay
from propworkload._errors import InvalidTrace
from propworkload._limits import LimitedTransport, ResponseTooLarge, ResponseTooSlow
from propworkload._trace import load_trace

# -- a service that answers in one hostile way ---------------------------------------------

HUGE = 50 * 1024 * 1024  # announced and sent: more than a model reads (http_max_body)


class HostileServer:
    """A server on a free loopback port that reads each request and answers it in one
    hostile way (``mode``, one of :data:`MODES`), then closes the connection."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self._read_request(connection):
                self._answer(connection)
        except OSError:
            pass  # the client gave up (as it should, on most of these)
        finally:
            _close(connection)

    @staticmethod
    def _read_request(connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return True

    def _answer(self, connection: socket.socket) -> None:
        def head(status: str, content_type: str, *headers: str) -> bytes:
            lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", "Connection: close"]
            return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()

        def whole(status: str, content_type: str, body: bytes) -> bytes:
            return head(status, content_type, f"Content-Length: {len(body)}") + body

        mode, send = self.mode, connection.sendall
        if mode == "garbage":
            send(b"\x00\xff\xfeSSH-2.0-not-http\r\n" + bytes(range(256)) * 4)
        elif mode == "huge":
            send(head("200 OK", "application/json", f"Content-Length: {HUGE}"))
            block = b" " * 65536
            for _ in range(HUGE // len(block)):
                if self._stop.is_set():
                    return
                send(block)
        elif mode == "endless":
            send(head("200 OK", "application/json", "Transfer-Encoding: chunked"))
            chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
            while not self._stop.is_set():
                send(chunk)
        elif mode == "slow":
            send(head("200 OK", "application/json", "Content-Length: 1000"))
            while not self._stop.wait(0.5):
                send(b" ")
        elif mode == "midbody":
            send(head("200 OK", "application/json", "Content-Length: 1000") + b'{"id": "ch_')
        elif mode == "html":
            send(whole("200 OK", "text/html", b"<html><body><h1>Welcome!</h1></body></html>"))
        elif mode == "error500":
            page = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
            send(whole("500 Internal Server Error", "text/html", page))
        elif mode == "other-json":
            send(whole("200 OK", "application/json", b'{"unexpected": [1, 2, 3]}'))
        else:
            raise AssertionError(f"unknown mode {mode}")

    def close(self) -> None:
        self._stop.set()
        _close(self._listener)
        with self._lock:
            for connection in self._connections:
                _close(connection)
        for thread in self._threads:
            thread.join(timeout=5)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


#: What a run against each mode must end with: 3 when the service never gave an answer
#: that could be read (nothing could be checked); 1 when it answered, wrongly (an HTML
#: page or a 500 where the model expects JSON: a step failed, printed as a failure).
MODES = {
    "garbage": 3,
    "huge": 3,
    "endless": 3,
    "slow": 3,
    "midbody": 3,
    "html": 1,
    "error500": 1,
    "other-json": 1,
}
#: How each failure names what the service did.
FAILURE = {
    "html": "JSONDecodeError",
    "error500": "UnexpectedStatus",
    "other-json": "KeyError",
}
PASSWORD = "pa55w0rd"
#: Short runs: few, short examples (with 20 steps, unknown outcomes pile up until most
#: examples are dropped, and the run goes on to its time budget); the budget is generous,
#: so that a busy machine changes nothing.
SMALL = ("--examples", "3", "--steps", "5", "--time-budget", "60")


@contextlib.contextmanager
def hostile_servers(modes: list[str]) -> Iterator[dict[str, HostileServer]]:
    servers = {mode: HostileServer(mode) for mode in modes}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


def _credentialed(url: str) -> str:
    return url.replace("http://", f"http://user:{PASSWORD}@")


def _contract(result: Completed, want: int, what: str) -> None:
    """The documented status, no traceback, at most one error line."""
    both = result.out + result.err
    assert result.code == want, f"{what}: exit {result.code}, want {want}\n{both}"
    assert "Traceback" not in both, f"{what}:\n{both}"
    errors = [line for line in result.err.splitlines() if "error:" in line]
    assert len(errors) <= 1, f"{what}:\n{result.err}"
    if want in (2, 3):
        assert len(errors) == 1 and errors[0].startswith("propworkload: error: "), what


def _in_parallel(jobs: dict[str, Callable[[], Completed]]) -> dict[str, Completed]:
    """Run the jobs (each a CLI command, mostly waiting on a service) a few at a time."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real traces of the payments model: a sequential failure (retry-after-refund) and a
    race (a parallel program), written by in-process runs."""
    folder = tmp_path_factory.mktemp("traces")
    found: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROPWORKLOAD_ARTIFACTS", str(folder))
        for name, bug, options in (
            ("sequential", "retry-after-refund", {}),
            ("parallel", "race-same-key-double-charge", {"concurrency": 3}),
        ):
            with in_process("payments", bug) as service:
                result = service.run(PAYMENTS_MODEL, seed=1, **options)
            assert result.code == 1, result.out + result.err
            line = next(line for line in result.lines if line.startswith("  trace: "))
            found[name] = Path(line.split("trace: ", 1)[1])
    return found


HASTY = """
import sys

sys.path.insert(0, {models!r})
from payments import Payments as _Payments


class Payments(_Payments):
    \"\"\"models/payments.py giving up on an answer after 1 s instead of 10, and on a
    command after one attempt instead of three.\"\"\"

    http_timeout = 1.0
    retry_attempts = 1
"""


@pytest.fixture(scope="module")
def hasty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The payments model with a 1 s ``http_timeout`` and one attempt per command, for
    the service that answers a byte at a time: every answer of it costs a timeout, 10 s
    (and three attempts) with the model's own."""
    path = tmp_path_factory.mktemp("hasty") / "payments.py"
    path.write_text(HASTY.format(models=str(PAYMENTS_MODEL.parent)))
    return path


def _cli(*args: str, tmp_path: Path) -> Completed:
    # The hang guard: every command here must end on its own well before it.
    env = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command(["-m", "propworkload", *args], env=env, timeout=300)


@pytest.mark.slow
def test_every_command_against_hostile_services(
    traces: dict[str, Path], hasty: Path, tmp_path: Path
) -> None:
    """``run``, ``explore`` and ``replay`` against every kind of hostile service end on
    their own, with
    the documented status: 3 when no answer could be read (a body too large or without
    end, one that trickles, half a body, not HTTP at all), 1 with a failure line naming
    what came when the answers were wrong (HTML, a 500, JSON of another shape); never a
    traceback, at most one error line. Replays of a failure and of a race (a parallel
    program) say the same. The service that trickles is given up on after the model's
    http_timeout for every answer: it gets the model with a 1 s timeout."""
    with hostile_servers(list(MODES)) as servers:
        jobs: dict[str, Callable[[], Completed]] = {}
        for mode, server in servers.items():
            model, size = str(PAYMENTS_MODEL), ("--examples", "3", "--steps", "5")
            if mode in ("slow", "endless"):  # each answer costs a timeout, or 16 MiB read
                size = ("--examples", "1", "--steps", "2")
            if mode == "slow":
                model = str(hasty)
            run = ("run", model, "--url", server.url, "--seed", "1", *SMALL, *size)
            jobs[f"run {mode}"] = lambda run=run: _cli(*run, tmp_path=tmp_path)
            explore = ("explore", model, "--url", server.url, "--seed", "1", *size)
            jobs[f"explore {mode}"] = lambda explore=explore: _cli(*explore, tmp_path=tmp_path)
            for kind, trace in traces.items():
                args = ("replay", str(trace), "--url", server.url, "--model", model)
                jobs[f"replay {kind} {mode}"] = lambda args=args: _cli(*args, tmp_path=tmp_path)
        results = _in_parallel(jobs)
    for name, result in results.items():
        command, mode = name.split()[0], name.split()[-1]
        _contract(result, MODES[mode], name)
        if MODES[mode] == 1 and command in ("run", "explore"):
            fails = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
            assert any(FAILURE[mode] in fail for fail in fails), f"{name}: {fails}"
            assert any(line.startswith("  trace: ") for line in result.lines), name
        if MODES[mode] == 1 and command == "replay":
            assert "REPLAY " in result.out and "error:" not in result.err, name


def test_hostile_services_never_see_the_password_printed(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    """A credentialed URL to a service that breaks off mid-body: whatever the run and the
    replay print, and the trace, hold no password."""
    with hostile_servers(["midbody", "html"]) as servers:
        jobs: dict[str, Callable[[], Completed]] = {}
        for mode, server in servers.items():
            url = _credentialed(server.url)
            run = ("run", str(PAYMENTS_MODEL), "--url", url, "--seed", "1", *SMALL)
            jobs[f"run {mode}"] = lambda run=run: _cli(*run, tmp_path=tmp_path)
            replayed = ("replay", str(traces["sequential"]), "--url", url)
            jobs[f"replay {mode}"] = lambda replayed=replayed: _cli(*replayed, tmp_path=tmp_path)
        results = _in_parallel(jobs)
    for name, result in results.items():
        _contract(result, MODES[name.split()[-1]], name)
    written = [path.read_text() for path in (tmp_path / "artifacts").rglob("*.json")]
    leaked = [name for name, r in results.items() if PASSWORD in r.out + r.err]
    assert not leaked and not any(PASSWORD in text for text in written), leaked


def test_an_answer_is_read_within_its_limits() -> None:
    """A body over the limit (announced or not) and one still arriving when the read
    timeout has passed are transport errors; a body within both is read whole."""

    def trickle() -> Iterator[bytes]:
        for _ in range(100):
            time.sleep(0.02)
            yield b" "

    bodies: dict[str, Callable[[], httpx.Response]] = {
        "/fits": lambda: httpx.Response(200, content=b"x" * 100),
        "/announced": lambda: httpx.Response(200, content=b"x" * 101),
        "/streamed": lambda: httpx.Response(200, content=iter([b"x" * 60, b"x" * 60])),
        "/trickles": lambda: httpx.Response(200, content=trickle()),
    }
    inner = httpx.MockTransport(lambda request: bodies[request.url.path]())
    transport = LimitedTransport(inner, max_body=100)
    with httpx.Client(transport=transport, base_url="http://test", timeout=0.2) as client:
        assert client.get("/fits").content == b"x" * 100
        for path in ("/announced", "/streamed"):
            with pytest.raises(ResponseTooLarge, match="over 100 bytes"):
                client.get(path)
        with pytest.raises(ResponseTooSlow, match=r"still arriving after 0\.2 s"):
            client.get("/trickles")


# -- damaged traces -------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["rule", "$tuple", "$attrs", "k0", "charge", "lost-response"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _places(node: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document: the keys and indexes that lead to it."""
    yield where
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, (*where, index))


@st.composite
def damaged(draw: st.DrawFn, trace: dict[str, Any]) -> str:
    """``trace`` with a few values replaced or removed, and maybe its text cut or spliced."""
    data = json.loads(json.dumps(trace))
    places = list(_places(data))[1:]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(places))
        parent: Any = data
        with contextlib.suppress(LookupError, TypeError):
            for key in where[:-1]:
                parent = parent[key]
            if draw(st.booleans()):
                del parent[where[-1]]
            else:
                parent[where[-1]] = draw(_JSON)
    text = json.dumps(data)
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=4)) + text[at + draw(st.integers(0, 8)) :]
    return text


def _replay_in_process(path: Path, service: Any, *, emit: Path | None = None) -> int:
    """``propworkload replay PATH`` in this process: its status, with a tool error's line
    checked to be one line."""
    try:
        return replay(
            str(path),
            url=service.url,
            transport=service.transport,
            out=io.StringIO(),
            emit_pytest=emit,
        )
    except PropworkloadError as exc:
        assert "\n" not in str(exc), str(exc)
        return exc.exit_code


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sequential", "parallel"])
def test_damaged_traces_are_refused_in_one_line_or_replayed(
    kind: str, traces: dict[str, Path], tmp_path: Path
) -> None:
    """A real trace with values changed, removed or cut: replay (and --emit-pytest)
    either runs it (0 or 1: a value it can use) or refuses it as a damaged trace (2, one
    line); nothing else escapes."""
    trace = json.loads(traces[kind].read_text())
    path = tmp_path / "damaged.json"
    bug = "retry-after-refund" if kind == "sequential" else "race-same-key-double-charge"

    with in_process("payments", bug) as service:

        @settings(
            # A parallel program runs three clients, several times: fewer of them.
            max_examples=120 if kind == "sequential" else 60,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(text=damaged(trace), emit=st.booleans())
        def check(text: str, emit: bool) -> None:
            path.write_text(text, encoding="utf-8")
            code = _replay_in_process(path, service, emit=tmp_path / "test_e.py" if emit else None)
            assert code in (0, 1, 2), code

        check()


@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@settings(max_examples=200, deadline=None, database=None)
def test_any_bytes_are_a_trace_or_one_line_saying_why_not(raw: bytes) -> None:
    """The trace reader on arbitrary bytes: a trace, or :class:`InvalidTrace` (one line)."""
    folder = Path(os.environ["PROPWORKLOAD_ARTIFACTS"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "any.json"
    path.write_bytes(raw)
    with contextlib.suppress(InvalidTrace):
        load_trace(path)


def test_damaged_traces_from_the_command_line(traces: dict[str, Path], tmp_path: Path) -> None:
    """A handful of damaged traces through the real command: exit 2, one line, no
    traceback."""
    good = json.loads(traces["sequential"].read_text())
    first = good["steps"][0]
    cases: dict[str, Any] = {
        "cut": traces["sequential"].read_text()[:200],
        "exchange-not-object": {**good, "steps": [{**first, "exchanges": [None]}]},
        "target-number": {
            **good,
            "steps": [{**first, "exchanges": [{**first["exchanges"][0], "target": 7}]}],
        },
        "bundle-list": {**good, "steps": [{**first, "bundle_arguments": [1]}]},
        "unknown-fault": {
            **good,
            "steps": [
                {**first, "exchanges": [{**first["exchanges"][0], "fault": {"kind": "meteor"}}]}
            ],
        },
        "program-missing": {**good, "kind": "parallel"},
    }
    jobs: dict[str, Callable[[], Completed]] = {}
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        args = ("replay", str(path), "--url", "http://127.0.0.1:9")
        jobs[name] = lambda args=args: _cli(*args, tmp_path=tmp_path)
    for name, result in _in_parallel(jobs).items():
        _contract(result, 2, name)


# -- random options ---------------------------------------------------------------------------


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    """A loopback port that refuses connections and that no one else takes while the
    block runs: bound, never listening (a port merely freed could be another test's
    service a moment later, and the run would really run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# Half usable values, half hostile ones: a run gets past option checks often enough.
_NUMBERS = st.sampled_from(["1", "2", "3", "0.5"]) | st.sampled_from(
    ["0", "-1", "1e-9", "nan", "inf", "-inf", "1e400", "99999999999999999999", "x", ""]
)
_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)


def _url(port: int) -> st.SearchStrategy[str]:
    # Never the embedded sample (no --url starts one: slow) nor a port that answers.
    # '' is left out: the empty URL is another change of issue 16.
    closed = f"http://127.0.0.1:{port}"
    return st.sampled_from(
        [closed, f"http://user:{PASSWORD}@127.0.0.1:{port}", f"{closed}/base"]
    ) | st.sampled_from(
        ["ftp://x", "http://", "not a url", "http://[::1", "http://127.0.0.1:99999"]
    )


def _options(command: str, files: dict[str, str]) -> st.SearchStrategy[list[str]]:
    """Options of ``command`` (run or explore), and some of neither, with values of every
    sort; a valueless option now and then."""
    named = {
        "--examples": _NUMBERS,
        "--steps": _NUMBERS,
        "--seed": _NUMBERS,
        "--time-budget": _NUMBERS,
        "--faults": st.sampled_from(["all", "lost-response,reset", "delay"])
        | st.sampled_from(["bogus", "", ",,", "all,bogus"])
        | _TEXT,
        "--fault-rate": _NUMBERS,
        "--concurrency": _NUMBERS,
        "--repeat": _NUMBERS,
        "--bogus": _TEXT,
    }
    if command == "explore":
        del named["--examples"], named["--time-budget"]  # one of them, below
        named["--workers"] = st.sampled_from(["1", "2", "0", "-1", "x"])
        named["--junit"] = st.sampled_from([files["report"], files["dir"]])
        named["--report-json"] = st.sampled_from([files["report"], files["dir"]])
    valued = st.sampled_from(sorted(named)).flatmap(
        lambda name: named[name].map(lambda value: [name, value])
    )
    option = valued | valued | valued | st.sampled_from(sorted(named)).map(lambda name: [name])
    return st.lists(option, max_size=4).map(lambda pairs: [x for pair in pairs for x in pair])


def _argv(port: int, files: dict[str, str]) -> st.SearchStrategy[list[str]]:
    models = st.just(str(PAYMENTS_MODEL)) | st.sampled_from(
        [f"{PAYMENTS_MODEL}::Nope", files["missing"], files["dir"], files["not_python"], ""]
    )
    url = _url(port).map(lambda value: ["--url", value])
    budget = st.sampled_from([["--time-budget"], ["--examples"]]).flatmap(
        lambda name: _NUMBERS.map(lambda value: [*name, value])
    )
    run = st.tuples(models, url, budget, _options("run", files)).map(
        lambda parts: ["run", parts[0], *parts[1], *parts[2], *parts[3]]
    )
    explore = st.tuples(models, url, budget, _options("explore", files)).map(
        lambda parts: ["explore", parts[0], *parts[1], *parts[2], *parts[3]]
    )
    traces = st.sampled_from(
        [files["trace"], files["missing"], files["dir"], files["not_python"], "", "-"]
    )
    replayed = st.tuples(
        traces,
        url,
        st.lists(
            st.sampled_from(["--repeat", "--model"]).flatmap(
                lambda name: (
                    _NUMBERS
                    if name == "--repeat"
                    else st.sampled_from([files["missing"], str(PAYMENTS_MODEL), files["dir"]])
                ).map(lambda value: [name, value])
            ),
            max_size=2,
        ),
    ).map(lambda parts: ["replay", parts[0], *parts[1], *(x for p in parts[2] for x in p)])
    # demo always lists (serving would run until stopped); its other options still vary.
    demo = st.tuples(
        st.sampled_from(["payments", "nope", "", "../x"]),
        st.lists(
            st.sampled_from(["--port", "--bug"]).flatmap(
                lambda name: (_NUMBERS | _TEXT).map(lambda value: [name, value])
            ),
            max_size=2,
        ),
    ).map(lambda parts: ["demo", parts[0], "--list-bugs", *(x for p in parts[1] for x in p)])
    new = st.tuples(_TEXT | st.sampled_from(["orders", "x-y", "1a", "class", "a/b"])).map(
        lambda parts: ["new", parts[0]]
    )
    other = st.sampled_from(
        [[], ["--help"], ["--version"], ["bogus"], ["run"], ["run", "--help"], ["new"]]
    )
    return run | explore | replayed | demo | new | other


@pytest.mark.slow
def test_random_options_get_a_documented_status_and_no_traceback(
    traces: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random commands, options and values (in this process, through the real entry
    point): a status of 0 to 3, never a traceback; a tool error is one line."""
    with _closed_port() as port:
        files = {
            "missing": str(tmp_path / "missing.py"),
            "dir": str(tmp_path),
            "not_python": str(tmp_path / "notes.txt"),
            "report": str(tmp_path / "out" / "report.json"),
            "trace": str(traces["sequential"]),
        }
        Path(files["not_python"]).write_text("hello\x00\n")
        monkeypatch.chdir(tmp_path)  # where `new` writes

        # Some commands drawn run the engine, whose own @given then runs inside this one
        # (Hypothesis's nested_given health check, where it has one, failed on such seeds).
        nested = [check for check in HealthCheck if check.name == "nested_given"]

        @settings(
            max_examples=250,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, *nested],
        )
        @given(argv=_argv(port, files))
        def check(argv: list[str]) -> None:
            out, err = io.StringIO(), io.StringIO()
            with (
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
                pytest.raises(SystemExit) as ended,
            ):
                cli_main(argv)
            code = ended.value.code
            shown = f"propworkload {' '.join(argv)}\n{out.getvalue()}{err.getvalue()}"
            assert code in (0, 1, 2, 3), shown
            assert "Traceback" not in out.getvalue() + err.getvalue(), shown
            errors = [x for x in err.getvalue().splitlines() if x.startswith("propworkload:")]
            assert len(errors) <= 1, shown

        check()
