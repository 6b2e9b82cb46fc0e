"""The base class of models: a Hypothesis state machine that talks HTTP and records itself."""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import secrets
import textwrap
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
from hypothesis import stateful
from hypothesis import strategies as st

from ._errors import InvalidModel, InvariantFailure, SetupFailed, TargetUnreachable
from ._faults import Chooser, FaultTransport
from ._limits import DEFAULT_MAX_BODY, LimitedTransport
from ._operations import Operation, operations_of
from ._possible import Possible, TooManyPossibilities
from ._record import (
    DEFAULT_REDACT_FIELDS,
    ExampleRecord,
    Failure,
    RecordingTransport,
    Step,
    check_signature,
    jsonable,
    redact_fields,
    redact_text,
)
from ._runtime import RunState, StopRun, abandon_example, current_run
from ._spec import (
    Accept,
    Check,
    Command,
    Disabled,
    Observation,
    evaluate,
    failing,
    resolve,
)
from ._text import describe_error
from ._values import UnencodableValue, encode

__all__ = ["Model", "kind_of", "model_error", "operation_markers"]

_RULE_MARKERS = (stateful.RULE_MARKER, stateful.INITIALIZE_RULE_MARKER)
_INVARIANT_MARKER = stateful.INVARIANT_MARKER
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


