"""Models made of commands and observations: one description per behaviour, from which
plain runs, runs with faults and parallel programs all derive.

``models/payments.py`` is the payments model written that way; the sample
service's seeded bugs show that each mode checks what it should from the one description.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, in_process
from propworkload import (
    UNKNOWN,
    InvalidModel,
    InvariantFailure,
    Model,
    Possible,
    Replay,
    check,
    command,
    expect_status,
    from_state,
    observation,
    sampled_from_state,
)
from propworkload._loader import load_model
from propworkload._spec import Command, Disabled, evaluate, failing, resolve

MODEL = ROOT / "models" / "payments.py"


@pytest.mark.parametrize(
    "options",
    [{}, {"faults": "all"}, {"concurrency": 3}, {"faults": "all", "concurrency": 3}],
    ids=["plain", "faults", "concurrency", "both"],
)
def test_a_correct_service_passes_in_every_mode(options: dict[str, object]) -> None:
    with in_process("payments") as service:
        result = service.run(MODEL, seed=3, examples=30, **options)
    assert result.code == 0, result.out + result.err
    assert "INVARIANT PASS charged_once" in result.out


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_boundary_comes_up_without_a_rule_for_it(seed: int) -> None:
    """A refund of exactly what remains is drawn by ``from_state``, mixed with plain
    amounts: no rule was written for the boundary, and the bug that rejects it is found
    (with seeds no one tuned for)."""
    with in_process("payments", "refund-rejects-exact-remaining") as service:
        result = service.run(MODEL, seed=seed)
    assert result.code == 1, result.out + result.err
    assert "INVARIANT FAIL refund_accepted expected=True actual=False" in result.out


# A lost answer retried and the retry checked: test_faults.py's
# test_fault_only_bug_is_found_with_faults_and_not_without[lost-refund-retry-rejected]
# (the same two runs, with more checked).


def test_a_race_is_found_from_the_same_description() -> None:
    """No operation was written for concurrent mode: the commands are the operations, the
    observations end each program, the model functions are the checker's transitions."""
    with in_process("payments", "race-same-key-double-charge") as service:
        result = service.run_args(MODEL, "--seed", "1", "--concurrency", "3")
    assert result.code == 1, result.out + result.err
    assert "INVARIANT FAIL linearizable" in result.out
    assert "charge(key=" in result.out


def _ledger_model() -> type[Model]:
    """A refund sent without an idempotency key (not idempotent): a copy the network
    delivers twice is applied twice by a correct service."""
    payments, _ = load_model(str(MODEL))

    class Keyless(payments):  # type: ignore[misc, valid-type]
        @command(key=st.just("k0"), amount=st.integers(1, 5), requires=lambda ledger, key: True)
        def refund(self, key: str, amount: int) -> bool:
            charge_id = self.state.charges[key].id
            response = self.http.post(f"/charges/{charge_id}/refunds", json={"amount": amount})
            return expect_status(response, 201, 409).status_code == 201

        @refund.model
        def refund(ledger, accepted, key, amount):  # type: ignore[no-untyped-def]
            fits, after = ledger.refund(key, amount)
            if accepted is not UNKNOWN:
                check("refund_accepted", expected=fits, actual=accepted)
            return ledger if accepted is False else after

    return Keyless


def test_a_duplicated_write_may_have_landed_twice() -> None:
    """A non-idempotent command whose request arrived twice: the model keeps both
    possibilities (once, twice) until the listing tells which."""
    model = _ledger_model()
    with (
        in_process("payments") as service,
        Replay(model, url=service.url, transport=service.transport) as run,
    ):
        run.charge(key="k0", amount=10)
        with run.faults("duplicate"):
            run.refund(key="k0", amount=3)
        # The customer observation ran after the step and saw the refund twice.
        ledger = run.machine.possible.only()
        assert ledger.charges["k0"].refunded == 6
        assert run.record.steps[1].hidden_deliveries() == 1


