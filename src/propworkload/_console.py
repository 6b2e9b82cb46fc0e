"""The console output of a run: the contract of ``../DESIGN.md`` ("Output contract").

::

    SEED 1234 model=payments target=http://127.0.0.1:8000
    INVARIANT FAIL charged_once expected=1 actual=2 customer=cus_7f3a key=k0 step=3
      minimal sequence (3 steps, shrunk from 37):
        1. k0 = charge(amount=1)     -> 201 ch_91a2
        2. refund_full(key=k0)       -> 201 re_0c1d
        3. retry_charge(key=k0)      -> 201 ch_77b0
      trace: .propworkload/traces/payments-1234-20261127-171500.json
    SUMMARY failed examples=14 steps=212 seconds=3.1
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ._describe import program_lines
from ._events import Event, FailureFound, Notice, RunFinished, RunStarted
from ._record import ExampleRecord, Exchange, Failure, Step, redact_url
from ._replay import ReplayOutcome
from ._results import RunResult, verdict
from ._text import VALUE_WIDTH, cut, focus, short, where_they_differ

__all__ = [
    "ConsoleReporter",
    "example_lines",
    "fail_line",
    "focus",
    "format_coverage",
    "format_replay",
    "format_result",
    "format_step",
    "found_line",
    "sequence_lines",
    "short",
    "trace_lines",
]

CALL_WIDTH = 44


def _expected_actual(expected: Any, actual: Any) -> tuple[str, str]:
    shown_e, shown_a = short(expected), short(actual)
    if shown_e.endswith("...") or shown_a.endswith("..."):
        focused_e, focused_a = focus(expected, actual)
        shown_e, shown_a = short(focused_e), short(focused_a)
        if shown_e == shown_a:
            # Still alike once cut (long texts, values that differ deep inside): show
            # each from just before where they differ.
            whole_e, whole_a = short(focused_e, 10**6), short(focused_a, 10**6)
            shown_e, shown_a = where_they_differ(whole_e, whole_a)
    return shown_e, shown_a


def _outcome(step: Step) -> str:
    if step.failed_check is not None:
        return f"{_http_outcome(step)}  [{step.failed_check} failed]"
    if step.error is not None:
        return f"raised {short(step.error)}"
    return _http_outcome(step)


def _answer(exchange: Exchange) -> str:
    """``201 ch_91a2``, ``409 already_refunded``, or the error that replaced the answer."""
    fault = exchange.fault
    if exchange.status is None:
        if fault is not None:
            return str(fault["kind"])
        return short(exchange.error or "no response")
    body = exchange.json()
    detail = ""
    if isinstance(body, dict):
        for field in ("id", "error"):
            if isinstance(body.get(field), str | int):
                detail = f" {short(body[field], 32)}"
                break
    if fault is None:
        return f"{exchange.status}{detail}"
    label = fault["kind"]
    if label == "delay":
        label = f"delay {fault.get('delay', 0) * 1000:.0f}ms"
    return f"{exchange.status}{detail} [{label}]"


def _http_outcome(step: Step) -> str:
    exchanges = step.own_exchanges()
    if not exchanges:
        return "ok"
    # Attempts that went unanswered (an injected fault, a timeout) come first, in order.
    failed = [_answer(e) for e in exchanges[:-1] if e.status is None]
    last = _answer(exchanges[-1])
    if step.unknown is not None:
        return ", ".join([*failed, last]) + ": outcome unknown"
    return f"{', '.join(failed)}, then {last}" if failed else last


def format_step(step: Step) -> tuple[str, str]:
    """The call (``k0 = charge(amount=1)``) and outcome (``201 ch_91a2``) of a step."""
    args = ", ".join(f"{k}={short(v, 32)}" for k, v in step.arguments.items())
    call = f"{step.rule}({args})"
    if step.result is not None:
        call = f"{short(step.result, 24)} = {call}"
    return call, _outcome(step)


def fail_line(failure: Failure) -> str:
    """``INVARIANT FAIL name expected=... actual=... ids... step=N``."""
    expected, actual = _expected_actual(failure.expected, failure.actual)
    if failure.operation is not None and isinstance(failure.actual, str):
        # A history that is not linearizable: the operation that fits no order, as text.
        actual = cut(" ".join(failure.actual.split()), 2 * VALUE_WIDTH)
    head = f"INVARIANT FAIL {failure.invariant} expected={expected} actual={actual}"
    ids = " ".join(f"{k}={short(v, 40)}" for k, v in failure.ids.items() if v is not None)
    return " ".join(part for part in (head, ids, f"step={failure.step}") if part)


def also_line(example: ExampleRecord, *, flaky: bool = False) -> str:
    """``ALSO FAIL name ...``: a failure of another kind than the run's, as it was seen
    (not shrunk; ``flaky``: shrinking ended on it, and it did not fail again)."""
    assert example.failure is not None
    detail = fail_line(example.failure).removeprefix("INVARIANT FAIL ")
    n = example.size
    noun = (
        ("operation" if n == 1 else "operations")
        if example.parallel
        else ("step" if n == 1 else "steps")
    )
    if flaky:
        return f"ALSO FAIL {detail} (flaky: it did not fail again when re-run; {n} {noun})"
    return f"ALSO FAIL {detail} (not shrunk: {n} {noun})"


def sequence_lines(steps: list[Step]) -> list[str]:
    """One numbered line per step: the call, then its outcome."""
    calls = [format_step(step) for step in steps]
    width = min(max((len(c) for c, _ in calls), default=0), CALL_WIDTH)
    number_width = len(str(len(steps)))
    lines = []
    for step, (call, outcome) in zip(steps, calls, strict=True):
        number = f"{step.index}.".rjust(number_width + 1)
        lines.append(f"    {number} {call.ljust(width)} -> {outcome}")
    return lines


def example_lines(
    example: ExampleRecord,
    *,
    shrunk_from: int | None,
    flaky: bool = False,
    stopped: str | None = None,
    minimal: bool = True,
) -> list[str]:
    """A failing example under its ``INVARIANT FAIL`` line: how it came to be, then its
    steps (or, for a parallel program, its clients side by side)."""
    n = example.size
    noun = (
        ("operation" if n == 1 else "operations")
        if example.parallel
        else ("step" if n == 1 else "steps")
    )
    what = "parallel program" if example.parallel else "sequence"
    runs = f"; failed {example.failed_runs}/{example.runs} runs" if example.parallel else ""
    if flaky:
        head = f"  failing {what} ({n} {noun}; flaky: it did not fail again when re-run{runs}):"
    elif not minimal and not stopped:
        head = f"  failing {what} ({n} {noun}; not fully shrunk{runs}):"
    else:
        origin = f", shrunk from {shrunk_from}" if shrunk_from else ""
        cut_short = ""
        if stopped == "time budget":
            cut_short = "; shrinking stopped at the time budget"
        elif stopped:
            cut_short = f"; shrinking stopped: {stopped}"
        head = f"  minimal {what} ({n} {noun}{origin}{cut_short}{runs}):"
    body = program_lines(example) if example.parallel else sequence_lines(example.steps)
    return [head, *(body or _no_steps(example.failure))]


def _no_steps(failure: Failure | None) -> list[str]:
    """What stands for an empty sequence: the failure came before the first step."""
    name = failure.invariant if failure is not None else "the failure"
    return [f"    (none: {name} failed at its first check, before any step)"]


def trace_lines(trace_path: Path | None, example: ExampleRecord) -> list[str]:
    """Where the trace (and a parallel program's timeline) is, and how to replay it."""
    if trace_path is None:
        return []
    lines = []
    if example.parallel:
        lines.append(f"  timeline: {trace_path.with_suffix('.html')}")
    lines.append(f"  trace: {trace_path}")
    lines.append(f"  replay: propworkload replay {trace_path}")
    return lines


def format_result(result: RunResult) -> list[str]:
    """The lines printed when a run ends (after the SEED line)."""
    lines: list[str] = []
    if result.failure is not None and result.example is not None:
        lines.append(fail_line(result.failure))
        first = result.first_example
        lines += example_lines(
            result.example,
            shrunk_from=first.size if first is not None else None,
            flaky=result.flaky,
            stopped=result.stopped,
        )
        lines += trace_lines(result.trace_path, result.example)
        for other in result.others:
            lines.append(also_line(other.example, flaky=other.flaky))
            lines += trace_lines(other.trace_path, other.example)
    else:
        for name, count in result.checks.items():
            unchecked = ""
            if name == "linearizable" and result.unchecked:
                unchecked = f" unchecked={result.unchecked} (the check timed out)"
            lines.append(f"INVARIANT PASS {name} checks={count}{unchecked}")
        coverage = result.coverage
        for name, missed in sorted(coverage.unobserved.items()):
            lines.append(
                f"INVARIANT UNOBSERVED {name} runs={missed} of {coverage.invariant_runs[name]} "
                f"(transport errors; last: {short(coverage.unobserved_errors.get(name, ''))})"
            )
    for name, count in sorted(result.accepted.items()):
        lines.append(f"INVARIANT ACCEPTED {name} deviations={count} (a known deviation)")
    if result.saved_dropped:
        n = result.saved_dropped
        lines.append(
            f"SAVED {n} saved failure{'s' if n > 1 else ''} from earlier runs "
            f"did not fail again and {'were' if n > 1 else 'was'} dropped from the failure database"
        )
    extra = f" stopped={result.stopped.replace(' ', '-')}" if result.stopped else ""
    if result.saved_retried:
        reproduced = result.saved_retried - result.saved_dropped
        extra += f" saved-failures={result.saved_retried} reproduced={reproduced}"
    if result.faults is not None:
        injected = result.coverage.faults
        extra += f" faults={sum(injected.values())}"
        if injected:
            extra += " (" + ", ".join(f"{k}={v}" for k, v in sorted(injected.items())) + ")"
    if result.abandoned:
        # Abandoned examples are among the discarded ones (and among the shrink runs).
        run = result.examples + result.discarded + result.shrink_runs
        share = result.abandoned / max(run, 1)
        extra += f" abandoned={result.abandoned} ({share:.0%} of examples)"
    if result.concurrency is not None:
        extra += f" runs={result.runs}"
        if result.unchecked:
            extra += f" unchecked={result.unchecked}"
    shrinking = f" discarded={result.discarded}" if result.discarded else ""
    shrinking += f" shrink_runs={result.shrink_runs}" if result.shrink_runs else ""
    lines.append(
        f"SUMMARY {verdict(result.exit_code)} examples={result.examples}{shrinking} "
        f"steps={result.steps} "
        f"seconds={result.seconds:.1f}{extra}"
    )
    return lines


def found_line(example: ExampleRecord) -> str:
    """``FOUND <invariant> in example N (M steps); shrinking``."""
    name = example.failure.invariant if example.failure else "?"
    n = example.size
    noun = (
        ("operation" if n == 1 else "operations")
        if example.parallel
        else ("step" if n == 1 else "steps")
    )
    return f"FOUND {name} in example {example.number} ({n} {noun}); shrinking"


def format_replay(outcome: ReplayOutcome, *, differences: bool = True) -> list[str]:
    """The lines printed for one replay of a trace."""
    lines: list[str] = []
    steps = outcome.record.steps
    n = len(steps)
    if outcome.failure is not None:
        lines.append(fail_line(outcome.failure))
        lines.append(f"  replayed sequence ({n} step{'s' if n != 1 else ''}):")
        lines.extend(sequence_lines(steps) or _no_steps(outcome.failure))
    expected = _kind_named(outcome.expected)
    got = _kind_named(outcome.failure.kind) if outcome.failure is not None else ""
    if got == expected and not outcome.reproduced:
        # One check failing the other way (a yes/no answer): the kinds say which way.
        assert outcome.failure is not None
        expected = _kind_named(outcome.expected, way=True)
        got = _kind_named(outcome.failure.kind, way=True)
    if outcome.reproduced:
        assert outcome.failure is not None
        lines.append(f"REPLAY reproduced: {expected} failed again at step {outcome.failure.step}")
    elif outcome.failure is not None:
        lines.append(f"REPLAY failed differently: {got}, where the recording failed {expected}")
    else:
        lines.append(f"REPLAY did not reproduce: {expected} held through all {n} steps")
    if differences and outcome.differences and not outcome.reproduced:
        lines.append("  what differed from the recording:")
        lines.extend(f"    {line}" for line in outcome.differences)
    return lines


def _kind_named(kind: str, *, way: bool = False) -> str:
    """A failure's kind as words: ``unexpected_error in refund`` for an unexpected error
    in a rule, else the invariant (with ``way``, and which way a yes/no check failed:
    ``refund_accepted[True->False]``)."""
    name, _, rule = kind.partition("@")
    if rule:
        return f"{name} in {rule}"
    return name if way else name.split("[", 1)[0]


def format_coverage(coverage: dict[str, Any]) -> list[str]:
    """The coverage part of an exploration's summary (from the report's coverage object)."""
    lines = ["COVERAGE rules:"]
    rules = coverage["rules"]
    width = max((len(name) for name in rules), default=0)
    for name, counts in rules.items():
        lines.append(
            f"  {name.ljust(width)}  chosen={counts['chosen']} ran={counts['ran']} "
            f"rejected={counts['rejected_by_precondition']}"
        )
    checks = " ".join(f"{name}={n}" for name, n in coverage["checks"].items())
    lines.append(f"COVERAGE checks: {checks or 'none'}")
    lines.append("COVERAGE endpoints:")
    endpoints = coverage["endpoints"]
    width = max((len(name) for name in endpoints), default=0)
    for name, stats in endpoints.items():
        statuses = " ".join(f"{status}={n}" for status, n in stats["statuses"].items())
        lines.append(
            f"  {name.ljust(width)}  {statuses}  p50={stats['p50_ms']:.1f}ms "
            f"p99={stats['p99_ms']:.1f}ms"
        )
    lengths = [int(k) for k, n in coverage["steps_per_example"].items() for _ in range(n)]
    if lengths:
        lines.append(
            f"COVERAGE steps per example: min={lengths[0]} "
            f"median={lengths[len(lengths) // 2]} max={lengths[-1]}"
        )
    markers = " ".join(f"{short(name)}={n}" for name, n in coverage["sometimes"].items())
    lines.append(f"COVERAGE sometimes: {markers or 'none'}")
    for key, title in (
        ("faults", "faults injected"),
        ("unknown_outcomes", "unknown outcomes"),
        ("unobserved_invariants", "invariants unobserved"),
    ):
        counts = coverage.get(key) or {}
        if counts:
            lines.append(f"COVERAGE {title}: " + " ".join(f"{k}={n}" for k, n in counts.items()))
    lines.extend(f"GAP {gap}" for gap in coverage["gaps"])
    return lines


class ConsoleReporter:
    """Prints a run's events in the workload output format."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            target = redact_url(event.target)
            clients = event.settings.get("concurrency")
            extra = f" concurrency={clients}" if clients else ""
            self._print(f"SEED {event.seed} model={event.model} target={target}{extra}")
        elif isinstance(event, Notice):
            self._print(f"NOTE {event.message}")
        elif isinstance(event, FailureFound) and event.first:
            self._print(found_line(event.example))
        elif isinstance(event, RunFinished):
            for line in format_result(event.result):
                self._print(line)
