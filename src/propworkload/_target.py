"""Where a run sends its requests: ``--url``, else ``APP_URL``, else the model's embedded
sample service, started on a free loopback port for the run and stopped after it."""

from __future__ import annotations

import atexit
import functools
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from ._errors import InvalidOption, TargetUnreachable
from ._redact import learn_url, redact_text, redact_url
from .samples import load_sample, validate_bugs

__all__ = [
    "check_url",
    "embedded_sample",
    "env_url",
    "probe",
    "resolve_target",
    "sample_service",
    "ssl_context",
]


@functools.cache
def ssl_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The TLS context httpx makes for a transport (certifi's CAs; with ``trust_env``,
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` instead), made once per process: making one
    reads the whole CA bundle (about 25 ms), and every run, probe and replay made its own."""
    return httpx.create_ssl_context(trust_env=trust_env)


class _Borrowed(httpx.BaseTransport):
    """A transport lent to a client: closing the client leaves it open."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)


def probe(url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 5.0) -> None:
    """Raise :class:`TargetUnreachable` unless something answers HTTP at ``url``
    (through ``transport``, which stays open, when given)."""
    lent = None if transport is None else _Borrowed(transport)
    try:
        verify = ssl_context(trust_env=False)
        with (
            httpx.Client(timeout=timeout, trust_env=False, verify=verify, transport=lent) as client,
            # The status line and headers are the answer; the body is not read (a service
            # may send one without end, or a byte at a time).
            client.stream("GET", url),
        ):
            pass
    except httpx.ProtocolError as exc:
        reason = str(exc) or type(exc).__name__
        raise TargetUnreachable(
            redact_text(f"{url} does not answer HTTP ({reason}): is it the service's address?")
        ) from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise TargetUnreachable(
            redact_text(
                f"cannot reach {url} ({reason}): start the service, or point APP_URL or --url at it"
            )
        ) from None


def check_url(url: str, source: str) -> str:
    """``url`` without a trailing ``/``, once it is an http(s) URL with a host; its
    password (and secret query values) learned first, so that no message shows them.
    An empty ``url`` is an :class:`InvalidOption` naming ``source``."""
    if not url.strip():
        # A variable that expanded to nothing: testing something else instead (the
        # embedded sample service) would pass a check of the wrong service.
        raise InvalidOption(
            f"{source} is empty; give the service's base URL (http://HOST:PORT), or leave "
            f"{source} out to test the model's embedded sample service"
        )
    learn_url(url)
    shown = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidOption(
            f"{source}={shown!r} is not a URL ({redact_text(str(exc))}); use http://HOST:PORT"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidOption(f"{source}={shown!r} is not an http(s) URL; use http://HOST:PORT")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidOption(f"{source}={shown!r} has port {parsed.port}, outside 1-65535")
    return url.rstrip("/")


@contextmanager
def resolve_target(url: str | None, *, sample: str | None, owner: str) -> Iterator[str]:
    """Yield the base URL to test: ``url``, else ``APP_URL``, else the embedded sample
    service ``sample`` (of the model named ``owner``), started and stopped around the
    block. An empty ``url`` or ``APP_URL`` is an error, not a request for the sample."""
    if url is not None:
        yield check_url(url, "--url")
        return
    env = env_url()
    if env is not None:
        yield env
        return
    if sample is None:
        raise InvalidOption(
            f"no target for {owner}: set APP_URL or pass --url "
            "(the model has no embedded sample service)"
        )
    with sample_service(sample) as base_url:
        yield base_url


def env_url() -> str | None:
    """``APP_URL``, checked, or None when it is not set (set but empty is an error)."""
    env = os.environ.get("APP_URL")
    return None if env is None else check_url(env, "APP_URL")


_EMBEDDED: dict[str, str] = {}
_EMBEDDED_LOCK = threading.Lock()
_EMBEDDED_STACK = ExitStack()


def embedded_sample(name: str) -> str:
    """The URL of sample service ``name``, started once per process (on first use) and
    stopped when the process exits: for models run outside ``propworkload run``, such as
    ``Model.TestCase`` under pytest."""
    with _EMBEDDED_LOCK:
        if name not in _EMBEDDED:
            if not _EMBEDDED:
                atexit.register(_EMBEDDED_STACK.close)
            _EMBEDDED[name] = _EMBEDDED_STACK.enter_context(sample_service(name))
        return _EMBEDDED[name]


@contextmanager
def sample_service(name: str, bugs: tuple[str, ...] = ()) -> Iterator[str]:
    """Run sample service ``name`` in a child process on a free loopback port.

    The parent binds and listens on the socket before the child starts, so the port is
    never raced for and requests made before uvicorn is up simply wait in the backlog.
    """
    validate_bugs(load_sample(name), bugs)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        port = sock.getsockname()[1]
        fd = sock.fileno()
        command = [sys.executable, "-m", "propworkload.samples._serve", name, "--fd", str(fd)]
        for bug in bugs:
            command += ["--bug", bug]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this block; closed below
        # The child must import this very package, even when it runs from a source tree
        # that is only on the parent's sys.path (the workload entry's fallback).
        package_root = str(Path(__file__).resolve().parents[1])
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        child = subprocess.Popen(
            command,
            pass_fds=(fd,),
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONPATH": python_path},
        )
    try:
        _wait_ready(child, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def _wait_ready(child: subprocess.Popen[bytes], port: int, log: object) -> None:
    with httpx.Client(trust_env=False, timeout=15.0, verify=ssl_context(trust_env=False)) as client:
        try:
            client.get(f"http://127.0.0.1:{port}/")
        except httpx.TransportError:
            pass
        else:
            return
    child.poll()
    detail = ""
    if hasattr(log, "seek") and hasattr(log, "read"):
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").strip().splitlines()
        detail = f": {lines[-1]}" if lines else ""
    raise TargetUnreachable(f"the embedded sample service did not start{detail}")
