"""Exploration: run a model for a long time, in rounds with fresh seeds, keeping every
distinct failure (with its trace) and merging coverage across rounds and workers.

A round is one engine run (``run_model``, sequential or parallel); it ends at its first
failure once shrunk, or when its examples or the time run out. The next round starts with
the next seed, and no longer stops at the failures known so far. Two failures are the same
when they have the same signature (the invariant; for a history that is not linearizable,
also the operation that fits no order) and the same rules (a parallel program's
operations), or any rules when one of them could not be shrunk to the end; of two equal
ones the shorter is kept and the other's trace file deleted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import attrs

from ._coverage import Coverage
from ._database import open_database
from ._engine import RunConfig, RunResult, run_model
from ._errors import InvalidOption, PropworkloadError
from ._events import Event, ExampleFinished, FailureFound
from ._loader import load_model
from ._model import Model
from ._record import ExampleRecord, Failure
from ._redact import install_console, learn_all, learned, scrub
from ._results import interrupted_code
from ._signals import StopRun, handling_signals, interruptible, raise_if_stopped, stop_requested
from ._trace import Artifacts, TraceWriter

__all__ = ["DistinctFailure", "ExploreResult", "WorkerJob", "explore", "explore_workers"]

#: Examples per round when only a time budget bounds the exploration.
ROUND_EXAMPLES = 1000


@attrs.frozen
class DistinctFailure:
    """One failure found by exploration, with the round that found it."""

    failure: Failure
    example: ExampleRecord
    first_steps: int
    seed: int
    flaky: bool
    trace_path: Path | None
    worker: int = 0
    minimal: bool = True

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules of the example, in order; a parallel program's operations, sorted."""
        program = self.example.program
        if program is not None:
            return tuple(sorted(inv.name for inv in (*program.prefix, *sum(program.branches, ()))))
        return tuple(step.rule for step in self.example.steps)

    def same_as(self, other: DistinctFailure) -> bool:
        """Same signature, and the same rules, unless one of them was not fully shrunk
        (then the rules say little, and one failure per signature is kept)."""
        if self.failure.signature != other.failure.signature:
            return False
        return self.rules == other.rules or not (self.minimal and other.minimal)


@attrs.define
class ExploreResult:
    """Everything an exploration found, merged over rounds (and workers)."""

    model: str
    target: str
    seed: int
    examples: int = 0
    #: Examples Hypothesis discarded, and those run after each round's first failure.
    discarded: int = 0
    shrink_runs: int = 0
    steps: int = 0
    seconds: float = 0.0
    rounds: int = 0
    workers: int = 1
    #: Clients at once, when the exploration ran parallel programs.
    concurrency: int | None = None
    #: Runs of parallel programs, and those whose check timed out.
    runs: int = 0
    unchecked: int = 0
    stopped: str | None = None
    failures: list[DistinctFailure] = attrs.field(factory=list)
    coverage: Coverage = attrs.field(factory=Coverage)
    gaps: list[str] = attrs.field(factory=list)
    #: A worker's secrets (``_redact``), learned by the parent that prints its findings.
    secrets: tuple[str, ...] = ()

    def add(self, failure: DistinctFailure) -> None:
        """Keep ``failure`` unless an equal one is known; of two, keep the one shrunk to
        the end, else the shorter."""
        for i, known in enumerate(self.failures):
            if known.same_as(failure):
                if (not failure.minimal, failure.example.size) < (
                    not known.minimal,
                    known.example.size,
                ):
                    self.failures[i], failure = failure, known
                if failure.trace_path is not None and failure.trace_path != known.trace_path:
                    failure.trace_path.unlink(missing_ok=True)
                return
        self.failures.append(failure)

    def merge(self, other: ExploreResult) -> None:
        self.examples += other.examples
        self.discarded += other.discarded
        self.shrink_runs += other.shrink_runs
        self.steps += other.steps
        self.runs += other.runs
        self.unchecked += other.unchecked
        self.rounds += other.rounds
        self.stopped = self.stopped or other.stopped
        self.coverage.merge(other.coverage)
        for failure in other.failures:
            self.add(failure)

    @property
    def exit_code(self) -> int:
        if self.failures:
            return 1
        return interrupted_code(self.stopped)


