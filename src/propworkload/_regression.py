"""Writing a trace as a standalone, readable pytest regression test."""

from __future__ import annotations

import keyword
import os
import time
from pathlib import Path
from typing import Any

from ._console import short

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


def emit_pytest(trace: dict[str, Any], trace_path: Path, model_file: Path, out: Path) -> None:
    """Write ``out``: a pytest file that replays ``trace``'s steps and checks invariants."""
    failure = trace["failure"]
    ids = " ".join(f"{k}={short(v, 40)}" for k, v in failure.get("ids", {}).items() if v)
    fail_line = (
        f"INVARIANT FAIL {failure['invariant']} expected={short(failure.get('expected'))} "
        f"actual={short(failure.get('actual'))} {ids} step={failure.get('step')}"
    )
    taken: set[str] = set()
    # Recorded bundle contents, as (recorded value, variable name) in insertion order.
    bundles: dict[str, list[tuple[Any, str]]] = {}
    lines: list[str] = []
    for number, step in enumerate(trace["steps"], 1):
        arguments = []
        for name, value in step["arguments"].items():
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
            arguments.append(f"{name}={variable if variable else repr(value)}")
        call = f"run.{step['rule']}({', '.join(arguments)})"
        faults = [e.get("fault") for e in step.get("exchanges", []) if e.get("phase") == "rule"]
        indent = "        "
        if any(faults):
            shown = ", ".join(repr(_fault_argument(fault)) for fault in faults)
            lines.append(f"        with run.faults({shown}):")
            indent = "            "
        targets = step.get("targets") or []
        if targets:
            fallback = f"{targets[0]}_{number}"
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
        lines.append("        pass  # the failure happened before the first step")
    try:
        model_path = os.path.relpath(model_file.resolve(), out.resolve().parent)
    except ValueError:  # another drive on Windows
        model_path = str(model_file.resolve())
    text = _TEMPLATE.format(
        invariant=failure["invariant"],
        fail_line=" ".join(fail_line.split()),
        trace_path=trace_path,
        seed=trace.get("seed"),
        date=time.strftime("%Y-%m-%d"),
        n=len(trace["steps"]),
        model_class=trace["model"]["class"],
        model_path=model_path,
        test_name=failure["invariant"] if failure["invariant"].isidentifier() else "regression",
        body="\n".join(lines),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
