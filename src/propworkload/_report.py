"""Reports of an exploration: JSON (schema in docs/report-format.md) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ._console import fail_line, sequence_lines
from ._explore import ExploreResult
from ._record import jsonable
from ._trace import write_json_atomic

__all__ = ["REPORT_VERSION", "json_report", "write_json_report", "write_junit"]

REPORT_FORMAT = "propworkload-report"
REPORT_VERSION = 1


def json_report(result: ExploreResult, *, coverage: dict[str, Any]) -> dict[str, Any]:
    """The JSON report as a dict."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "model": result.model,
        "target": result.target,
        "seed": result.seed,
        "workers": result.workers,
        "rounds": result.rounds,
        "examples": result.examples,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "stopped": result.stopped,
        "result": "failed" if result.failures else "passed",
        "failures": [
            {
                "invariant": f.failure.invariant,
                "expected": jsonable(f.failure.expected),
                "actual": jsonable(f.failure.actual),
                "ids": jsonable(f.failure.ids),
                "step": f.failure.step,
                "line": fail_line(f.failure),
                "sequence": [line.strip() for line in sequence_lines(f.example.steps)],
                "shrunk_from": f.first_steps,
                "flaky": f.flaky,
                "seed": f.seed,
                "worker": f.worker,
                "trace": str(f.trace_path) if f.trace_path else None,
            }
            for f in result.failures
        ],
        "coverage": coverage,
    }


def write_json_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report)


def write_junit(path: Path, result: ExploreResult, *, invariants: list[str]) -> None:
    """One test case per invariant; a failed one carries the FAIL line and the trace."""
    failed = {f.failure.invariant: f for f in result.failures}
    names = list(dict.fromkeys([*invariants, *failed]))
    suite = ET.Element(
        "testsuite",
        name=f"propworkload.{result.model}",
        tests=str(len(names)),
        failures=str(len(failed)),
        errors="0",
        skipped="0",
        time=f"{result.seconds:.3f}",
    )
    for name in names:
        case = ET.SubElement(suite, "testcase", classname=result.model, name=name, time="0")
        found = failed.get(name)
        if found is not None:
            element = ET.SubElement(case, "failure", message=fail_line(found.failure))
            trace = f"trace: {found.trace_path}" if found.trace_path else "no trace"
            element.text = "\n".join([*sequence_lines(found.example.steps), trace])
    suites = ET.Element("testsuites")
    suites.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
