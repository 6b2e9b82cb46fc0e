"""How a run ended: :class:`RunResult`, the value the engine returns and reporters read."""

from __future__ import annotations

from pathlib import Path

import attrs

from ._coverage import Coverage
from ._faults import FaultPlan
from ._record import ExampleRecord, Failure
from ._signals import STATUS

__all__ = ["OtherFailure", "RunResult", "interrupted_code", "verdict"]


def interrupted_code(stopped: str | None) -> int:
    """The exit status of a run stopped by a signal before anything failed (0 otherwise)."""
    return STATUS.get(stopped or "", 0)


def verdict(code: int) -> str:
    """The word a SUMMARY line and a JSON report give a run that exits with ``code``:
    ``failed``, ``passed``, or ``stopped`` (by a signal, before anything failed: not a
    pass)."""
    if code == 0:
        return "passed"
    return "stopped" if code in STATUS.values() else "failed"


@attrs.frozen
class OtherFailure:
    """A failure of another kind (``Failure.kind``) than the run's, seen while searching
    or shrinking: the smallest example of its kind seen, not shrunk."""

    example: ExampleRecord
    trace_path: Path | None = None
    #: Shrinking ended on this failure and it did not fail again when Hypothesis re-ran
    #: it (the run then reports the failure it found first, marked flaky).
    flaky: bool = False

    @property
    def failure(self) -> Failure:
        assert self.example.failure is not None
        return self.example.failure


@attrs.frozen(kw_only=True)
class RunResult:
    """How a run ended.

    ``example`` is the minimal failing example (or the original one when the failure was
    flaky), ``first_example`` the first failing example seen, before shrinking.
    ``examples`` counts the examples the search ran, ``discarded`` those Hypothesis
    discarded (they do not count towards ``--examples``), ``shrink_runs`` those run after
    the first failure (shrinking it, replaying it, reducing it). In a
    concurrent run (``concurrency`` set) each example is a parallel program, ``runs``
    counts the times programs ran and ``unchecked`` the runs whose check timed out.
    """

    model: str
    seed: int
    target: str
    passed: bool
    examples: int
    steps: int
    seconds: float
    checks: dict[str, int]
    discarded: int = 0
    shrink_runs: int = 0
    failure: Failure | None = None
    #: Failed checks accepted as known deviations (``Model.accepted``), by name.
    accepted: dict[str, int] = attrs.field(factory=dict)
    example: ExampleRecord | None = None
    first_example: ExampleRecord | None = None
    flaky: bool = False
    stopped: str | None = None
    trace_path: Path | None = None
    blob: str | None = None
    saved_retried: int = 0
    saved_dropped: int = 0
    #: Examples dropped because a rule's outcome became unknown and the rule let the
    #: transport error escape (see ``Model.retry``).
    abandoned: int = 0
    faults: FaultPlan | None = None
    coverage: Coverage = attrs.field(factory=Coverage)
    concurrency: int | None = None
    runs: int = 0
    unchecked: int = 0
    #: Failures of other kinds than ``failure``'s seen in the run (shrinking may have
    #: moved from one of them to a simpler failure of another kind), one per kind.
    others: tuple[OtherFailure, ...] = ()

    @property
    def exit_code(self) -> int:
        if not self.passed:
            return 1
        # Stopped by a signal before anything failed: not a pass, the conventional status.
        return interrupted_code(self.stopped)

    @property
    def timeline_path(self) -> Path | None:
        """The HTML timeline beside the trace of a parallel program's failure."""
        if self.trace_path is None or self.example is None or not self.example.parallel:
            return None
        return self.trace_path.with_suffix(".html")
