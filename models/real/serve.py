"""Start and stop the real services the models in this folder drive, on loopback.

From a shell (runs in the foreground until Ctrl-C or SIGTERM; state lives in a temporary
folder, or ``--dir``, and is gone when it stops unless ``--dir`` was given)::

    python3 models/real/serve.py kinto            # http://127.0.0.1:8888, user "propworkload"
    python3 models/real/serve.py etcd --port 2379 # http://127.0.0.1:2379 (v3 JSON gateway)

    propworkload explore models/real/kinto.py --url http://127.0.0.1:8888
    propworkload explore models/real/etcd.py --url http://127.0.0.1:2379 --concurrency 3

From Python (the tests do this; ``port=None`` picks a free one)::

    with running("etcd") as service:
        ...  # service.url, service.reset(), service.stop()

Kinto comes from PyPI (``pip install -e '.[real]'``, which the ``dev`` extra includes); it
runs with its memory backend, basic auth, two records per page (``paginate_by``, so that
pagination happens early) and the flush plugin (``POST /v1/__flush__`` empties it). etcd comes
from Debian (``apt-get install etcd-server``); it runs as a single member whose v3 JSON
gateway answers on the client port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

#: The names ``running`` and the command line accept.
SERVICES = ("kinto", "etcd")
#: Records per page of a Kinto listing: small, so that a listing of a few records pages.
KINTO_PAGE_SIZE = 2
#: The basic-auth credentials the Kinto model sends (see models/real/kinto.py). With the
#: basicauth policy any pair is a valid account: the password only makes the user id.
KINTO_USER = "propworkload"

_KINTO_INI = """\
[app:main]
use = egg:kinto
kinto.includes = kinto.plugins.flush
kinto.storage_backend = kinto.core.storage.memory
kinto.storage_url =
kinto.cache_backend = kinto.core.cache.memory
kinto.cache_url =
kinto.permission_backend = kinto.core.permission.memory
kinto.permission_url =
kinto.userid_hmac_secret = {secret}
multiauth.policies = basicauth
multiauth.policy.basicauth.use = kinto.core.authentication.BasicAuthAuthenticationPolicy
kinto.bucket_create_principals = system.Authenticated
kinto.paginate_by = {page_size}

[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = {port}
threads = 8

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s
"""


class ServiceError(RuntimeError):
    """A service could not be started (its binary is missing, or it did not come up)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def binary(name: str) -> str | None:
    """The path of the service's executable, or None if it is not installed.

    ``kinto`` is looked for next to this Python first (a virtual environment's scripts),
    then on ``PATH``; ``etcd`` on ``PATH`` and in ``/usr/bin`` (Debian's ``etcd-server``).
    """
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    beside = Path(sys.executable).parent / name
    if name == "kinto" and beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None and name == "etcd" and Path("/usr/bin/etcd").exists():
        found = "/usr/bin/etcd"
    return found


def missing_reason(name: str) -> str | None:
    """Why the service cannot be started here (for a test's skip), or None if it can."""
    if binary(name) is not None:
        return None
    how = {
        "kinto": "pip install -e '.[real]' (the dev extra includes it)",
        "etcd": "apt-get install etcd-server",
    }[name]
    return f"{name} is not installed: {how}"


class Service:
    """A real service running as a child process on 127.0.0.1."""

    def __init__(self, name: str, port: int | None = None, workdir: Path | None = None) -> None:
        exe = binary(name)
        if exe is None:
            raise ServiceError(missing_reason(name) or name)
        self.name = name
        self.port = port or free_port()
        if not port_free(self.port):
            raise ServiceError(f"port {self.port} is in use: pick another with --port")
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"pw-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / f"{name}.log"
        argv = self._kinto(exe) if name == "kinto" else self._etcd(exe)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _kinto(self, exe: str) -> list[str]:
        ini = self.workdir / "kinto.ini"
        ini.write_text(
            _KINTO_INI.format(
                port=self.port, page_size=KINTO_PAGE_SIZE, secret=os.urandom(16).hex()
            )
        )
        return [exe, "start", "--ini", str(ini), "--port", str(self.port)]

    def _etcd(self, exe: str) -> list[str]:
        peer = f"http://127.0.0.1:{free_port()}"
        member = f"pw{self.port}"
        return [
            exe,
            "--name",
            member,
            "--data-dir",
            str(self.workdir / "data"),
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"{member}={peer}",
            "--log-level",
            "warn",
        ]

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the service answers (Kinto: ``GET /v1/``; etcd: a range read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with status {self.process.returncode}: {self._log_tail()}"
                )
            try:
                if self.name == "kinto":
                    answer = httpx.get(f"{self.url}/v1/", timeout=1, trust_env=False)
                else:
                    answer = httpx.post(
                        f"{self.url}/v3/kv/range", json={"key": "AA=="}, timeout=1, trust_env=False
                    )
                ok = answer.status_code == 200
            except httpx.TransportError:
                ok = False
            # Answered, by this process (not by another that took the port meanwhile).
            if ok and self.process.poll() is None:
                return
            time.sleep(0.1)
        raise ServiceError(f"{self.name} did not answer on {self.url} within {timeout:.0f} s")

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def reset(self) -> None:
        """Empty the service: Kinto's flush endpoint, or delete every etcd key."""
        if self.name == "kinto":
            flush = httpx.post(f"{self.url}/v1/__flush__", timeout=10, trust_env=False)
            flush.raise_for_status()
        else:
            everything = {"key": "AA==", "range_end": "AA=="}  # "\\0" to "\\0": all keys
            httpx.post(
                f"{self.url}/v3/kv/deleterange", json=everything, timeout=10, trust_env=False
            ).raise_for_status()

    def stop(self) -> None:
        """Stop the service (SIGTERM, then SIGKILL after 10 s) and remove its temporary
        folder."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(name: str, port: int | None = None, workdir: Path | None = None) -> Iterator[Service]:
    """Run the service for the duration of the ``with`` block."""
    service = Service(name, port, workdir)
    try:
        yield service
    finally:
        service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve.py", description="Run a real service for the models in models/real/."
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--port", type=int, help="client port (default: kinto 8888, etcd 2379)")
    parser.add_argument("--dir", type=Path, help="keep its configuration, data and log here")
    args = parser.parse_args(argv)
    port = args.port or {"kinto": 8888, "etcd": 2379}[args.service]

    def stop(signum: int, frame: object) -> None:
        raise _Stopped(signum)

    # Before starting: a signal while the service comes up still stops it.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        service = Service(args.service, port, args.dir)
    except ServiceError as exc:
        print(f"serve.py: error: {exc}", file=sys.stderr)
        return 3
    except _Stopped:
        return 0
    print(f"{service.name} listening on {service.url} (log: {service.log}); Ctrl-C stops it")
    sys.stdout.flush()
    try:
        while service.process.poll() is None:
            time.sleep(0.2)
    except _Stopped:
        return 0
    finally:
        last = service._log_tail()
        service.stop()
    print(
        f"serve.py: error: {service.name} exited with status {service.process.returncode}: {last}",
        file=sys.stderr,
    )
    return 1


class _Stopped(BaseException):
    """A signal asked serve.py to stop (raised from its handler)."""


if __name__ == "__main__":
    sys.exit(main())
