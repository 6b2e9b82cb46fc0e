"""The engine: runs a model under Hypothesis and turns what happened into a
:class:`RunResult`.

One engine, two drivers. The sequential driver runs the model as Hypothesis's state
machine (an example is a sequence of rules); the parallel driver (``--concurrency K``)
draws parallel programs (``_parallel``) and runs each against the service (an example is a
program). Everything else is shared: the run's state and records, the budget, stops by
signal or by a lost target, the failure database, the events listeners consume
(console, progress, traces) and the result.

Budget: generation stops at ``generate_share`` of ``time_budget``; once a failure is
found, shrinking may use the rest. Both stop by raising :class:`StopRun` (a
``BaseException``) from inside the next example, so Hypothesis ends at once; the tool
then reports from its own records. The engine never prints.
"""

from __future__ import annotations

import ast
import functools
import inspect
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings, stateful
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import Flaky, HypothesisException, Unsatisfiable
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from ._database import WatchedDatabase
from ._errors import InvalidModel, InvalidOption, PropworkloadError, TargetError, TargetUnreachable
from ._events import Event, FailureFound, RunFinished, RunStarted
from ._faults import Fault, FaultPlan, ScriptedFaults
from ._model import Model, invariants_of, operation_markers, rules_of
from ._parallel import ProgramShape, execute_program, runs_needed
from ._program import Program
from ._record import ExampleRecord, Step
from ._results import OtherFailure, RunResult
from ._runtime import RunState, StopRun, using_run
from ._signals import interruptible, raise_if_stopped, stop_requested
from ._target import probe, ssl_context

__all__ = ["RunConfig", "RunResult", "catalog", "fresh_seed", "run_model"]

#: Most runs of one parallel program in one example (the adaptive repeats' ceiling).
MAX_RUNS = 60
#: Failures of the first failing program to see before estimating how often it fails.
MEASURE_FAILURES = 3


def _concurrency(instance: Any, attribute: Any, value: int | None) -> None:
    if value is not None and value < 2:
        raise ValueError("--concurrency must be at least 2 (clients at once)")


@attrs.frozen(kw_only=True)
class RunConfig:
    """What to run and how long for."""

    url: str
    examples: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    #: Steps of a sequential example; operations of a parallel program.
    steps: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    seed: int | None = None
    time_budget: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    model_path: str | None = None
    database: WatchedDatabase | None = None
    #: Retry the failures saved in ``database`` first. Off when the seed is pinned, so
    #: that one seed always runs the same steps.
    retry_saved: bool = True
    #: Share of ``time_budget`` for finding a failure; shrinking may use the rest.
    generate_share: float = attrs.field(
        default=0.7, validator=[attrs.validators.gt(0), attrs.validators.le(1)]
    )
    #: Signatures of failures already known (explore's later rounds, see
    #: ``Failure.signature``): their checks are counted but do not stop the example, so
    #: the search can find other failures.
    known_failures: frozenset[str] = frozenset()
    #: Faults to inject into the rules' (or operations') requests (``--faults``), or None.
    faults: FaultPlan | None = None
    #: Seconds without any answer after which connection errors end the run (exit 3).
    unreachable_after: float = 10.0
    #: Clients at once (``--concurrency``): each example is then a parallel program.
    concurrency: int | None = attrs.field(default=None, validator=_concurrency)
    #: Parallel programs: runs of each program before it counts as passing; once one
    #: failed, the runs adapt to how often it fails.
    repeat: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    #: Parallel programs: draw short waits before clients' operations.
    perturb: bool = True
    #: Parallel programs: let clients repeat an earlier client's operations.
    mirror: bool = True
    #: Parallel programs: seconds the linearizability check of one history may take.
    check_timeout: float = 10.0
    #: A transport to reach the target with instead of the network (an app served
    #: in-process, see ``_asgi``); the run does not close it.
    transport: httpx.BaseTransport | None = attrs.field(default=None, eq=False)


def fresh_seed() -> int:
    """A new random seed (from the OS, never from the ``random`` module Hypothesis seeds)."""
    return random.SystemRandom().randrange(2**32)


