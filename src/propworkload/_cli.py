"""The ``propworkload`` command line: ``run`` and ``demo``.

Exit status: 0 every invariant held; 1 an invariant failed (or a step raised); 2 usage or
model error; 3 the target could not be reached or set up. Errors with status 2 and 3 are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from ._database import open_database
from ._engine import RunConfig, fresh_seed, run_model, ssl_context
from ._errors import InvalidOption, InvalidTrace, PropworkloadError
from ._events import FailureFound, Notice
from ._faults import FAULT_KINDS, FaultPlan, parse_faults
from ._loader import load_model
from ._model import Model
from ._record import redact_url
from ._runtime import StopRun
from ._target import resolve_target
from ._trace import Artifacts, TraceWriter, load_trace

__all__ = ["cli", "cli_main", "main"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_EXAMPLES = 100
DEFAULT_STEPS = 20
DEFAULT_TIME_BUDGET = 120.0


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number of seconds")
    return value


# Options that run and explore share, declared once.
_url_option = click.option(
    "--url",
    help="Base URL of the service (default: $APP_URL, else the model's embedded sample service).",
)
_steps_option = click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=DEFAULT_STEPS,
    show_default=True,
    help="Most steps in one example.",
)
_database_option = click.option(
    "--database",
    default="",
    metavar="PATH|redis://HOST:PORT/N|none",
    help="Failure database; saved failures are retried first, workers share it "
    "(default: the artifact folder's examples/).",
)


_faults_option = click.option(
    "--faults",
    default="",
    metavar="KIND,...",
    help=f"Inject network faults into the rules' requests: {', '.join(FAULT_KINDS)}, or all.",
)
_fault_rate_option = click.option(
    "--fault-rate",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Chance that a request gets a fault (with --faults)  [default: 0.25]",
)


def _fault_plan(faults: str, fault_rate: float | None) -> FaultPlan | None:
    if not faults:
        if fault_rate is not None:
            raise InvalidOption("--fault-rate needs --faults: say which faults to inject")
        return None
    kinds = parse_faults(faults)
    return FaultPlan(kinds=kinds) if fault_rate is None else FaultPlan(kinds=kinds, rate=fault_rate)


def _run_options(command: F) -> F:
    options = [
        _url_option,
        click.option(
            "--examples",
            type=click.IntRange(min=1),
            default=DEFAULT_EXAMPLES,
            show_default=True,
            help="Examples (action sequences) to try.",
        ),
        _steps_option,
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            envvar="PROPWORKLOAD_SEED",
            help="Seed of the search (default: a fresh one, printed first; $PROPWORKLOAD_SEED).",
        ),
        click.option(
            "--time-budget",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_TIME_BUDGET,
            show_default=True,
            metavar="SECONDS",
            help="Wall-clock cap: search stops at 70% of it, shrinking at 100%.",
            callback=_finite,
        ),
        _database_option,
        _faults_option,
        _fault_rate_option,
        click.option(
            "--concurrency",
            type=click.IntRange(min=2),
            default=None,
            metavar="K",
            help="Run K clients at once after a sequential prefix and check the history "
            "for linearizability (models with @operation).",
        ),
        click.option(
            "--repeat",
            type=click.IntRange(min=1),
            default=None,
            help="With --concurrency: runs of each program (scheduling differs)  [default: 3]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _execute(
    model_cls: type[Model],
    model_path: str | None,
    *,
    url: str | None,
    examples: int,
    steps: int,
    seed: int | None,
    time_budget: float,
    database: str,
    faults: str,
    fault_rate: float | None,
    concurrency: int | None,
    repeat: int | None,
) -> int:
    from ._console import ConsoleReporter

    if repeat is not None and concurrency is None:
        raise InvalidOption("--repeat needs --concurrency: it is the runs of each program")

    console = ConsoleReporter()
    pinned = seed is not None
    seed = fresh_seed() if seed is None else seed
    artifacts = Artifacts(notify=lambda message: console(Notice(message=message)))
    failures_db = open_database(database, default_folder=lambda: artifacts.folder() / "examples")
    embedded = not (url or os.environ.get("APP_URL"))
    if concurrency is not None:
        if faults:
            raise InvalidOption("--faults and --concurrency cannot be combined yet")
        with resolve_target(url, model_cls) as target, _stop_on_signals():
            return _execute_concurrent(
                model_cls,
                model_path,
                target=target,
                sample=model_cls.sample if embedded else None,
                seed=seed,
                pinned=pinned,
                examples=examples,
                time_budget=time_budget,
                database=failures_db,
                concurrency=concurrency,
                repeat=repeat or 3,
                artifacts=artifacts,
            )
    with resolve_target(url, model_cls) as target, _stop_on_signals():
        try:
            config = RunConfig(
                url=target,
                examples=examples,
                steps=steps,
                seed=seed,
                time_budget=time_budget,
                model_path=model_path,
                database=failures_db,
                retry_saved=not pinned,
                faults=_fault_plan(faults, fault_rate),
            )
        except ValueError as exc:
            raise InvalidOption(str(exc)) from None
        writer = TraceWriter.for_model(
            model_cls,
            model_path,
            seed=seed,
            target=target,
            artifacts=artifacts,
            sample=model_cls.sample if embedded else None,
        )
        result = run_model(model_cls, config, listeners=[console], write_trace=writer)
    return result.exit_code


def _execute_concurrent(
    model_cls: type[Model],
    model_path: str | None,
    *,
    target: str,
    sample: str | None,
    seed: int,
    pinned: bool,
    examples: int,
    time_budget: float,
    database: Any,
    concurrency: int,
    repeat: int,
    artifacts: Artifacts,
    progress_every: float | None = None,
    generate_share: float = 0.7,
) -> int:
    from ._concurrent import ConcurrentWriter, failure_line, program_lines, run_concurrent
    from ._engine import probe

    click.echo(
        f"SEED {seed} model={model_cls.model_name()} target={redact_url(target)} "
        f"concurrency={concurrency}"
    )
    probe(target)
    writer = ConcurrentWriter(
        model_cls=model_cls,
        model_file=model_path,
        seed=seed,
        target=target,
        sample=sample,
        concurrency=concurrency,
        repeat=repeat,
        folder=artifacts.folder,
    )
    result = run_concurrent(
        model_cls,
        url=target,
        seed=seed,
        concurrency=concurrency,
        repeat=repeat,
        examples=examples,
        time_budget=time_budget,
        database=database,
        retry_saved=not pinned,
        write=writer,
        progress=click.echo,
        progress_every=progress_every,
        generate_share=generate_share,
    )
    if result.failure is not None:
        click.echo(failure_line(result.failure))
        failed, runs = result.reproduced
        size = result.failure.program.size
        note = "flaky: it did not fail again when re-run; " if result.flaky else ""
        shrunk = f", shrunk from {result.first_size}" if result.first_size else ""
        click.echo(
            f"  minimal parallel program ({size} operations{shrunk}; {note}"
            f"failed {failed}/{runs} runs):"
        )
        for line in program_lines(result.failure):
            click.echo(line)
        click.echo(f"  timeline: {result.timeline_path}")
        click.echo(f"  trace: {result.trace_path}")
        click.echo(f"  replay: propworkload replay {result.trace_path}")
    else:
        unchecked = f" unchecked={result.unchecked}" if result.unchecked else ""
        click.echo(
            f"INVARIANT PASS linearizable histories={result.runs} "
            f"operations={result.operations}{unchecked}"
        )
    verdict = "passed" if result.passed else "failed"
    extra = f" stopped={result.stopped.replace(' ', '-')}" if result.stopped else ""
    click.echo(
        f"SUMMARY {verdict} examples={result.examples} runs={result.runs} "
        f"operations={result.operations} seconds={result.seconds:.1f}{extra}"
    )
    return result.exit_code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="propworkload")
def cli() -> None:
    """Property-based, stateful workloads for finding reliability bugs in HTTP services."""


@cli.command()
@click.argument("model", metavar="MODEL")
@_run_options
def run(model: str, **options: Any) -> int:
    """Run MODEL (path/to/model.py[::Class]) as a bounded workload."""
    model_cls, path = load_model(model)
    return _execute(model_cls, str(path), **options)


@cli.command()
@click.argument("model", metavar="MODEL")
@_url_option
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    callback=lambda c, p, v: v if v is None else _finite(c, p, v),
    help="Explore for this long (default 300 s unless --examples is given).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=1),
    default=None,
    help="Explore this many examples instead of for a time.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes exploring in parallel, each with its own seed.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    envvar="PROPWORKLOAD_SEED",
    help="First seed (worker i, round r uses a seed derived from it).",
)
@_steps_option
@_database_option
@_faults_option
@_fault_rate_option
@click.option(
    "--report-json",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the JSON report (docs/report-format.md).",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write JUnit XML: one test case per invariant.",
)
@click.option("--fail-on-gap", is_flag=True, help="Coverage gaps fail the run (exit 1).")
@click.option(
    "--concurrency",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Explore K clients at once (models with @operation); one worker, no reports.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="With --concurrency: runs of each program.",
)
def explore(
    model: str,
    url: str | None,
    time_budget: float | None,
    examples: int | None,
    workers: int,
    seed: int | None,
    steps: int,
    database: str,
    faults: str,
    fault_rate: float | None,
    report_json: Path | None,
    junit: Path | None,
    fail_on_gap: bool,
    concurrency: int | None,
    repeat: int,
) -> int:
    """Explore MODEL for a long time: every distinct failure, coverage, reports."""
    from ._console import fail_line, format_coverage, sequence_lines
    from ._explore import ExploreResult, explore_workers
    from ._explore import explore as run_explore
    from ._model import invariants_of, rules_of
    from ._progress import Progress
    from ._report import json_report, write_json_report, write_junit

    if time_budget is not None and examples is not None:
        raise InvalidOption("give --time-budget or --examples, not both")
    budget = time_budget if time_budget is not None else (300.0 if examples is None else 86400.0)
    model_cls, path = load_model(model)
    fault_plan = _fault_plan(faults, fault_rate)
    pinned = seed is not None
    seed = fresh_seed() if seed is None else seed
    embedded = not (url or os.environ.get("APP_URL"))
    if concurrency is not None:
        if workers != 1 or fault_plan or report_json or junit or fail_on_gap:
            raise InvalidOption(
                "explore --concurrency runs one worker without faults or reports (yet): "
                "drop --workers, --faults, --report-json, --junit and --fail-on-gap"
            )
        artifacts = Artifacts(notify=lambda message: click.echo(f"NOTE {message}"))
        database_path = open_database(
            database, default_folder=lambda: artifacts.folder() / "examples"
        )
        with resolve_target(url, model_cls) as target, _stop_on_signals():
            return _execute_concurrent(
                model_cls,
                str(path),
                target=target,
                sample=model_cls.sample if embedded else None,
                seed=seed,
                pinned=pinned,
                examples=examples if examples is not None else 10**9,
                time_budget=budget,
                database=database_path,
                concurrency=concurrency,
                repeat=repeat,
                artifacts=artifacts,
                progress_every=5.0,
                # Long runs: search for 90% of the budget, keep the rest for shrinking.
                generate_share=0.9,
            )
    progress = Progress(budget=budget if examples is None else None)
    artifacts = Artifacts(notify=lambda message: progress.print(f"NOTE {message}"))
    try:
        with resolve_target(url, model_cls) as target, _stop_on_signals():
            progress.print(
                f"SEED {seed} model={model_cls.model_name()} target={redact_url(target)} "
                f"workers={workers}"
            )
            if workers == 1:
                failures_db = open_database(
                    database, default_folder=lambda: artifacts.folder() / "examples"
                )
                config = RunConfig(
                    url=target,
                    seed=seed,
                    steps=steps,
                    time_budget=budget,
                    model_path=str(path),
                    database=failures_db,
                    retry_saved=not pinned,
                    faults=fault_plan,
                )

                def make_writer(round_seed: int) -> TraceWriter:
                    return TraceWriter.for_model(
                        model_cls,
                        str(path),
                        seed=round_seed,
                        target=target,
                        artifacts=artifacts,
                        sample=model_cls.sample if embedded else None,
                    )

                def found(event: Any) -> None:
                    if isinstance(event, FailureFound) and event.first and event.example.failure:
                        progress.print(
                            f"FOUND {event.example.failure.invariant} in example "
                            f"{event.example.number} ({len(event.example.steps)} steps); shrinking"
                        )

                result = run_explore(
                    model_cls,
                    config,
                    examples=examples,
                    listeners=[progress, found],
                    make_writer=make_writer,
                )
            else:
                db_spec = database or str(artifacts.folder() / "examples")
                jobs = [
                    {
                        "model": f"{path}::{model_cls.__name__}",
                        "model_path": str(path),
                        "url": target,
                        "seed": seed + 1000 * i,
                        "steps": steps,
                        "time_budget": budget,
                        "database": db_spec,
                        "retry_saved": not pinned,
                        "faults": fault_plan,
                        "examples": None if examples is None else -(-examples // workers),
                        "sample": model_cls.sample if embedded else None,
                        "worker": i,
                    }
                    for i in range(workers)
                ]
                started = time.perf_counter()
                parts = explore_workers(jobs, tick=progress.set)
                result = ExploreResult(
                    model=model_cls.model_name(), target=target, seed=seed, workers=workers
                )
                for part in parts:
                    result.merge(part)
                if not parts:
                    result.stopped = "interrupted"
                result.seconds = time.perf_counter() - started
    finally:
        progress.close()
    rules, invariants = rules_of(model_cls), invariants_of(model_cls)
    coverage = result.coverage.to_json(
        rules=rules, invariants=invariants, markers=list(model_cls._pw_markers)
    )
    result.gaps = coverage["gaps"]
    for found_failure in result.failures:
        click.echo(fail_line(found_failure.failure))
        n = len(found_failure.example.steps)
        if found_failure.flaky:
            click.echo(f"  failing sequence ({n} steps; flaky: it did not fail again):")
        elif not found_failure.minimal:
            click.echo(f"  failing sequence ({n} steps; not fully shrunk):")
        else:
            click.echo(f"  minimal sequence ({n} steps, shrunk from {found_failure.first_steps}):")
        for line in sequence_lines(found_failure.example.steps):
            click.echo(line)
        if found_failure.trace_path:
            click.echo(f"  trace: {found_failure.trace_path}")
            click.echo(f"  replay: propworkload replay {found_failure.trace_path}")
    failed_names = {f.failure.invariant for f in result.failures}
    for name, count in coverage["checks"].items():
        if name not in failed_names:
            click.echo(f"INVARIANT PASS {name} checks={count}")
    for line in format_coverage(coverage):
        click.echo(line)
    code = result.exit_code
    if code == 0 and fail_on_gap and result.gaps:
        code = 1
    if report_json:
        write_json_report(report_json, json_report(result, coverage=coverage, failed=code == 1))
        click.echo(f"REPORT json: {report_json}")
    if junit:
        write_junit(junit, result, invariants=list(coverage["checks"]), gaps_fail=fail_on_gap)
        click.echo(f"REPORT junit: {junit}")
    verdict = "failed" if code == 1 else "passed"
    extra = f" stopped={result.stopped}" if result.stopped else ""
    click.echo(
        f"SUMMARY {verdict} examples={result.examples} steps={result.steps} "
        f"seconds={result.seconds:.1f} rounds={result.rounds} workers={result.workers} "
        f"failures={len(result.failures)} gaps={len(result.gaps)}{extra}"
    )
    return code


@cli.command()
@click.argument("trace_file", metavar="TRACE")
@click.option("--url", help="Service to replay against (default: $APP_URL, else the trace's).")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=None,
    help="Replay N times and print reproduced k/N (default 1; for a concurrent trace, "
    "the runs per program it was found with).",
)
@click.option(
    "--model",
    "model_file",
    metavar="PATH",
    help="The model file, when it is no longer where the trace says.",
)
@click.option(
    "--emit-pytest",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write a pytest regression test for the trace instead of replaying it.",
)
def replay(
    trace_file: str,
    url: str | None,
    repeat: int | None,
    model_file: str | None,
    emit_pytest: Path | None,
) -> int:
    """Re-execute the steps recorded in TRACE and say whether the failure happens again."""
    from ._console import format_replay
    from ._regression import emit_pytest as write_pytest
    from ._replay import model_path_from_trace, replay_trace
    from ._target import check_url

    trace = load_trace(trace_file)
    model_path = Path(model_file) if model_file else model_path_from_trace(trace, Path(trace_file))
    if not model_path.is_file():
        raise InvalidTrace(
            f"{trace_file}: its model file {model_path} is missing; pass --model PATH"
        )
    if emit_pytest is not None and trace.get("kind") == "concurrent":
        raise InvalidOption("--emit-pytest does not write concurrent traces yet; replay them")
    if emit_pytest is not None:
        write_pytest(trace, Path(trace_file), model_path, emit_pytest)
        click.echo(
            f"wrote {emit_pytest}; run it with: APP_URL=<service> python -m pytest {emit_pytest}"
        )
        return 0
    model_cls, _ = load_model(f"{model_path}::{trace['model']['class']}")
    target: str | None
    if url:
        target = shown = check_url(url, "--url")
    elif os.environ.get("APP_URL"):
        target = shown = check_url(os.environ["APP_URL"], "APP_URL")
    elif trace.get("sample") and trace.get("sample") == model_cls.sample:
        # The run used the embedded sample service, long gone: start a fresh one.
        target, shown = None, f"embedded-{trace['sample']}-sample"
    else:
        target = shown = check_url(trace["target"], "the trace's target")
    if trace.get("kind") == "concurrent":
        return _replay_concurrent(trace, trace_file, model_cls, target, shown, repeat)
    repeat = repeat or 1
    steps = len(trace["steps"])
    click.echo(f"REPLAY {trace_file} model={model_cls.model_name()} target={shown} steps={steps}")
    reproduced = failed = 0
    detailed = False
    with _stop_on_signals():
        for run_number in range(1, repeat + 1):
            outcome = replay_trace(trace, model_cls, target)
            reproduced += outcome.reproduced
            failed += outcome.failure is not None
            if repeat == 1:
                for line in format_replay(outcome):
                    click.echo(line)
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
            click.echo(f"run {run_number}/{repeat}: {verdict}")
            if not detailed and (outcome.failure is not None or run_number == repeat):
                detailed = True
                for line in format_replay(outcome):
                    click.echo(f"  {line}")
    if repeat > 1:
        click.echo(f"REPLAY reproduced {reproduced}/{repeat}")
    return 1 if failed else 0


def _replay_concurrent(
    trace: dict[str, Any],
    trace_file: str,
    model_cls: type[Model],
    target: str | None,
    shown: str,
    repeat: int | None,
) -> int:
    from ._concurrent import Program, execute_program, failure_line
    from ._engine import probe
    from ._operations import operations_of
    from ._runtime import RunState

    try:
        program = Program.from_json(trace["program"])
        recorded = int(trace.get("repeat") or 1)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidTrace(f"{trace_file}: the concurrent program is malformed ({exc})") from None
    known = operations_of(model_cls)
    used = {
        name for branch in (program.prefix, *program.branches, program.final) for name, _ in branch
    }
    if used - set(known):
        raise InvalidTrace(
            f"{trace_file}: the trace runs operation {sorted(used - set(known))[0]!r}, which "
            f"{model_cls.__name__} does not have (was the model changed?)"
        )
    runs = repeat or max(1, recorded)
    click.echo(
        f"REPLAY {trace_file} model={model_cls.model_name()} target={shown} "
        f"operations={program.size} clients={len(program.branches)} runs={runs}"
    )
    import httpx

    reproduced = 0
    with resolve_target(target, model_cls) as url, _stop_on_signals():
        probe(url)
        with httpx.HTTPTransport(retries=0, verify=ssl_context()) as transport:
            state = RunState(url=url, transport=transport)
            state.answered()
            for number in range(1, runs + 1):
                outcome = execute_program(model_cls, program, state)
                reproduced += outcome.failed
                verdict = failure_line(outcome) if outcome.failed else "linearizable"
                click.echo(f"run {number}/{runs}: {verdict}")
    click.echo(f"REPLAY reproduced {reproduced}/{runs}")
    return 1 if reproduced else 0


@cli.command()
@click.argument("name")
def new(name: str) -> int:
    """Write models/NAME.py and .workers/workloads/NAME.py here, to start a model from."""
    from ._scaffold import scaffold

    for path in scaffold(name, Path.cwd()):
        click.echo(f"wrote {path}")
    click.echo(f"run it: APP_URL=http://HOST:PORT python3 models/{name}.py")
    return 0


@cli.command()
@click.argument("name")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Loopback port to listen on.",
)
@click.option(
    "--bug",
    "bugs",
    multiple=True,
    metavar="BUG",
    help="Switch a seeded bug on (repeatable); see --list-bugs.",
)
@click.option("--list-bugs", is_flag=True, help="Print the seeded bugs, one per line, and exit.")
def demo(name: str, port: int, bugs: tuple[str, ...], list_bugs: bool) -> int:
    """Run sample service NAME in the foreground on 127.0.0.1."""
    from .samples import load_sample, validate_bugs
    from .samples._serve import serve_socket

    module = load_sample(name)
    if list_bugs:
        width = max(len(bug.name) for bug in module.BUGS)
        for bug in module.BUGS:
            needs = f" (needs {' '.join(bug.run_options())})" if bug.run_options() else ""
            click.echo(f"{bug.name.ljust(width)}  {bug.description}{needs}")
        return 0
    chosen = validate_bugs(module, bugs)
    # IPPROTO_TCP explicitly: with proto 0, asyncio does not set TCP_NODELAY on accepted
    # connections, and Nagle plus delayed ACKs add 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise InvalidOption(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port"
        ) from None
    sock.listen(256)
    bound = sock.getsockname()[1]
    shown = ", ".join(sorted(chosen)) or "none"
    click.echo(
        f"{name} sample service on http://127.0.0.1:{bound} (bugs: {shown}); Ctrl-C stops it",
    )
    serve_socket(module.create_app(chosen), sock)
    return 0


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT end the run in order: the engine reports what it found so far
    and rewrites the trace, instead of dying mid-way."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise StopRun("terminated" if signum == signal.SIGTERM else "interrupted")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(message: str, code: int) -> NoReturn:
    one_line = " ".join(message.split())
    click.echo(f"propworkload: error: {one_line}", err=True)
    sys.exit(code)


def _invoke(command: click.Command, argv: Sequence[str] | None, prog_name: str) -> NoReturn:
    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else prog_name
        _fail(f"{exc.format_message().rstrip('.')} (see: {where} --help)", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (click.Abort, StopRun):
        _fail("interrupted", 130)
    except PropworkloadError as exc:
        _fail(str(exc), exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def cli_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``propworkload`` console script."""
    _invoke(cli, argv, "propworkload")


def main(model: type[Model], argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``model`` as a workload command with the options of ``propworkload run``.

    Put this at the bottom of a model file so that ``python3 models/x.py`` is a workload::

        if __name__ == "__main__":
            main(Payments)
    """
    if not (isinstance(model, type) and issubclass(model, Model)):
        _fail(f"main() needs a propworkload.Model subclass, got {model!r}", 2)
    model_file = sys.modules[model.__module__].__dict__.get("__file__")

    @click.command(name=model.model_name())
    @_run_options
    def workload(**options: Any) -> int:
        return _execute(model, model_file, **options)

    workload.help = f"Run the {model.__name__} model as a bounded workload."
    _invoke(workload, argv, model_file or model.model_name())
