"""The failure database: Hypothesis's example database, watched so that no saved failure
is dropped without the user being told.

Later runs retry saved failures first (Hypothesis's ``reuse`` phase). When a saved
failure no longer fails, Hypothesis deletes it; :class:`WatchedDatabase` sees that delete
and the run reports it in its summary.

A database is checked when it is opened (a folder that cannot be written, a Redis server
that does not answer: an :class:`InvalidOption`, before the run). One that fails during
the run (Redis goes away) is dropped with one note; the run goes on, and its failures
still have their traces. Hypothesis would raise the error out of the test, where it looks
like the model's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from ._errors import InvalidOption

__all__ = ["WatchedDatabase", "open_database"]

_SUFFIXES = (b".secondary", b".pareto")


class WatchedDatabase(ExampleDatabase):
    """Delegates to ``inner``; remembers the saved failures fetched and those deleted."""

    def __init__(
        self,
        open_inner: Callable[[], ExampleDatabase],
        *,
        description: str,
        errors: tuple[type[Exception], ...] = (OSError,),
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        super().__init__()
        self._open_inner = open_inner
        self._inner: ExampleDatabase | None = None
        self.description = description
        self._primary: bytes | None = None
        self.retried: set[bytes] = set()
        self.dropped: set[bytes] = set()
        #: What the database raises when it cannot be used (a lost Redis connection).
        self._errors = errors
        #: Told once, in one line, when the database fails during the run.
        self.notify = notify
        #: Why the database was given up during the run, if it was.
        self.lost: str | None = None

    @property
    def inner(self) -> ExampleDatabase:
        # Opened on first use, so that choosing its folder (and any note about it) comes
        # after the run's first line.
        if self._inner is None:
            self._inner = self._open_inner()
        return self._inner

    def _give_up(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.notify(
                f"the failure database {self.description} failed ({self.lost}); this run "
                "saves no more failures to it (its traces are still written)"
            )

    def save(self, key: bytes, value: bytes) -> None:
        if self.lost is None:
            try:
                self.inner.save(key, value)
            except self._errors as exc:
                self._give_up(exc)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        is_primary = not key.endswith(_SUFFIXES)
        if is_primary and self._primary is None:
            self._primary = key
        if self.lost is not None:
            return
        try:
            values = list(self.inner.fetch(key))
        except self._errors as exc:
            self._give_up(exc)
            return
        for value in values:
            if key == self._primary:
                self.retried.add(value)
            yield value

    def delete(self, key: bytes, value: bytes) -> None:
        # Hypothesis deletes a saved failure from the primary corpus when it stops failing;
        # moves (shrinking improved on it) go through move() and are not counted.
        if key == self._primary and value in self.retried:
            self.dropped.add(value)
        if self.lost is None:
            try:
                self.inner.delete(key, value)
            except self._errors as exc:
                self._give_up(exc)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if self.lost is None:
            try:
                self.inner.move(src, dest, value)
            except self._errors as exc:
                self._give_up(exc)

    def __repr__(self) -> str:
        return f"WatchedDatabase({self.description!r})"


def _shown(spec: str) -> str:
    """``spec`` as printed: a Redis URL's password hidden."""
    try:
        parts = urlsplit(spec)
    except ValueError:
        return spec
    if parts.password is None:
        return spec
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}[redacted]@{host}").geturl()


def _usable_folder(folder: Path, spec: str) -> None:
    """Make ``folder`` if need be and write a file in it: Hypothesis's folder database
    ignores write errors, so a folder that cannot be written would save nothing, silently."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidOption(
            f"--database {spec}: cannot use the folder ({exc.strerror or exc}); give a folder "
            "you can write to, redis://host:port/N, or none"
        ) from None


def open_database(
    spec: str,
    *,
    default_folder: Callable[[], Path],
    notify: Callable[[str], None] = lambda message: None,
) -> WatchedDatabase | None:
    """``spec`` is ``none``, a folder, or ``redis://host:port/N``; empty means the default.

    A folder or Redis server given is checked now (:class:`InvalidOption` if it cannot be
    used); ``notify`` is told if the database fails later, during the run."""
    if spec == "none":
        return None
    if spec.startswith(("redis://", "rediss://")):
        shown = _shown(spec)
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError:
            raise InvalidOption(
                f"--database {shown} needs the redis client: pip install 'propworkload[redis]'"
            ) from None
        try:
            # Timeouts: a server that stops answering mid-run is given up, not waited for.
            client = redis.Redis.from_url(spec, socket_connect_timeout=5, socket_timeout=10)
        except ValueError as exc:
            raise InvalidOption(f"--database {shown!r} is not a redis URL ({exc})") from None
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise InvalidOption(
                f"--database {shown}: cannot reach Redis ({reason}); start it, or give a "
                "folder or none"
            ) from None
        return WatchedDatabase(
            lambda: RedisExampleDatabase(client),
            description=shown,
            errors=(redis.RedisError, OSError),
            notify=notify,
        )
    if spec:
        folder = Path(spec)
        if folder.exists() and not folder.is_dir():
            raise InvalidOption(
                f"--database {folder} is a file; give a folder or redis://host:port/N"
            )
        _usable_folder(folder, spec)
        return WatchedDatabase(
            lambda: DirectoryBasedExampleDatabase(str(folder)),
            description=str(folder),
            notify=notify,
        )
    return WatchedDatabase(
        lambda: DirectoryBasedExampleDatabase(str(default_folder())),
        description="default",
        notify=notify,
    )
