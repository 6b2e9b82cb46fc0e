"""The console output contract: one-line values, focused diffs, the failure block."""

from __future__ import annotations

from pathlib import Path

from conftest import PAYMENTS_MODEL, in_process
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