def explore(
    model_cls: type[Model],
    config: RunConfig,
    *,
    examples: int | None,
    listeners: Sequence[Callable[[Event], None]] = (),
    make_writer: Callable[[int], Callable[[ExampleRecord, RunResult | None], Path | None]]
    | None = None,
    worker: int = 0,
) -> ExploreResult:
    """Explore until ``config.time_budget`` seconds pass or ``examples`` have run."""
    assert config.seed is not None
    started = time.perf_counter()
    deadline = started + config.time_budget
    result = ExploreResult(
        model=model_cls.model_name(),
        target=config.url,
        seed=config.seed,
        concurrency=config.concurrency,
    )
    seed = config.seed
    while True:
        remaining = deadline - time.perf_counter()
        left = None if examples is None else examples - result.examples
        if remaining <= 0.5 or (left is not None and left <= 0):
            break
        round_config = attrs.evolve(
            config,
            seed=seed,
            time_budget=remaining,
            examples=left if left is not None else ROUND_EXAMPLES,
            retry_saved=config.retry_saved and result.rounds == 0,
            generate_share=0.95,
            # A failure seen but not shrunk (another kind than its round's) stays findable:
            # a later round may shrink it.
            known_failures=frozenset(
                f.failure.signature for f in result.failures if f.minimal or f.flaky
            ),
        )
        writer = make_writer(seed) if make_writer else None
        try:
            run = run_model(model_cls, round_config, listeners=listeners, write_trace=writer)
        except InvalidOption:
            if result.rounds == 0:
                raise
            break  # the budget left is too small for one more example
        result.rounds += 1
        result.examples += run.examples
        result.discarded += run.discarded
        result.shrink_runs += run.shrink_runs
        result.steps += run.steps
        result.runs += run.runs
        result.unchecked += run.unchecked
        result.coverage.merge(run.coverage)
        if run.failure is not None and run.example is not None:
            result.add(
                DistinctFailure(
                    failure=run.failure,
                    example=run.example,
                    first_steps=run.first_example.size if run.first_example else 0,
                    seed=seed,
                    flaky=run.flaky,
                    trace_path=run.trace_path,
                    worker=worker,
                    minimal=not (run.flaky or run.stopped),
                )
            )
        for other in run.others:
            # Another kind of failure seen in the round (shrinking may have moved from it to
            # a simpler one): a finding of its own, not shrunk.
            result.add(
                DistinctFailure(
                    failure=other.failure,
                    example=other.example,
                    first_steps=other.example.size,
                    seed=seed,
                    flaky=other.flaky,
                    trace_path=other.trace_path,
                    worker=worker,
                    minimal=False,
                )
            )
        if run.stopped in ("terminated", "interrupted") or stop_requested():
            result.stopped = run.stopped or stop_requested()
            break
        if run.passed and run.stopped == "time budget":
            break
        seed += 1
    result.seconds = time.perf_counter() - started
    if result.rounds == 0 and not result.stopped:
        raise InvalidOption(
            f"the time budget ({config.time_budget:g} s) ended before one example ran; "
            "raise --time-budget"
        )
    return result


_COUNTERS: Any = None


def _init_worker(counters: Any, secrets: tuple[str, ...]) -> None:
    global _COUNTERS
    _COUNTERS = counters
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    install_console()  # a worker prints nothing of its own; a crash's traceback, scrubbed
    learn_all(secrets)


def _count(event: Event) -> None:
    """Add a worker's examples, steps and failures to the counters the parent shows."""
    if _COUNTERS is None:
        return
    with _COUNTERS.get_lock():
        if isinstance(event, ExampleFinished):
            _COUNTERS[0] += 1
            _COUNTERS[1] += len(event.example.steps)
        elif isinstance(event, FailureFound) and event.first:
            _COUNTERS[2] += 1


@attrs.frozen(kw_only=True)
class WorkerJob:
    """What one worker process explores: the model (``path::Class``), its run's
    configuration (without the database, which each worker opens from ``database``), the
    examples it may run, and the embedded sample the target is, if any."""

    model: str
    config: RunConfig
    database: str
    examples: int | None
    sample: str | None
    worker: int


def _worker(job: WorkerJob) -> ExploreResult:
    """One worker process: load the model, explore, return what it found and the
    secrets it learned; an error's message goes back to the parent scrubbed."""
    try:
        with handling_signals(sigint=False):
            result = _explore_job(job)
    except PropworkloadError as exc:
        exc.args = (scrub(str(exc)),)
        raise
    result.secrets = learned()
    return result


def _explore_job(job: WorkerJob) -> ExploreResult:
    model_cls, _ = load_model(job.model)
    artifacts = Artifacts()
    database = open_database(job.database, default_folder=lambda: artifacts.folder() / "examples")
    config = attrs.evolve(job.config, database=database)

    def make_writer(seed: int) -> TraceWriter:
        return TraceWriter.for_model(
            model_cls,
            config.model_path,
            seed=seed,
            target=config.url,
            artifacts=artifacts,
            sample=job.sample,
        )

    return explore(
        model_cls,
        config,
        examples=job.examples,
        listeners=[_count],
        make_writer=make_writer,
        worker=job.worker,
    )


def explore_workers(
    jobs: list[WorkerJob], *, tick: Callable[[int, int, int], None]
) -> list[ExploreResult]:
    """Run one :func:`explore` per job, each in its own process; ``tick(examples, steps,
    failures)`` is called a few times a second with the workers' totals. When the caller
    is stopped (a signal raises in it), the workers are asked to stop and their partial
    results are still collected."""
    context = get_context("spawn")
    counters = context.Array("q", 3)
    with ProcessPoolExecutor(
        max_workers=len(jobs),
        mp_context=context,
        initializer=_init_worker,
        initargs=(counters, learned()),
    ) as pool:
        # Workers are started by submit(); a Ctrl-C before their initializer ran would kill
        # them mid-start, so SIGINT stays blocked (and, in the children, ignored) meanwhile.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            futures = [pool.submit(_worker, job) for job in jobs]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        try:
            with interruptible():
                raise_if_stopped()
                while not all(f.done() for f in futures):
                    wait(futures, timeout=0.25)
                    tick(counters[0], counters[1], counters[2])
        except StopRun as stop:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # SIGTERM: each worker returns what it has found
            wait(futures, timeout=60)
            results = [f.result() for f in futures if f.done() and f.exception() is None]
            for result in results:
                result.stopped = stop.reason
                learn_all(result.secrets)
            return results
        for future in futures:
            error = future.exception()
            if isinstance(error, PropworkloadError):
                raise error
        results = [f.result() for f in futures]
        for result in results:
            learn_all(result.secrets)
        return results