def catalog(model_cls: type[Model], concurrency: int | None) -> dict[str, list[str]]:
    """What a run of ``model_cls`` can reach, for coverage gaps: its rules, invariants and
    ``sometimes`` markers; for a parallel run, its operations, ``linearizable`` and the
    markers written in the operations."""
    if concurrency is None:
        return {
            "rules": rules_of(model_cls),
            "invariants": invariants_of(model_cls),
            "markers": list(model_cls._pw_markers),
        }
    return {
        "rules": ProgramShape(model_cls, concurrency=concurrency, steps=2).operation_names(),
        "invariants": ["linearizable"],
        "markers": operation_markers(model_cls),
    }


def _hypothesis_settings(config: RunConfig) -> settings:
    phases = [Phase.explicit, Phase.generate, Phase.target, Phase.shrink]
    if config.retry_saved:
        phases.insert(1, Phase.reuse)
    return settings(
        max_examples=config.examples,
        stateful_step_count=config.steps,
        deadline=None,
        database=config.database,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=phases,
        print_blob=True,
    )


def _digest(model_cls: type[Model], config: RunConfig) -> bytes:
    """The failure database keys saved examples by this: one key per model and mode,
    stable across edits of the model file (Hypothesis would hash the test's source)."""
    name = f"propworkload:{model_cls.model_name()}:{model_cls.__qualname__}"
    if config.concurrency is not None:
        name += f":concurrent={config.concurrency}"
    faults = config.faults
    if faults is not None:
        # Runs with other faults keep their saved failures apart: a failure that needs a
        # fault would otherwise be dropped by the next run without it.
        name += f":faults={','.join(sorted(faults.kinds))}@{faults.rate:g}"
    return name.encode()


#: Stands in for the run's transport until the drivers are ready (made after them, so that
#: a model error found while making them leaves nothing open).
_NO_TRANSPORT = httpx.MockTransport(lambda request: httpx.Response(599))


class ProgramFailed(AssertionError):
    """A parallel program failed (the example's record says how): what Hypothesis
    shrinks."""


class _Sequential:
    """The sequential driver: Hypothesis's state machine of the model."""

    def __init__(self, model_cls: type[Model], config: RunConfig, state: RunState) -> None:
        self.model_cls = model_cls
        self.state = state
        self.rules = _specs(model_cls, stateful.RULE_MARKER)
        self.initializers = _specs(model_cls, stateful.INITIALIZE_RULE_MARKER)
        self.invariants = list(_specs(model_cls, stateful.INVARIANT_MARKER).values())

    def reduce(self, found: ExampleRecord) -> ExampleRecord:
        """The failing sequence Hypothesis shrank to, with the steps it does not need
        dropped. Hypothesis shrinks the choices it made, and a sequence can hold steps no
        failure needs that it cannot delete without moving other choices (the fault on
        the one request that matters shifts to another); here each step is dropped in
        turn and the rest re-run with their recorded arguments and faults, and a removal
        after which the example fails the same way is kept."""
        assert found.failure is not None
        kind = found.failure.kind
        best = found
        index = 0
        try:
            while index < len(best.steps) and _time_left(self.state):
                candidate = best.steps[:index] + best.steps[index + 1 :]
                record = self._rerun(candidate)
                # Another kind of failure here is the removal's doing (a step that made
                # what a later one uses is gone), not a finding.
                if _fails_as(record, kind) and record is not None and record.size < best.size:
                    best = record
                    continue  # the step now at ``index`` is tried next
                index += 1
        except StopRun as stop:
            reason = str(stop.error) if stop.error else stop.reason
            self.state.stopped = self.state.stopped or reason
        return best

    def _rerun(self, steps: Sequence[Step]) -> ExampleRecord | None:
        """Run ``steps`` on a fresh instance (recorded arguments, recorded faults), with
        the invariants after each, as the run would; the example's record."""
        state = self.state
        scripted = ScriptedFaults()
        saved, state.scripted_faults = state.scripted_faults, scripted
        state.reducing = True
        machine: Model | None = None
        try:
            machine = self.model_cls()
            pending = set(self.initializers)
            self._check(machine, pending)
            for step in steps:
                spec = self.initializers.get(step.rule) or self.rules.get(step.rule)
                if spec is None:
                    return None
                pending.discard(step.rule)
                scripted.load(
                    [
                        Fault.from_json(e.fault) if e.fault is not None else None
                        for e in step.own_exchanges()
                    ]
                )
                spec.function(machine, **step.arguments)
                self._check(machine, pending)
        except StopRun:
            raise
        except Exception:
            pass  # a failure (the record says which) or an abandoned example
        finally:
            state.scripted_faults = saved
            try:
                if machine is not None:
                    machine.teardown()
            finally:
                state.reducing = False
        return machine._pw_example if machine is not None else None

    def _check(self, machine: Model, pending: set[str]) -> None:
        for invariant in self.invariants:
            if pending and not invariant.check_during_init:
                continue
            if all(precondition(machine) for precondition in invariant.preconditions):
                invariant.function(machine)

    def test(self, hypothesis_settings: settings, seed: int, digest: bytes) -> Callable[[], None]:
        factory = functools.partial(self.model_cls)
        hypothesis.seed(seed)(factory)
        factory._hypothesis_internal_add_digest = digest  # type: ignore[attr-defined]
        # Hypothesis documents that the factory may be any callable returning a machine.
        machine = cast("type[Model]", factory)
        return lambda: run_state_machine_as_test(machine, settings=hypothesis_settings)


