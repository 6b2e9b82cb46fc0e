"""The console output contract: one-line values, focused diffs, the failure block."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import PAYMENTS_MODEL, in_process
from propworkload import expect_status
from propworkload._console import fail_line, focus, format_replay, format_result, short
from propworkload._engine import RunResult
from propworkload._model import _describe
from propworkload._parallel import _describe_error
from propworkload._record import ExampleRecord, Exchange, Failure, Step
from propworkload._replay import ReplayOutcome


def test_short_keeps_words_bare_and_cuts_long_values() -> None:
    """Plain words print unquoted; other values as JSON; long ones end in '...'."""
    assert short("k0") == "k0"
    assert short("two words") == '"two words"'
    assert short(None) == "None"
    assert short([1, 2]) == "[1,2]"
    assert short("x" * 100, 10) == '"xxxxxx...'


def test_focus_keeps_only_what_differs() -> None:
    """Dicts keep differing keys plus identity keys; lists keep differing items."""
    expected = [{"id": "a", "amount": 1, "refunded": 1}, {"id": "b", "amount": 2, "refunded": 0}]
    actual = [{"id": "a", "amount": 1, "refunded": 0}, {"id": "b", "amount": 2, "refunded": 0}]
    assert focus(expected, actual) == (
        {"[0]": {"id": "a", "refunded": 1}},
        {"[0]": {"id": "a", "refunded": 0}},
    )
    assert focus([1], [1, 2]) == ({"len": 1}, {"len": 2, "[1]": 2})


def _line(expected: object, actual: object) -> tuple[str, str]:
    """The expected= and actual= parts of the FAIL line of a check."""
    line = fail_line(Failure(invariant="x", expected=expected, actual=actual, ids={}, step=1))
    shown = line.removeprefix("INVARIANT FAIL x expected=").removesuffix(" step=1")
    expected_part, actual_part = shown.split(" actual=")
    return expected_part, actual_part


def test_lists_of_different_length_print_differently() -> None:
    """Long lists that differ only in length (an item missing at the end) no longer print
    the same shortened prefix: their lengths and the first item that differs show."""
    charges = [{"id": f"ch_{i:04d}", "amount": i, "refunded": 0} for i in range(6)]
    expected, actual = _line(charges, charges[:5])
    assert expected != actual
    assert expected.startswith('{"len":6,"[5]":{"id":"ch_0005"')
    assert actual == '{"len":5}'


def test_long_values_that_differ_late_print_where_they_differ() -> None:
    """Two long strings equal for longer than the console shows: the shortened forms
    show the place where they differ."""
    expected, actual = _line("a" * 80 + "expected", "a" * 80 + "actual")
    assert expected != actual
    assert "expected" in expected and "actual" in actual


_REQUEST = httpx.Request("GET", "http://svc.test/customers/cus_85ce54c8/charges/listing")


@pytest.mark.parametrize("describe", [_describe, _describe_error])
def test_an_unexpected_status_keeps_its_status_on_the_line(describe: object) -> None:
    """An unexpected error from an HTTP status (expect_status, raise_for_status) keeps
    the status on the FAIL line however long the path."""
    response = httpx.Response(500, request=_REQUEST, text="<html>oops</html>")
    errors: list[Exception] = []
    for check in (lambda: expect_status(response, 200), response.raise_for_status):
        try:
            check()
        except Exception as exc:
            errors.append(exc)
    for error in errors:
        actual = describe(error)  # type: ignore[operator]
        line = fail_line(
            Failure(invariant="customer", expected="no exception", actual=actual, ids={}, step=0)
        )
        assert " 500" in line, line


def test_a_failure_before_any_step_says_so() -> None:
    """A failure at the first check, before any step, says so instead of listing an
    empty sequence shrunk from 0."""
    failure = Failure(invariant="customer", expected=1, actual=2, ids={}, step=0)
    example = ExampleRecord(number=1, failure=failure)
    result = RunResult(
        model="m",
        seed=1,
        target="http://t",
        passed=False,
        examples=1,
        steps=0,
        seconds=0.1,
        checks={},
        failure=failure,
        example=example,
        first_example=example,
        trace_path=Path("t.json"),
    )
    lines = format_result(result)
    assert lines[1:3] == [
        "  minimal sequence (0 steps):",
        "    (none: customer failed at its first check, before any step)",
    ]
    replayed = format_replay(
        ReplayOutcome(record=example, expected="customer", failure=failure, differences=[])
    )
    assert replayed[1:3] == [
        "  replayed sequence (0 steps):",
        "    (none: customer failed at its first check, before any step)",
    ]


def _exchange(status: int, body: str) -> Exchange:
    return Exchange(
        method="POST",
        target="/x",
        request_headers={},
        request_body="",
        status=status,
        response_headers={},
        response_body=body,
        duration_ms=1.0,
        phase="rule",
    )


def test_failure_block_matches_the_contract() -> None:
    """The FAIL line, the numbered minimal sequence, the trace path and the summary."""
    steps = [
        Step(
            index=1,
            rule="charge",
            arguments={"amount": 1},
            result="k0",
            exchanges=[_exchange(201, '{"id": "ch_1"}')],
        ),
        Step(
            index=2,
            rule="refund",
            arguments={"key": "k0", "amount": None},
            exchanges=[_exchange(409, '{"error": "already_refunded"}')],
        ),
        Step(
            index=3,
            rule="retry_charge",
            arguments={"key": "k0"},
            exchanges=[_exchange(201, '{"id": "ch_2"}')],
        ),
    ]
    failure = Failure(
        invariant="charged_once",
        expected=1,
        actual=2,
        ids={"customer": "cus_1", "key": "k0"},
        step=3,
    )
    example = ExampleRecord(number=9, steps=steps, failure=failure)
    first = ExampleRecord(number=4, steps=steps * 12, failure=failure)
    result = RunResult(
        model="payments",
        seed=1,
        target="http://t",
        passed=False,
        examples=20,
        steps=300,
        seconds=2.25,
        checks={},
        failure=failure,
        example=example,
        first_example=first,
        trace_path=Path("t.json"),
    )
    assert format_result(result) == [
        "INVARIANT FAIL charged_once expected=1 actual=2 customer=cus_1 key=k0 step=3",
        "  minimal sequence (3 steps, shrunk from 36):",
        "    1. k0 = charge(amount=1)       -> 201 ch_1",
        "    2. refund(key=k0, amount=None) -> 409 already_refunded",
        "    3. retry_charge(key=k0)        -> 201 ch_2",
        "  trace: t.json",
        "  replay: propworkload replay t.json",
        "SUMMARY failed examples=20 steps=300 seconds=2.2",
    ]


def test_passing_run_prints_one_line_per_invariant() -> None:
    """A pass lists each invariant with its number of checks, then the summary."""
    result = RunResult(
        model="m",
        seed=1,
        target="http://t",
        passed=True,
        examples=3,
        steps=9,
        seconds=0.5,
        checks={"a": 4, "b": 9},
    )
    assert format_result(result) == [
        "INVARIANT PASS a checks=4",
        "INVARIANT PASS b checks=9",
        "SUMMARY passed examples=3 steps=9 seconds=0.5",
    ]


ANY_STEP_FAILS = """
from hypothesis import strategies as st