def kind_of(member: Any) -> str | None:
    """``rule``, ``invariant`` or ``operation`` for a model member, else None."""
    if isinstance(member, Operation):
        return "operation"
    fn = member.__func__ if isinstance(member, staticmethod | classmethod) else member
    if any(hasattr(fn, marker) for marker in _RULE_MARKERS):
        return "rule"
    if hasattr(fn, _INVARIANT_MARKER):
        return "invariant"
    return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class _Namespace(dict[str, Any]):
    """A model's class body: a name bound to a rule, invariant or operation may not be
    bound again to something else (the first definition would vanish without a word)."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, Command) and value.name != name:
            raise InvalidModel(
                f"{self.owner}.{name} is the command {value.name!r} under another name: "
                f"name its model function after it (@{value.name}.model def {value.name})"
            )
        old = self.get(name)
        if old is not None and old is not value:
            kinds = [kind_of(old), kind_of(value)]
            if kinds[0] is not None:
                second = _a(kinds[1]) if kinds[1] else "another definition"
                raise InvalidModel(
                    f"{self.owner} defines {name!r} twice ({_a(kinds[0])}, then {second}); "
                    "the first would be lost: give each its own name"
                )
        super().__setitem__(name, value)


class _ModelType(type(stateful.RuleBasedStateMachine)):  # type: ignore[misc]
    @classmethod
    def __prepare__(mcs, name: str, bases: tuple[type, ...], **kwargs: Any) -> _Namespace:
        return _Namespace(name)


def model_error(message: str) -> StopRun:
    """A stop that ends the run with :class:`InvalidModel` (exit 2): for mistakes found
    only while the model runs."""
    return StopRun("model", InvalidModel(message))


def _recorded(value: Any, what: str) -> Any:
    """``value``, after checking that a trace can record it (a model error if not)."""
    try:
        encode(value)
    except UnencodableValue as exc:
        raise model_error(f"{what}: {exc}") from None
    return value


def _describe(exc: BaseException) -> str:
    """``Type: message``, on one line (first line of the message; an HTTP status first),
    secrets redacted."""
    return redact_text(describe_error(exc))


class Model(stateful.RuleBasedStateMachine, metaclass=_ModelType):
    """Base class of propworkload models.

    A model is a Hypothesis ``RuleBasedStateMachine``: write ``@rule``, ``@invariant``,
    ``@precondition``, ``@initialize`` and ``Bundle`` exactly as in Hypothesis. For every
    example the base class provides:

    - ``self.http``: an ``httpx.Client`` on the target, with timeouts, that records each
      exchange into the current step;
    - ``self.tenant``: a fresh, unique namespace (``tenant_prefix`` + random hex) for the
      example, so examples never see each other's data, on every run and every replay;
    - ``self.check(name, expected=..., actual=..., **ids)``: the invariant check.

    Example::

        class Counter(Model):
            sample = None  # no embedded service: needs APP_URL or --url

            def __init__(self):
                super().__init__()
                self.count = 0

            @rule()
            def increment(self):
                self.http.post(f"/counters/{self.tenant}/increment")
                self.count += 1

            @invariant()
            def count_matches(self):
                actual = self.http.get(f"/counters/{self.tenant}").json()["value"]
                self.check("count_matches", expected=self.count, actual=actual,
                           counter=self.tenant)

        if __name__ == "__main__":
            main(Counter)
    """

    #: Name printed on the SEED line; defaults to the class name in lower case.
    name: ClassVar[str | None] = None
    #: Name of the embedded sample service used when no URL is given, or None.
    sample: ClassVar[str | None] = None
    #: Prefix of ``self.tenant``.
    tenant_prefix: ClassVar[str] = "t_"
    #: Seconds an HTTP request may take before it counts as failed (waiting to connect,
    #: for the answer to start, and for the whole body once it has).
    http_timeout: ClassVar[float] = 10.0
    #: The largest response body read, in bytes: a larger one is a transport error (the
    #: outcome unknown), so a service answering without end cannot fill memory.
    http_max_body: ClassVar[int] = DEFAULT_MAX_BODY
    #: How many times :meth:`retry` sends a request before the outcome counts as unknown.
    retry_attempts: ClassVar[int] = 3
    #: Seconds :meth:`retry` waits before its second attempt (doubled for each later one).
    retry_backoff: ClassVar[float] = 0.01
    #: JSON fields (by name, case-insensitive substring) redacted from recorded bodies and
    #: from failure values, so they never reach a trace or the console.
    redact_fields: ClassVar[frozenset[str]] = DEFAULT_REDACT_FIELDS

    #: Concurrent mode (``--concurrency K``, see :func:`propworkload.operation`): makes
    #: the reference model's initial state (e.g. an ``attrs.frozen`` class).
    model_state: ClassVar[Callable[[], Any] | None] = None
    #: Concurrent mode: operations (without arguments) run after all clients are done,
    #: to observe the final state.
    final_operations: ClassVar[tuple[str, ...]] = ()
    #: Known deviations of the service the model accepts (see :func:`propworkload.accept`):
    #: their failures are counted, not reported, so that runs go on to the next one.
    accepted: ClassVar[tuple[Accept, ...]] = ()
    #: Concurrent mode: ``partition(op)`` names the independent part (key, customer) of
    #: a history an operation belongs to; each part is checked alone. None: one part.
    partition: ClassVar[Callable[..., Any] | None] = None

    tenant: str
    http: httpx.Client
    #: Models made of commands: every state the reference model may be in (the engine
    #: keeps it; read it in a plain ``@invariant`` if need be).
    possible: Possible[Any]
    #: In a command's real call: the model state its arguments were drawn in (the first
    #: possible state), to look up what the model knows (an id).
    state: Any
    #: In a command's real call: a key unique to this command, the same on every retry
    #: of it (an idempotency key for requests that have none of their own).
    operation_key: str
    #: What the clients of one parallel program share (ids they learned, resources
    #: :meth:`setup` made); in a sequential example, a dict of the one instance.
    shared: dict[str, Any]
    _pw_markers: ClassVar[tuple[str, ...]] = ()
    _pw_commands: ClassVar[dict[str, Command]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _instrument(cls)

    def __init__(self) -> None:
        super().__init__()
        run = current_run(type(self).sample)
        record = run.begin_example()
        self._pw_run: RunState = run
        self._pw_example: ExampleRecord = record
        self._pw_finished = False
        self.tenant = f"{self.tenant_prefix}{secrets.token_hex(4)}"
        self.shared = {}
        self.operation_key = ""
        if self._pw_commands:
            self.possible = Possible(self._initial_state())
        #: Commands that could not run, by name, with the possible states they failed in.
        self._pw_stuck: dict[str, tuple[Any, ...]] = {}
        record.tenant = self.tenant
        inner: httpx.BaseTransport = LimitedTransport(run.transport, max_body=self.http_max_body)
        choose = run.fault_chooser()
        if choose is not None:
            inner = FaultTransport(inner, _rules_only(record, choose))
        self.http = self._pw_http(run, record, inner)
        self._pw_prepare()

    def _pw_prepare(self) -> None:
        """Run :meth:`reset`, then :meth:`setup`; a failure of either stops the run."""
        for hook in (self.reset, self.setup):
            try:
                hook()
            except _CONNECT_ERRORS as exc:
                raise StopRun(
                    "target", TargetUnreachable(f"{self._pw_run.url}: {_describe(exc)}")
                ) from exc
            except StopRun:
                raise
            except Exception as exc:
                name = f"{type(self).__name__}.{hook.__name__}()"
                raise StopRun("setup", SetupFailed(f"{name} failed: {_describe(exc)}")) from exc

    @classmethod
    def _pw_client(
        cls,
        run: RunState,
        record: ExampleRecord,
        *,
        tenant: str,
        shared: dict[str, Any],
        faults: Chooser | None = None,
    ) -> Model:
        """One client of a parallel program: an instance with ``http`` (recording into
        ``record``; with ``faults``, injecting them into the requests of operations),
        ``tenant`` and ``shared``, and no Hypothesis state (operations are plain
        methods). Its ``teardown`` runs only the model's own."""
        client = cls.__new__(cls)
        client._pw_run = run
        client._pw_example = record
        client._pw_finished = True
        client.tenant = tenant
        client.shared = shared
        client.operation_key = ""
        if cls._pw_commands:
            client.possible = Possible(cls._initial_state())
        inner: httpx.BaseTransport = LimitedTransport(run.transport, max_body=cls.http_max_body)
        if faults is not None:
            inner = FaultTransport(inner, _rules_only(record, faults))
        client.http = cls._pw_http(run, record, inner)
        return client

    @classmethod
    def _pw_http(
        cls, run: RunState, record: ExampleRecord, inner: httpx.BaseTransport
    ) -> httpx.Client:
        """A client on the target that records its exchanges into ``record``."""
        return httpx.Client(
            base_url=run.url,
            transport=RecordingTransport(
                inner,
                record,
                redact=cls.redact_fields,
                on_answer=run.answered,
                on_connect_error=run.connect_failed,
            ),
            timeout=httpx.Timeout(cls.http_timeout),
            trust_env=False,
            headers={"user-agent": "propworkload"},
        )

    @classmethod
    def _initial_state(cls) -> Any:
        if cls.model_state is None:
            raise InvalidModel(
                f"{cls.__name__} has commands but no model_state: set it to the reference "
                "model's initial state (a class attribute, e.g. model_state = Ledger)"
            )
        return cls.model_state()

    @classmethod
    def model_name(cls) -> str:
        """The name printed on the SEED line."""
        return cls.name or cls.__name__.lower()

    def reset(self) -> None:
        """Hook: bring the service to a known state before each example (and each
        parallel program).

        Only needed for services without tenancy (where ``self.tenant`` cannot isolate
        examples). If it raises, the run stops with exit status 3.
        """

    def setup(self) -> None:
        """Hook: make what every example needs before its first step, after
        :meth:`reset`: an account, a table, a product to sell.

        In a parallel program it runs once, on the first client, before any client
        starts; what it puts in ``self.shared`` every client sees. Its requests get no
        faults. If it raises, the run stops with exit status 3. :meth:`teardown` is its
        counterpart: it runs after every example and program, even a failing one.
        """

    def check(
        self, name: str, *, expected: Any, actual: Any, holds: bool | None = None, **ids: Any
    ) -> None:
        """Check one invariant; raise :class:`InvariantFailure` when it does not hold.

        It holds when ``expected == actual``, or, if ``holds`` is given, when ``holds`` is
        true (then ``expected`` and ``actual`` only describe the check). Keyword ``ids``
        name what is involved (customer, key, ...) and are printed with a failure::

            self.check("charged_once", expected=1, actual=n, customer=self.tenant, key=key)
            self.check("balance_non_negative", holds=balance >= 0, expected=">=0",
                       actual=balance, customer=self.tenant)
        """
        __tracebackhide__ = True  # pytest would print the ids (secrets too) as its arguments
        self._pw_example.checks[name] += 1
        ok = (expected == actual) if holds is None else bool(holds)
        if ok or check_signature(name, expected, actual) in self._pw_run.known_failures:
            return
        if self._pw_accepts(Check(name, False, expected, actual, ids)):
            self._pw_example.accepted[name] += 1
            return
        raise InvariantFailure(name, expected=expected, actual=actual, ids=ids)

    @classmethod
    def _pw_accepts(cls, failed: Check) -> bool:
        """Whether a failed check is a known deviation the model accepts."""
        return any(deviation.matches(failed) for deviation in cls.accepted)

    def retry(
        self, send: Callable[[], httpx.Response], *, attempts: int | None = None
    ) -> httpx.Response | None:
        """Send an idempotent request until it is answered; None if it never was.

        ``send`` makes the request (with the same idempotency key every time). When it
        raises an ``httpx.TransportError`` (a timeout, a reset, a lost answer: injected by
        ``--faults`` or real), it is called again, up to ``attempts`` times in all
        (default :attr:`retry_attempts`), waiting :attr:`retry_backoff` seconds, doubled
        after each attempt, in between. Returns the first response, whatever its status;
        returns None when every attempt failed: then the outcome is *unknown* (the request
        may or may not have taken effect), the step is marked so, and the model should
        keep both possibilities (see :class:`propworkload.Possible`)::

            response = self.retry(lambda: self.http.post(url, json=body, headers=key))
            if response is None:
                self.states = self.states.maybe(lambda ledger: ledger.charge(...))
        """
        total = self.retry_attempts if attempts is None else attempts
        if total < 1:
            raise ValueError(f"attempts must be at least 1, got {total}")
        wait = self.retry_backoff
        errors = []
        for attempt in range(total):
            if attempt:
                time.sleep(min(wait, 1.0))
                wait *= 2
            try:
                return send()
            except httpx.TransportError as exc:
                errors.append(_describe(exc))
        step = self._pw_example.current_step
        if step is not None and self._pw_example.phase == "rule":
            step.unknown = f"{total} attempts failed: {errors[-1]}"
        return None

    def teardown(self) -> None:
        """Hook: clean up after every example and every parallel program (on its first
        client, after the final operations), even one that failed.

        The base class then closes the example's client and hands its record to the run:
        a model that overrides ``teardown`` gets this called after its own.
        """
        if self._pw_finished:
            return
        self._pw_finished = True
        self.http.close()
        self._pw_run.finish_example(self._pw_example)

    # -- commands -------------------------------------------------------------------

    def _pw_call(self, command: Command, arguments: dict[str, Any]) -> Any:
        """Make the command's real call; an idempotent one again (after a wait) while
        its requests go unanswered. Raises ``httpx.TransportError`` when no attempt was
        answered: the outcome is unknown."""
        self.operation_key = f"{self.tenant}-{command.name}-{secrets.token_hex(4)}"
        attempts = self.retry_attempts if command.idempotent else 1
        wait = self.retry_backoff
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(wait, 1.0))
                wait *= 2
            try:
                return command.call(self, **arguments)
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _pw_arguments(self, command: Command, drawn: dict[str, Any]) -> dict[str, Any] | None:
        """The command's arguments in declaration order, what depends on the state
        resolved (against the first possible state); None when the command cannot run
        now (nothing to draw, or its precondition fails in some possible state)."""
        order = {name: i for i, name in enumerate(command.arguments)}
        drawn = {k: drawn[k] for k in sorted(drawn, key=lambda k: order.get(k, len(order)))}
        states = self.possible.states
        try:
            arguments = resolve(drawn, states[0])
        except Disabled:
            return None
        if not all(command.allows(state, arguments) for state in states):
            return None
        self.state = states[0]
        return arguments

    def _pw_advance(
        self, command: Command, arguments: dict[str, Any], step: Step, *, strict: bool = True
    ) -> None:
        """Move the possible states on by what ``step`` observed (``step.output``, or an
        unknown outcome), allowing for deliveries the client did not see; raise
        :class:`InvariantFailure` when no possible state explains the observation.

        Not ``strict`` (a client's view of the state in a parallel program, where other
        clients' operations land unseen): the view moves on where it can and stays as it
        is where it cannot; the linearizability check is what judges."""
        __tracebackhide__ = True  # pytest would print the step (echoed secrets too)
        if not strict:
            with contextlib.suppress(Exception):
                self._pw_advance(command, arguments, step)
            return
        possible = self.possible
        landed = command.landed(arguments)
        # A service applies an idempotent request once, however often it arrives, and
        # its answer (to a retry too) tells of that once; any other request the client
        # got no answer to, or that arrived twice, may have taken effect unseen.
        for _ in range(0 if command.idempotent else step.hidden_deliveries()):
            possible = possible.maybe(landed)
        if step.outcome_unknown:
            self.possible = possible.maybe(landed)
            return
        known = self._pw_run.known_failures
        deviations: set[str] = set()

        def ignore(failed: Check) -> bool:
            if check_signature(failed.name, failed.expected, failed.actual) in known:
                return True
            if self._pw_accepts(failed):
                deviations.add(failed.name)
                return True
            return False

        after, failed, names = evaluate(possible, command, step.output, arguments, ignore=ignore)
        record = self._pw_example
        for name in names:
            record.checks[name] += 1
        for name in deviations:
            record.accepted[name] += 1
        if after is None:
            bad = failing(failed)
            raise InvariantFailure(bad.name, expected=bad.expected, actual=bad.actual, ids=bad.ids)
        self.possible = after

    # -- recording ------------------------------------------------------------------

    def _pw_step_failed(self, step: Step, exc: Exception, rule: str) -> None:
        """A step that raised: its error on the step, the failure on the example."""
        step.error = _describe(exc)
        if isinstance(exc, InvariantFailure):
            step.failed_check = exc.name
        self._pw_note_failure(exc, rule=rule, invariant=None)

    def _pw_note_failure(self, exc: Exception, *, rule: str | None, invariant: str | None) -> None:
        record = self._pw_example
        if record.failure is not None:
            return
        step = record.current_step.index if record.current_step else 0
        if isinstance(exc, InvariantFailure):
            fields = frozenset(f.lower() for f in self.redact_fields)
            record.failure = Failure(
                invariant=exc.name,
                expected=redact_fields(jsonable(exc.expected), fields),
                actual=redact_fields(jsonable(exc.actual), fields),
                ids=redact_fields(jsonable(exc.ids), fields),
                step=step,
                rule=rule,
            )
        elif invariant is not None:
            record.failure = Failure(
                invariant=invariant,
                expected="no exception",
                actual=_describe(exc),
                ids={},
                step=step,
                error=_describe(exc),
            )
        else:
            record.failure = Failure(
                invariant="unexpected_error",
                expected="no exception",
                actual=_describe(exc),
                ids={"rule": rule},
                step=step,
                error=_describe(exc),
                rule=rule,
            )


