"""Reports of an exploration: JSON (schema in docs/report-format.md) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ._console import example_lines, fail_line
from ._explore import DistinctFailure, ExploreResult
from ._record import jsonable, redact_url
from ._redact import write_text_atomic
from ._results import verdict
from ._trace import write_json_atomic

__all__ = ["REPORT_VERSION", "json_report", "write_json_report", "write_junit"]

REPORT_FORMAT = "propworkload-report"
REPORT_VERSION = 1


def _sequence(found: DistinctFailure) -> list[str]:
    """The failure's steps (a parallel program: its clients side by side), one per line."""
    lines = example_lines(found.example, shrunk_from=found.first_steps)[1:]
    return [line.strip() for line in lines]


def json_report(result: ExploreResult, *, coverage: dict[str, Any], code: int) -> dict[str, Any]:
    """The JSON report as a dict; ``code`` is the run's exit status (gaps can fail it)."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "model": result.model,
        "target": redact_url(result.target),
        "seed": result.seed,
        "workers": result.workers,
        "rounds": result.rounds,
        "examples": result.examples,
        "discarded": result.discarded,
        "shrink_runs": result.shrink_runs,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "concurrency": result.concurrency,
        "stopped": result.stopped,
        "result": verdict(code),
        "failures": [
            {
                "invariant": f.failure.invariant,
                "expected": jsonable(f.failure.expected),
                "actual": jsonable(f.failure.actual),
                "ids": jsonable(f.failure.ids),
                "step": f.failure.step,
                "line": fail_line(f.failure),
                "kind": "parallel" if f.example.parallel else "sequential",
                "sequence": _sequence(f),
                "shrunk_from": f.first_steps,
                "runs": f.example.runs if f.example.parallel else None,
                "failed_runs": f.example.failed_runs if f.example.parallel else None,
                "flaky": f.flaky,
                "minimal": f.minimal,
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
                text += [fail_line(found.failure), *_sequence(found), trace]
            element.text = "\n".join(text)
    if gap_case:
        case = ET.SubElement(suite, "testcase", classname=result.model, name="coverage_gaps")
        element = ET.SubElement(case, "failure", message=f"{len(result.gaps)} coverage gaps")
        element.text = "\n".join(result.gaps)
    suites = ET.Element("testsuites")
    suites.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml = ET.tostring(suites, encoding="unicode")
    write_text_atomic(path, f"<?xml version='1.0' encoding='utf-8'?>\n{xml}")
