"""Reports of an exploration: JSON (schema in docs/report-format.md) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ._console import fail_line, sequence_lines
from ._explore import ExploreResult
from ._record import jsonable, redact_url
from ._trace import write_json_atomic

__all__ = ["REPORT_VERSION", "json_report", "write_json_report", "write_junit"]

REPORT_FORMAT = "propworkload-report"
REPORT_VERSION = 1


def json_report(result: ExploreResult, *, coverage: dict[str, Any], failed: bool) -> dict[str, Any]:
    """The JSON report as a dict; ``failed`` is the run's verdict (gaps can fail it)."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "model": result.model,
        "target": redact_url(result.target),
        "seed": result.seed,
        "workers": result.workers,
        "rounds": result.rounds,
        "examples": result.examples,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "stopped": result.stopped,
        "result": "failed" if failed else "passed",
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


def write_junit(
    path: Path, result: ExploreResult, *, invariants: list[str], gaps_fail: bool
) -> None:
    """One test case per invariant; a failed one carries each failure's FAIL line, steps
    and trace. With ``gaps_fail``, a ``coverage_gaps`` case lists the gaps."""
    failed: dict[str, list[Any]] = {}
    for found in result.failures:
        failed.setdefault(found.failure.invariant, []).append(found)
    names = list(dict.fromkeys([*invariants, *failed]))
    gap_case = gaps_fail and bool(result.gaps)
    suite = ET.Element(
        "testsuite",
        name=f"propworkload.{result.model}",
        tests=str(len(names) + gap_case),
        failures=str(len(failed) + gap_case),
        errors="0",
        skipped="0",
        time=f"{result.seconds:.3f}",
    )
    for name in names:
        case = ET.SubElement(suite, "testcase", classname=result.model, name=name, time="0")
        founds = failed.get(name)
        if founds:
            element = ET.SubElement(case, "failure", message=fail_line(founds[0].failure))
            text: list[str] = []
            for found in founds:
                trace = f"trace: {found.trace_path}" if found.trace_path else "no trace"
                text += [fail_line(found.failure), *sequence_lines(found.example.steps), trace]
            element.text = "\n".join(text)
    if gap_case:
        case = ET.SubElement(suite, "testcase", classname=result.model, name="coverage_gaps")
        element = ET.SubElement(case, "failure", message=f"{len(result.gaps)} coverage gaps")
        element.text = "\n".join(result.gaps)
    suites = ET.Element("testsuites")
    suites.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