def test_an_unanswered_command_is_pending_until_observed() -> None:
    """Every attempt of a command lost its answer: its outcome is unknown, kept pending in
    the possible states, and the next observation settles it."""
    model, _ = load_model(str(MODEL))
    with (
        in_process("payments") as service,
        Replay(model, url=service.url, transport=service.transport) as run,
    ):
        with run.faults("lost-response", "lost-response", "lost-response"):
            run.charge(key="k0", amount=7)
        step = run.record.steps[0]
        assert step.unknown is not None and "3 attempts failed" in step.unknown
        # The service made the charge; the listing showed it and taught its id.
        ledger = run.machine.possible.only()
        assert ledger.charges["k0"].amount == 7 and ledger.charges["k0"].id is not None


def test_a_check_that_fails_in_every_possible_state_fails_the_step() -> None:
    possible = Possible(1, 2)

    probe = Command(lambda self: None, {}, idempotent=False, requires=None)
    probe.model(lambda n, out: check("even", holds=n % 2 == 0, expected="even", actual=n) and n)
    after, failed, names = evaluate(possible, probe, 0, {})
    assert after is not None and after.states == (2,) and names == {"even"}
    odd = Command(lambda self: None, {}, idempotent=False, requires=None)
    odd.model(lambda n, out: check("big", expected={"one of": "n>5"}, actual=n, holds=n > 5))
    after, failed, _ = evaluate(possible, odd, 0, {})
    assert after is None and failing(failed).name == "big" and len(failed) == 2


@settings(max_examples=20)
@given(st.data())
def test_state_dependent_arguments_resolve_in_declaration_order(data: st.DataObject) -> None:
    rest = data.draw(from_state(lambda ledger, key: ledger[key]))
    pick = data.draw(sampled_from_state(lambda ledger: ledger))
    state = {"a": 3, "b": 5}
    resolved = resolve({"key": pick, "amount": rest}, state)
    assert resolved["key"] in state and resolved["amount"] == state[resolved["key"]]
    with pytest.raises(Disabled):
        resolve({"key": pick}, {})  # nothing to choose from: the command waits
    with pytest.raises(Disabled):
        resolve({"key": "c", "amount": rest}, state)  # no such key yet
    with pytest.raises(Disabled):
        resolve({"key": "a", "amount": rest}, {"a": None})  # no value in this state


def test_check_outside_a_model_function_raises_at_once() -> None:
    assert check("same", expected=1, actual=1) is True
    with pytest.raises(InvariantFailure, match="same expected=1 actual=2 key=k0"):
        check("same", expected=1, actual=2, key="k0")


def test_expect_status_names_the_request_and_what_came() -> None:
    request = httpx.Request("POST", "http://svc.test/charges")
    response = httpx.Response(500, text="boom", request=request)
    with pytest.raises(AssertionError, match=r"500 from POST /charges, expected 200 or 201: boom"):
        expect_status(response, 200, 201)
    ok = httpx.Response(201, request=request)
    assert expect_status(ok, 200, 201) is ok


def test_mistakes_in_a_description_are_model_errors() -> None:
    with pytest.raises(InvalidModel, match=r"without a model function: add one with @pay\.model"):

        class NoModel(Model):
            model_state = dict

            @command()
            def pay(self) -> None: ...

    with pytest.raises(InvalidModel, match="is the command 'pay' under another name"):

        class Renamed(Model):
            model_state = dict

            @command()
            def pay(self) -> None: ...

            @pay.model
            def other(state, out):  # type: ignore[no-untyped-def]
                return state

    with pytest.raises(InvalidModel, match="amount=5 is not a strategy"):
        command(amount=5)  # type: ignore[arg-type]

    with pytest.raises(InvalidModel, match="must take the model state"):
        from_state(lambda: 1)


def test_observations_are_the_invariants_and_the_final_operations() -> None:
    model, _ = load_model(str(MODEL))
    from propworkload._model import invariants_of, rules_of
    from propworkload._parallel import ProgramShape

    assert set(invariants_of(model)) == {"customer"}
    assert set(rules_of(model)) == {"charge", "refund"}
    shape = ProgramShape(model, concurrency=2, steps=4)
    assert [op.name for op in shape.drawable] == ["charge", "refund"]
    assert [i.name for i in shape.final] == ["customer"]


def test_observation_declared_without_model_function_is_an_error() -> None:
    with pytest.raises(InvalidModel, match="an @observation without a model function"):

        class Blind(Model):
            model_state = dict

            @observation
            def look(self) -> None: ...


