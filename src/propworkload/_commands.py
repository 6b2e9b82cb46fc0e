"""What the commands do, behind the command line: ``run``, ``explore``, ``replay`` and
``check``.

Each takes its options as values and a stream to print to (scrubbed of secrets, as every
line the tool prints), and returns the exit status; tool errors are raised as
:class:`PropworkloadError` (the command line prints them as one line). The command line
(``_cli``) only parses; tests call these in-process, with an app served in-process as the
target (``transport``).
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs
import httpx

from ._console import (
    ConsoleReporter,
    example_lines,
    fail_line,
    format_coverage,
    format_replay,
    found_line,
    trace_lines,
)
from ._database import open_database
from ._describe import describe_operation, program_lines
from ._engine import RunConfig, catalog, fresh_seed, run_model
from ._errors import InvalidHistory, InvalidModel, InvalidOption, InvalidTrace
from ._events import Event, FailureFound, Notice
from ._explore import ExploreResult, WorkerJob, explore_workers
from ._explore import explore as run_explore
from ._faults import FaultPlan, parse_faults
from ._histories import History, read_history
from ._linearizability import CheckResult
from ._linearizability import Operation as HistoryOp
from ._loader import load_model
from ._model import Model
from ._operations import operations_of
from ._parallel import check_history
from ._progress import Progress
from ._record import jsonable, redact_url
from ._redact import REDACTED, ScrubbingStream, write_text_atomic
from ._regression import emit_pytest as write_pytest
from ._replay import (
    Replay,
    decode_program,
    model_path_from_trace,
    recorded_kind,
    replay_trace,
)
from ._report import json_report, write_json_report, write_junit
from ._results import verdict
from ._signals import STATUS, StopRun, interruptible, stop_requested
from ._target import check_url, env_url, resolve_target
from ._text import cut, short
from ._timeline import render_timeline
from ._trace import Artifacts, TraceWriter, artifacts_dir, is_parallel, load_trace

__all__ = ["ExploreOptions", "RunOptions", "check", "explore", "replay", "run"]

DEFAULT_EXAMPLES = 100
DEFAULT_STEPS = 20
DEFAULT_TIME_BUDGET = 120.0
DEFAULT_REPEAT = 3
#: Seconds ``check`` searches before its verdict is unknown.
DEFAULT_CHECK_TIMEOUT = 60.0
#: Seconds between the PROGRESS lines ``run`` writes to stderr.
RUN_PROGRESS_INTERVAL = 5.0


@attrs.frozen(kw_only=True)
class RunOptions:
    """The options of ``propworkload run`` (and of a model's own ``main``)."""

    url: str | None = None
    examples: int = DEFAULT_EXAMPLES
    steps: int = DEFAULT_STEPS
    seed: int | None = None
    time_budget: float = DEFAULT_TIME_BUDGET
    database: str = ""
    faults: str = ""
    fault_rate: float | None = None
    concurrency: int | None = None
    repeat: int | None = None


@attrs.frozen(kw_only=True)
class ExploreOptions:
    """The options of ``propworkload explore``."""

    url: str | None = None
    time_budget: float | None = None
    examples: int | None = None
    workers: int = 1
    seed: int | None = None
    steps: int = DEFAULT_STEPS
    database: str = ""
    faults: str = ""
    fault_rate: float | None = None
    report_json: Path | None = None
    junit: Path | None = None
    fail_on_gap: bool = False
    concurrency: int | None = None
    repeat: int | None = None


def _fault_plan(faults: str, fault_rate: float | None) -> FaultPlan | None:
    if not faults:
        if fault_rate is not None:
            raise InvalidOption("--fault-rate needs --faults: say which faults to inject")
        return None
    kinds = parse_faults(faults)
    return FaultPlan(kinds=kinds) if fault_rate is None else FaultPlan(kinds=kinds, rate=fault_rate)


def _repeat(repeat: int | None, concurrency: int | None) -> int:
    if repeat is not None and concurrency is None:
        raise InvalidOption("--repeat needs --concurrency: it is the runs of each program")
    return DEFAULT_REPEAT if repeat is None else repeat


def _config(**fields: Any) -> RunConfig:
    try:
        return RunConfig(**fields)
    except ValueError as exc:
        raise InvalidOption(str(exc)) from None


def _check_writable(path: Path, option: str) -> None:
    """Raise :class:`InvalidOption` unless a file can be written at ``path`` (its folder is
    made if need be): a report that cannot be written is found before the run, not after
    it. Tried for real, since permissions alone do not tell (``/proc``, a read-only mount,
    root)."""

    def refuse(reason: str) -> NoReturn:
        raise InvalidOption(
            f"{option} {path}: cannot write there ({reason}); give a path in a folder you can "
            "write to"
        )

    if path.is_dir():
        refuse("it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        refuse(exc.strerror or str(exc))
    if path.exists() and not os.access(path, os.W_OK):
        refuse("the file is read-only")


def _embedded(url: str | None) -> bool:
    return url is None and "APP_URL" not in os.environ


def run(
    model_cls: type[Model],
    model_path: str | None,
    options: RunOptions,
    *,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """``propworkload run``: a bounded workload. ``transport`` reaches ``options.url``
    without the network (an app served in-process)."""
    stream = ScrubbingStream.wrap(out or sys.stdout)
    console = ConsoleReporter(stream)
    repeat = _repeat(options.repeat, options.concurrency)
    seed = fresh_seed() if options.seed is None else options.seed
    artifacts = Artifacts(notify=lambda message: console(Notice(message=message)))
    failures_db = open_database(
        options.database,
        default_folder=lambda: artifacts.folder() / "examples",
        notify=lambda message: console(Notice(message=message)),
    )
    plan = _fault_plan(options.faults, options.fault_rate)
    with resolve_target(options.url, sample=model_cls.sample, owner=model_cls.__name__) as target:
        config = _config(
            url=target,
            examples=options.examples,
            steps=options.steps,
            seed=seed,
            time_budget=options.time_budget,
            model_path=model_path,
            database=failures_db,
            retry_saved=options.seed is None,
            faults=plan,
            concurrency=options.concurrency,
            repeat=repeat,
            transport=transport,
        )
        writer = TraceWriter.for_model(
            model_cls,
            model_path,
            seed=seed,
            target=target,
            artifacts=artifacts,
            sample=model_cls.sample if _embedded(options.url) else None,
        )
        progress = Progress(
            budget=options.time_budget,
            stream=sys.stderr,
            interval=RUN_PROGRESS_INTERVAL,
            live=False,
        )
        try:
            result = run_model(model_cls, config, listeners=[console, progress], write_trace=writer)
        finally:
            progress.close()
    return result.exit_code


def explore(
    model_cls: type[Model],
    model_path: str,
    options: ExploreOptions,
    *,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """``propworkload explore``: rounds with fresh seeds until the budget, every distinct
    failure, coverage, reports; sequential or parallel programs alike."""
    stream = ScrubbingStream.wrap(out or sys.stdout)

    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    if options.time_budget is not None and options.examples is not None:
        raise InvalidOption("give --time-budget or --examples, not both")
    for option, path in (("--report-json", options.report_json), ("--junit", options.junit)):
        if path is not None:
            _check_writable(path, option)
    if transport is not None and options.workers > 1:
        raise InvalidOption("an in-process target takes one worker: drop --workers")
    budget = options.time_budget
    if budget is None:
        budget = 300.0 if options.examples is None else 86400.0
    plan = _fault_plan(options.faults, options.fault_rate)
    repeat = _repeat(options.repeat, options.concurrency)
    seed = fresh_seed() if options.seed is None else options.seed
    pinned = options.seed is not None
    embedded = _embedded(options.url)
    # Checked before the run (each worker opens its own from the same spec).
    failures_db = open_database(
        options.database,
        default_folder=lambda: artifacts.folder() / "examples",
        notify=lambda message: progress.print(f"NOTE {message}"),
    )
    progress = Progress(budget=budget if options.examples is None else None, stream=stream)
    artifacts = Artifacts(notify=lambda message: progress.print(f"NOTE {message}"))
    started = time.perf_counter()
    try:
        with resolve_target(
            options.url, sample=model_cls.sample, owner=model_cls.__name__
        ) as target:
            clients = f" concurrency={options.concurrency}" if options.concurrency else ""
            progress.print(
                f"SEED {seed} model={model_cls.model_name()} target={redact_url(target)} "
                f"workers={options.workers}{clients}"
            )
            config = _config(
                url=target,
                seed=seed,
                steps=options.steps,
                time_budget=budget,
                model_path=model_path,
                retry_saved=not pinned,
                faults=plan,
                concurrency=options.concurrency,
                repeat=repeat,
                transport=transport,
            )
            sample = model_cls.sample if embedded else None
            if options.workers == 1:

                def make_writer(round_seed: int) -> TraceWriter:
                    return TraceWriter.for_model(
                        model_cls,
                        model_path,
                        seed=round_seed,
                        target=target,
                        artifacts=artifacts,
                        sample=sample,
                    )

                def found(event: Event) -> None:
                    if isinstance(event, FailureFound) and event.first and event.example.failure:
                        progress.print(found_line(event.example))

                result = run_explore(
                    model_cls,
                    attrs.evolve(config, database=failures_db),
                    examples=options.examples,
                    listeners=[progress, found],
                    make_writer=make_writer,
                )
            else:
                database = options.database or str(artifacts.folder() / "examples")
                examples = options.examples
                jobs = [
                    WorkerJob(
                        model=f"{model_path}::{model_cls.__name__}",
                        config=attrs.evolve(config, seed=seed + 1000 * i),
                        database=database,
                        examples=None if examples is None else -(-examples // options.workers),
                        sample=sample,
                        worker=i,
                    )
                    for i in range(options.workers)
                ]
                parts = explore_workers(jobs, tick=progress.set)
                result = ExploreResult(
                    model=model_cls.model_name(),
                    target=target,
                    seed=seed,
                    workers=options.workers,
                    concurrency=options.concurrency,
                )
                for part in parts:
                    result.merge(part)
                if not parts:
                    result.stopped = "interrupted"
                result.seconds = time.perf_counter() - started
    finally:
        progress.close()
    coverage = result.coverage.to_json(**catalog(model_cls, options.concurrency))
    result.gaps = coverage["gaps"]
    for found_failure in result.failures:
        echo(fail_line(found_failure.failure))
        for line in example_lines(
            found_failure.example,
            shrunk_from=found_failure.first_steps,
            flaky=found_failure.flaky,
            minimal=found_failure.minimal,
        ):
            echo(line)
        for line in trace_lines(found_failure.trace_path, found_failure.example):
            echo(line)
    failed_names = {f.failure.invariant for f in result.failures}
    for name, count in coverage["checks"].items():
        if name not in failed_names:
            echo(f"INVARIANT PASS {name} checks={count}")
    for line in format_coverage(coverage):
        echo(line)
    result.stopped = result.stopped or stop_requested()
    code = result.exit_code
    if code == 0 and options.fail_on_gap and result.gaps:
        code = 1
    # The folder was writable when the run started; should it no longer be, what the run
    # found is still printed, summary included, before the one error line.
    unwritten = []
    if options.report_json:
        report = json_report(result, coverage=coverage, code=code)
        try:
            write_json_report(options.report_json, report)
        except OSError as exc:
            unwritten.append(f"the JSON report {options.report_json} ({exc.strerror or exc})")
        else:
            echo(f"REPORT json: {options.report_json}")
    if options.junit:
        try:
            write_junit(
                options.junit,
                result,
                invariants=list(coverage["checks"]),
                gaps_fail=options.fail_on_gap,
            )
        except OSError as exc:
            unwritten.append(f"the JUnit report {options.junit} ({exc.strerror or exc})")
        else:
            echo(f"REPORT junit: {options.junit}")
    extra = f" stopped={result.stopped}" if result.stopped else ""
    if result.concurrency is not None:
        extra += f" runs={result.runs}"
        if result.unchecked:
            extra += f" unchecked={result.unchecked}"
    shrinking = f" discarded={result.discarded}" if result.discarded else ""
    shrinking += f" shrink_runs={result.shrink_runs}" if result.shrink_runs else ""
    echo(
        f"SUMMARY {verdict(code)} examples={result.examples}{shrinking} steps={result.steps} "
        f"seconds={result.seconds:.1f} rounds={result.rounds} workers={result.workers} "
        f"failures={len(result.failures)} gaps={len(result.gaps)}{extra}"
    )
    if unwritten:
        error = InvalidOption(
            f"cannot write {' nor '.join(unwritten)}; the run's results are above"
        )
        # A failure found (or a stop) keeps its status; a pass without its report is not one.
        error.exit_code = code or 2
        raise error
    return code


def replay(
    trace_file: str,
    *,
    url: str | None = None,
    repeat: int | None = None,
    model_file: str | None = None,
    emit_pytest: Path | None = None,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """``propworkload replay``: re-execute a trace's steps (or its parallel program) and
    say whether the failure happens again; or write it as a pytest regression.
    ``transport`` reaches ``url`` without the network (an app served in-process)."""
    stream = ScrubbingStream.wrap(out or sys.stdout)

    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    trace = load_trace(trace_file)
    model_path = Path(model_file) if model_file else model_path_from_trace(trace, Path(trace_file))
    if not model_path.is_file():
        raise InvalidTrace(
            f"{trace_file}: its model file {model_path} is missing; pass --model PATH"
        )
    if emit_pytest is not None:
        _check_writable(emit_pytest, "--emit-pytest")
        try:
            write_pytest(trace, Path(trace_file), model_path, emit_pytest)
        except OSError as exc:
            raise InvalidOption(
                f"--emit-pytest {emit_pytest}: cannot write there ({exc.strerror or exc})"
            ) from None
        echo(f"wrote {emit_pytest}; run it with: APP_URL=<service> python -m pytest {emit_pytest}")
        return 0
    model_cls, _ = load_model(f"{model_path}::{trace['model']['class']}")
    target: str | None
    env = env_url() if url is None else None
    if url is not None:
        target = check_url(url, "--url")
    elif env is not None:
        target = env
    elif trace.get("sample") and trace.get("sample") == model_cls.sample:
        # The run used the embedded sample service, long gone: start a fresh one.
        target = None
    elif REDACTED in trace["target"]:
        # Sending "[redacted]" as the password (or key) would only get a 401.
        secret = "a password" if "@" in trace["target"] else "a secret query value"
        raise InvalidOption(
            f"the trace's target had {secret}, which traces never keep; "
            "give the URL with --url or APP_URL"
        )
    else:
        target = check_url(trace["target"], "the trace's target")
    shown = redact_url(target) if target else f"embedded-{trace['sample']}-sample"
    if is_parallel(trace):
        return _replay_program(trace, trace_file, model_cls, target, shown, repeat, echo, transport)
    runs = repeat or 1
    steps = len(trace["steps"])
    echo(f"REPLAY {trace_file} model={model_cls.model_name()} target={shown} steps={steps}")
    reproduced = failed = 0
    detailed = False
    for run_number in range(1, runs + 1):
        outcome = replay_trace(trace, model_cls, target, transport=transport)
        reproduced += outcome.reproduced
        failed += outcome.failure is not None
        if runs == 1:
            for line in format_replay(outcome):
                echo(line)
            continue
        verdict = (
            "reproduced"
            if outcome.reproduced
            else (
                f"failed with {outcome.failure.invariant}"
                if outcome.failure
                else "did not reproduce"
            )
        )
        echo(f"run {run_number}/{runs}: {verdict}")
        if not detailed and (outcome.failure is not None or run_number == runs):
            detailed = True
            for line in format_replay(outcome):
                echo(f"  {line}")
    if runs > 1:
        echo(f"REPLAY reproduced {reproduced}/{runs}")
    return 1 if failed else 0


def _replay_program(
    trace: dict[str, Any],
    trace_file: str,
    model_cls: type[Model],
    target: str | None,
    shown: str,
    repeat: int | None,
    echo: Callable[[str], None],
    transport: httpx.BaseTransport | None,
) -> int:
    """Replay a parallel program as many times as the search needed to see it fail (the
    trace's ``replay_runs``), or ``repeat`` times."""
    program = decode_program(model_cls, trace["program"])
    recorded = trace.get("replay_runs") or trace.get("repeat") or 1
    runs = repeat or max(1, int(recorded))
    echo(
        f"REPLAY {trace_file} model={model_cls.model_name()} target={shown} "
        f"operations={program.size} clients={program.clients} runs={runs}"
    )
    reproduced = failed = 0
    expected = recorded_kind(trace["failure"])
    shown_failure = False
    with Replay(model_cls, url=target, transport=transport) as replayer:
        for number in range(1, runs + 1):
            record = replayer.run_program(program)
            failure = record.failure
            # Reproduced: the same invariant failed (another failure is reported, and
            # counts as a failure of the replay, but not as the recorded one again).
            reproduced += failure is not None and failure.kind == expected
            failed += failure is not None
            echo(f"run {number}/{runs}: {fail_line(failure) if failure else 'linearizable'}")
            if failure is not None and not shown_failure:
                shown_failure = True
                for line in program_lines(record):
                    echo(f"  {line}")
    other = f" ({failed - reproduced} failed otherwise)" if failed > reproduced else ""
    echo(f"REPLAY reproduced {reproduced}/{runs}{other}")
    return 1 if failed else 0


def check(
    history_file: str,
    model_cls: type[Model],
    *,
    format: str = "auto",
    timeout: float = DEFAULT_CHECK_TIMEOUT,
    timeline: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """``propworkload check``: whether a recorded history is linearizable with respect to
    the model's transitions. Exit status 0 linearizable, 1 not, 3 unknown (the search
    timed out), with the HTML timeline written; 130 or 143 when a signal stopped the
    search."""
    stream = ScrubbingStream.wrap(out or sys.stdout)

    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    name = model_cls.__name__
    if model_cls.model_state is None:
        raise InvalidModel(
            f"{name} has no model_state: check runs the history on the reference model, "
            "from its initial state (a class attribute, e.g. model_state = Ledger)"
        )
    if not operations_of(model_cls):
        raise InvalidModel(
            f"{name} declares no commands or operations: check runs the history's "
            "operations through their model functions"
        )
    history = read_history(history_file, format=format, model=model_cls)
    _fits(model_cls, history, history_file)
    page = _timeline_path(Path(history_file), timeline, echo)
    clients = len({op.client for op in history.operations})
    echo(
        f"CHECK {history_file} model={model_cls.model_name()} format={history.format} "
        f"operations={len(history.operations)} clients={clients}"
    )
    started = time.monotonic()
    try:
        with interruptible():
            result = check_history(
                model_cls, history.operations, timeout=timeout, workers=_check_workers(history)
            )
    except StopRun as stop:
        if stop.error is not None:  # a model function raised: a model error
            raise stop.error from None
        seconds = time.monotonic() - started
        echo(f"SUMMARY stopped seconds={seconds:.3f} stopped={stop.reason}")
        return STATUS.get(stop.reason, 130)
    html = render_timeline(
        history.operations,
        result,
        title=f"{model_cls.model_name()}: {history_file}",
        describe=_describe,
        show_state=lambda state: short(jsonable(state), 200),
    )
    try:
        write_text_atomic(page, html)
    except OSError as exc:
        raise InvalidOption(
            f"cannot write the timeline to {page} ({exc.strerror or exc}); give --timeline PATH"
        ) from None
    if result.verdict == "illegal":
        echo(_unlinearizable_line(history, result))
    echo(f"  timeline: {page}")
    echo(
        f"SUMMARY {_verdict(result, timeout)} partitions={result.partitions} "
        f"core={result.core} seconds={result.seconds:.3f}"
    )
    return {"ok": 0, "illegal": 1}.get(result.verdict, 3)


def _fits(model_cls: type[Model], history: History, history_file: str) -> None:
    """Raise :class:`InvalidHistory` at the first operation the model does not have or
    whose arguments its real call does not take."""
    operations = operations_of(model_cls)
    signatures: dict[str, inspect.Signature] = {}
    for index, op in enumerate(history.operations):
        name, arguments = op.input
        where = f"{history_file}: {history.place(index)}"
        if name not in operations:
            raise InvalidHistory(
                f"{where}: {name!r} is not an operation of {model_cls.__name__} "
                f"(its operations: {', '.join(sorted(operations))})"
            )
        if name not in signatures:
            signatures[name] = inspect.signature(operations[name].call)
        try:
            signatures[name].bind(None, **arguments)
        except TypeError as exc:
            call = _describe(op)[0]
            raise InvalidHistory(
                f"{where}: {call} does not fit {model_cls.__name__}.{name} ({exc})"
            ) from None


def _timeline_path(history: Path, chosen: Path | None, echo: Callable[[str], None]) -> Path:
    """Where the timeline goes: ``chosen``, else beside the history (``HISTORY.html``),
    else, when that folder cannot be written, the artifact folder's ``timelines/``."""
    if chosen is not None:
        _check_writable(chosen, "--timeline")
        return chosen
    beside = history.with_name(f"{history.name}.html")
    try:
        _check_writable(beside, "the timeline")
    except InvalidOption:
        folder = artifacts_dir(lambda message: echo(f"NOTE {message}")) / "timelines"
        path = folder / beside.name
        _check_writable(path, "the timeline")
        return path
    return beside


def _describe(op: HistoryOp) -> tuple[str, str]:
    name, arguments = op.input
    return describe_operation(name, arguments, op.output, answered=not op.unknown)


def _unlinearizable_line(history: History, result: CheckResult) -> str:
    """``INVARIANT FAIL linearizable ...``: the first operation that fits no order, with
    its client, its place in the history and its times, as ``run --concurrency`` says it."""
    index = result.blocked[0]
    op = history.operations[index]
    call, answer = _describe(op)
    kind, number = history.places[index]
    return (
        "INVARIANT FAIL linearizable expected=linearizable "
        f"actual={cut(f'{call} -> {answer}', 100)} fits no order of the operations "
        f"client={op.client} {kind}={number} call={_time(op.call)} return={_time(op.ret)}"
    )


def _time(value: float | None) -> str:
    """A time as given (a logical clock's 59, 0.4 s), a long fraction cut to microseconds."""
    return str(round(value, 6) if isinstance(value, float) else value)


#: Operations from which a recorded history's partitions are checked in processes at once
#: (one per core): forking costs a few milliseconds, which a short history does not repay.
#: On Porcupine's c50-ok (1,712 operations, 10 keys) with models/kv.py, two processes on
#: two cores took the check from 1.8 s to 1.0 s.
PARALLEL_CHECK_FROM = 500


def _check_workers(history: History) -> int:
    if len(history.operations) < PARALLEL_CHECK_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _verdict(result: CheckResult, timeout: float) -> str:
    if result.verdict == "ok":
        return "linearizable"
    if result.verdict == "illegal":
        return "not linearizable"
    if result.seconds >= timeout:
        return f"unknown (timed out after {timeout:g} s)"
    return "unknown (the search reached its memory limit)"
