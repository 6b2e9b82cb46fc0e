"""Concurrent mode: a sequential prefix, then K clients at once, checked for
linearizability against the model's operations (see ``_operations``).

Each example is a *program*: a prefix of operations run by one client, K branches run by
K threads that start together (each with its own connection), and the model's final
operations (observations) run after all of them. Every operation is recorded with its
call and return times and what it observed, or as an unknown outcome on a transport
error. The history is checked against the operations' model transitions
(``_linearizability``); a program counts as failing when any of ``repeat`` runs of it is
not linearizable, so that scheduling luck does not lose a failure while Hypothesis
shrinks the program.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException
from hypothesis.reporting import with_reporter

from ._engine import ssl_context
from ._errors import InvalidModel, InvalidOption
from ._linearizability import CheckResult, check_operations
from ._linearizability import Operation as HistoryOp
from ._model import Model
from ._operations import UNKNOWN, operations_of
from ._record import ExampleRecord, Exchange, jsonable
from ._runtime import RunState, StopRun
from ._timeline import render_timeline

__all__ = [
    "Call",
    "ConcurrentResult",
    "Program",
    "ProgramRun",
    "execute_program",
    "run_concurrent",
]

#: One operation of a program: its name and arguments.
Invocation = tuple[str, dict[str, Any]]


@attrs.frozen
class Program:
    prefix: tuple[Invocation, ...]
    branches: tuple[tuple[Invocation, ...], ...]
    final: tuple[Invocation, ...]

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(len(b) for b in self.branches)

    def to_json(self) -> dict[str, Any]:
        def ops(items: Sequence[Invocation]) -> list[dict[str, Any]]:
            return [{"operation": n, "arguments": jsonable(a)} for n, a in items]

        return {
            "prefix": ops(self.prefix),
            "branches": [ops(b) for b in self.branches],
            "final": ops(self.final),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Program:
        def ops(items: Any) -> tuple[Invocation, ...]:
            return tuple((str(i["operation"]), dict(i["arguments"])) for i in items)

        return cls(
            prefix=ops(data["prefix"]),
            branches=tuple(ops(b) for b in data["branches"]),
            final=ops(data.get("final", [])),
        )


@attrs.define
class Call:
    """One executed operation: who ran it, when, and what it observed."""

    client: int
    name: str
    arguments: dict[str, Any]
    call: float
    ret: float | None
    output: Any
    exchanges: list[Exchange]
    error: str | None = None

    def describe(self) -> tuple[str, str]:
        """The call (``pay(key=k0, amount=5)``) and what it observed (``status=201
        id=ch_91a2 amount=5``, ``?`` when unknown)."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.arguments.items())
        if self.ret is None:
            answer = "?"
        elif self.error is not None:
            answer = f"raised {self.error}"
        elif isinstance(self.output, dict):
            answer = " ".join(
                f"{k}={v if isinstance(v, str) else _short(v, 48)}" for k, v in self.output.items()
            )
        else:
            answer = _short(self.output, 60)
        return f"{self.name}({args})", answer

    def for_checker(self) -> HistoryOp:
        """This call as the linearizability checker sees it. A call that raised (not a
        transport error) observed nothing the model can use: its outcome is unknown to
        the checker, and the run reports the error."""
        return HistoryOp(
            client=self.client,
            input=(self.name, self.arguments),
            call=self.call,
            ret=None if self.error is not None else self.ret,
            output=self.output,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "operation": self.name,
            "arguments": jsonable(self.arguments),
            "call": self.call,
            "return": self.ret,
            "output": None if self.ret is None else jsonable(self.output),
            "error": self.error,
            "exchanges": [attrs.asdict(e) for e in self.exchanges],
        }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _short(value: Any, width: int = 24) -> str:
    from ._console import short

    return short(value, width)


