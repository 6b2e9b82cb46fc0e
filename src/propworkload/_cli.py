"""The ``propworkload`` command line: ``run`` and ``demo``.

Exit status: 0 every invariant held; 1 an invariant failed (or a step raised); 2 usage or
model error; 3 the target could not be reached or set up. Errors with status 2 and 3 are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from ._engine import RunConfig, fresh_seed, run_model
from ._errors import InvalidOption, PropworkloadError
from ._events import Notice
from ._loader import load_model
from ._model import Model
from ._target import resolve_target
from ._trace import TraceWriter

__all__ = ["cli", "cli_main", "main"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_EXAMPLES = 100
DEFAULT_STEPS = 20
DEFAULT_TIME_BUDGET = 120.0


def _run_options(command: F) -> F:
    options = [
        click.option(
            "--url",
            help="Base URL of the service (default: $APP_URL, else the "
            "model's embedded sample service).",
        ),
        click.option(
            "--examples",
            type=click.IntRange(min=1),
            default=DEFAULT_EXAMPLES,
            show_default=True,
            help="Examples (action sequences) to try.",
        ),
        click.option(
            "--steps",
            type=click.IntRange(min=1),
            default=DEFAULT_STEPS,
            show_default=True,
            help="Most steps in one example.",
        ),
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
) -> int:
    from ._console import ConsoleReporter

    console = ConsoleReporter()
    seed = fresh_seed() if seed is None else seed
    with resolve_target(url, model_cls) as target:
        config = RunConfig(
            url=target,
            examples=examples,
            steps=steps,
            seed=seed,
            time_budget=time_budget,
            model_path=model_path,
        )
        writer = TraceWriter(
            model_file=model_path,
            model_class=model_cls.__name__,
            model_name=model_cls.model_name(),
            seed=seed,
            target=target,
            notify=lambda message: console(Notice(message=message)),
        )
        result = run_model(model_cls, config, listeners=[console], write_trace=writer)
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
            click.echo(f"{bug.name.ljust(width)}  {bug.description}")
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
    except click.Abort:
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