def _rules_only(record: ExampleRecord, choose: Chooser) -> Chooser:
    """Faults go into the requests rules make; setup and invariants observe cleanly."""

    def choose_in_rules(request: httpx.Request) -> Any:
        return choose(request) if record.phase == "rule" else None

    return choose_in_rules


def _wrap_rule(
    fn: Callable[..., Any], bundle_args: dict[str, dict[str, Any]], targets: tuple[str, ...]
) -> Callable[..., Any]:
    # Record arguments in the order the rule declares them, not Hypothesis's sorted order.
    order = {name: i for i, name in enumerate(inspect.signature(fn).parameters)}

    @functools.wraps(fn)
    def recorded_rule(self: Model, **kwargs: Any) -> Any:
        self._pw_run.before_step()
        record = self._pw_example
        arguments = {k: kwargs[k] for k in sorted(kwargs, key=lambda k: order.get(k, len(order)))}
        _recorded(arguments, f"the arguments of rule {fn.__name__}")
        step = record.begin_step(fn.__name__, arguments)
        step.bundle_args = bundle_args
        step.targets = targets
        started = time.perf_counter()
        try:
            result = fn(self, **kwargs)
        except (httpx.TransportError, TooManyPossibilities) as exc:
            # The rule's outcome is unknown and the rule did not say what the model should
            # make of it (or the model follows too many possibilities): the model can no
            # longer be trusted, so drop the example (it is neither a pass nor a failure).
            # Model.retry and Possible are the way to handle this.
            step.error = _describe(exc)
            step.unknown = f"{_describe(exc)} (not handled by the rule)"
            self._pw_run.abandoned += 1
            abandon_example(f"the outcome of {fn.__name__} is unknown: {_describe(exc)}")
        except Exception as exc:
            self._pw_step_failed(step, exc, fn.__name__)
            raise
        finally:
            step.duration_ms = (time.perf_counter() - started) * 1000
            record.phase = "after"
        values = result.values if isinstance(result, stateful.MultipleResults) else result
        step.multiple = isinstance(result, stateful.MultipleResults)
        if targets:
            # What replay puts in the bundles: it must come back as the same value.
            step.result = _recorded(
                list(values) if step.multiple else values, f"the result of rule {fn.__name__}"
            )
        return result

    recorded_rule._pw_recorded = True  # type: ignore[attr-defined]
    return recorded_rule


