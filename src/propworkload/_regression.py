"""Writing a trace as a standalone, readable pytest regression test."""

from __future__ import annotations

import ast
import keyword
import os
import time
from pathlib import Path
from typing import Any

from ._errors import InvalidTrace
from ._redact import write_text_atomic
from ._text import short
from ._trace import is_parallel
from ._values import decode

__all__ = ["emit_pytest"]

_TEMPLATE = '''"""Regression test for {invariant}, written by propworkload from a recorded failure.

Recorded: {fail_line}
Trace: {trace_path} (seed {seed}, {date})

It runs the {n} recorded steps of the {model_class} model against $APP_URL (or the
model's embedded sample service when APP_URL is unset), checking the model's invariants
after each step as `propworkload run` does. It fails while the bug is there and passes
once it is fixed.
"""

from pathlib import Path

from propworkload import Replay

MODEL = Path(__file__).parent / {model_path!r}


def test_{test_name}() -> None:
    with Replay.from_file(MODEL, {model_class!r}) as run:
{body}
'''


_PARALLEL = '''"""Regression test for {invariant}, written by propworkload from a recorded failure.

Recorded: {fail_line}
Trace: {trace_path} (seed {seed}, {date})

It runs the recorded parallel program of the {model_class} model ({clients} clients at
once, with the recorded waits and faults) against $APP_URL (or the model's embedded sample
service when APP_URL is unset) up to {repeat} times, as `propworkload replay` does, and
checks each history for linearizability. A race does not fail every run: the search saw
this one fail {failed} of {runs} runs. The test fails while the bug is there.
"""

from pathlib import Path

from propworkload import Replay

MODEL = Path(__file__).parent / {model_path!r}

PROGRAM = {program}


def test_{test_name}() -> None:
    with Replay.from_file(MODEL, {model_class!r}) as run:
        run.program(PROGRAM, repeat={repeat})
'''


def _literal(encoded: Any) -> str:
    """Python source for a recorded value: a literal when one gives the same value back,
    else ``run.value(<as recorded>)``."""
    fallback = f"run.value({encoded!r})"
    try:
        value = decode(encoded)
        text = repr(value)
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return fallback
    return text if back == value and type(back) is type(value) else fallback


def _program_source(program: dict[str, Any]) -> str:
    """The recorded program as a Python literal, one operation per line."""

    def ops(items: list[Any], indent: str) -> str:
        if not items:
            return "[]"
        inner = "".join(f"{indent}    {item!r},\n" for item in items)
        return f"[\n{inner}{indent}]"

    clients = program.get("clients", program.get("branches", []))
    branches = "".join(f"        {ops(branch, '        ')},\n" for branch in clients)
    return (
        "{\n"
        f'    "prefix": {ops(program.get("prefix", []), "    ")},\n'
        f'    "clients": [\n{branches}    ],\n'
        f'    "final": {ops(program.get("final", []), "    ")},\n'
        "}"
    )


def _identifier(value: Any, fallback: str, taken: set[str]) -> str:
    name = value if isinstance(value, str) and value.isidentifier() else fallback
    if keyword.iskeyword(name) or name in taken or name in {"run", "MODEL", "Path", "Replay"}:
        name = fallback
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _fault_argument(fault: Any) -> Any:
    """A recorded fault as ``Replay.faults`` takes it: the kind alone when that is all."""
    if not isinstance(fault, dict):
        return None
    if fault.get("kind") == "delay":
        return {"kind": "delay", "delay": fault.get("delay", 0.0)}
    return fault.get("kind")


def _docstring_safe(text: str) -> str:
    """``text`` as it can stand inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _require_name(name: Any, what: str) -> None:
    """A name the emitted code uses as Python: refused (one line) unless it is one."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidTrace(f"the trace names a {what} {name!r:.60}, which is not a Python name")


def _model_path(model_file: Path, out: Path) -> str:
    try:
        return os.path.relpath(model_file.resolve(), out.resolve().parent)
    except ValueError:  # another drive on Windows
        return str(model_file.resolve())


def emit_pytest(trace: dict[str, Any], trace_path: Path, model_file: Path, out: Path) -> None:
    """Write ``out``: a pytest file that replays ``trace``'s steps (or its parallel
    program) and checks the model as a run does."""
    failure = trace["failure"]
    ids = " ".join(f"{k}={short(v, 40)}" for k, v in failure.get("ids", {}).items() if v)
    fail_line = (
        f"INVARIANT FAIL {failure['invariant']} expected={short(failure.get('expected'))} "
        f"actual={short(failure.get('actual'))} {ids} step={failure.get('step')}"
    )
    common = {
        "invariant": failure["invariant"],
        "fail_line": _docstring_safe(" ".join(fail_line.split())),
        "trace_path": _docstring_safe(str(trace_path)),
        "seed": trace.get("seed"),
        "date": time.strftime("%Y-%m-%d"),
        "model_class": trace["model"]["class"],
        "model_path": _model_path(model_file, out),
        "test_name": failure["invariant"] if failure["invariant"].isidentifier() else "regression",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    if is_parallel(trace):
        program = trace["program"]
        text = _PARALLEL.format(
            **common,
            clients=len(program.get("clients", program.get("branches", []))),
            repeat=max(1, int(trace.get("replay_runs") or trace.get("repeat") or 1)),
            failed=int(trace.get("failed_runs") or 1),
            runs=int(trace.get("runs") or trace.get("repeat") or 1),
            program=_program_source(program),
        )
        write_text_atomic(out, text)
        return
    taken: set[str] = set()
    # Recorded bundle contents, as (recorded value, variable name) in insertion order.
    bundles: dict[str, list[tuple[Any, str]]] = {}
    lines: list[str] = []
    for number, step in enumerate(trace["steps"], 1):
        arguments = []
        _require_name(step["rule"], "rule")
        for name, value in step["arguments"].items():
            _require_name(name, "argument")
            source = step.get("bundle_arguments", {}).get(name)
            variable = None
            if source is not None:
                entries = bundles.get(source["bundle"], [])
                for i, (recorded, var) in enumerate(entries):
                    if recorded == value:
                        variable = var
                        if source.get("consumes"):
                            del entries[i]
                        break
            arguments.append(f"{name}={variable if variable else _literal(value)}")
        call = f"run.{step['rule']}({', '.join(arguments)})"
        faults = [e.get("fault") for e in step.get("exchanges", []) if e.get("phase") == "rule"]
        indent = "        "
        if any(faults):
            shown = ", ".join(repr(_fault_argument(fault)) for fault in faults)
            lines.append(f"        with run.faults({shown}):")
            indent = "            "
        targets = step.get("targets") or []
        if targets:
            stem = (
                targets[0] if isinstance(targets[0], str) and targets[0].isidentifier() else "value"
            )
            fallback = f"{stem}_{number}"
            if step.get("multiple"):
                values = step.get("result") or []
                names = [_identifier(v, f"{fallback}_{i}", taken) for i, v in enumerate(values)]
                target_line = f"{', '.join(names)}{',' if len(names) == 1 else ''} = {call}"
            else:
                values = [step.get("result")]
                names = [_identifier(step.get("result"), fallback, taken)]
                target_line = f"{names[0]} = {call}"
            for target in targets:
                bundles.setdefault(target, []).extend(zip(values, names, strict=True))
            lines.append(f"{indent}{target_line}")
        else:
            lines.append(f"{indent}{call}")
    if not lines:
        lines.append("        run.start()  # the failure happened before the first step")
    text = _TEMPLATE.format(**common, n=len(trace["steps"]), body="\n".join(lines))
    write_text_atomic(out, text)