@attrs.define
class ProgramRun:
    """One execution of a program: its history and the checker's verdict."""

    program: Program
    tenant: str
    history: list[Call]
    result: CheckResult
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.result.verdict == "illegal" or self.error is not None


class _Spec:
    def __init__(self, model_cls: type[Model]) -> None:
        self._operations = operations_of(model_cls)
        self._init = model_cls.model_state

    def init(self) -> Any:
        assert self._init is not None
        return self._init()

    def step(self, state: Any, op: HistoryOp) -> tuple[bool, Any]:
        name, arguments = op.input
        transition = self._operations[name].transition
        assert transition is not None
        output = UNKNOWN if op.unknown else op.output
        try:
            return transition(state, output, **arguments)
        except Exception as exc:
            raise StopRun(
                "model",
                InvalidModel(
                    f"the model transition of {name} raised {type(exc).__name__}: {exc} "
                    f"(on output {output!r})"
                ),
            ) from exc


def _clients(
    model_cls: type[Model], run: RunState, tenant: str, count: int
) -> list[tuple[Model, ExampleRecord]]:
    shared: dict[str, Any] = {}
    return [model_cls._pw_client(run, tenant, shared) for _ in range(count)]


def _perform(
    client: Model, record: ExampleRecord, number: int, invocation: Invocation, started: float
) -> Call:
    name, arguments = invocation
    operation = operations_of(type(client))[name]
    step = record.begin_step(name, arguments)
    call = time.perf_counter() - started
    try:
        output = operation.call(client, **arguments)
    except httpx.TransportError as exc:
        return Call(number, name, arguments, call, None, None, step.exchanges, error=str(exc))
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        ret = time.perf_counter() - started
        return Call(number, name, arguments, call, ret, None, step.exchanges, error=text)
    ret = time.perf_counter() - started
    return Call(number, name, arguments, call, ret, jsonable(output), step.exchanges)