#: How often a command's arguments are drawn again when the command cannot run with them.
DRAW_ATTEMPTS = 4


def _command_rule(command: Command) -> Callable[..., Any]:
    """The Hypothesis rule that runs ``command``: it resolves what was drawn, makes the
    call (retried if idempotent), records the step and moves the possible states on.
    Replay calls it with the recorded arguments."""

    def command_rule(self: Model, _pw_data: Any = None, **drawn: Any) -> None:
        self._pw_run.before_step()
        record = self._pw_example
        # Under Hypothesis the arguments are drawn here, again while the command cannot
        # run with them (a key not charged yet, nothing to draw from the state), so that
        # steps are not spent doing nothing; a replay passes the recorded arguments.
        for _ in range(DRAW_ATTEMPTS if _pw_data is not None else 1):
            if _pw_data is not None:
                drawn = {n: _pw_data.draw(s, label=n) for n, s in command.arguments.items()}
            arguments = self._pw_arguments(command, drawn)
            if arguments is not None:
                break
            record.rejected[command.name] += 1
        else:
            self._pw_stuck[command.name] = tuple(self.possible.states)
            return
        _recorded(arguments, f"the arguments of command {command.name}")
        step = record.begin_step(command.name, arguments)
        started = time.perf_counter()
        try:
            try:
                output = self._pw_call(command, arguments)
            except httpx.TransportError as exc:
                tries = self.retry_attempts if command.idempotent else 1
                step.unknown = f"{tries} attempt{'s' * (tries > 1)} failed: {_describe(exc)}"
            else:
                step.output = _recorded(output, f"the output of command {command.name}")
            finally:
                step.duration_ms = (time.perf_counter() - started) * 1000
                record.phase = "after"
            self._pw_advance(command, arguments, step)
        except TooManyPossibilities as exc:
            self._pw_run.abandoned += 1
            abandon_example(f"{command.name}: {exc}")
        except Exception as exc:
            self._pw_step_failed(step, exc, command.name)
            raise

    command_rule.__name__ = command_rule.__qualname__ = command.name
    command_rule._pw_recorded = True  # type: ignore[attr-defined]
    return command_rule


