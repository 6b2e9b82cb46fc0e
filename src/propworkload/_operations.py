"""Operations for concurrent mode: a real call and its model transition, declared once.

A model that supports ``--concurrency K`` declares its operations with
:func:`operation`; each has a real call (a method that makes the HTTP request(s) and
returns what it observed) and a model transition (a function of the reference state, the
arguments and the observed output that says whether that output is possible and returns
the next state)::

    @operation(key=st.sampled_from(["k0", "k1"]), amount=st.integers(1, 1000))
    def pay(self, key, amount):
        response = self._charge(key, amount)
        return {"status": response.status_code, "amount": response.json()["amount"]}

    @pay.model
    def pay(ledger, output, key, amount):
        if output is UNKNOWN:            # a timeout: it took effect here, or never
            return True, ledger.charge(key, None, amount)
        ...
        return output == expected, next_ledger

The checker replays the transitions in every order the observed history allows
(linearizability); a real call that raises an ``httpx.TransportError`` has an unknown
outcome.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hypothesis.strategies import SearchStrategy

from ._errors import InvalidModel

__all__ = ["UNKNOWN", "Operation", "operation", "operations_of"]


class _Unknown:
    """The output of an operation whose outcome is unknown."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class Operation:
    """An operation of concurrent mode: arguments' strategies, real call, transition."""

    def __init__(self, call: Callable[..., Any], arguments: dict[str, SearchStrategy[Any]]):
        functools.update_wrapper(self, call)  # type: ignore[arg-type]
        self.name: str = call.__name__
        self.call = call
        self.arguments = arguments
        self.transition: Callable[..., tuple[bool, Any]] | None = None

    def model(self, transition: Callable[..., tuple[bool, Any]]) -> Operation:
        """Decorate the model transition: ``transition(state, output, **arguments)``
        returns (whether ``output`` is possible in ``state``, the state after it)."""
        self.transition = transition
        return self

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self.call, instance)

    def __set_name__(self, owner: type, name: str) -> None:
        if self.transition is None:
            raise InvalidModel(
                f"{owner.__name__}.{name} is an @operation without a model transition: "
                f"add one with @{name}.model"
            )


def operation(**arguments: SearchStrategy[Any]) -> Callable[[Callable[..., Any]], Operation]:
    """Declare an operation of concurrent mode, with a strategy for each argument."""

    def declare(call: Callable[..., Any]) -> Operation:
        return Operation(call, arguments)

    return declare


def operations_of(cls: type) -> dict[str, Operation]:
    """The operations a model class declares (or inherits), by name."""
    found: dict[str, Operation] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Operation):
                found[name] = value
    return found
