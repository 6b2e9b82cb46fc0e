"""The console output contract: one-line values, focused diffs, the failure block."""

from __future__ import annotations

from pathlib import Path

from propworkload._console import focus, format_result, short
from propworkload._engine import RunResult
from propworkload._record import ExampleRecord, Exchange, Failure, Step


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
    assert focus([1], [1, 2]) == ([1], [1, 2])


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
