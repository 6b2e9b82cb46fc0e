"""Events the engine emits while it runs; the console, traces and reports consume them.

The engine never prints: it calls its listeners with these frozen records, in order.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._record import ExampleRecord
from ._results import RunResult

__all__ = ["Event", "ExampleFinished", "FailureFound", "Notice", "RunFinished", "RunStarted"]


@attrs.frozen
class RunStarted:
    """The run is about to start: what it runs, against what, with which seed."""

    model: str
    seed: int
    target: str
    settings: dict[str, Any]


@attrs.frozen
class ExampleFinished:
    """One example ran to its end (passed, failed or was cut short)."""

    example: ExampleRecord


@attrs.frozen
class FailureFound:
    """An example failed; ``first`` is true for the first failure of the run,
    ``new_kind`` for the first failure of its kind (``Failure.kind``)."""

    example: ExampleRecord
    first: bool
    new_kind: bool = False


@attrs.frozen
class Notice:
    """Something the user should know that is not a result (e.g. a fallback folder)."""

    message: str


@attrs.frozen
class RunFinished:
    """The run ended; ``result`` says how."""

    result: RunResult


Event = RunStarted | ExampleFinished | FailureFound | Notice | RunFinished