from propworkload import Model, invariant, rule


class AnyStep(Model):
    sample = "payments"

    def __init__(self):
        super().__init__()
        self.steps = 0

    @rule(amount=st.integers(0, 1000))
    def ping(self, amount):
        self.http.get("/openapi.json")
        self.steps += 1

    @invariant()
    def no_steps(self):
        self.check("no_steps", expected=0, actual=self.steps)
"""


def test_summary_counts_examples_apart_from_shrink_runs(tmp_path: Path) -> None:
    """`--examples 5` reports at most the 5 examples asked for; the runs shrinking made
    are counted apart (they were added to the examples: examples=17)."""
    model = tmp_path / "any_step.py"
    model.write_text(ANY_STEP_FAILS)
    with in_process("payments") as service:
        result = service.run(model, seed=1, examples=5)
    assert result.code == 1, result.out + result.err
    summary = result.lines[-1]
    fields = dict(part.split("=", 1) for part in summary.split()[2:])
    assert 1 <= int(fields["examples"]) <= 5, summary
    assert int(fields["shrink_runs"]) > 0, summary
    assert list(fields)[:2] == ["examples", "shrink_runs"]


def test_summary_examples_are_the_examples_asked_for() -> None:
    """A pass with `--examples 5` reports examples=5; the examples Hypothesis discarded
    (no rule could run) are counted apart, as Hypothesis does not count them either."""
    with in_process("payments") as service:
        result = service.run(PAYMENTS_MODEL, seed=3, examples=5)
    assert result.code == 0, result.out + result.err
    assert result.lines[-1].startswith("SUMMARY passed examples=5 "), result.lines[-1]
