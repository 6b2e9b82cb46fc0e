"""The Model base class: misuse caught at class definition, and the check helper."""

from __future__ import annotations

from typing import Any

import pytest

from propworkload import InvalidModel, InvariantFailure, Model, invariant, rule


def test_staticmethod_rule_is_rejected_at_class_definition() -> None:
    """A rule that is not a plain method names itself and the fix."""
    with pytest.raises(InvalidModel, match=r"Bad\.charge is a staticmethod.*remove @staticmethod"):

        class Bad(Model):
            @staticmethod
            @rule()
            def charge() -> None:
                pass


def test_rule_whose_parameters_do_not_match_its_arguments_is_rejected() -> None:
    """A rule that cannot take what its decorator draws is caught before any request."""
    from hypothesis import strategies as st

    with pytest.raises(InvalidModel, match=r"Bad\.charge\(self, cents\).*\(amount\)"):

        class Bad(Model):
            @rule(amount=st.integers())
            def charge(self, cents: int) -> None:
                pass


def test_invariant_with_parameters_is_rejected() -> None:
    """An invariant is called with no arguments, so it may not require any."""
    with pytest.raises(InvalidModel, match=r"Bad\.holds\(self, x\)"):

        class Bad(Model):
            @rule()
            def step(self) -> None:
                pass

            @invariant()
            def holds(self, x: int) -> None:
                pass


class _Probe(Model):
    """A model instance for exercising check() without a run."""

    @rule()
    def noop(self) -> None:
        pass


def _bare_probe() -> Any:
    import httpx

    from propworkload._record import ExampleRecord
    from propworkload._runtime import RunState

    probe = object.__new__(_Probe)
    probe._pw_example = ExampleRecord(number=1)
    probe._pw_run = RunState(url="http://unused.test", transport=httpx.MockTransport(print))
    return probe


def test_check_passes_on_equal_values_and_counts_checks() -> None:
    """check() holds when expected == actual, and every call is counted by name."""
    probe = _bare_probe()
    probe.check("same", expected=[1, 2], actual=[1, 2])
    probe.check("same", expected=1, actual=1)
    assert probe._pw_example.checks == {"same": 2}


def test_check_raises_with_name_values_and_ids() -> None:
    """A broken check raises InvariantFailure carrying what a report needs."""
    probe = _bare_probe()
    with pytest.raises(InvariantFailure) as info:
        probe.check("charged_once", expected=1, actual=2, customer="cus_1", key="k0")
    failure = info.value
    assert (failure.name, failure.expected, failure.actual) == ("charged_once", 1, 2)
    assert failure.ids == {"customer": "cus_1", "key": "k0"}


def test_check_with_holds_uses_the_condition() -> None:
    """With holds=, the condition decides; expected and actual only describe it."""
    probe = _bare_probe()
    probe.check("non_negative", holds=True, expected=">=0", actual=5)
    with pytest.raises(InvariantFailure, match="non_negative"):
        probe.check("non_negative", holds=False, expected=">=0", actual=-1)


def test_a_rule_and_an_operation_with_one_name_is_a_model_error() -> None:
    """The second definition would replace the first without a word: refused."""
    from propworkload import operation

    with pytest.raises(
        InvalidModel, match=r"Bad defines 'charge' twice \(a rule, then an operation\)"
    ):

        class Bad(Model):
            @rule()
            def charge(self) -> None:
                pass

            @operation()
            def charge(self) -> None:  # type: ignore[no-redef]  # noqa: F811
                pass

            @charge.model  # type: ignore[untyped-decorator]
            def charge(state: Any, output: Any) -> tuple[bool, Any]:  # type: ignore[no-redef]
                return True, state


def test_a_rule_and_an_invariant_with_one_name_is_a_model_error() -> None:
    with pytest.raises(
        InvalidModel, match=r"defines 'check_it' twice \(a rule, then an invariant\)"
    ):

        class Bad(Model):
            @rule()
            def check_it(self) -> None:
                pass

            @invariant()
            def check_it(self) -> None:  # type: ignore[no-redef]  # noqa: F811
                pass


def test_an_operation_may_not_hide_an_inherited_rule() -> None:
    from propworkload import operation

    class Base(Model):
        @rule()
        def pay(self) -> None:
            pass

    with pytest.raises(InvalidModel, match=r"Sub\.pay is an operation, but Base\.pay is a rule"):

        class Sub(Base):
            @operation()
            def pay(self) -> None:
                pass

            @pay.model  # type: ignore[untyped-decorator]
            def pay(state: Any, output: Any) -> tuple[bool, Any]:  # type: ignore[no-redef]
                return True, state


def test_overriding_a_rule_with_a_rule_is_allowed() -> None:
    class Base(Model):
        @rule()
        def pay(self) -> None:
            pass

    class Sub(Base):
        @rule()
        def pay(self) -> None:
            pass

    assert Sub.pay is not Base.pay
