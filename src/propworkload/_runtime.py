"""The state of one run, shared by the engine and the model instances it creates.

Hypothesis builds a fresh model instance for every example and gives it no arguments, so
the engine publishes the run (target, shared transport, budget, records) here before it
starts Hypothesis, and :class:`propworkload.Model` picks it up in ``__init__``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

import attrs
import httpx
from hypothesis.control import current_build_context, reject
from hypothesis.errors import InvalidArgument, StopTest, UnsatisfiedAssumption

from ._coverage import Coverage
from ._errors import InvalidOption, TargetUnreachable
from ._events import Event, ExampleFinished, FailureFound
from ._faults import DrawnFaults, Fault, FaultPlan, InjectedFault, ScriptedFaults
from ._record import ExampleRecord, redact_text
from ._signals import StopRun, clear_stop, request_stop, stop_requested
from ._target import embedded_sample, env_url

__all__ = [
    "ExampleAbandoned",
    "RunState",
    "StopRun",
    "abandon_example",
    "clear_stop",
    "counting_into",
    "current_run",
    "reachable",
    "request_stop",
    "sometimes",
    "stop_requested",
    "using_run",
]


def _is_final_replay() -> bool:
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # not inside a Hypothesis test
        return False


@attrs.define
class RunState:
    """Target, shared transport, budget and the records of one run."""

    url: str
    transport: httpx.BaseTransport
    emit: Callable[[Event], None] = lambda event: None
    generate_deadline: float | None = None
    hard_deadline: float | None = None
    #: Examples the search ran (those ``--examples`` asks for, up to the first failure);
    #: examples Hypothesis discarded (no rule could run, or the example was abandoned),
    #: which do not count towards ``--examples``; and the examples run after the first
    #: failure: shrinking, Hypothesis's final replay, the reduction.
    examples: int = 0
    discarded: int = 0
    shrink_runs: int = 0
    steps: int = 0
    #: Parallel programs: the runs of programs, and those whose check timed out.
    runs: int = 0
    unchecked: int = 0
    #: Parallel programs: operations that were answered (their outcome known).
    answered_operations: int = 0
    checks: Counter[str] = attrs.field(factory=Counter)
    accepted: Counter[str] = attrs.field(factory=Counter)
    first_failure: ExampleRecord | None = None
    best_failure: ExampleRecord | None = None
    last_failure: ExampleRecord | None = None
    last_example: ExampleRecord | None = None
    stopped: str | None = None
    coverage: Coverage = attrs.field(factory=Coverage)
    current_example: ExampleRecord | None = None
    #: Signatures of failures already known (explore's later rounds, see
    #: ``Failure.signature``): counted, but they no longer fail an example.
    known_failures: frozenset[str] = frozenset()
    #: The faults to inject into the rules' requests, or None.
    faults: FaultPlan | None = None
    #: During a replay: the recorded faults, handed out in order.
    scripted_faults: ScriptedFaults | None = None
    #: After the target has answered once, connection errors count as network faults
    #: (outcome unknown) until it has not answered for this many seconds.
    unreachable_after: float = 10.0
    #: Examples abandoned because a rule's outcome became unknown and the model did not
    #: handle it (a transport error escaped the rule).
    abandoned: int = 0
    last_answer: float | None = None
    #: The smallest failing example of each kind (``Failure.kind``) seen: shrinking may
    #: move from the failure found to another kind with a simpler example (Hypothesis
    #: reports the simplest); the run reports the other kinds beside it, nothing is lost.
    by_kind: dict[str, ExampleRecord] = attrs.field(factory=dict)
    #: While the engine re-runs a failing sequence with steps dropped: the examples count
    #: as run, but their failures are the reduction's trials, not findings.
    reducing: bool = False
    _started: int = 0

    def answered(self) -> None:
        """The target answered a request."""
        self.last_answer = time.monotonic()

    def connect_failed(self, exc: httpx.TransportError) -> None:
        """A request could not connect: stop the run when the target is gone, rather
        than briefly cut off (which is a network fault like any other)."""
        if isinstance(exc, InjectedFault):
            return
        silent = None if self.last_answer is None else time.monotonic() - self.last_answer
        if silent is None or silent >= self.unreachable_after:
            since = "" if silent is None else f" (no answer for {silent:.0f} s)"
            text = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
            raise StopRun("target", TargetUnreachable(redact_text(f"{self.url}: {text}{since}")))

    def fault_chooser(self) -> Callable[[httpx.Request], Fault | None] | None:
        """What picks the faults of this run's requests, or None for no faults."""
        if self.scripted_faults is not None:
            return self.scripted_faults
        if self.faults is not None:
            return DrawnFaults(self.faults)
        return None

    def _check_budget(self) -> None:
        requested = stop_requested()
        if requested is not None:
            # A signal whose StopRun was swallowed (raised inside a garbage collector
            # callback, say) still ends the run here, at the next example or step.
            self.stopped = requested
            raise StopRun(requested)
        deadline = self.hard_deadline if self.first_failure else self.generate_deadline
        if deadline is not None and time.perf_counter() > deadline and not _is_final_replay():
            self.stopped = "time budget"
            raise StopRun("time budget")

    def begin_example(self) -> ExampleRecord:
        """A new record for the next example; ends the run when the budget is spent."""
        self._check_budget()
        self._started += 1
        self.current_example = ExampleRecord(number=self._started)
        return self.current_example

    def before_step(self) -> None:
        """Called before each rule; ends the run when the budget is spent."""
        self._check_budget()

    def remaining(self) -> float | None:
        """Seconds left before the run's hard deadline (None: no deadline)."""
        if self.hard_deadline is None:
            return None
        return max(0.0, self.hard_deadline - time.perf_counter())

    def count_run(self, record: ExampleRecord) -> None:
        """Account for one run of a parallel program (an example may run it several
        times): its operations, checks and coverage."""
        self.runs += 1
        self.steps += len(record.steps)
        self.answered_operations += sum(1 for step in record.steps if step.ret is not None)
        self.checks.update(record.checks)
        self.accepted.update(record.accepted)
        self.unchecked += record.history is not None and record.history.result.verdict == "unknown"
        self.coverage.add_example(record, count_length=self.first_failure is None)

    def note_kind(self, record: ExampleRecord) -> None:
        """Keep ``record`` (a failing example) if it is the smallest of its kind so far."""
        assert record.failure is not None
        kind = record.failure.kind
        known = self.by_kind.get(kind)
        if known is None or record.size < known.size:
            self.by_kind[kind] = record

    def finish_example(self, record: ExampleRecord, *, counted: bool = False) -> None:
        """Account for a finished example and tell the listeners (``counted``: its runs
        were counted already, with :meth:`count_run`)."""
        if self.reducing or self.first_failure is not None:
            self.shrink_runs += 1
        elif isinstance(sys.exc_info()[1], UnsatisfiedAssumption | StopTest):
            # Called from the example's teardown while Hypothesis ends it as invalid (no
            # rule could run, an abandoned example) or overrun: Hypothesis does not count
            # it towards max_examples, and neither does the summary.
            self.discarded += 1
        else:
            self.examples += 1
        if self.reducing:
            return
        if not counted:
            self.steps += len(record.steps)
            self.checks.update(record.checks)
            self.accepted.update(record.accepted)
            # Shrinking runs many short examples; they would skew the steps-per-example
            # figures.
            self.coverage.add_example(record, count_length=self.first_failure is None)
        self.last_example = record
        if record.failure is not None:
            new_kind = record.failure.kind not in self.by_kind
            self.note_kind(record)
            first = self.first_failure is None
            if first:
                self.first_failure = record
            if self.best_failure is None or record.size <= self.best_failure.size:
                self.best_failure = record
            self.last_failure = record
            self.emit(FailureFound(example=record, first=first, new_kind=new_kind))
        self.emit(ExampleFinished(example=record))


