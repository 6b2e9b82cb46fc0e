"""Commands and observations: each behaviour of a service described once.

A *command* is one thing a client does (charge, refund, lease a job): the strategies of
its arguments, a precondition, the real call (a method that sends the request(s) and
returns what it observed) and a model function. The model function gets the reference
state before the command, what the call observed and the arguments; it states the
postconditions with :func:`check` and returns the state after the command::

    @command(key=KEYS, amount=st.integers(1, 1000), idempotent=True)
    def charge(self, key, amount):
        response = self.http.post(...)
        return expect_status(response, 200, 201).json()

    @charge.model
    def charge(ledger, out, key, amount):
        if out is UNKNOWN:          # no answer: it took effect, or it did not
            return ledger.charge(key, None, amount)
        check("same_amount", expected=amount, actual=out["amount"], key=key)
        return ledger.charge(key, out["id"], amount)

An *observation* is a read of the whole state (a listing, a balance) with a model function
of its own; it is checked after every step of a sequential run and ends every parallel
program.

Everything else derives from that: the engine makes Hypothesis rules and invariants of
them, keeps every state the service may be in (:class:`propworkload.Possible`) when an
answer is lost or a request is delivered twice, and checks parallel programs for
linearizability with the same model functions. This module holds the descriptions and the
pure parts (checks, argument resolution, evaluation); running them is the model's and the
engine's business.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ._errors import InvalidModel, InvariantFailure
from ._operations import UNKNOWN, Operation
from ._possible import Possible
from ._runtime import StopRun

__all__ = [
    "Accept",
    "Check",
    "Command",
    "Disabled",
    "Observation",
    "UnexpectedStatus",
    "accept",
    "accepting",
    "check",
    "command",
    "expect_status",
    "from_state",
    "observation",
    "sampled_from_state",
]


@attrs.frozen
class Check:
    """One postcondition as a model function stated it."""

    name: str
    holds: bool
    expected: Any
    actual: Any
    ids: dict[str, Any]


_COLLECTED: contextvars.ContextVar[list[Check] | None] = contextvars.ContextVar(
    "propworkload_checks", default=None
)


def check(
    name: str, *, expected: Any = None, actual: Any = None, holds: bool | None = None, **ids: Any
) -> bool:
    """State a postcondition named ``name``; return whether it holds.

    It holds when ``expected == actual``, or, if ``holds`` is given, when ``holds`` is
    true (``expected`` and ``actual`` then only describe it). Keyword ``ids`` say what is
    involved (a key, an id) and are printed with a failure.

    In a model function, a check that fails rules out the state the function was given:
    the step fails only when it fails in every state the service may be in, and the states
    where it fails are dropped. Anywhere else (a real call, a plain ``@invariant``) a check
    that fails raises :class:`propworkload.InvariantFailure` at once.
    """
    __tracebackhide__ = True  # pytest would print the ids (secrets too) as its arguments
    holds = (expected == actual) if holds is None else bool(holds)
    collected = _COLLECTED.get()
    if collected is None:
        if not holds:
            raise InvariantFailure(name, expected=expected, actual=actual, ids=ids)
        return True
    collected.append(Check(name, holds, expected, actual, ids))
    return holds


@attrs.frozen
class Accept:
    """A known deviation of the service, accepted: made with :func:`accept`."""

    invariant: str
    ids: dict[str, Any] = attrs.field(factory=dict)
    when: Callable[[Check], bool] | None = None

    def matches(self, failed: Check) -> bool:
        """Whether ``failed`` (a check that did not hold) is this deviation."""
        if failed.name != self.invariant:
            return False
        if any(failed.ids.get(k, _MISSING) != v for k, v in self.ids.items()):
            return False
        return self.when is None or bool(self.when(failed))


_MISSING = object()


def accept(invariant: str, *, when: Callable[[Check], bool] | None = None, **ids: Any) -> Accept:
    """A failure the model accepts as a known deviation of the service, so that runs go
    on to find the next one: the check named ``invariant`` that fails with these ``ids``
    (all of them, as the check names them) and for which ``when(check)`` is true, if
    given (``check.expected``, ``check.actual``, ``check.ids``)::

        class Kinto(Model):
            accepted = (
                accept("batch_atomic"),                        # every failure of it
                accept("charges_listed", key="k0"),            # only for one key
                accept("balance", when=lambda c: c.actual < 0),  # only these values
            )

    An accepted failure rules nothing out (the model goes on from what the service
    answered, as its model functions say) and is counted, not reported as a failure: the
    run prints ``INVARIANT ACCEPTED name deviations=N``.
    """
    return Accept(invariant, dict(ids), when)


#: While a parallel history is checked: which failing checks the model accepts.
_ACCEPTING: contextvars.ContextVar[Callable[[Check], bool] | None] = contextvars.ContextVar(
    "propworkload_accepting", default=None
)


@contextlib.contextmanager
def accepting(predicate: Callable[[Check], bool]) -> Iterator[None]:
    """Within the block, model functions' checks that ``predicate`` accepts hold."""
    token = _ACCEPTING.set(predicate)
    try:
        yield
    finally:
        _ACCEPTING.reset(token)