class _Parallel:
    """The parallel driver: each example draws a program and runs it, ``repeat`` times
    until one run fails; once a program has failed, every candidate gets as many runs as
    make a failure that rare show up with 95% probability (at most ``MAX_RUNS``), so that
    a race that fails one run in ten still shrinks."""

    def __init__(self, model_cls: type[Model], config: RunConfig, state: RunState) -> None:
        assert config.concurrency is not None
        self.model_cls = model_cls
        self.config = config
        self.state = state
        self.shape = ProgramShape(
            model_cls,
            concurrency=config.concurrency,
            steps=config.steps,
            faults=config.faults,
            perturb=config.perturb,
            mirror=config.mirror,
        )
        self.runs = config.repeat
        self.replay_runs = config.repeat
        self.measured = False

    def test(self, hypothesis_settings: settings, seed: int, digest: bytes) -> Callable[[], None]:
        @hypothesis_settings
        @given(st.data())
        def parallel_program(data: st.DataObject) -> None:
            self.example(data)

        hypothesis.seed(seed)(parallel_program)
        parallel_program._hypothesis_internal_add_digest = digest  # type: ignore[attr-defined]
        return cast("Callable[[], None]", parallel_program)

    def _execute(self, program: Program, number: int) -> ExampleRecord:
        state = self.state
        state.before_step()
        remaining = state.remaining()
        timeout = self.config.check_timeout
        record = execute_program(
            self.model_cls,
            program,
            state,
            number=number,
            check_timeout=timeout if remaining is None else min(timeout, max(remaining, 0.1)),
        )
        failure = record.failure
        if failure is not None and failure.signature in state.known_failures:
            record.failure = None  # known already (explore): counted, not a failure again
        state.count_run(record)
        return record

    def _attempt(self, program: Program, number: int, runs: int) -> ExampleRecord:
        """Run ``program`` until a run fails, at most ``runs`` times; the last run's
        record, with the runs made."""
        record = self._execute(program, number)
        made = 1
        # Past the deadline (Hypothesis's final replay runs regardless), one run it is.
        while record.failure is None and made < runs and _time_left(self.state):
            record = self._execute(program, number)
            made += 1
        record.runs = made
        return record

    def _measure(self, program: Program, number: int, record: ExampleRecord) -> None:
        """After ``record`` failed: run the program again until it failed
        ``MEASURE_FAILURES`` more times (or ``MAX_RUNS`` runs, or the time is up) and note
        how often it fails the same way (a run that fails another way is kept as another
        kind of failure). The run that found the failure is not counted: it was picked
        because it failed, and counting it makes a rare failure look common.

        Three failures say little about a rate (seen at 3 in 10, it may well be 1 in 10),
        so candidates get the runs that half the observed rate needs: simulated with a
        failure of one run in seven, a candidate that still has the bug then misses it 3%
        of the time, against 13% with the rate as observed."""
        assert record.failure is not None
        failed, made = 0, 0
        while failed < MEASURE_FAILURES and made < MAX_RUNS and _time_left(self.state):
            run = self._execute(program, number)
            made += 1
            if run.failure is not None and run.failure.kind == record.failure.kind:
                failed += 1
            elif run.failure is not None:
                self.state.note_kind(run)
        # What the report shows counts every run of the program, the finding one too.
        record.runs, record.failed_runs = record.runs + made, failed + 1
        least = self.config.repeat
        observed = (failed + 0.5) / (made + 1.0)
        self.runs = runs_needed(observed / 2, confidence=0.95, least=least, most=MAX_RUNS)
        self.replay_runs = runs_needed(observed / 2, confidence=0.99, least=least, most=MAX_RUNS)

    def example(self, data: st.DataObject) -> None:
        state = self.state
        number = state.begin_example().number
        program = self.shape.draw(data, current_build_context().data)
        runs = self.runs if state.first_failure is not None else self.config.repeat
        record = self._attempt(program, number, runs)
        if record.failure is None:
            state.finish_example(record, counted=True)
            return
        record.failed_runs = 1
        record.replay_runs = self.replay_runs
        # Recorded before anything else can stop the run: a failure seen is never lost.
        state.finish_example(record, counted=True)
        if not self.measured:
            # The run's first failing program: how often does it fail? That sets how many
            # runs each candidate gets from now on.
            self.measured = True
            self._measure(program, number, record)
            record.replay_runs = self.replay_runs
        raise ProgramFailed(f"{record.failure.signature if record.failure else '?'}")

    def reduce(self, found: ExampleRecord) -> ExampleRecord:
        """The failing program Hypothesis shrank to, made simpler still by moves on the
        program itself (``Program.simpler``): each candidate runs as a shrinking
        candidate does; a simpler one that fails as well is kept. Then how often the
        result fails is measured, for the report and for replay."""
        assert found.program is not None and found.failure is not None
        kind = found.failure.kind
        best, program = found, found.program
        try:
            improved = True
            while improved:
                improved = False
                for candidate in program.simpler():
                    record = self._attempt(candidate, found.number, self.runs)
                    if record.failure is not None and record.failure.kind == kind:
                        best, program, improved = record, candidate, True
                        break
                    if record.failure is not None:
                        self.state.note_kind(record)  # another kind: reported beside
            best.failed_runs = 1
            self._measure(program, found.number, best)
        except StopRun as stop:
            # The budget, a signal or a lost target ended the reduction: the simplest
            # failing program so far is the result.
            reason = str(stop.error) if stop.error else stop.reason
            self.state.stopped = self.state.stopped or reason
        best.replay_runs = self.replay_runs
        return best