def test_readme_command_model_loads_as_written(tmp_path: Path) -> None:
    """The command model the README shows is a valid model: its commands become rules,
    its observation an invariant."""
    from propworkload._model import invariants_of, rules_of

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("reference state is an immutable value", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "bank.py"
    path.write_text(code)
    cls, _ = load_model(str(path))
    assert cls.__name__ == "Bank"
    assert set(rules_of(cls)) == {"deposit", "withdraw"}
    assert invariants_of(cls) == ["balance"]


def test_an_idempotent_command_delivered_twice_counts_once_in_a_program_too() -> None:
    """A keyed refund that arrives twice must be applied once, by clients at once as well:
    its hidden copy is no extra operation of the history, so a service that applies both
    is not linearizable, and the correct one is."""
    from propworkload._faults import Fault
    from propworkload._parallel import execute_program
    from propworkload._program import Invocation, Program
    from propworkload._runtime import RunState

    model, _ = load_model(str(MODEL))
    twice = (Fault("duplicate"),)
    program = Program(
        prefix=(Invocation("charge", {"key": "k0", "amount": 10}),),
        branches=(
            (Invocation("refund", {"key": "k0", "amount": 3}, faults=twice),),
            (Invocation("charge", {"key": "k1", "amount": 5}),),
        ),
        final=(Invocation("customer"),),
    )
    verdicts = {}
    for bugs in ((), ("duplicate-delivery-refunds-twice",)):
        with in_process("payments", *bugs) as service:
            state = RunState(url=service.url, transport=service.transport)
            record = execute_program(model, program, state)
        assert record.history is not None
        assert len(record.history.operations) == len(record.steps)  # no operation for the copy
        verdicts[bugs] = record.history.result.verdict
    assert verdicts == {(): "ok", ("duplicate-delivery-refunds-twice",): "illegal"}


class Account(Model):
    """Deposits and withdrawals whose precondition another client can make false."""

    model_state = int

    @command(amount=st.integers(1, 100))
    def deposit(self, amount: int) -> None: ...

    @deposit.model
    def deposit(balance, out, amount):  # type: ignore[no-untyped-def]
        return balance + amount

    @command(amount=st.integers(1, 100), requires=lambda balance: balance > 0)
    def withdraw(self, amount: int) -> bool: ...

    @withdraw.model
    def withdraw(balance, accepted, amount):  # type: ignore[no-untyped-def]
        fits = amount <= balance
        if accepted is not UNKNOWN:
            check("withdrawal_accepted", expected=fits, actual=accepted)
        return balance - amount if fits and accepted is not False else balance

    @observation
    def balance(self) -> int: ...

    @balance.model
    def balance(balance, seen):  # type: ignore[no-untyped-def]
        check("balance_matches", expected=balance, actual=seen)


def _history(*ops: tuple[int, str, dict[str, object], float, float | None, object]) -> list:  # type: ignore[type-arg]
    from propworkload._linearizability import Operation as HistoryOp

    return [
        HistoryOp(client=c, input=(name, args), call=call, ret=ret, output=out)
        for c, name, args, call, ret, out in ops
    ]


def test_a_precondition_another_client_made_false_is_no_false_alarm() -> None:
    """Two clients withdraw the whole balance at once: one is taken, the other turned
    away. Whichever went first, the other's precondition no longer holds; the model
    function still says what the service should answer, so the history is linearizable,
    and a service that takes both is not."""
    from propworkload._linearizability import check_operations
    from propworkload._parallel import _Spec

    def verdict(second: bool, balance: int) -> str:
        ops = _history(
            (0, "deposit", {"amount": 50}, 0.0, 1.0, None),
            (1, "withdraw", {"amount": 50}, 2.0, 4.0, True),
            (2, "withdraw", {"amount": 50}, 2.5, 4.5, second),
            (0, "balance", {}, 5.0, 6.0, balance),
        )
        return check_operations(_Spec(Account), ops).verdict

    assert verdict(False, 0) == "ok"
    assert verdict(True, -50) == "illegal"


def test_an_unanswered_observation_checks_nothing() -> None:
    from propworkload._linearizability import check_operations
    from propworkload._parallel import _Spec

    ops = _history(
        (0, "deposit", {"amount": 5}, 0.0, 1.0, None),
        (0, "balance", {}, 2.0, None, None),  # no answer: an unknown outcome
    )
    assert check_operations(_Spec(Account), ops).verdict == "ok"


def test_a_model_function_that_raises_is_a_model_error(tmp_path: Path) -> None:
    model = tmp_path / "broken.py"
    model.write_text(
        "from hypothesis import strategies as st\n"
        "from propworkload import Model, command\n"
        "class Broken(Model):\n"
        "    sample = 'payments'\n"
        "    model_state = dict\n"
        "    @command(key=st.just('k0'))\n"
        "    def look(self, key):\n"
        "        return self.http.get('/').status_code\n"
        "    @look.model\n"
        "    def look(state, out, key):\n"
        "        return state[key]\n"
    )
    with in_process("payments") as service:
        result = service.run(model, seed=1, examples=5)
    assert result.code == 2, result.out + result.err
    assert "the model function of look raised KeyError: 'k0'" in result.err


def test_signatures_that_cannot_take_the_arguments_are_model_errors() -> None:
    with pytest.raises(
        InvalidModel, match=r"its model function cannot take .* pay\(state, out, amount\)"
    ):

        class NoOut(Model):
            model_state = int

            @command(amount=st.integers())
            def pay(self, amount: int) -> None: ...

            @pay.model
            def pay(state, amount):  # type: ignore[no-untyped-def]
                return state

    with pytest.raises(InvalidModel, match=r"its real call cannot take .* pay\(self, amount\)"):

        class Misnamed(Model):
            model_state = int

            @command(amount=st.integers())
            def pay(self, amuont: int) -> None: ...

            @pay.model
            def pay(state, out, amount):  # type: ignore[no-untyped-def]
                return state

    def pay(self: Model, amount: int) -> None: ...

    with pytest.raises(InvalidModel, match="precondition of pay reads 'key'"):
        command(amount=st.integers(), requires=lambda state, key: True)(pay)


def test_replay_of_a_command_that_cannot_run_says_so() -> None:
    """A command whose precondition fails is skipped in a run; a replay (or an emitted
    regression) that asks for it is told, not silently passed."""
    from propworkload import InvalidTrace

    model, _ = load_model(str(MODEL))
    with (
        in_process("payments") as service,
        Replay(model, url=service.url, transport=service.transport) as run,
        pytest.raises(InvalidTrace, match="refund cannot run here"),
    ):
        run.refund(key="k0", amount=5)  # nothing was charged


def _accepting(tmp_path: Path, deviations: str) -> Path:
    model = tmp_path / "accepting.py"
    model.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(MODEL.parent)!r})\n"
        "from payments import Payments\n"
        "from propworkload import accept\n"
        "class Accepting(Payments):\n"
        f"    accepted = ({deviations},)\n"
    )
    return model


