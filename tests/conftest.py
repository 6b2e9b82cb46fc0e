"""Shared helpers: run the CLI as a user would, and start sample services on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

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
