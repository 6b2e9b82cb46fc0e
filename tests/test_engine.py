"""How runs end: unexpected errors, flaky failures and the time budget, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from conftest import PAYMENTS_MODEL, in_process

Service = Callable[..., AbstractContextManager[str]]

RAISING_MODEL = """
from propworkload import Model, rule

class Raising(Model):
    @rule()
    def read_balance(self):
        self.http.get(f"/customers/{self.tenant}/balance").json()["no-such-field"]
"""

# Fails the first time any example takes a step, then never again: what a failure
# against a live service looks like when it does not reproduce.
FLAKY_MODEL = """
from propworkload import Model, invariant, rule

FAILED = []

class Flaky(Model):
    @rule()
    def read_balance(self):
        self.balance = self.http.get(f"/customers/{self.tenant}/balance").json()["balance"]

    @invariant()
    def once(self):
        if hasattr(self, "balance") and not FAILED:
            FAILED.append(1)
            self.check("fails_once", expected=0, actual=1, customer=self.tenant)
"""


def _model(tmp_path: Path, text: str) -> str:
    path = tmp_path / "model.py"
    path.write_text(text)
    return str(path)


def test_step_that_raises_is_a_failure(tmp_path: Path) -> None:
    """An exception in a rule is reported like a broken invariant, with its rule, exit 1."""
    with in_process("payments") as service:
        result = service.run(_model(tmp_path, RAISING_MODEL))
    assert result.code == 1, result.out + result.err
    assert (
        'INVARIANT FAIL unexpected_error expected="no exception" '
        "actual=\"KeyError: 'no-such-field'\" rule=read_balance step=1"
    ) in result.lines
    assert "    1. read_balance() -> raised \"KeyError: 'no-such-field'\"" in result.lines


def test_failure_that_does_not_reproduce_is_reported_as_flaky(tmp_path: Path) -> None:
    """A failure seen once is still printed from the tool's own recording, marked flaky."""
    with in_process("payments") as service:
        result = service.run(_model(tmp_path, FLAKY_MODEL), seed=2)
    assert result.code == 1, result.out + result.err
    fail = next(line for line in result.lines if line.startswith("INVARIANT FAIL"))
    assert fail.startswith("INVARIANT FAIL fails_once expected=0 actual=1 customer=t_")
    assert any("flaky: it did not fail again when re-run" in line for line in result.lines)
    assert any(line.startswith("  trace: ") for line in result.lines)


def test_time_budget_ends_the_search() -> None:
    """A search with more examples than time stops at the budget and still passes."""
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, examples=100000, time_budget=3)
    assert result.code == 0, result.out + result.err
    summary = result.lines[-1]
    assert summary.startswith("SUMMARY passed") and summary.endswith("stopped=time-budget")
    examples = int(summary.split("examples=")[1].split()[0])
    assert 0 < examples < 100000


def test_the_tls_context_is_made_once_and_verifies() -> None:
    """Runs, probes and replays share one TLS context per ``trust_env`` (making one reads
    the CA bundle), and it is httpx's verifying default."""
    import ssl

    from propworkload._target import ssl_context

    assert ssl_context() is ssl_context()
    assert ssl_context(trust_env=False) is ssl_context(trust_env=False)
    assert ssl_context(trust_env=False) is not ssl_context()
    for context in (ssl_context(), ssl_context(trust_env=False)):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_model_testcase_runs_under_pytest_on_the_embedded_sample(tmp_path: Path) -> None:
    """``Payments.TestCase`` collected by pytest, with no APP_URL: the model's embedded
    sample service is started for the session (as ``run`` does) and stopped at exit."""
    from conftest import run_command

    test_file = tmp_path / "test_payments_case.py"
    test_file.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(PAYMENTS_MODEL.parent)!r})\n"
        "from hypothesis import settings\n"
        "from payments import Payments\n\n"
        "TestPayments = Payments.TestCase\n"
        "TestPayments.settings = settings(max_examples=5, stateful_step_count=5, deadline=None)\n"
    )
    result = run_command(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(test_file)],
        cwd=tmp_path,
    )
    assert result.code == 0, result.out + result.err
    assert "1 passed" in result.out


