"""The one owner of SIGTERM and SIGINT (Ctrl-C) while a command runs.

A signal asks the command to stop; it never cuts a write or a summary in half. The
handler records the request, and raises :class:`StopRun` only where the engine is ready
to catch it: while it waits on the service or runs examples (:func:`interruptible`
blocks: the search, shrinking, a probe, a replay, explore's workers). Anywhere else
(loading the model, writing a trace or a report, printing the summary) the request waits
for the next such block or checkpoint, which ends the run at once. So a stop is handled
the same at every phase, and a ``StopRun`` swallowed where it landed (Python ignores
exceptions raised in a garbage-collector callback) still stops the run at the next
example or step.

A second signal while the first is being handled ends the process at once, with the
same status: whatever was found is already in its trace, written when it was found.
The status of a stopped command is 143 (SIGTERM) or 130 (Ctrl-C) unless it found a
failure (1).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ._errors import PropworkloadError

__all__ = [
    "STATUS",
    "StopRun",
    "clear_stop",
    "handling_signals",
    "interruptible",
    "raise_if_stopped",
    "request_stop",
    "stop_requested",
]

#: The exit status of a command stopped by each reason before anything failed.
STATUS = {"terminated": 143, "interrupted": 130}
_REASONS = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}


class StopRun(KeyboardInterrupt):
    """Ends a Hypothesis run from inside an example.

    Hypothesis takes any ``Exception`` for a failure to shrink, and on other
    ``BaseException``s it still closes the example's data, which fails its consistency
    check ("Inconsistent data generation") when an example stops drawing early. Only
    ``KeyboardInterrupt`` leaves the engine untouched, so a stop is one.
    """

    def __init__(self, reason: str, error: PropworkloadError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


_STOP: list[str] = []
_armed = 0
_first_at = 0.0
#: A second signal this soon after the first is the same request delivered twice (to the
#: process and to its group, say), not a second request.
_REPEAT_GRACE = 1.0


def request_stop(reason: str) -> None:
    """Ask every run in this process to stop (``terminated``, ``interrupted``)."""
    if not _STOP:
        _STOP.append(reason)


def stop_requested() -> str | None:
    """Why the process was asked to stop, if it was."""
    return _STOP[0] if _STOP else None


def clear_stop() -> None:
    """Forget an earlier stop request (a new command starts)."""
    _STOP.clear()


def raise_if_stopped() -> None:
    """A checkpoint: raise :class:`StopRun` if a stop was requested."""
    reason = stop_requested()
    if reason is not None:
        raise StopRun(reason)


@contextmanager
def interruptible() -> Iterator[None]:
    """A block in which a signal raises :class:`StopRun` at once (the caller catches it;
    a stop requested before the block is the caller's to check, with
    :func:`raise_if_stopped`). Only the main thread's blocks count: signal handlers run
    there."""
    main = threading.current_thread() is threading.main_thread()
    global _armed
    if main:
        _armed += 1
    try:
        yield
    finally:
        if main:
            _armed -= 1


def _handle(signum: int, frame: FrameType | None) -> None:
    reason = "interrupted" if signum == signal.SIGINT else "terminated"
    global _first_at
    first = stop_requested()
    if first is not None:
        if time.monotonic() - _first_at < _REPEAT_GRACE:
            return
        # The second signal: the user (or the simulator) means now.
        os.write(2, f"propworkload: error: {reason} again; stopping now\n".encode())
        os._exit(STATUS[first])
    request_stop(reason)
    _first_at = time.monotonic()
    if _armed:
        raise StopRun(reason)


@contextmanager
def handling_signals(*, sigint: bool = True) -> Iterator[None]:
    """Own SIGTERM and (unless told not to: explore's workers leave Ctrl-C to their
    parent) SIGINT for the duration of a command (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    clear_stop()
    owned = [sig for sig in _REASONS if sigint or sig != signal.SIGINT]
    previous = {sig: signal.signal(sig, _handle) for sig in owned}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        clear_stop()
