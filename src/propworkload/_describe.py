"""Parallel programs' runs as text and pictures: one operation's call and answer, the
clients side by side, the HTML timeline. Reporters and traces use these; the parallel
driver only needs :func:`describe_step`, for a failure's line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._record import ExampleRecord, Step, jsonable
from ._text import cut, short
from ._timeline import render_timeline

__all__ = ["describe_operation", "describe_step", "program_lines", "timeline_html"]


def describe_step(step: Step, width: int = 48) -> tuple[str, str]:
    """An operation's call (``pay(key=k0, amount=5)``) and what it observed
    (``status=201 id=ch_91a2 amount=5``; ``?`` when its outcome is unknown)."""
    if step.error is not None and step.ret is not None:
        return describe_operation(step.rule, step.arguments, None)[0], f"raised {step.error}"
    return describe_operation(
        step.rule, step.arguments, step.output, answered=step.ret is not None, width=width
    )


def describe_operation(
    name: str, arguments: Mapping[str, Any], output: Any, *, answered: bool = True, width: int = 48
) -> tuple[str, str]:
    """An operation's call and what it observed, as :func:`describe_step` shows them."""
    call = ", ".join(f"{k}={short(v, 24)}" for k, v in arguments.items())
    if not answered:
        return f"{name}({call})", "?"
    shown = jsonable(output)
    if isinstance(shown, dict):
        answer = " ".join(
            f"{k}={v if isinstance(v, str) else short(v, width)}" for k, v in shown.items()
        )
    else:
        answer = short(shown, 60)
    return f"{name}({call})", answer


def timeline_html(model_name: str, record: ExampleRecord) -> str:
    """The HTML timeline of a parallel program's run."""
    history = record.history
    assert history is not None
    by_op = {
        id(op): record.steps[index - 1]
        for op, index in zip(history.operations, history.steps, strict=True)
    }
    return render_timeline(
        history.operations,
        history.result,
        title=f"{model_name}: {record.tenant}",
        describe=lambda op: describe_step(by_op[id(op)]),
        show_state=lambda state: short(jsonable(state), 200),
    )


def program_lines(record: ExampleRecord, most: int = 44) -> list[str]:
    """A run of a program as lines: the prefix, the clients side by side, the final
    operations; each operation with what it observed."""
    program = record.program
    assert program is not None
    by_client: dict[int, list[Step]] = {}
    for step in record.steps:
        by_client.setdefault(step.client or 0, []).append(step)
    first = by_client.get(0, [])
    prefix, final = first[: len(program.prefix)], first[len(program.prefix) :]
    lines = []
    if prefix:
        lines.append("    prefix (client 0):")
        lines += [f"      {' -> '.join(describe_step(s))}" for s in prefix]
    branches = [by_client.get(i, []) for i in range(1, program.clients + 1)]
    texts = [_cell(step) for branch in branches for step in branch]
    width = min(most, max([len(t) for t in texts] + [len("client 0 (idle)")]))
    shown = [i for i, branch in enumerate(branches) if branch] or [0]
    idle = len(branches) - len([b for b in branches if b])
    header = " | ".join(f"client {i + 1}".ljust(width) for i in shown)
    note = f"   ({idle} more idle)" if idle and len(shown) < len(branches) else ""
    lines.append(f"    at once: {header.rstrip()}{note}")
    for row in range(max((len(b) for b in branches), default=0)):
        cells = []
        for i in shown:
            branch = branches[i]
            cells.append(
                cut(_cell(branch[row]), width).ljust(width) if row < len(branch) else " " * width
            )
        lines.append(f"             {' | '.join(cells).rstrip()}")
    if final:
        lines.append("    then (client 0):")
        lines += [f"      {' -> '.join(describe_step(s))}" for s in final]
    return lines


def _cell(step: Step) -> str:
    call, answer = describe_step(step)
    wait = f"[+{step.delay * 1000:.0f}ms] " if step.delay else ""
    faults = [e.fault["kind"] for e in step.own_exchanges() if e.fault]
    injected = f" [{', '.join(faults)}]" if faults else ""
    return f"{wait}{call} -> {answer}{injected}"
