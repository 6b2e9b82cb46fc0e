"""The failure database: Hypothesis's example database, watched so that no saved failure
is dropped without the user being told.

Later runs retry saved failures first (Hypothesis's ``reuse`` phase). When a saved
failure no longer fails, Hypothesis deletes it; :class:`WatchedDatabase` sees that delete
and the run reports it in its summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from ._errors import InvalidOption

__all__ = ["WatchedDatabase", "open_database"]

_SUFFIXES = (b".secondary", b".pareto")


class WatchedDatabase(ExampleDatabase):
    """Delegates to ``inner``; remembers the saved failures fetched and those deleted."""

    def __init__(self, open_inner: Callable[[], ExampleDatabase], *, description: str) -> None:
        super().__init__()
        self._open_inner = open_inner
        self._inner: ExampleDatabase | None = None
        self.description = description
        self._primary: bytes | None = None
        self.retried: set[bytes] = set()
        self.dropped: set[bytes] = set()

    @property
    def inner(self) -> ExampleDatabase:
        # Opened on first use, so that choosing its folder (and any note about it) comes
        # after the run's first line.
        if self._inner is None:
            self._inner = self._open_inner()
        return self._inner

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        is_primary = not key.endswith(_SUFFIXES)
        if is_primary and self._primary is None:
            self._primary = key
        for value in self.inner.fetch(key):
            if key == self._primary:
                self.retried.add(value)
            yield value

    def delete(self, key: bytes, value: bytes) -> None:
        # Hypothesis deletes a saved failure from the primary corpus when it stops failing;
        # moves (shrinking improved on it) go through move() and are not counted.
        if key == self._primary and value in self.retried:
            self.dropped.add(value)
        self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(src, dest, value)

    def __repr__(self) -> str:
        return f"WatchedDatabase({self.description!r})"


def open_database(spec: str, *, default_folder: Callable[[], Path]) -> WatchedDatabase | None:
    """``spec`` is ``none``, a folder, or ``redis://host:port/N``; empty means the default."""
    if spec == "none":
        return None
    if spec.startswith(("redis://", "rediss://")):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError:
            raise InvalidOption(
                f"--database {spec} needs the redis client: pip install 'propworkload[redis]'"
            ) from None
        try:
            client = redis.Redis.from_url(spec)
        except ValueError as exc:
            raise InvalidOption(f"--database {spec!r} is not a redis URL ({exc})") from None
        return WatchedDatabase(lambda: RedisExampleDatabase(client), description=spec)
    if spec:
        folder = Path(spec)
        if folder.exists() and not folder.is_dir():
            raise InvalidOption(
                f"--database {folder} is a file; give a folder or redis://host:port/N"
            )
        return WatchedDatabase(
            lambda: DirectoryBasedExampleDatabase(str(folder)), description=str(folder)
        )
    return WatchedDatabase(
        lambda: DirectoryBasedExampleDatabase(str(default_folder())), description="default"
    )
