"""Where a run sends its requests: ``--url``, else ``APP_URL``, else the model's embedded
sample service, started on a free loopback port for the run and stopped after it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ._engine import ssl_context
from ._errors import InvalidOption, TargetUnreachable
from ._model import Model
from .samples import load_sample, validate_bugs

__all__ = ["check_url", "resolve_target", "sample_service"]


def check_url(url: str, source: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidOption(
            f"{source}={url!r} is not a URL ({exc}); use http://HOST:PORT"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidOption(f"{source}={url!r} is not an http(s) URL; use http://HOST:PORT")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidOption(f"{source}={url!r} has port {parsed.port}, outside 1-65535")
    return url.rstrip("/")


@contextmanager
def resolve_target(url: str | None, model: type[Model]) -> Iterator[str]:
    """Yield the base URL to test; start and stop the embedded sample service if needed."""
    if url:
        yield check_url(url, "--url")
        return
    env = os.environ.get("APP_URL")
    if env:
        yield check_url(env, "APP_URL")
        return
    if model.sample is None:
        raise InvalidOption(
            f"no target for {model.__name__}: set APP_URL or pass --url "
            "(the model has no embedded sample service)"
        )
    with sample_service(model.sample) as base_url:
        yield base_url


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