def _observation_invariant(observation: Observation) -> Callable[..., Any]:
    """The invariant that makes ``observation`` and checks what it saw against every
    possible state (keeping those that agree)."""

    def observation_invariant(self: Model) -> None:
        self.state = self.possible.states[0]
        output = self._pw_call(observation, {})
        _recorded(output, f"the output of observation {observation.name}")
        probe = Step(index=0, rule=observation.name, arguments={}, output=output)
        self._pw_advance(observation, {}, probe)

    observation_invariant.__name__ = observation_invariant.__qualname__ = observation.name
    return observation_invariant


def _declare(cls: type[Model]) -> None:
    """Make the commands and observations ``cls`` declares rules and invariants of
    Hypothesis's (the marker on the command itself, so that the command keeps its name
    as an operation of parallel programs)."""
    wrong = [entry for entry in cls.accepted if not isinstance(entry, Accept)]
    if wrong:
        raise InvalidModel(
            f"{cls.__name__}.accepted holds {wrong[0]!r}: list known deviations with "
            "accept(name, **ids), e.g. accepted = (accept('charges_listed'),)"
        )
    commands = dict(getattr(cls, "_pw_commands", {}))
    for name, member in vars(cls).items():
        if not isinstance(member, Command):
            continue
        member.check_complete(cls)
        member.check_signatures(cls)
        commands[name] = member
        if hasattr(member, _INVARIANT_MARKER) or hasattr(member, stateful.RULE_MARKER):
            continue
        if isinstance(member, Observation):
            made = stateful.invariant()(_observation_invariant(member))
            setattr(member, _INVARIANT_MARKER, getattr(made, _INVARIANT_MARKER))
            continue
        function = stateful.precondition(_not_stuck(member.name))(_command_rule(member))
        declare: Any = stateful.rule  # (its overloads do not take a dict of strategies)
        made = declare(_pw_data=st.data())(function)
        setattr(member, stateful.RULE_MARKER, getattr(made, stateful.RULE_MARKER))
    cls._pw_commands = commands