def execute_program(
    model_cls: type[Model], program: Program, run: RunState, *, check_timeout: float = 10.0
) -> ProgramRun:
    """Run ``program`` once against ``run.url`` and check its history."""
    tenant = f"{model_cls.tenant_prefix}{secrets.token_hex(4)}"
    clients = _clients(model_cls, run, tenant, len(program.branches) + 1)
    started = time.perf_counter()
    history: list[Call] = []
    try:
        first, record = clients[0]
        history += [_perform(first, record, 0, op, started) for op in program.prefix]
        barrier = threading.Barrier(max(1, sum(1 for b in program.branches if b)))
        results: list[list[Call]] = [[] for _ in program.branches]

        raised: list[BaseException] = []

        def branch(i: int) -> None:
            if not program.branches[i]:
                return
            client, branch_record = clients[i + 1]
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=30)
            try:
                for op in program.branches[i]:
                    results[i].append(_perform(client, branch_record, i + 1, op, started))
            except BaseException as exc:  # a stop (target gone) or a bug: the main thread
                raised.append(exc)  # raises it after the join

        threads = [threading.Thread(target=branch, args=(i,)) for i in range(len(program.branches))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if raised:
            raise raised[0]
        for calls in results:
            history += calls
        history += [_perform(first, record, 0, op, started) for op in program.final]
    finally:
        for client, _ in clients:
            client.http.close()
    errors = [c for c in history if c.error is not None and c.ret is not None]
    operations = [c.for_checker() for c in history]
    result = check_operations(
        _Spec(model_cls), operations, partition=model_cls.partition, timeout=check_timeout
    )
    error = None
    if errors:
        error = f"{errors[0].name} raised {errors[0].error}"
    return ProgramRun(program=program, tenant=tenant, history=history, result=result, error=error)


def _programs(model_cls: type[Model], concurrency: int) -> st.SearchStrategy[Program]:
    operations = operations_of(model_cls)
    final: tuple[Invocation, ...] = tuple((name, {}) for name in model_cls.final_operations)
    drawable = [op for name, op in operations.items() if name not in model_cls.final_operations]
    if not drawable:
        raise InvalidModel(
            f"{model_cls.__name__} declares no @operation: --concurrency needs the operations "
            "clients run at once, each with its model transition (see docs)"
        )

    def invoking(name: str) -> Callable[[dict[str, Any]], Invocation]:
        return lambda arguments: (name, arguments)

    invocation = st.one_of(
        [st.fixed_dictionaries(op.arguments).map(invoking(op.name)) for op in drawable]
    )

    def build(prefix: list[Invocation], branches: list[list[Invocation]]) -> Program:
        return Program(tuple(prefix), tuple(tuple(b) for b in branches), final)

    return st.builds(
        build,
        st.lists(invocation, max_size=3),
        st.lists(
            st.lists(invocation, max_size=3),
            min_size=concurrency,
            max_size=concurrency,
        ),
    )


@attrs.frozen(kw_only=True)
class ConcurrentResult:
    model: str
    seed: int
    target: str
    passed: bool
    examples: int
    runs: int
    operations: int
    seconds: float
    #: Runs whose check timed out (verdict unknown): neither passed nor failed.
    unchecked: int = 0
    failure: ProgramRun | None = None
    first_size: int = 0
    reproduced: tuple[int, int] = (0, 0)
    stopped: str | None = None
    flaky: bool = False
    trace_path: Path | None = None
    timeline_path: Path | None = None

    @property
    def exit_code(self) -> int:
        if not self.passed:
            return 1
        return {"terminated": 143, "interrupted": 130}.get(self.stopped or "", 0)


def run_concurrent(
    model_cls: type[Model],
    *,
    url: str,
    seed: int,
    concurrency: int,
    repeat: int,
    examples: int,
    time_budget: float,
    database: Any = None,
    retry_saved: bool = True,
    write: Callable[[ProgramRun, ConcurrentResult | None], tuple[Path, Path]] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    progress_every: float | None = None,
    generate_share: float = 0.7,
) -> ConcurrentResult:
    """Search for a program whose history is not linearizable; shrink it."""
    if model_cls.model_state is None:
        raise InvalidModel(
            f"{model_cls.__name__} has no model_state: --concurrency needs the initial state "
            "of the reference model (a class attribute, e.g. model_state = Ledger)"
        )
    if concurrency < 2:
        raise InvalidOption("--concurrency must be at least 2 (clients at once)")
    started = time.perf_counter()
    transport = httpx.HTTPTransport(retries=0, verify=ssl_context())
    run = RunState(url=url, transport=transport)
    run.answered()
    generate_deadline = started + generate_share * time_budget
    hard_deadline = started + time_budget
    counts = {"examples": 0, "runs": 0, "operations": 0, "unchecked": 0}
    found: dict[str, Any] = {"first": None, "best": None, "last": None, "paths": None}
    stopped: list[str] = []
    last_progress = [started]

    def test(program: Program) -> None:
        deadline = hard_deadline if found["first"] else generate_deadline
        if time.perf_counter() > deadline:
            stopped.append("time budget")
            raise StopRun("time budget")
        counts["examples"] += 1
        now = time.perf_counter()
        if progress_every is not None and now - last_progress[0] >= progress_every:
            last_progress[0] = now
            progress(
                f"PROGRESS examples={counts['examples']} runs={counts['runs']} "
                f"operations={counts['operations']} failures={int(found['first'] is not None)} "
                f"elapsed={now - started:.0f}s remaining={max(0.0, hard_deadline - now):.0f}s"
            )
        failing: ProgramRun | None = None
        failures = 0
        for _ in range(repeat):
            outcome = execute_program(model_cls, program, run)
            counts["runs"] += 1
            counts["operations"] += len(outcome.history)
            counts["unchecked"] += outcome.result.verdict == "unknown"
            if outcome.failed:
                failures += 1
                failing = failing or outcome
        if failing is None:
            return
        found["last"] = (failing, failures)
        if found["first"] is None:
            found["first"] = failing
            progress(
                f"FOUND not linearizable in example {counts['examples']} "
                f"({program.size} operations); shrinking"
            )
            if write is not None:
                found["paths"] = write(failing, None)
        best = found["best"]
        if best is None or program.size <= best[0].program.size:
            found["best"] = (failing, failures)
        raise AssertionError("the history is not linearizable")

    phases = [Phase.explicit, Phase.generate, Phase.shrink]
    if retry_saved:
        phases.insert(1, Phase.reuse)
    wrapped = settings(
        max_examples=examples,
        deadline=None,
        database=database,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=phases,
    )(given(_programs(model_cls, concurrency))(test))
    hypothesis.seed(seed)(wrapped)
    wrapped._hypothesis_internal_add_digest = (  # type: ignore[attr-defined]
        (
            f"propworkload:{model_cls.model_name()}:{model_cls.__qualname__}:"
            f"concurrent={concurrency}"
        ).encode()
    )
    flaky = False
    try:
        with with_reporter(lambda _message: None):
            wrapped()
    except AssertionError:
        pass
    except StopRun as stop:
        if stop.error is not None and found["first"] is None:
            raise stop.error from None
        stopped.append(stop.reason)
    except Flaky:
        flaky = found["first"] is not None
    except HypothesisException as exc:
        if found["first"] is None:
            raise InvalidModel(f"{model_cls.__name__}: {type(exc).__name__}: {exc}") from None
    finally:
        transport.close()
    chosen = found["last"] if found["last"] and not stopped and not flaky else found["best"]
    failure, failures = chosen if chosen else (None, 0)
    result = ConcurrentResult(
        model=model_cls.model_name(),
        seed=seed,
        target=url,
        passed=failure is None,
        examples=counts["examples"],
        runs=counts["runs"],
        operations=counts["operations"],
        unchecked=counts["unchecked"],
        seconds=time.perf_counter() - started,
        failure=failure,
        first_size=found["first"].program.size if found["first"] else 0,
        reproduced=(failures, repeat),
        stopped=stopped[0] if stopped else None,
        flaky=flaky,
    )
    if failure is not None and write is not None:
        trace, timeline = write(failure, result)
        result = attrs.evolve(result, trace_path=trace, timeline_path=timeline)
    return result


def timeline_html(model_cls: type[Model], outcome: ProgramRun) -> str:
    """The HTML timeline of one run of a program."""
    history = [c.for_checker() for c in outcome.history]
    by_op = {id(op): call for op, call in zip(history, outcome.history, strict=True)}
    return render_timeline(
        history,
        outcome.result,
        title=f"{model_cls.model_name()}: {outcome.tenant}",
        describe=lambda op: by_op[id(op)].describe(),
        show_state=lambda state: _short(jsonable(state), 200),
    )


@attrs.define
class ConcurrentWriter:
    """Writes the trace (JSON) and the timeline (HTML) of a concurrent failure; the same
    paths are rewritten as shrinking improves it."""

    model_cls: type[Model]
    model_file: str | None
    seed: int
    target: str
    sample: str | None
    concurrency: int
    repeat: int
    folder: Callable[[], Path]
    paths: tuple[Path, Path] | None = None

    def __call__(self, outcome: ProgramRun, result: ConcurrentResult | None) -> tuple[Path, Path]:
        from . import __version__
        from ._record import redact_url
        from ._trace import TRACE_FORMAT, TRACE_VERSION, write_json_atomic

        if self.paths is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base = self.folder() / "traces"
            base.mkdir(parents=True, exist_ok=True)
            stem = f"{self.model_cls.model_name()}-{self.seed}-{stamp}-concurrent"
            self.paths = (base / f"{stem}.json", base / f"{stem}.html")
        trace, timeline = self.paths
        first = outcome.result.blocked[0] if outcome.result.blocked else None
        data = {
            "format": TRACE_FORMAT,
            "version": TRACE_VERSION,
            "kind": "concurrent",
            "model": {
                "file": str(Path(self.model_file).resolve()) if self.model_file else None,
                "class": self.model_cls.__name__,
                "name": self.model_cls.model_name(),
            },
            "seed": self.seed,
            "target": redact_url(self.target),
            "sample": self.sample,
            "propworkload_version": __version__,
            "status": "shrinking" if result is None else ("flaky" if result.flaky else "minimal"),
            "concurrency": self.concurrency,
            "repeat": self.repeat,
            "reproduced": None if result is None else list(result.reproduced),
            "tenant": outcome.tenant,
            "failure": _failure(outcome),
            "program": outcome.program.to_json(),
            "history": [call.to_json() for call in outcome.history],
            "first_unlinearizable": first,
            "timeline": str(timeline),
            "steps": [],
        }
        write_json_atomic(trace, data)
        page = timeline_html(self.model_cls, outcome)
        partial = timeline.with_name(f".{timeline.name}.tmp")
        partial.write_text(page, encoding="utf-8")
        partial.replace(timeline)
        return trace, timeline


def _failure(outcome: ProgramRun) -> dict[str, Any]:
    if outcome.error is not None and outcome.result.verdict != "illegal":
        return {
            "invariant": "unexpected_error",
            "expected": "no exception",
            "actual": outcome.error,
            "ids": {"tenant": outcome.tenant},
            "step": 0,
        }
    blocked = outcome.result.blocked
    call = outcome.history[blocked[0]] if blocked else None
    actual = "no order of the operations explains the results"
    if call is not None:
        text, answer = call.describe()
        actual = f"{text} -> {answer} fits no order of the operations"
    return {
        "invariant": "linearizable",
        "expected": "linearizable",
        "actual": actual,
        "ids": {"tenant": outcome.tenant, "client": call.client if call else None},
        "step": 0,
    }


def failure_line(outcome: ProgramRun) -> str:
    """The ``INVARIANT FAIL`` line of a concurrent failure."""
    failure = _failure(outcome)
    ids = " ".join(f"{k}={v}" for k, v in failure["ids"].items() if v is not None)
    return (
        f"INVARIANT FAIL {failure['invariant']} expected={failure['expected']} "
        f"actual={_cut(failure['actual'], 110)} {ids}"
    )


def program_lines(outcome: ProgramRun, most: int = 44) -> list[str]:
    """The program of a run: the prefix, then the clients' operations side by side, then
    the final observations; each with what it observed."""
    calls = iter(outcome.history)
    program = outcome.program
    lines = []
    prefix = [next(calls) for _ in program.prefix]
    if prefix:
        lines.append("    prefix (client 0):")
        lines += [f"      {c.describe()[0]} -> {c.describe()[1]}" for c in prefix]
    branches = [[next(calls) for _ in branch] for branch in program.branches]
    texts = [" -> ".join(c.describe()) for branch in branches for c in branch]
    width = min(most, max([len(t) for t in texts] + [len("client 0 (idle)")]))
    header = " | ".join(
        (f"client {i + 1}" + ("" if branch else " (idle)")).ljust(width)
        for i, branch in enumerate(branches)
    )
    lines.append(f"    at once: {header.rstrip()}")
    for row in range(max((len(b) for b in branches), default=0)):
        cells = []
        for branch in branches:
            if row < len(branch):
                text, answer = branch[row].describe()
                cells.append(_cut(f"{text} -> {answer}", width).ljust(width))
            else:
                cells.append(" " * width)
        lines.append(f"             {' | '.join(cells).rstrip()}")
    final = list(calls)
    if final:
        lines.append("    then (client 0):")
        lines += [f"      {c.describe()[0]} -> {c.describe()[1]}" for c in final]
    return lines