class UnexpectedStatus(AssertionError):
    """A response whose status the API does not document for the call."""


def expect_status(response: httpx.Response, *statuses: int) -> httpx.Response:
    """``response``, if its status is one of ``statuses``; otherwise raise
    :class:`UnexpectedStatus` (the step fails as ``unexpected_error``), naming the status
    (first, so that a shortened line keeps it), the request and the start of the body::

        body = expect_status(self.http.post(url, json=data), 200, 201).json()
    """
    if response.status_code not in statuses:
        request = response.request
        wanted = " or ".join(map(str, statuses))
        raise UnexpectedStatus(
            f"{response.status_code} from {request.method} {request.url.path}, "
            f"expected {wanted}: {response.text[:200]}"
        )
    return response


class Disabled(Exception):
    """A command that cannot run in the current state (no existing id to draw)."""


@attrs.frozen(eq=False)
class _FromState:
    """What a state-dependent strategy draws: resolved against the model state just
    before the command runs (never recorded: steps record the resolved value)."""

    function: Callable[..., Any]
    names: tuple[str, ...]
    pick: int | None = None

    def resolve(self, state: Any, earlier: dict[str, Any]) -> Any:
        try:
            value = self.function(state, **{n: earlier[n] for n in self.names if n in earlier})
        except LookupError as exc:
            raise Disabled(str(exc)) from exc
        if value is None:
            raise Disabled("no value in this state")
        if self.pick is None:
            return value
        options = list(value)
        if not options:
            raise Disabled("nothing to choose from")
        with contextlib.suppress(TypeError):  # unorderable: the collection's own order
            options.sort()
        return options[self.pick % len(options)]


