"""The ``propworkload`` command line: ``run``, ``explore``, ``replay``, ``check``, ``new``
and ``demo``.

Exit status: 0 every invariant held; 1 an invariant failed (or a step raised); 2 usage or
model error; 3 the target could not be reached or set up (``check``: 0 linearizable, 1 not,
3 unknown). Errors with status 2 and 3 are
one line on stderr, never a traceback. Everything printed is scrubbed of secrets
(``_redact``): the command line's standard streams are wrapped first thing.
"""

from __future__ import annotations

import math
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from . import _commands as commands
from ._commands import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_EXAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TIME_BUDGET,
    ExploreOptions,
    RunOptions,
)
from ._errors import InvalidOption, PropworkloadError
from ._faults import FAULT_KINDS
from ._histories import FORMATS
from ._linearizability import checker_core
from ._loader import load_model
from ._model import Model
from ._redact import install_console, scrub
from ._scaffold import scaffold
from ._signals import STATUS, StopRun, handling_signals, interruptible, stop_requested
from .samples import load_sample, validate_bugs
from .samples._serve import serve_socket

__all__ = ["cli", "cli_main", "main"]

F = TypeVar("F", bound=Callable[..., Any])


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
    help="Inject network faults into the requests of rules (and operations): "
    f"{', '.join(FAULT_KINDS)}, or all.",
)
_fault_rate_option = click.option(
    "--fault-rate",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Chance that a request gets a fault (with --faults)  [default: 0.25]",
)


_concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Each example is a parallel program: a prefix, then K clients at once; the "
    "history must be linearizable (models with @operation).",
)
_repeat_option = click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=None,
    help="With --concurrency: runs of each program before it passes (once one failed, "
    "runs adapt to how often it fails)  [default: 3]",
)


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
        _concurrency_option,
        _repeat_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _stoppable(call: Callable[[], int]) -> int:
    """``call()`` with SIGTERM and Ctrl-C owned by :mod:`propworkload._signals`: a
    command stopped by one is never a pass, even if the signal came as it finished."""
    with handling_signals():
        code = call()
        reason = stop_requested()
        return STATUS.get(reason, 130) if code == 0 and reason is not None else code


def _execute(model_cls: type[Model], model_path: str | None, **options: Any) -> int:
    return _stoppable(lambda: commands.run(model_cls, model_path, RunOptions(**options)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="propworkload",
    # Which linearizability checker core this installation uses (compiled, or pure Python
    # when it was built without a C compiler or PROPWORKLOAD_PURE_CHECKER is set).
    message=f"%(prog)s, version %(version)s (checker core: {checker_core()})",
)
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
@_concurrency_option
@_repeat_option
def explore(model: str, **options: Any) -> int:
    """Explore MODEL for a long time: every distinct failure, coverage, reports."""
    model_cls, path = load_model(model)
    return _stoppable(lambda: commands.explore(model_cls, str(path), ExploreOptions(**options)))


@cli.command()
@click.argument("trace_file", metavar="TRACE")
@click.option("--url", help="Service to replay against (default: $APP_URL, else the trace's).")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=None,
    help="Replay N times and print reproduced k/N (default 1; for a parallel program, "
    "as many runs as the search needed to see it fail).",
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

    def replay_trace() -> int:
        with interruptible():
            return commands.replay(
                trace_file, url=url, repeat=repeat, model_file=model_file, emit_pytest=emit_pytest
            )

    return _stoppable(replay_trace)


@cli.command()
@click.argument("history", metavar="HISTORY")
@click.option(
    "--model",
    required=True,
    metavar="MODEL",
    help="The model (path/to/model.py[::Class]) whose model functions the history must fit.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    callback=_finite,
    help="Give up after this long: the verdict is unknown (exit 3).",
)
@click.option(
    "--timeline",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the HTML timeline here (default: HISTORY.html beside the history).",
)
@click.option(
    "--format",
    "history_format",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="The history's format: a propworkload history (json), a parallel trace, or "
    "Porcupine's kv log; auto tells them by their content.",
)
def check(
    history: str, model: str, timeout: float, timeline: Path | None, history_format: str
) -> int:
    """Check a recorded HISTORY for linearizability against MODEL's operations
    (exit 0 linearizable, 1 not, 3 unknown: timed out)."""
    model_cls, _ = load_model(model)
    return _stoppable(
        lambda: commands.check(
            history, model_cls, format=history_format, timeout=timeout, timeline=timeline
        )
    )


@cli.command()
@click.argument("name")
def new(name: str) -> int:
    """Write models/NAME.py and .workers/workloads/NAME.py here, to start a model from."""
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


def _fail(message: str, code: int) -> NoReturn:
    one_line = scrub(" ".join(message.split()))
    click.echo(f"propworkload: error: {one_line}", err=True)
    sys.exit(code)


def _stopped(stop: StopRun) -> NoReturn:
    """The end of a command a stop cut short: its model error if that is what it was,
    else the signal's status (143 for SIGTERM, 130 for Ctrl-C)."""
    if stop.error is not None:
        _fail(str(stop.error), stop.error.exit_code)
    _fail(stop.reason, STATUS.get(stop.reason, 130))


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
    except StopRun as stop:
        # Stopped before a run had started (it reports the stop itself once started).
        _stopped(stop)
    except click.Abort as exc:
        # click turns a KeyboardInterrupt leaving a command (a StopRun is one: replay
        # stopped by SIGTERM) into Abort; the stop it was still decides the status.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, StopRun):
            _stopped(cause)
        _fail("interrupted", 130)
    except PropworkloadError as exc:
        _fail(str(exc), exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def cli_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``propworkload`` console script."""
    install_console()
    _invoke(cli, argv, "propworkload")


def main(model: type[Model], argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``model`` as a workload command with the options of ``propworkload run``.

    Put this at the bottom of a model file so that ``python3 models/x.py`` is a workload::

        if __name__ == "__main__":
            main(Payments)
    """
    install_console()
    if not (isinstance(model, type) and issubclass(model, Model)):
        _fail(f"main() needs a propworkload.Model subclass, got {model!r}", 2)
    model_file = sys.modules[model.__module__].__dict__.get("__file__")

    @click.command(name=model.model_name())
    @_run_options
    def workload(**options: Any) -> int:
        return _execute(model, model_file, **options)

    workload.help = f"Run the {model.__name__} model as a bounded workload."
    _invoke(workload, argv, model_file or model.model_name())
