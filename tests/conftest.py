"""Shared helpers: run the CLI as a user would, and start sample services on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import pytest

from propworkload import PropworkloadError
from propworkload._asgi import InProcessTransport
from propworkload._commands import ExploreOptions, RunOptions
from propworkload._commands import explore as explore_command
from propworkload._commands import replay as replay_command
from propworkload._commands import run as run_command_in_process
from propworkload._loader import load_model
from propworkload._redact import forget_secrets
from propworkload._target import sample_service
from propworkload.samples import load_sample, validate_bugs

ROOT = Path(__file__).resolve().parents[1]
PAYMENTS_MODEL = ROOT / "models" / "payments.py"
#: The same service modelled in the rule style (Bundles, hand-driven Possible, @operation).
RULES_MODEL = ROOT / "tests" / "models" / "payments_rules.py"
PAYMENTS_WORKLOAD = ROOT / ".workers" / "workloads" / "payments.py"


@attrs.frozen
class Completed:
    """What a command printed and how it exited."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def one_line_error(result: Completed, code: int = 2) -> str:
    """The one `propworkload: error:` line a refused command prints (status ``code``, no
    traceback)."""
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("propworkload: error: ")
    return lines[0]


def run_command(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 240,
) -> Completed:
    """Run ``args`` (a Python script or ``-m`` module) with this interpreter."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("APP_URL", "PROPWORKLOAD_SEED")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Completed(code=proc.returncode, out=proc.stdout, err=proc.stderr)


def payments_workload(url: str, tmp_path: Path, *args: str) -> Completed:
    """Run the payments workload entry (as a simulator does) against ``url``."""
    env = {"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    return run_command([str(PAYMENTS_WORKLOAD), *args], env=env)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs made in this process write their traces under the test's temporary folder,
    take no target from the environment, and leave no learned secret to later tests."""
    monkeypatch.setenv("PROPWORKLOAD_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("APP_URL", raising=False)
    monkeypatch.delenv("PROPWORKLOAD_SEED", raising=False)
    yield
    forget_secrets()


@pytest.fixture
def propworkload(tmp_path: Path) -> Callable[..., Completed]:
    """Run ``propworkload ARGS...``; artifacts go to a temporary folder."""

    def run(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> Completed:
        merged = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts"), **(env or {})}
        return run_command(["-m", "propworkload", *args], env=merged, **kwargs)  # type: ignore[arg-type]

    return run


@attrs.frozen
class InProcess:
    """A sample service served in this process: its (made-up) URL and the transport
    that reaches it."""

    url: str
    transport: InProcessTransport

    def run(self, model: str | Path, **options: Any) -> Completed:
        """``propworkload run MODEL`` against this service, in this process: what it
        printed and its exit status (a tool error: status and one line, as the CLI)."""
        return _in_process(
            run_command_in_process, model, RunOptions(url=self.url, **options), self.transport
        )

    def run_args(self, model: str | Path, *args: str) -> Completed:
        """:meth:`run` with the options as on the command line (``"--seed", "1"``)."""
        return self.run(model, **cli_options(args))

    def replay(self, trace: str | Path, *args: str) -> Completed:
        """``propworkload replay TRACE`` against this service, in this process."""
        import io

        out = io.StringIO()
        options = cli_options(args)
        try:
            code = replay_command(
                str(trace), url=self.url, out=out, transport=self.transport, **options
            )
        except PropworkloadError as exc:
            return Completed(code=exc.exit_code, out=out.getvalue(), err=f"error: {exc}\n")
        return Completed(code=code, out=out.getvalue(), err="")

    def explore(self, model: str | Path, **options: Any) -> Completed:
        """``propworkload explore MODEL`` against this service, in this process."""
        return _in_process(
            explore_command, model, ExploreOptions(url=self.url, **options), self.transport
        )


_INTEGERS = {"examples", "steps", "seed", "concurrency", "repeat", "workers"}
_FLOATS = {"time_budget", "fault_rate"}


def cli_options(args: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Command-line options (``--time-budget 5``) as keyword arguments."""
    options: dict[str, Any] = {}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        name = flag.removeprefix("--").replace("-", "_")
        options[name] = (
            int(value) if name in _INTEGERS else float(value) if name in _FLOATS else value
        )
    return options


def _in_process(command: Any, model: str | Path, options: Any, transport: Any) -> Completed:
    import io

    out = io.StringIO()
    try:
        model_cls, path = load_model(str(model))
        code = command(model_cls, str(path), options, out=out, transport=transport)
    except PropworkloadError as exc:
        return Completed(code=exc.exit_code, out=out.getvalue(), err=f"error: {exc}\n")
    return Completed(code=code, out=out.getvalue(), err="")


@contextmanager
def in_process(sample: str, *bugs: str) -> Iterator[InProcess]:
    """Sample service ``sample`` (with ``bugs``) served in this process, no socket."""
    module = load_sample(sample)
    transport = InProcessTransport(module.create_app(validate_bugs(module, bugs)))
    try:
        yield InProcess(url=f"http://{sample}.test", transport=transport)
    finally:
        transport.close()


@pytest.fixture
def payments() -> Callable[..., AbstractContextManager[str]]:
    """``with payments(bug, ...) as url``: the payments sample service on a free port."""

    def start(*bugs: str) -> AbstractContextManager[str]:
        return sample_service("payments", bugs)

    return start


#: The head of a failure's example: ``  minimal sequence (3 steps, shrunk from 9):``,
#: ``  minimal parallel program (2 operations, shrunk from 5; failed 4/4 runs):``, with
#: ``; shrinking stopped at the time budget`` when the budget cut shrinking short.
_EXAMPLE_HEAD = re.compile(
    r"^  (?:minimal|failing) (?:sequence|parallel program) \((?P<size>\d+) "
    r"(?:steps?|operations?)(?P<rest>[^)]*)\):$",
    re.MULTILINE,
)


@attrs.frozen
class Shrunk:
    """How long the (first) failure's printed example is, and whether the time budget
    stopped its shrinking (on a busy machine: it is then not known to be minimal)."""

    size: int
    stopped: bool


def shrunk(output: str) -> Shrunk:
    """The first failure's example size in a run's ``output``."""
    found = _EXAMPLE_HEAD.search(output)
    assert found is not None, output
    return Shrunk(int(found["size"]), "shrinking stopped at the time budget" in found["rest"])


def assert_shrunk(output: str, most: int, *, least: int = 1) -> Shrunk:
    """The failure's example has ``least`` to ``most`` steps (operations), unless the time
    budget stopped its shrinking: a busy machine must not fail a test of shrinking, so
    then only that it was found (and is not shorter than ``least``) holds."""
    example = shrunk(output)
    assert example.size >= least, output
    if not example.stopped:
        assert example.size <= most, output
    return example


_IDS = re.compile(r"\b(ch|re|cus)_[0-9a-f]+\b")


def mask_ids(text: str) -> str:
    """Replace generated ids (ch_91a2..., cus_7f3a...) with ``ch_*`` and so on."""
    return _IDS.sub(lambda m: f"{m.group(1)}_*", text)


@pytest.fixture
def free_url() -> Iterator[str]:
    """A loopback URL nothing listens on, for the whole test: its port stays bound (never
    listening, so connections are refused), or another test's service could take it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def spawn_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``propworkload ARGS...`` in the background, to signal it while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "propworkload", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def read_until(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> None:
    """Read the process's output until a line starts with ``prefix`` (or time runs out)."""
    import time

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith(prefix) or time.monotonic() > deadline:
            return


def _close(sock: Any) -> None:
    """Close ``sock``, first waking any thread blocked reading it."""
    import socket

    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


class FlakyProxy:
    """A TCP proxy on loopback that cuts the connection instead of forwarding one answer
    in ``every`` (after the first ``spare``): the network faults a simulator injects, from
    outside the tool. The client sees a transport error; the service did the work."""

    def __init__(self, upstream: str, *, every: int = 6, spare: int = 4) -> None:
        import socket
        import threading

        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._every, self._spare = every, spare
        self._lock = threading.Lock()
        self._answers = 0
        self.cut = 0
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            for args in ((client, server, False), (server, client, True)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: Any, sink: Any, answers: bool) -> None:
        import socket
        import struct

        try:
            while data := source.recv(65536):
                if answers:
                    with self._lock:
                        self._answers += 1
                        cut = self._answers > self._spare and self._answers % self._every == 0
                        self.cut += cut
                    if cut:
                        sink.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            _close(sock)

    def close(self) -> None:
        _close(self._listener)
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def flaky_proxy() -> Iterator[Callable[..., FlakyProxy]]:
    """``flaky_proxy(url, every=6)``: a proxy to ``url`` that cuts every 6th answer."""
    proxies: list[FlakyProxy] = []

    def start(url: str, **kwargs: int) -> FlakyProxy:
        proxies.append(FlakyProxy(url, **kwargs))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


# -- real services (models/real/) ------------------------------------------------------


def _load_serve() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("pw_real_serve", ROOT / "models/real/serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: models/real/serve.py, which starts and stops Kinto and etcd.
serve = _load_serve()


def _real_service(name: str) -> Iterator[Any]:
    reason = serve.missing_reason(name)
    if reason is not None:
        pytest.skip(reason)
    with serve.running(name) as service:
        yield service


@pytest.fixture(scope="module")
def kinto_service() -> Iterator[Any]:
    """A Kinto server (models/real/serve.py) for the module's tests: ``.url``, ``.reset()``.
    Skips, saying how to install it, only when Kinto is not installed."""
    yield from _real_service("kinto")


@pytest.fixture(scope="module")
def etcd_service() -> Iterator[Any]:
    """An etcd server (models/real/serve.py) for the module's tests: ``.url``,
    ``.reset()``. Skips, saying how to install it, only when etcd is not installed."""
    yield from _real_service("etcd")


@attrs.define
class Exchange:
    """A request or answer passing through a :class:`RewritingProxy`; a rewrite may change
    any field (``path`` includes the query string)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class RewritingProxy:
    """An HTTP proxy on loopback that lets a test change requests on their way to a real
    service and answers on their way back: a deviation from the documented behaviour,
    seeded from outside, to show that a model's invariant catches it.

    ``on_request(request) -> request`` and ``on_response(request, response) -> response``
    get and return :class:`Exchange` records (the request as the client sent it). With
    ``serialize``, the service gets one request at a time: concurrent clients' requests
    cannot overlap inside it."""

    _HOP = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length", "host"))

    def __init__(
        self,
        upstream: str,
        on_request: Callable[[Exchange], Exchange] | None = None,
        on_response: Callable[[Exchange, Exchange], Exchange] | None = None,
        *,
        serialize: bool = False,
    ) -> None:
        import contextlib
        import socket
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        client = httpx.Client(base_url=upstream, timeout=30, trust_env=False)
        one_at_a_time = threading.Lock()
        hop = self._HOP

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm
                # and the client's delayed ACK hold every answer back 40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                sent = Exchange(
                    method=self.command,
                    path=self.path,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in hop},
                    body=self.rfile.read(size) if size else b"",
                )
                request = on_request(attrs.evolve(sent)) if on_request else sent
                with one_at_a_time if serialize else contextlib.nullcontext():
                    answer = client.request(
                        request.method, request.path, headers=request.headers, content=request.body
                    )
                response = Exchange(
                    method=request.method,
                    path=request.path,
                    headers={
                        k: v
                        for k, v in answer.headers.items()
                        if k.lower() not in hop and k.lower() != "content-encoding"
                    },
                    body=answer.content,
                    status=answer.status_code,
                )
                if on_response:
                    response = on_response(sent, response)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self._client = client
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()


@pytest.fixture
def rewriting_proxy() -> Iterator[Callable[..., RewritingProxy]]:
    """``rewriting_proxy(url, on_request=..., on_response=...)``: see :class:`RewritingProxy`;
    closed when the test ends."""
    proxies: list[RewritingProxy] = []

    def start(url: str, **kwargs: Any) -> RewritingProxy:
        proxies.append(RewritingProxy(url, **kwargs))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()
