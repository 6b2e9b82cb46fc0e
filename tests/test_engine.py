"""How runs end: unexpected errors, flaky failures and the time budget, end to end."""

from __future__ import annotations

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