def _not_stuck(name: str) -> Callable[[Model], bool]:
    """The Hypothesis precondition of a command: false while the possible states are
    those in which it could not run (nothing charged yet to refund), so that Hypothesis
    chooses another command instead of spending steps on this one; Hypothesis's swarm
    testing leaves some examples with few commands enabled. True again once the states
    move on, and whenever every command is stuck (a step that does nothing, rather than
    no step at all)."""

    def not_stuck(self: Model) -> bool:
        stuck, now = self._pw_stuck, tuple(self.possible.states)
        if stuck.get(name) != now:
            return True
        commands = [n for n, c in self._pw_commands.items() if not isinstance(c, Observation)]
        return all(stuck.get(other) == now for other in commands)

    return not_stuck


def _count_rejections(predicate: Callable[..., Any], rule: str) -> Callable[..., Any]:
    @functools.wraps(predicate)
    def counted_precondition(self: Model) -> Any:
        holds = predicate(self)
        if not holds:
            self._pw_example.rejected[rule] += 1
        return holds

    return counted_precondition


def _wrap_invariant(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = fn.__name__

    @functools.wraps(fn)
    def recorded_invariant(self: Model) -> Any:
        record = self._pw_example
        record.invariant_runs[name] += 1
        # ExampleRecord.in_phase("invariant"), inlined: this runs after every step.
        previous, record.phase = record.phase, "invariant"
        try:
            return fn(self)
        except httpx.TransportError as exc:
            # The service could not be observed (a timeout, a reset): nothing to check.
            # The run reports invariants that were never observed.
            record.unobserved.append(f"{name}: {_describe(exc)}")
            return None
        except TooManyPossibilities as exc:
            self._pw_run.abandoned += 1
            abandon_example(f"{name}: {exc}")
        except Exception as exc:
            self._pw_note_failure(exc, rule=None, invariant=name)
            raise
        finally:
            record.phase = previous

    recorded_invariant._pw_recorded = True  # type: ignore[attr-defined]
    return recorded_invariant


def _check_signature(
    cls: type, name: str, fn: Callable[..., Any], args: list[str], *, invariant: bool
) -> None:
    try:
        inspect.signature(fn).bind(None, **dict.fromkeys(args))
    except TypeError:
        params = ", ".join(inspect.signature(fn).parameters)
        if invariant:
            fix = "an @invariant() method takes only self"
        else:
            given = ", ".join(args) or "no arguments"
            fix = f"its @rule draws ({given}): make the parameters match the rule's keywords"
        raise InvalidModel(f"{cls.__name__}.{name}({params}) cannot be called: {fix}") from None


def _instrument(cls: type[Model]) -> None:
    """Validate the rules and invariants ``cls`` defines and make them record themselves.

    Hypothesis calls ``rule.function(machine, **arguments)`` and ``invariant.function
    (machine)``; replacing ``function`` on those records (once, here, at class definition)
    is what lets the tool record every step itself instead of parsing Hypothesis's output.
    """
    for name, member in vars(cls).items():
        kind = kind_of(member)
        for base in cls.__mro__[1:]:
            inherited = kind_of(vars(base).get(name))
            if kind is not None and inherited not in (None, kind):
                raise InvalidModel(
                    f"{cls.__name__}.{name} is {_a(kind)}, but {base.__name__}.{name} is "
                    f"{_a(inherited)}: the {inherited} would be lost; give each its own name"
                )
    _declare(cls)
    for name, raw in list(vars(cls).items()):
        fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
        markers = [m for m in (*_RULE_MARKERS, _INVARIANT_MARKER) if hasattr(fn, m)]
        if not markers:
            continue
        if isinstance(raw, staticmethod | classmethod):
            kind = type(raw).__name__
            raise InvalidModel(
                f"{cls.__name__}.{name} is a {kind}, but rules and invariants must be plain "
                f"methods: remove @{kind} and take `self` as the first parameter"
            )
        for marker in markers:
            spec = getattr(fn, marker)
            inner = getattr(spec, "function", None)
            if not callable(inner):  # pragma: no cover - guards against Hypothesis changes
                raise InvalidModel(
                    f"this Hypothesis version stores {marker} differently; "
                    "install a version the project supports (see pyproject.toml)"
                )
            if getattr(inner, "_pw_recorded", False):
                continue
            if marker == _INVARIANT_MARKER:
                _check_signature(cls, name, inner, [], invariant=True)
                wrapped = _wrap_invariant(inner)
            else:
                arguments = dict(spec.arguments)
                _check_signature(cls, name, inner, list(arguments), invariant=False)
                bundles = {
                    k: {"bundle": v.name, "consumes": bool(v.consume)}
                    for k, v in arguments.items()
                    if isinstance(v, stateful.Bundle)
                }
                targets = tuple(getattr(t, "name", t) for t in spec.targets)
                wrapped = _wrap_rule(inner, bundles, targets)
                spec.preconditions = tuple(
                    _count_rejections(p, inner.__name__) for p in spec.preconditions
                )
            # Rule is a mutable dataclass, Invariant a frozen one: set it the same way.
            object.__setattr__(spec, "function", wrapped)
    cls._pw_markers = _marker_names(cls)
    if "teardown" in vars(cls):
        user_teardown = vars(cls)["teardown"]

        @functools.wraps(user_teardown)
        def teardown(self: Model) -> None:
            try:
                user_teardown(self)
            finally:
                Model.teardown(self)

        cls.teardown = teardown  # type: ignore[method-assign]


def _markers_in(source: object) -> list[str]:
    """The ``sometimes``/``reachable`` markers called in ``source``'s code (a class or a
    function), in order; [] when its source cannot be read. Only calls whose name is a
    string literal (``sometimes(cond, "name")``, ``reachable("name")``) are listed."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(source)))  # type: ignore[arg-type]
    except (OSError, TypeError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        position = {"sometimes": 1, "reachable": 0}.get(called or "")
        if position is None:
            continue
        name: ast.expr | None = node.args[position] if len(node.args) > position else None
        for keyword in node.keywords:
            if keyword.arg == "name":
                name = keyword.value
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            found.append(name.value)
    return found


def _marker_names(cls: type) -> tuple[str, ...]:
    """Names of the markers called in the class's source: the catalog that lets a report
    flag a marker that was never hit."""
    inherited = [n for base in cls.__mro__[1:] for n in getattr(base, "_pw_markers", ())]
    return tuple(dict.fromkeys([*inherited, *_markers_in(cls)]))


def operation_markers(cls: type[Model]) -> list[str]:
    """The markers written in the model's operations' real calls (what a parallel run
    can hit; a marker in a transition would count the orders the checker tried)."""
    found: list[str] = []
    for operation in operations_of(cls).values():
        found += _markers_in(operation.call)
    return list(dict.fromkeys(found))


def invariants_of(cls: type[Model]) -> list[str]:
    """Names of the invariant methods a model class defines or inherits."""
    return [name for name, member in inspect.getmembers(cls) if hasattr(member, _INVARIANT_MARKER)]


def rules_of(cls: type[Model]) -> list[str]:
    """Names of the rules (including initialize rules) a model class defines or inherits."""
    names = []
    for name, member in inspect.getmembers(cls):
        if any(hasattr(member, m) for m in _RULE_MARKERS):
            names.append(name)
    return names
