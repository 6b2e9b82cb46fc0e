"""Runs a model under Hypothesis and turns what happened into a :class:`RunResult`.

The engine never prints. It publishes a :class:`RunState` for the model instances,
runs Hypothesis's state-machine test with settings derived from :class:`RunConfig`,
and emits events (see ``_events``) to its listeners as examples finish.

Budget: generation stops at 70% of ``time_budget``; once a failure is found, shrinking may
use the rest. Both stop by raising :class:`StopRun` (a ``BaseException``) from inside the
next example, so Hypothesis ends at once; the tool then reports from its own records.
"""

from __future__ import annotations

import ast
import functools
import random
import re
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import attrs
import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.errors import Flaky, HypothesisException, Unsatisfiable
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from ._coverage import Coverage
from ._database import WatchedDatabase
from ._errors import (
    InvalidModel,
    InvalidOption,
    PropworkloadError,
    TargetError,
    TargetUnreachable,
)
from ._events import Event, FailureFound, RunFinished, RunStarted
from ._faults import FaultPlan
from ._model import Model
from ._record import ExampleRecord, Failure
from ._runtime import RunState, StopRun, using_run

__all__ = ["RunConfig", "RunResult", "fresh_seed", "probe", "run_model", "ssl_context"]


@attrs.frozen(kw_only=True)
class RunConfig:
    """What to run and how long for."""

    url: str
    examples: int = attrs.field(default=100, validator=attrs.validators.ge(1))
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
    #: Invariants already known to fail (explore's later rounds): their checks are counted
    #: but do not stop the example, so the search can find other failures.
    known_failures: frozenset[str] = frozenset()
    #: Faults to inject into the rules' requests (``--faults``), or None.
    faults: FaultPlan | None = None
    #: Seconds without any answer after which connection errors end the run (exit 3).
    unreachable_after: float = 10.0


@attrs.frozen(kw_only=True)
class RunResult:
    """How a run ended.

    ``example`` is the minimal failing example (or the original one when the failure was
    flaky), ``first_example`` the first failing example seen, before shrinking.
    """

    model: str
    seed: int
    target: str
    passed: bool
    examples: int
    steps: int
    seconds: float
    checks: dict[str, int]
    failure: Failure | None = None
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

    @property
    def exit_code(self) -> int:
        if not self.passed:
            return 1
        # Stopped by a signal before anything failed: not a pass, the conventional status.
        return {"terminated": 143, "interrupted": 130}.get(self.stopped or "", 0)


def fresh_seed() -> int:
    """A new random seed (from the OS, never from the ``random`` module Hypothesis seeds)."""
    return random.SystemRandom().randrange(2**32)


@functools.cache
def ssl_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The TLS context httpx makes for a transport (certifi's CAs; with ``trust_env``,
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` instead), made once per process: making one
    reads the whole CA bundle (about 25 ms), and every run, probe and replay made its own."""
    return httpx.create_ssl_context(trust_env=trust_env)


def probe(url: str, *, timeout: float = 5.0) -> None:
    """Raise :class:`TargetUnreachable` unless something answers HTTP at ``url``."""
    try:
        verify = ssl_context(trust_env=False)
        with httpx.Client(timeout=timeout, trust_env=False, verify=verify) as client:
            client.get(url)
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise TargetUnreachable(
            f"cannot reach {url} ({reason}): start the service, or point APP_URL or --url at it"
        ) from None


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
    ``result=None``) and again when the run ends; it returns the trace's path.
    """
    seed = config.seed if config.seed is not None else fresh_seed()
    name = model_cls.model_name()
    trace_path: Path | None = None

    def emit(event: Event) -> None:
        nonlocal trace_path
        if isinstance(event, FailureFound) and event.first and write_trace is not None:
            trace_path = write_trace(event.example, None)
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
            },
        )
    )
    probe(config.url)

    started = time.perf_counter()
    transport = httpx.HTTPTransport(retries=0, verify=ssl_context())
    state = RunState(
        url=config.url,
        transport=transport,
        known_failures=config.known_failures,
        faults=config.faults,
        unreachable_after=config.unreachable_after,
        emit=emit,
        generate_deadline=started + config.generate_share * config.time_budget,
        hard_deadline=started + config.time_budget,
    )
    state.answered()  # the probe was answered
    factory = functools.partial(model_cls)
    hypothesis.seed(seed)(factory)
    # The failure database keys saved examples by this digest: one key per model, stable
    # across edits of the model file (Hypothesis would otherwise hash the factory's source).
    factory._hypothesis_internal_add_digest = (  # type: ignore[attr-defined]
        f"propworkload:{name}:{model_cls.__qualname__}{_fault_digest(config.faults)}".encode()
    )
    hypothesis_settings = _hypothesis_settings(config)

    flaky = False
    blob: str | None = None
    try:
        with using_run(state), with_reporter(lambda _message: None):
            # Hypothesis documents that the factory may be any callable returning a machine.
            run_state_machine_as_test(cast("type[Model]", factory), settings=hypothesis_settings)
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
        transport.close()

    if state.first_failure is None and state.examples == 0 and state.stopped == "time budget":
        raise InvalidOption(
            f"the time budget ({config.time_budget:g} s) ended before one example ran; "
            "raise --time-budget"
        )
    never = state.coverage.never_observed() if state.first_failure is None else {}
    if never and not state.stopped:
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
    result = RunResult(
        model=name,
        seed=seed,
        target=config.url,
        passed=example is None,
        examples=state.examples,
        steps=state.steps,
        seconds=time.perf_counter() - started,
        checks=dict(state.checks),
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
    )
    if example is not None and write_trace is not None:
        result = attrs.evolve(result, trace_path=write_trace(example, result))
    emit(RunFinished(result=result))
    return result


def _fault_digest(faults: FaultPlan | None) -> str:
    """Runs with other faults keep their saved failures apart: a failure that needs a
    fault would otherwise be dropped by the next run without it."""
    if faults is None:
        return ""
    return f":faults={','.join(sorted(faults.kinds))}@{faults.rate:g}"


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
