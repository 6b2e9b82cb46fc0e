"""Shared helpers: run the CLI as a user would, and start sample services on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

import attrs
import pytest

from propworkload._target import sample_service

ROOT = Path(__file__).resolve().parents[1]
PAYMENTS_MODEL = ROOT / "models" / "payments.py"
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


@pytest.fixture
def propworkload(tmp_path: Path) -> Callable[..., Completed]:
    """Run ``propworkload ARGS...``; artifacts go to a temporary folder."""

    def run(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> Completed:
        merged = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts"), **(env or {})}
        return run_command(["-m", "propworkload", *args], env=merged, **kwargs)  # type: ignore[arg-type]

    return run


@pytest.fixture
def payments() -> Callable[..., AbstractContextManager[str]]:
    """``with payments(bug, ...) as url``: the payments sample service on a free port."""

    def start(*bugs: str) -> AbstractContextManager[str]:
        return sample_service("payments", bugs)

    return start


_IDS = re.compile(r"\b(ch|re|cus)_[0-9a-f]+\b")


def mask_ids(text: str) -> str:
    """Replace generated ids (ch_91a2..., cus_7f3a...) with ``ch_*`` and so on."""
    return _IDS.sub(lambda m: f"{m.group(1)}_*", text)


@pytest.fixture
def free_url() -> Iterator[str]:
    """A loopback URL nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


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