# Two rules break on different sequences: three_reads once the balance has been read three
# times, first_page when the charges are listed from page 0 after a read (page 0 is rare
# among the pages drawn, but shrinking tries it on its way). Shrinking then moves from
# three_reads, found first, to first_page, the simpler failure (two steps).
SLIPPING_MODEL = """
from hypothesis import strategies as st
from propworkload import Model, invariant, rule

class Slipping(Model):
    reads = 0
    first_page = False

    @rule(page=st.integers(min_value=0, max_value=10**6))
    def list_charges(self, page):
        self.http.get(f"/customers/{self.tenant}/charges").json()
        self.first_page = self.first_page or (page == 0 and self.reads > 0)

    @rule(fresh=st.booleans())
    def read_balance(self, fresh):
        self.http.get(f"/customers/{self.tenant}/balance").json()
        self.reads += 1

    @invariant()
    def counts(self):
        self.check("first_page", holds=not self.first_page, expected=False,
                   actual=self.first_page, customer=self.tenant)
        self.check("three_reads", holds=self.reads < 3, expected="<3", actual=self.reads,
                   customer=self.tenant)
"""


def test_a_failure_found_is_never_lost_when_shrinking_moves_on(tmp_path: Path) -> None:
    """Every kind of failure a run sees is reported: when shrinking moves from the
    failure found to a simpler one of another invariant, the one found follows under
    ``ALSO FAIL`` with its own trace."""
    model = _model(tmp_path, SLIPPING_MODEL)
    for seed in (1, 2, 3):
        with in_process("payments") as service:
            result = service.run(model, seed=seed)
        assert result.code == 1, result.out + result.err
        found = next(line for line in result.lines if line.startswith("FOUND ")).split()[1]
        fail = next(line for line in result.lines if line.startswith("INVARIANT FAIL"))
        also = [line for line in result.lines if line.startswith("ALSO FAIL")]
        reported = [fail.split()[2], *(line.split()[2] for line in also)]
        assert found in reported, result.out
        assert len(set(reported)) == len(reported), result.out
        if found != "three_reads" or not also:
            continue  # found first_page first, or shrinking never tried page 0 after a read
        assert fail.startswith("INVARIANT FAIL first_page expected=False actual=True")
        assert any(line.startswith("  minimal sequence (2 steps") for line in result.lines)
        assert also == [also[0]] and also[0].startswith('ALSO FAIL three_reads expected="<3"')
        assert also[0].endswith("(not shrunk: 3 steps)"), also[0]
        traces = [
            Path(line.split(": ", 1)[1]) for line in result.lines if line.startswith("  trace:")
        ]
        written = [json.loads(path.read_text()) for path in traces]
        assert [(t["status"], t["failure"]["invariant"]) for t in written] == [
            ("minimal", "first_page"),
            ("also-failed", "three_reads"),
        ]
        # The first failure's trace keeps the run's name; the other kind's sits beside it.
        assert traces[0].name == traces[1].stem + "-first_page-False-True.json"
        return
    raise AssertionError("no seed found three_reads first and then shrank to first_page")


def test_explore_lists_every_kind_of_failure_it_saw(tmp_path: Path) -> None:
    """Explore lists both failures of a round as findings: the one shrinking ended on,
    and the one it moved from (not shrunk), each with its trace."""
    report = tmp_path / "report.json"
    # --examples counts the search's examples, not shrinking's: the first round finds
    # three_reads in its second example, so 2 keep the exploration to that round.
    with in_process("payments") as service:
        result = service.explore(
            _model(tmp_path, SLIPPING_MODEL), examples=2, seed=1, report_json=report
        )
    assert result.code == 1, result.out + result.err
    data = json.loads(report.read_text())
    assert data["rounds"] == 1  # both come from the one round
    failures = {f["invariant"]: f for f in data["failures"]}
    assert sorted(failures) == ["first_page", "three_reads"]
    assert failures["first_page"]["minimal"] is True
    assert failures["three_reads"]["minimal"] is False
    assert all(Path(f["trace"]).is_file() for f in failures.values())
