"""The states a reference model may be in when some operations' outcomes are unknown.

When a request times out, the client cannot know whether the service applied it (Jepsen
calls such an operation "info"). A model keeps every state the service may be in, as a
:class:`Possible`, and lets what it observes later decide between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Possible"]

S = TypeVar("S")


class Possible(Generic[S]):
    """The reference model's possible states: one when every outcome is known.

    Immutable: each method returns a new ``Possible``. States are compared with ``==``
    (duplicates are merged), so they should be values, such as ``attrs.frozen`` classes::

        self.ledgers = Possible(Ledger())

        # an operation whose outcome is known: every possible state takes it
        self.ledgers = self.ledgers.then(lambda ledger: ledger.charge(key, charge_id, 5))

        # one whose outcome is unknown (a timeout): it took effect, or it did not
        self.ledgers = self.ledgers.maybe(lambda ledger: ledger.charge(key, None, 5))

        # an observation decides: keep the states that agree with it
        balance = read_balance()
        self.check("balance", expected=self.ledgers.expected(lambda l: l.balance),
                   actual=balance, holds=balance in self.ledgers.values(lambda l: l.balance))
        self.ledgers = self.ledgers.where(lambda ledger: ledger.balance == balance)

    A check that holds for *some* possible state holds; one that holds for none fails.
    Checks of bounds come out of this: with charges of 5 and 3 where the 3 timed out,
    the balance may be 5 or 8, and 4 or 9 fail.
    """

    #: More possible states than this means the model keeps branching without ever
    #: observing the service; :meth:`maybe` then raises ``OverflowError``.
    limit = 1024

    __slots__ = ("_states",)

    def __init__(self, *states: S) -> None:
        if not states:
            raise ValueError("Possible needs at least one state")
        unique: list[S] = []
        for state in states:
            if state not in unique:
                unique.append(state)
        self._states: tuple[S, ...] = tuple(unique)

    @classmethod
    def _of(cls, states: list[S], fallback: Possible[S]) -> Possible[S]:
        return cls(*states) if states else fallback

    @property
    def states(self) -> tuple[S, ...]:
        """The possible states, in the order they arose."""
        return self._states

    @property
    def known(self) -> bool:
        """Whether exactly one state is possible."""
        return len(self._states) == 1

    def only(self) -> S:
        """The one possible state; ``ValueError`` if there are several."""
        if len(self._states) != 1:
            raise ValueError(f"{len(self._states)} states are possible")
        return self._states[0]

    def then(self, transition: Callable[[S], S]) -> Possible[S]:
        """Every state after an operation whose outcome is known."""
        return Possible(*(transition(state) for state in self._states))

    def maybe(self, transition: Callable[[S], S]) -> Possible[S]:
        """Every state, and every state after ``transition``: the operation's outcome is
        unknown, so it may or may not have taken effect."""
        states = [*self._states, *(transition(state) for state in self._states)]
        result = Possible(*states)
        if len(result) > self.limit:
            raise OverflowError(
                f"more than {self.limit} possible model states: the model branches on "
                "unknown outcomes without observations that narrow them down"
            )
        return result

    def where(self, consistent: Callable[[S], bool]) -> Possible[S]:
        """The states ``consistent`` accepts; all of them when it accepts none.

        When no state agrees with an observation, the service is wrong whatever happened;
        a check (:meth:`values`) reports that, and the states stay as they were.
        """
        return self._of([s for s in self._states if consistent(s)], self)

    def refine(self, update: Callable[[S], S | None]) -> Possible[S]:
        """Like :meth:`where`, but ``update`` may also fill in what the observation
        taught (an id the lost response carried): it returns the updated state, or None
        for a state the observation rules out."""
        updated = [u for u in (update(s) for s in self._states) if u is not None]
        return self._of(updated, self)

    def values(self, of: Callable[[S], Any]) -> list[Any]:
        """The distinct values of ``of(state)`` over the possible states."""
        found: list[Any] = []
        for state in self._states:
            value = of(state)
            if value not in found:
                found.append(value)
        return found

    def expected(self, of: Callable[[S], Any]) -> Any:
        """``of(state)`` when every state agrees, else ``{"one of": [values]}``: what a
        check prints as its expected value."""
        values = self.values(of)
        return values[0] if len(values) == 1 else {"one of": values}

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[S]:
        return iter(self._states)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Possible):
            return NotImplemented
        return len(self) == len(other) and all(s in other._states for s in self._states)

    def __hash__(self) -> int:
        return hash(len(self._states))

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self._states)
        return f"Possible({inner})"