def _fails_as(record: ExampleRecord | None, kind: str) -> bool:
    return record is not None and record.failure is not None and record.failure.kind == kind


def _specs(model_cls: type[Model], marker: str) -> dict[str, Any]:
    """The model's rules, initialize rules or invariants (Hypothesis's records), by name."""
    found = {}
    for name, member in inspect.getmembers(model_cls):
        spec = getattr(member, marker, None)
        if spec is not None:
            found[name] = spec
    return found


def _time_left(state: RunState) -> bool:
    deadline = state.hard_deadline if state.first_failure else state.generate_deadline
    return deadline is None or time.perf_counter() < deadline


#: A run that drops this share of its examples (their outcome unknown, see
#: ``Model.retry``) checked almost nothing: it is not a pass (exit 3).
ABANDONED_LIMIT = 0.9


def run_model(
    model_cls: type[Model],
    config: RunConfig,
    *,
    listeners: Sequence[Callable[[Event], None]] = (),
    write_trace: Callable[[ExampleRecord, RunResult | None], Path | None] | None = None,
) -> RunResult:
    """Run ``model_cls`` against ``config.url``; return how it went.

    Raises :class:`PropworkloadError` subclasses for usage and target problems.
    ``write_trace(example, result)`` is called when the first failure is seen (with
    ``result=None``) and again when the run ends; it returns the trace's path. It is
    called the same way for the first failure of each other kind, and when the run ends
    for the smallest of each (see ``RunResult.others``).
    """
    seed = config.seed if config.seed is not None else fresh_seed()
    name = model_cls.model_name()
    trace_path: Path | None = None

    def emit(event: Event) -> None:
        nonlocal trace_path
        if isinstance(event, FailureFound) and write_trace is not None:
            if event.first:
                trace_path = write_trace(event.example, None)
            elif event.new_kind:
                write_trace(event.example, None)  # kept even if the run is killed
        for listener in listeners:
            listener(event)

    emit(
        RunStarted(
            model=name,
            seed=seed,
            target=config.url,
            settings={
                "examples": config.examples,
                "steps": config.steps,
                "time_budget": config.time_budget,
                "faults": list(config.faults.kinds) if config.faults else [],
                "fault_rate": config.faults.rate if config.faults else 0.0,
                "concurrency": config.concurrency,
            },
        )
    )
    started = time.perf_counter()
    state = RunState(
        url=config.url,
        transport=config.transport or _NO_TRANSPORT,
        known_failures=config.known_failures,
        faults=config.faults if config.concurrency is None else None,
        unreachable_after=config.unreachable_after,
        emit=emit,
        generate_deadline=started + config.generate_share * config.time_budget,
        hard_deadline=started + config.time_budget,
    )
    driver = (_Sequential if config.concurrency is None else _Parallel)(model_cls, config, state)
    test = driver.test(_hypothesis_settings(config), seed, _digest(model_cls, config))
    transport = config.transport or httpx.HTTPTransport(retries=0, verify=ssl_context())
    state.transport = transport

    flaky = False
    blob: str | None = None
    try:
        with interruptible():
            raise_if_stopped()
            probe(config.url, transport=config.transport)
            state.answered()
            with using_run(state), with_reporter(lambda _message: None):
                try:
                    test()
                except Exception:
                    # A signal's StopRun that landed inside Hypothesis may come out as
                    # another error (a Flaky, an invalid example): still the stop.
                    reason = stop_requested()
                    if reason is not None and state.first_failure is None:
                        raise StopRun(reason) from None
                    raise
    except StopRun as stop:
        if stop.error is not None and state.first_failure is None:
            raise stop.error from None
        # With a failure in hand, a target that goes away while shrinking only ends the
        # shrinking: the failure found so far is still reported.
        state.stopped = state.stopped or (str(stop.error) if stop.error else stop.reason)
    except Flaky as exc:
        if state.first_failure is None:
            # No failure of ours was seen: Hypothesis found the model itself inconsistent,
            # e.g. a precondition or a bundle that depends on the service's state.
            first_line = str(exc).strip().split("\n", 1)[0]
            raise InvalidModel(
                f"{model_cls.__name__}: {type(exc).__name__}: {first_line}"
            ) from None
        flaky = True
    except Unsatisfiable as exc:
        if state.first_failure is None and state.abandoned:
            raise TargetError(
                f"{config.url}: no example could finish: {state.abandoned} were dropped "
                "because a request's outcome was unknown (timeouts, resets) and the model "
                "did not handle it; use Model.retry in the rules"
            ) from None
        if state.first_failure is None:
            raise InvalidModel(
                f"{model_cls.__name__}: Hypothesis could not run a single example ({exc}); "
                "check the preconditions and the bundles the rules draw from"
            ) from None
    except HypothesisException as exc:
        raise InvalidModel(f"{model_cls.__name__}: {type(exc).__name__}: {exc}") from None
    except PropworkloadError:
        raise
    except httpx.TransportError as exc:
        raise TargetUnreachable(f"{config.url}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        blob = _blob(exc)
        if state.last_failure is None:
            # Raised outside any rule or invariant (the model's __init__ or teardown).
            raise InvalidModel(
                f"{model_cls.__name__} raised {_where(exc)}: {type(exc).__name__}: {exc}"
            ) from None
    finally:
        if config.transport is None:
            transport.close()

    # A signal that came while nothing could be interrupted (loading, a write) still
    # makes the run a stopped one.
    state.stopped = state.stopped or stop_requested()
    ran = state.examples + state.discarded
    if state.first_failure is None and ran == 0 and state.stopped == "time budget":
        raise InvalidOption(
            f"the time budget ({config.time_budget:g} s) ended before one example ran; "
            "raise --time-budget"
        )
    if state.first_failure is None and state.runs and not state.answered_operations:
        raise TargetError(
            f"{config.url}: no operation of any of the {state.runs} program runs was "
            "answered; nothing was checked"
        )
    if state.first_failure is None and state.runs and state.unchecked == state.runs:
        raise InvalidModel(
            f"{model_cls.__name__}: none of the {state.runs} histories could be checked "
            f"within {config.check_timeout:g} s; give the model a partition or use fewer "
            "--steps"
        )
    if (
        state.first_failure is None
        and state.abandoned
        and state.abandoned >= ABANDONED_LIMIT * ran
        and state.stopped in (None, "time budget")
    ):
        raise TargetError(
            f"{config.url}: {state.abandoned} of the {ran} examples were dropped "
            "because a request's outcome was unknown (timeouts, resets) and the model did "
            "not handle it; almost nothing was checked (use commands, or Model.retry in rules)"
        )
    never = state.coverage.never_observed() if state.first_failure is None else {}
    # Stopped by the time budget with nothing ever read is not a pass either.
    if never and state.stopped in (None, "time budget"):
        name, error = next(iter(never.items()))
        raise TargetError(
            f"{config.url}: invariant {name} could not read the service in any of its "
            f"{state.coverage.invariant_runs[name]} runs ({error}); nothing was checked"
        )
    if state.first_failure is None:
        example = None
    elif flaky:
        example = state.first_failure
    elif state.stopped:
        example = state.best_failure
    else:
        example = state.last_failure
    sequential = isinstance(driver, _Sequential)
    if sequential and example is not None and not flaky and not state.stopped and example.size > 1:
        with using_run(state), interruptible():
            reduced = driver.reduce(example)
        if reduced is not example:
            blob = None  # Hypothesis's blob reproduces the sequence before the reduction
        example = reduced
    if isinstance(driver, _Parallel) and example is not None:
        if not state.stopped:
            # A race that did not fail when Hypothesis re-ran it once may still fail
            # often: reduce the smallest failing program, and let its measurement say.
            start = state.best_failure if flaky and state.best_failure else example
            with using_run(state), interruptible():
                reduced = driver.reduce(start)
            if reduced is not example:
                blob = None  # Hypothesis's blob reproduces the program before the reduction
            example = reduced
            flaky = flaky and example.failed_runs < 2
        else:
            example.replay_runs = driver.replay_runs
    result = RunResult(
        model=model_cls.model_name(),
        seed=seed,
        target=config.url,
        passed=example is None,
        examples=state.examples,
        discarded=state.discarded,
        shrink_runs=state.shrink_runs,
        steps=state.steps,
        seconds=time.perf_counter() - started,
        checks=dict(state.checks),
        accepted=dict(state.accepted),
        failure=example.failure if example else None,
        example=example,
        first_example=state.first_failure,
        flaky=flaky,
        stopped=state.stopped,
        trace_path=trace_path,
        blob=blob,
        saved_retried=len(config.database.retried) if config.database else 0,
        saved_dropped=len(config.database.dropped) if config.database else 0,
        abandoned=state.abandoned,
        faults=config.faults,
        coverage=state.coverage,
        concurrency=config.concurrency,
        runs=state.runs,
        unchecked=state.unchecked,
        others=_others(state, example, flaky),
    )
    if example is not None and write_trace is not None:
        result = attrs.evolve(result, trace_path=write_trace(example, result))
        others = tuple(
            attrs.evolve(o, trace_path=write_trace(o.example, result)) for o in result.others
        )
        result = attrs.evolve(result, others=others)
    emit(RunFinished(result=result))
    return result


def _others(
    state: RunState, example: ExampleRecord | None, flaky: bool
) -> tuple[OtherFailure, ...]:
    """The smallest example of each kind of failure the run saw besides ``example``'s.
    When the run is flaky, the kind shrinking ended on is the one that did not fail again
    (``example`` is then the first failure)."""
    if example is None or example.failure is None:
        return ()
    last = state.last_failure.failure if state.last_failure is not None else None
    unreproduced = last.kind if flaky and last is not None else None
    return tuple(
        OtherFailure(other, flaky=kind == unreproduced)
        for kind, other in state.by_kind.items()
        if kind != example.failure.kind
    )


_BLOB = re.compile(r"@reproduce_failure\('[^']+', (b'[^']*')\)")


def _blob(exc: BaseException) -> str | None:
    """Hypothesis's reproduction blob (base64 text) from the notes of its final error."""
    for note in getattr(exc, "__notes__", ()):
        match = _BLOB.search(note)
        if match:
            value = ast.literal_eval(match.group(1))
            return value.decode("ascii") if isinstance(value, bytes) else None
    return None


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    frame = None
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    if frame is None:
        return "outside any rule"
    return f"outside any rule, at {frame.f_code.co_filename}:{frame.f_lineno}"