def test_an_accepted_deviation_is_counted_not_reported(tmp_path: Path) -> None:
    """A failure the model accepts no longer fails the run: it is counted, and the run
    goes on (here to its end: the service has no other bug)."""
    model = _accepting(tmp_path, 'accept("charges_listed")')
    with in_process("payments", "list-hides-partial-refund") as service:
        result = service.run(model, seed=1)
        plain = service.run(MODEL, seed=1)
    assert plain.code == 1 and "INVARIANT FAIL charges_listed" in plain.out, plain.out
    assert result.code == 0, result.out + result.err
    accepted = [line for line in result.lines if line.startswith("INVARIANT ACCEPTED")]
    assert len(accepted) == 1 and accepted[0].startswith("INVARIANT ACCEPTED charges_listed")
    assert int(accepted[0].split("deviations=")[1].split()[0]) > 0


def test_a_deviation_is_accepted_only_where_it_is_said(tmp_path: Path) -> None:
    """Accepted for one key (or one value), the same invariant still fails elsewhere: a
    second, different failure of it is reported, not masked."""
    by_key = _accepting(tmp_path, 'accept("refund_accepted", key="k1")')
    with in_process("payments", "refund-rejects-exact-remaining") as service:
        result = service.run(by_key, seed=11)
    assert result.code == 1, result.out + result.err
    assert "INVARIANT FAIL refund_accepted" in result.out
    assert " key=k0 " in next(line for line in result.lines if line.startswith("INVARIANT FAIL"))
    never = _accepting(tmp_path, 'accept("refund_accepted", when=lambda c: c.actual is True)')
    with in_process("payments", "refund-rejects-exact-remaining") as service:
        result = service.run(never, seed=11)
    assert result.code == 1 and "INVARIANT FAIL refund_accepted" in result.out, result.out


