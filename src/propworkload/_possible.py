"""The states a reference model may be in when some operations' outcomes are unknown.

When a request times out, the client cannot know whether the service applied it (Jepsen
calls such an operation "info"). A model keeps every state the service may be in, as a
:class:`Possible`, and lets what it observes later decide between them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["Possible", "TooManyPossibilities"]

S = TypeVar("S")


class TooManyPossibilities(OverflowError):
    """The model branched on more unknown outcomes than :class:`Possible` follows.

    Raised from a rule or invariant, it drops the example (as an unknown outcome does)
    rather than failing the run.
    """


class Possible(Generic[S]):
    """The reference model's possible states: one when every outcome is known.

    An operation whose outcome is unknown (a timeout, a reset) may take effect at any
    moment after it was sent (the service may still be working on it), or never. So
    ``maybe`` keeps it *pending*: every later observation considers each pending
    operation as landed or not, and an operation seen to have landed is settled.
    Immutable: each method returns a new ``Possible``. States are compared with ``==``,
    so they should be values, such as ``attrs.frozen`` classes::

        self.ledgers = Possible(Ledger())

        # an operation whose outcome is known: every possible state takes it
        self.ledgers = self.ledgers.then(lambda ledger: ledger.charge(key, charge_id, 5))

        # one whose outcome is unknown (a timeout): pending, it may land now, later, never
        self.ledgers = self.ledgers.maybe(lambda ledger: ledger.charge(key, None, 5), key=key)

        # an observation decides: keep the states that agree with it
        balance = read_balance()
        self.check("balance", expected=self.ledgers.expected(lambda l: l.balance),
                   actual=balance, holds=balance in self.ledgers.values(lambda l: l.balance))
        self.ledgers = self.ledgers.where(lambda ledger: ledger.balance == balance)

    A check that holds for *some* possible state holds; one that holds for none fails.
    Checks of bounds come out of this: with charges of 5 and 3 where the 3 timed out,
    the balance may be 5 or 8, and 4 or 9 fail.

    ``key`` names the operation, as an idempotency key does: a service applies requests
    with one key once, so a pending operation re-sent with the same key (a retry whose
    outcome is unknown too) replaces the pending one, and an answered one (``then(...,
    key=key)``) settles it. A pending operation is applied to the state at the moment it
    lands (write it as a function of that state); several pending operations are tried
    landing in the order they were sent, so they should commute (as writes to different
    keys do).
    """

    #: More possible states, or more pending operations, than this drop the example
    #: (:class:`TooManyPossibilities`): the model keeps branching without observing.
    limit = 1024
    pending_limit = 10

    __slots__ = ("_branches", "_expansion", "_states")

    def __init__(self, *states: S) -> None:
        if not states:
            raise ValueError("Possible needs at least one state")
        self._branches: tuple[_Branch[S], ...] = _merge([(state, ()) for state in states])
        self._expansion: tuple[_Branch[S], ...] | None = None
        self._states: tuple[S, ...] | None = None

    @classmethod
    def _from(cls, branches: list[_Branch[S]]) -> Possible[S]:
        result: Possible[S] = cls.__new__(cls)
        result._branches = _merge(branches)
        result._expansion = None
        result._states = None
        if len(result._branches) > cls.limit:
            raise TooManyPossibilities(
                f"more than {cls.limit} possible model states: the model branches on "
                "unknown outcomes without observations that narrow them down"
            )
        return result

    def _expanded(self) -> tuple[_Branch[S], ...]:
        """Every branch with every subset of its pending operations landed now."""
        if self._expansion is None:
            if len(self._branches) == 1 and not self._branches[0][1]:
                # One state, nothing pending (every outcome known): the common case.
                self._expansion = self._branches
                return self._expansion
            out: list[_Branch[S]] = []
            for state, pending in self._branches:
                options: list[_Branch[S]] = [(state, ())]
                for op in pending:
                    grown: list[_Branch[S]] = []
                    for current, left in options:
                        grown.append((current, (*left, op)))
                        grown.append((op.transition(current), left))
                    options = grown
                out.extend(options)
            self._expansion = _merge(out)
        return self._expansion

    @property
    def states(self) -> tuple[S, ...]:
        """The states the service may be in now (pending operations landed or not)."""
        # Computed once: a model asks for values and expected values many times between
        # two transitions (every check of every invariant).
        if self._states is None:
            found: list[S] = []
            for state, _ in self._expanded():
                if state not in found:
                    found.append(state)
            self._states = tuple(found)
        return self._states

    @property
    def pending(self) -> int:
        """How many operations of unknown outcome may still land (at most, per branch)."""
        return max(len(p) for _, p in self._branches)

    @property
    def known(self) -> bool:
        """Whether exactly one state is possible and nothing is pending."""
        return len(self._branches) == 1 and not self._branches[0][1]

    def only(self) -> S:
        """The one possible state; ``ValueError`` if there are several or some are pending."""
        if not self.known:
            raise ValueError(f"{len(self.states)} states are possible")
        return self._branches[0][0]

    def then(self, transition: Callable[[S], S], *, key: Hashable = None) -> Possible[S]:
        """Every state after an operation whose outcome is known (pending operations
        may have landed before it). With ``key``, a pending operation of that key is
        settled: it is this one."""
        return Possible._from(
            [
                (transition(s), tuple(op for op in p if key is None or op.key != key))
                for s, p in self._expanded()
            ]
        )

    def maybe(self, transition: Callable[[S], S], *, key: Hashable = None) -> Possible[S]:
        """Add an operation whose outcome is unknown: it may take effect at any moment
        from now on, or never. With ``key``, it replaces a pending operation of that key."""
        op = _Pending(transition, key)
        branches = [
            (s, (*(o for o in p if key is None or o.key != key), op)) for s, p in self._branches
        ]
        if any(len(p) > self.pending_limit for _, p in branches):
            raise TooManyPossibilities(
                f"more than {self.pending_limit} operations of unknown outcome are pending"
            )
        return Possible._from(branches)

    def where(self, consistent: Callable[[S], bool]) -> Possible[S]:
        """The states ``consistent`` accepts; all of them when it accepts none.

        When no state agrees with an observation, the service is wrong whatever happened;
        a check (:meth:`values`) reports that, and the states stay as they were.
        """
        kept = [(s, p) for s, p in self._expanded() if consistent(s)]
        return Possible._from(kept) if kept else self

    def refine(self, update: Callable[[S], S | None]) -> Possible[S]:
        """Like :meth:`where`, but ``update`` may also fill in what the observation
        taught (an id the lost response carried): it returns the updated state, or None
        for a state the observation rules out."""
        kept = [(u, p) for u, p in ((update(s), p) for s, p in self._expanded()) if u is not None]
        return Possible._from(kept) if kept else self

    def advance(
        self, update: Callable[[S], S | None], *, key: Hashable = None
    ) -> Possible[S] | None:
        """Every state after an operation whose outcome is known, where ``update``
        returns the state after it, or None for a state the outcome rules out (pending
        operations may have landed before it; with ``key``, a pending operation of that
        key is settled: it is this one). None when every state is ruled out."""
        kept = [
            (after, tuple(op for op in p if key is None or op.key != key))
            for after, p in ((update(s), p) for s, p in self._expanded())
            if after is not None
        ]
        return Possible._from(kept) if kept else None

    def values(self, of: Callable[[S], Any]) -> list[Any]:
        """The distinct values of ``of(state)`` over the possible states."""
        states = self.states
        if len(states) == 1:
            return [of(states[0])]
        found: list[Any] = []
        for state in states:
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
        return len(self.states)

    def __iter__(self) -> Iterator[S]:
        return iter(self.states)

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.states)
        return f"Possible({inner})"


@attrs.frozen(eq=False)
class _Pending(Generic[S]):
    transition: Callable[[S], S]
    key: Hashable


_Branch = tuple[S, tuple[_Pending[S], ...]]


def _merge(branches: list[_Branch[S]]) -> tuple[_Branch[S], ...]:
    """Branches without repeats: of two with equal states, the one whose pending
    operations include the other's stands for both."""
    if len(branches) == 1:
        return (branches[0],)
    kept: list[_Branch[S]] = []
    for state, pending in branches:
        ids = {id(op) for op in pending}
        for i, (other, other_pending) in enumerate(kept):
            if other != state:
                continue
            other_ids = {id(op) for op in other_pending}
            if ids <= other_ids:
                break
            if other_ids <= ids:
                kept[i] = (state, pending)
                break
        else:
            kept.append((state, pending))
    return tuple(kept)
