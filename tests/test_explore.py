"""explore, its reports and coverage, and the new-model scaffold, against the real service."""

from __future__ import annotations

import json
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from conftest import PAYMENTS_MODEL, Completed, in_process, read_until, run_command, spawn_cli

Service = Callable[..., AbstractContextManager[str]]
CLI = Callable[..., Completed]


@pytest.mark.slow
def test_explore_with_two_workers_writes_both_reports(
    payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """Two workers on the correct service: exit 0, merged coverage in a JSON report,
    sometimes-marker hits, JUnit XML with one test case per invariant, progress lines."""
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with payments() as url:
        result = propworkload(
            "explore",
            str(PAYMENTS_MODEL),
            "--url",
            url,
            "--time-budget",
            "8",
            "--workers",
            "2",
            "--report-json",
            str(report),
            "--junit",
            str(junit),
        )
    assert result.code == 0, result.out + result.err
    assert any(line.startswith("PROGRESS examples=") for line in result.lines)
    assert result.lines[-1].startswith("SUMMARY passed") and "workers=2" in result.lines[-1]
    data = json.loads(report.read_text())
    assert (data["format"], data["version"], data["result"], data["workers"]) == (
        "propworkload-report",
        1,
        "passed",
        2,
    )
    rules = data["coverage"]["rules"]
    assert rules["charge"]["ran"] > 0 and rules["refund"]["ran"] > 0
    assert data["coverage"]["sometimes"]["retry returned the existing charge"] > 0
    assert "full refund after a partial one" in data["coverage"]["sometimes"]
    assert data["coverage"]["endpoints"]["POST /customers/{id}/charges"]["statuses"]["201"] > 0
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert {case.get("name") for case in cases} == set(data["coverage"]["checks"])
    assert all(case.find("failure") is None for case in cases)


@pytest.mark.slow
def test_explore_reports_a_failure_in_junit_with_its_trace(tmp_path: Path) -> None:
    """A seeded bug: exit 1, the failure in the console, the report and the JUnit case."""
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with in_process("payments", "retry-credits-balance") as service:
        result = service.explore(
            PAYMENTS_MODEL, examples=40, seed=1, report_json=report, junit=junit
        )
    assert result.code == 1, result.out + result.err
    assert any(line.startswith("INVARIANT FAIL balance_matches_model") for line in result.lines)
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["invariant"] == "balance_matches_model"
    assert Path(failure["trace"]).is_file()
    (case,) = [
        c
        for c in ET.parse(junit).getroot().iter("testcase")
        if c.get("name") == "balance_matches_model"
    ]
    element = case.find("failure")
    assert element is not None
    assert element.get("message", "").startswith("INVARIANT FAIL balance_matches_model")
    assert f"trace: {failure['trace']}" in (element.text or "")


NEVER_RUNS = """
from propworkload import Model, invariant, precondition, rule, sometimes


class Gappy(Model):
    @rule()
    def ping(self):
        self.http.get("/")
        sometimes(False, "never true")

    @precondition(lambda self: False)
    @rule()
    def unreachable(self):
        self.http.get("/")

    @invariant()
    def fine(self):
        self.check("fine", expected=1, actual=1)
"""


def test_coverage_gaps_are_flagged_and_can_fail_the_run(tmp_path: Path) -> None:
    """A rule whose precondition never holds and a marker never hit are gaps; with
    --fail-on-gap they fail the run."""
    model = tmp_path / "gappy.py"
    model.write_text(NEVER_RUNS)
    with in_process("payments") as service:
        plain = service.explore(model, examples=20)
        strict = service.explore(model, examples=20, fail_on_gap=True)
    assert plain.code == 0, plain.out + plain.err
    assert "GAP rule unreachable never ran" in plain.lines
    assert "GAP sometimes never true never hit" in plain.lines
    assert any(line.startswith("  unreachable") and "rejected=" in line for line in plain.lines)
    rejected = next(line for line in plain.lines if line.startswith("  unreachable"))
    assert "ran=0" in rejected and "rejected=0" not in rejected
    assert strict.code == 1
    assert "gaps=2" in strict.lines[-1]


def test_fail_on_gap_reaches_the_reports(tmp_path: Path) -> None:
    """With --fail-on-gap, the JSON report says failed and JUnit has a failing gaps case."""
    model = tmp_path / "gappy.py"
    model.write_text(NEVER_RUNS)
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    with in_process("payments") as service:
        result = service.explore(
            model, examples=10, fail_on_gap=True, report_json=report, junit=junit
        )
    assert result.code == 1
    assert json.loads(report.read_text())["result"] == "failed"
    (case,) = [
        c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "coverage_gaps"
    ]
    element = case.find("failure")
    assert element is not None and "rule unreachable never ran" in (element.text or "")


def test_sigint_ends_explore_with_a_summary(payments: Service, tmp_path: Path) -> None:
    """Ctrl-C: the summary is printed and the status says it was interrupted."""
    with payments() as url:
        proc = spawn_cli(
            ["explore", str(PAYMENTS_MODEL), "--url", url, "--time-budget", "120"],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "SEED ")
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    last = out.splitlines()[-1]
    assert last.startswith("SUMMARY stopped") and last.endswith("stopped=interrupted")
    assert "COVERAGE rules:" in out


def test_new_scaffold_runs_and_needs_a_target(
    payments: Service, propworkload: CLI, tmp_path: Path
) -> None:
    """`new probe` writes a model and its workload entry; the model runs against a service
    and, without one, fails in one clear line."""
    made = propworkload("new", "probe", cwd=tmp_path)
    assert made.code == 0, made.out + made.err
    model = tmp_path / "models" / "probe.py"
    entry = tmp_path / ".workers" / "workloads" / "probe.py"
    assert model.is_file() and entry.is_file()
    no_target = run_command([str(model)], cwd=tmp_path)
    assert no_target.code == 2
    assert "no target for Probe: set APP_URL or pass --url" in no_target.err
    with payments() as url:
        ran = run_command([str(entry), "--examples", "5"], env={"APP_URL": url}, cwd=tmp_path)
    assert ran.code == 0, ran.out + ran.err
    assert "INVARIANT PASS no_server_errors" in ran.out
    again = propworkload("new", "probe", cwd=tmp_path)
    assert again.code == 2 and "exists; pick another name" in again.err


def test_sigint_after_a_failure_keeps_its_trace(payments: Service, tmp_path: Path) -> None:
    """Ctrl-C once a failure is found: exit 1, the failure printed, its trace on disk."""
    with payments("retry-credits-balance") as url:
        proc = spawn_cli(
            ["explore", str(PAYMENTS_MODEL), "--url", url, "--time-budget", "120", "--seed", "2"],
            env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
        )
        read_until(proc, "FOUND ")
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    lines = out.splitlines()
    assert lines[-1].startswith("SUMMARY failed") and lines[-1].endswith("stopped=interrupted")
    traces = [line.split("trace: ", 1)[1] for line in lines if line.startswith("  trace: ")]
    assert traces and all(Path(trace).is_file() for trace in traces)


@pytest.mark.slow
def test_explore_keeps_distinct_failures(tmp_path: Path) -> None:
    """Two bugs breaking two invariants: both are reported, each with its own trace."""
    report = tmp_path / "r.json"
    with in_process("payments", "retry-credits-balance", "read-stale-refund") as service:
        # Both are found with 40 (in the first two rounds); 400 took 44 s.
        result = service.explore(PAYMENTS_MODEL, examples=100, seed=1, report_json=report)
    assert result.code == 1, result.out + result.err
    failures = json.loads(report.read_text())["failures"]
    assert {f["invariant"] for f in failures} == {"balance_matches_model", "read_your_writes"}
    traces = {f["trace"] for f in failures}
    assert len(traces) == 2 and all(Path(t).is_file() for t in traces)


def test_explore_budget_too_small() -> None:
    """A budget that ends before any example is a usage error, as for run."""
    with in_process("payments") as service:
        result = service.explore(PAYMENTS_MODEL, time_budget=0.001)
    assert result.code == 2, result.out + result.err
    assert "ended before one example ran" in result.err


def test_new_refuses_a_folder_it_cannot_write(propworkload: CLI, tmp_path: Path) -> None:
    """A file where the models folder should be: exit 2 and one line, no traceback."""
    (tmp_path / "models").write_text("")
    result = propworkload("new", "probe", cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err and "cannot write" in result.err


def test_marker_catalog_reads_the_call_arguments() -> None:
    """Only the name argument of sometimes()/reachable() calls is catalogued, not strings
    elsewhere in the condition, in comments or in docstrings."""
    from propworkload import Model, reachable, rule, sometimes

    class Markers(Model):
        """Mentions sometimes(x, "in a docstring")."""

        @rule()
        def step(self) -> None:
            # sometimes(y, "in a comment")
            status = 200
            sometimes(status in (200, 201) and "x" in ("a", "b"), "real marker")
            sometimes(True, name="by keyword")
            reachable("reached")

    assert Markers._pw_markers == ("real marker", "by keyword", "reached")


TWO_WAYS = """
from hypothesis import strategies as st
from propworkload import Model, check, command, expect_status


class TwoWays(Model):
    sample = "payments"
    model_state = int

    @command(amount=st.integers(1, 100), idempotent=True)
    def charge(self, amount):
        path = f"/customers/{self.tenant}/charges"
        key = {"Idempotency-Key": self.operation_key}
        response = self.http.post(path, json={"amount": amount}, headers=key)
        return expect_status(response, 201).json()["amount"]

    @charge.model
    def charge(charges, out, amount):
        # Fails one way for amounts of 2, 4, 8, ... and the other for 3, 9, 15, ...
        check("parity", expected=amount % 2 == 0, actual=amount % 3 == 0, amount=amount)
        return charges + 1
"""


@pytest.mark.slow
def test_a_check_failing_the_other_way_is_another_failure(tmp_path: Path) -> None:
    """A yes/no check that fails both ways gives two failures, not one that masks the
    other: a refusal that should be an acceptance is another bug than the reverse."""
    model, report = tmp_path / "two_ways.py", tmp_path / "r.json"
    model.write_text(TWO_WAYS)
    with in_process("payments") as service:
        result = service.explore(model, examples=300, seed=1, report_json=report)
    assert result.code == 1, result.out + result.err
    failures = json.loads(report.read_text())["failures"]
    assert sorted((f["invariant"], f["expected"], f["actual"]) for f in failures) == [
        ("parity", False, True),
        ("parity", True, False),
    ]