def test_a_rule_style_check_can_be_accepted_too(tmp_path: Path) -> None:
    model = tmp_path / "rules.py"
    model.write_text(
        "from propworkload import Model, accept, invariant, rule\n"
        "class Rules(Model):\n"
        "    sample = 'payments'\n"
        "    accepted = (accept('always_wrong', part='a'),)\n"
        "    @rule()\n"
        "    def ping(self):\n"
        "        self.http.get('/')\n"
        "    @invariant()\n"
        "    def wrong(self):\n"
        "        self.check('always_wrong', expected=1, actual=2, part='a')\n"
    )
    with in_process("payments") as service:
        result = service.run(model, seed=1, examples=5)
    assert result.code == 0, result.out + result.err
    assert any(line.startswith("INVARIANT ACCEPTED always_wrong") for line in result.lines)


def test_final_observations_read_what_every_client_made() -> None:
    """The charges two clients made at once are read by the final observation (its view
    takes in the other clients' commands), not only those of the prefix."""
    from propworkload._parallel import execute_program
    from propworkload._program import Invocation, Program
    from propworkload._runtime import RunState

    model, _ = load_model(str(MODEL))
    program = Program(
        prefix=(),
        branches=(
            (Invocation("charge", {"key": "k0", "amount": 3}),),
            (Invocation("charge", {"key": "k1", "amount": 4}),),
        ),
        final=(Invocation("customer"),),
    )
    with in_process("payments") as service:
        state = RunState(url=service.url, transport=service.transport)
        record = execute_program(model, program, state)
    assert record.failure is None, record.failure
    reads = next(step for step in record.steps if step.rule == "customer").output["reads"]
    assert sorted(reads) == ["k0", "k1"]
    assert [(v[1], v[2]) for _, v in sorted(reads.items())] == [(3, 0), (4, 0)]


def test_steps_no_failure_needs_are_dropped_after_shrinking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hypothesis shrinks the choices it made and can stop with steps no failure needs
    (measured: 13 steps, twelve of them repeated charges, on a loopback run). The engine
    then drops each step in turn, re-runs the rest with their recorded faults, and keeps
    what the failure needs; here Hypothesis's shrinking is switched off, so that all the
    reduction is the engine's."""
    from hypothesis import Phase, settings

    from propworkload import _engine

    made = _engine._hypothesis_settings

    def without_shrinking(config: object) -> settings:
        base = made(config)  # type: ignore[arg-type]
        return settings(base, phases=[p for p in base.phases if p is not Phase.shrink])

    monkeypatch.setattr(_engine, "_hypothesis_settings", without_shrinking)
    with in_process("payments", "lost-refund-retry-rejected") as service:
        result = service.run_args(MODEL, "--seed", "1", "--faults", "lost-response")
    assert result.code == 1, result.out + result.err
    found = next(line for line in result.lines if line.startswith("FOUND "))
    before = int(found.split("(")[1].split()[0])
    minimal = next(line for line in result.lines if line.startswith("  minimal sequence"))
    after = int(minimal.split("(")[1].split()[0])
    # Only steps are dropped (the values are Hypothesis's to shrink): a charge, then what
    # makes the lost refund the one that takes all that remains.
    assert after < before and after <= 3, result.out
    failing = next(line for line in result.lines if line.endswith("[refund_accepted failed]"))
    assert "lost-response" in failing and "then 409" in failing, result.out
    assert not any(line.startswith("ALSO FAIL") for line in result.lines), result.out


def test_accepted_holds_only_accept_entries() -> None:
    with pytest.raises(InvalidModel, match=r"accepted holds 'charges_listed': list known"):

        class Plain(Model):
            accepted = ("charges_listed",)  # type: ignore[assignment]