def _argument_names(function: Callable[..., Any], what: str) -> tuple[str, ...]:
    """The parameters of ``function`` after the state: which arguments it reads."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as exc:
        raise InvalidModel(f"{what}: cannot read the parameters of {function!r}") from exc
    if not parameters:
        raise InvalidModel(f"{what} must take the model state as its first parameter")
    return tuple(p.name for p in parameters[1:])


def from_state(function: Callable[..., Any]) -> SearchStrategy[Any]:
    """A strategy for an argument whose value comes from the model state: ``function
    (state, **earlier_arguments)`` is called just before the command runs, with the
    arguments declared before this one that it names::

        amount=st.none() | st.integers(1, 1000) | from_state(lambda l, key: l.charges[key].rest)

    Mixed with plain strategies, it makes boundary values (exactly what remains, the
    last unit) come up without a rule written for them. ``None`` (no such value here:
    nothing left to refund) or a ``LookupError`` (no such key yet) skips the command
    this time, and the engine draws its arguments again.
    """
    names = _argument_names(function, "a from_state function")
    return st.just(_FromState(function, names))


def sampled_from_state(function: Callable[..., Any]) -> SearchStrategy[Any]:
    """A strategy for one of the values ``function(state, **earlier_arguments)`` returns
    (a collection: existing ids, keys, jobs), chosen just before the command runs; when
    the collection is empty the command is skipped this time::

        job=sampled_from_state(lambda queue: queue.jobs)
    """
    names = _argument_names(function, "a sampled_from_state function")
    return st.integers(0, 2**16 - 1).map(lambda pick: _FromState(function, names, pick))


def resolve(arguments: dict[str, Any], state: Any) -> dict[str, Any]:
    """``arguments`` with what state-dependent strategies drew replaced by their values
    in ``state``, in declaration order; :class:`Disabled` when one has none."""
    resolved: dict[str, Any] = {}
    for name, value in arguments.items():
        resolved[name] = value.resolve(state, resolved) if isinstance(value, _FromState) else value
    return resolved


def unresolved(arguments: dict[str, Any]) -> bool:
    """Whether ``arguments`` still hold draws of state-dependent strategies."""
    return any(isinstance(value, _FromState) for value in arguments.values())


class Command(Operation):
    """A command: argument strategies, precondition, real call and model function.

    Made with :func:`command`; its model function is added with ``@<name>.model``."""

    def __init__(
        self,
        call: Callable[..., Any],
        arguments: dict[str, SearchStrategy[Any]],
        *,
        idempotent: bool,
        requires: Callable[..., bool] | None,
    ) -> None:
        super().__init__(call, arguments)
        self.idempotent = idempotent
        self.requires = requires
        self.model_function: Callable[..., Any] | None = None
        what = f"the precondition of {self.name}"
        self._requires_names = _argument_names(requires, what) if requires else ()
        unknown = [n for n in self._requires_names if n not in arguments]
        if unknown:
            raise InvalidModel(
                f"the precondition of {self.name} reads {unknown[0]!r}, which is not one of "
                f"its arguments ({', '.join(arguments) or 'none'})"
            )

    def model(self, function: Callable[..., Any]) -> Command:
        """Decorate the model function: ``function(state, out, **arguments)`` states the
        postconditions with :func:`check` and returns the state after the command (None:
        unchanged). ``out`` is what the real call returned, or ``UNKNOWN`` when no answer
        came (then it returns the state if the command took effect)."""
        self.model_function = function
        self.transition = self._transition
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        """Checked when the model class is made (see :meth:`check_complete`)."""

    def check_complete(self, owner: type) -> None:
        """Raise :class:`InvalidModel` if the command has no model function."""
        if self.model_function is None:
            kind = type(self).__name__.lower()
            raise InvalidModel(
                f"{owner.__name__}.{self.name} is {'an' if kind[0] == 'o' else 'a'} @{kind} "
                f"without a model function: add one with @{self.name}.model (the "
                "postconditions and the next state)"
            )

    def allows(self, state: Any, arguments: dict[str, Any]) -> bool:
        """Whether the precondition holds in ``state`` for ``arguments``."""
        if self.requires is None:
            return True
        wanted = {n: arguments[n] for n in self._requires_names if n in arguments}
        return bool(self.requires(state, **wanted))

    def check_signatures(self, owner: type) -> None:
        """Raise :class:`InvalidModel` if the real call or the model function cannot take
        the declared arguments."""
        names = dict.fromkeys(self.arguments)
        for what, function, leading in (
            ("real call", self.call, (None,)),
            ("model function", self.model_function, (None, None)),
        ):
            try:
                inspect.signature(function).bind(*leading, **names)  # type: ignore[arg-type]
            except TypeError:
                shape = "(self" if what == "real call" else "(state, out"
                wanted = "".join(f", {n}" for n in names) + ")"
                raise InvalidModel(
                    f"{owner.__name__}.{self.name}: its {what} cannot take the command's "
                    f"arguments; write it as {self.name}{shape}{wanted}"
                ) from None

    def apply(self, state: Any, out: Any, arguments: dict[str, Any]) -> tuple[list[Check], Any]:
        """The checks the model function states for ``out`` in ``state``, and the state
        after the command. A model function that raises is a mistake in the model
        (:class:`propworkload.InvalidModel`), not a finding about the service."""
        assert self.model_function is not None
        collected: list[Check] = []
        token = _COLLECTED.set(collected)
        try:
            after = self.model_function(state, out, **arguments)
        except Exception as exc:
            text = str(exc).strip().split("\n", 1)[0]
            raise StopRun(
                "model",
                InvalidModel(
                    f"the model function of {self.name} raised {type(exc).__name__}: {text} "
                    f"(on {'an unknown outcome' if out is UNKNOWN else 'what the call returned'})"
                ),
            ) from exc
        finally:
            _COLLECTED.reset(token)
        return collected, state if after is None else after

    def landed(self, arguments: dict[str, Any]) -> Callable[[Any], Any]:
        """The state after the command took effect unseen (a lost answer, a copy)."""
        return lambda state: self.apply(state, UNKNOWN, arguments)[1]

    def _transition(self, state: Any, output: Any, **arguments: Any) -> tuple[bool, Any]:
        """The linearizability checker's step: possible when every check holds.

        The precondition is the client's reason to send the command, and another client
        may have made it false since (two withdrawals of the whole balance): the model
        function still says what the service should answer. Only where the precondition
        fails and the model function cannot run at all (the charge to refund is not there
        in this order) is the order ruled out."""
        if not self.allows(state, arguments):
            try:
                checks, after = self.apply(state, output, arguments)
            except StopRun:
                return False, state
        else:
            checks, after = self.apply(state, output, arguments)
        if output is UNKNOWN:
            return True, after
        accepted = _ACCEPTING.get()
        if accepted is None:
            return all(c.holds for c in checks), after
        return all(c.holds or accepted(c) for c in checks), after


class Observation(Command):
    """A read of the service's whole state, with its model function: an invariant of
    sequential runs and a final operation of parallel programs. Made with
    :func:`observation`."""

    def __init__(self, call: Callable[..., Any]) -> None:
        super().__init__(call, {}, idempotent=True, requires=None)

    def _transition(self, state: Any, output: Any, **arguments: Any) -> tuple[bool, Any]:
        if output is UNKNOWN:  # the read was not answered: it saw nothing to check
            return True, state
        return super()._transition(state, output, **arguments)


def command(
    *,
    idempotent: bool = False,
    requires: Callable[..., bool] | None = None,
    **arguments: SearchStrategy[Any],
) -> Callable[[Callable[..., Any]], Command]:
    """Declare a command, with a strategy for each argument of its real call.

    ``idempotent=True``: the service applies a repeated request once (an idempotency key,
    a PUT), so when no answer comes the call is made again (``Model.retry_attempts``
    times). Otherwise it is made once, and a request the network may have delivered twice
    counts as applied once or twice. ``requires(state, **arguments)`` is the precondition:
    the command runs only when it holds in every state the service may be in.
    """
    for name, strategy in arguments.items():
        if not isinstance(strategy, SearchStrategy):
            raise InvalidModel(
                f"@command argument {name}={strategy!r} is not a strategy: use st.just(...) "
                "for a fixed value, from_state(...) for one from the model state"
            )

    def declare(call: Callable[..., Any]) -> Command:
        return Command(call, arguments, idempotent=idempotent, requires=requires)

    return declare


def observation(call: Callable[..., Any]) -> Observation:
    """Declare an observation: a method that reads the service's state and returns it;
    add its model function with ``@<name>.model``."""
    return Observation(call)


def evaluate(
    states: Possible[Any],
    command: Command,
    out: Any,
    arguments: dict[str, Any],
    *,
    ignore: Callable[[Check], bool] = lambda check: False,
) -> tuple[Possible[Any] | None, list[Check], set[str]]:
    """The possible states after ``command`` answered ``out``: each state in which
    every check holds, moved on by the model function; None when no state passes. Also
    the checks that failed (in the states dropped) and the names of all checks stated.
    A failed check ``ignore`` accepts (a failure already known) rules nothing out."""
    failed: list[Check] = []
    names: set[str] = set()

    def step(state: Any) -> Any:
        checks, after = command.apply(state, out, arguments)
        names.update(c.name for c in checks)
        bad = [c for c in checks if not c.holds and not ignore(c)]
        if bad:
            failed.extend(bad)
            return None
        return after

    return states.advance(step), failed, names


def failing(failed: list[Check]) -> Check:
    """The check a step that failed in every state reports: the first that failed, with
    what each state expected of it (``{"one of": [...]}`` when they differ)."""
    first = failed[0]
    expected: list[Any] = []
    for c in failed:
        if c.name == first.name and c.expected not in expected:
            expected.append(c.expected)
    return attrs.evolve(first, expected=expected[0] if len(expected) == 1 else {"one of": expected})