_CURRENT: ContextVar[RunState | None] = ContextVar("propworkload_run", default=None)
#: Where markers count in this thread, when not in the run's current example (each
#: client of a parallel program counts into its own record).
_COUNTING: ContextVar[ExampleRecord | None] = ContextVar("propworkload_counting", default=None)


@contextmanager
def counting_into(record: ExampleRecord) -> Iterator[None]:
    """Count the ``sometimes``/``reachable`` hits of this thread into ``record``."""
    token = _COUNTING.set(record)
    try:
        yield
    finally:
        _COUNTING.reset(token)


_STANDALONE: dict[str, Any] = {}


@contextmanager
def using_run(state: RunState) -> Iterator[RunState]:
    """Publish ``state`` as the current run for the models created inside the block."""
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def current_run(sample: str | None = None) -> RunState:
    """The run in progress, or a standalone one (a model run by Hypothesis itself, as
    ``Model.TestCase`` does under pytest): on ``APP_URL``, else on the model's embedded
    ``sample`` service, started once per process."""
    state = _CURRENT.get()
    if state is not None:
        return state
    env = env_url()
    if env is not None:
        url = env
    elif sample is not None:
        url = embedded_sample(sample)
    else:
        raise InvalidOption(
            "no target for the model: set APP_URL, or run it with `propworkload run MODEL`"
        )
    if _STANDALONE.get("url") != url:
        _STANDALONE["url"] = url
        _STANDALONE["state"] = RunState(url=url, transport=httpx.HTTPTransport())
    state = _STANDALONE["state"]
    assert isinstance(state, RunState)
    return state


class ExampleAbandoned(Exception):
    """Raised, outside Hypothesis, where a run would drop the example (see
    :func:`abandon_example`)."""


def abandon_example(reason: str) -> NoReturn:
    """Drop the running example: neither a pass nor a failure (Hypothesis's ``reject``).

    Outside a Hypothesis example (a replay) raises :class:`ExampleAbandoned` instead.
    """
    try:
        current_build_context()
    except InvalidArgument:
        raise ExampleAbandoned(reason) from None
    reject()


def sometimes(condition: object, name: str) -> bool:
    """Mark a situation worth reaching: counts a hit for ``name`` when ``condition`` holds.

    Like Antithesis's "sometimes" assertions, it never fails a run by itself: the coverage
    report lists every marker with its hits, and one never hit is a coverage gap
    (``--fail-on-gap`` makes gaps fail the run). Returns ``bool(condition)``::

        sometimes(charge.refunded > 0 and amount is None, "full refund after a partial one")
    """
    hit = bool(condition)
    if hit:
        record = _COUNTING.get()
        if record is None:
            state = _CURRENT.get()
            record = state.current_example if state is not None else None
        if record is not None:
            record.markers[name] += 1
    return hit


def reachable(name: str) -> None:
    """Mark a line worth reaching: the same as ``sometimes(True, name)``."""
    sometimes(True, name)
