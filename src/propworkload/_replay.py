"""Replaying recorded steps: no search, no generation, the same rules with the same
arguments, in a fresh namespace, with the model's invariants checked after each step.

:class:`Replay` is the public API (emitted pytest regressions use it);
:func:`replay_trace` drives it from a trace file and compares the new exchanges with the
recorded ones.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import attrs
import httpx
from hypothesis import stateful

from ._errors import InvalidTrace, InvariantFailure, PropworkloadError, TargetError
from ._faults import FAULT_KINDS, Fault, ScriptedFaults
from ._loader import load_model
from ._model import Model
from ._operations import operations_of
from ._parallel import execute_program
from ._program import Program
from ._record import ExampleRecord, Exchange, Failure, check_signature, redact_text
from ._redact import REDACTED, scrub
from ._runtime import RunState, StopRun, using_run
from ._spec import Command
from ._target import probe, resolve_target, ssl_context
from ._text import describe_error, short
from ._values import decode

__all__ = ["Replay", "ReplayOutcome", "decode_program", "recorded_kind", "replay_trace"]


def _model_modules(model: type[Model]) -> list[ModuleType]:
    """Where classes recorded in a trace may be found besides their own module: the
    model's (a model run as ``__main__`` records its classes there)."""
    module = sys.modules.get(model.__module__)
    return [module] if module is not None else []


def decode_value(model: type[Model], data: Any, what: str, *, version: int = 2) -> Any:
    """A recorded value, decoded (an :class:`InvalidTrace` if it cannot be); version 1
    traces recorded plain JSON, taken as it is."""
    if version == 1:
        return data
    try:
        return decode(data, modules=_model_modules(model))
    except ValueError as exc:
        raise InvalidTrace(f"{what} cannot be read back: {exc}") from None


def decode_program(model: type[Model], data: Any) -> Program:
    """A recorded program (as the trace holds it), checked against the model's
    operations."""
    try:
        program = Program.from_json(data, modules=_model_modules(model))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidTrace(f"the parallel program is malformed ({exc})") from None
    known = operations_of(model)
    for _, invocation in program.invocations():
        if invocation.name not in known:
            raise InvalidTrace(
                f"the trace runs operation {invocation.name!r}, which {model.__name__} "
                "does not have (was the model changed?)"
            )
        try:
            inspect.signature(known[invocation.name].call).bind(None, **invocation.arguments)
        except TypeError as exc:
            raise InvalidTrace(
                f"the trace calls {invocation.describe()}, which {model.__name__}."
                f"{invocation.name} does not take ({exc}; was the model changed?)"
            ) from None
    return program


def _members(cls: type[Model], marker: str) -> Iterator[tuple[str, Any]]:
    for name, member in inspect.getmembers(cls):
        spec = getattr(member, marker, None)
        if spec is not None:
            yield name, spec


class Replay:
    """Run a model's rules by name against a service, checking invariants after each.

    It runs the steps exactly as given, as ``propworkload run`` would have: a fresh
    tenant, the model's ``reset()`` hook, the invariants after setup and after every step.
    A broken invariant raises :class:`propworkload.InvariantFailure`. Rules are methods of
    the replay object::

        with Replay(Payments, url="http://127.0.0.1:8000") as run:
            k0 = run.charge(amount=1)
            run.refund(key=k0, amount=None)
            run.retry_charge(key=k0)

    ``url`` defaults to ``$APP_URL``, else the model's embedded sample service.

    Faults are injected into the next step's requests with :meth:`faults`, one per
    request in order (None: no fault)::

            with run.faults("lost-response"):  # the first request's answer is lost
                run.refund(key=k0, amount=None)

    A parallel program (a concurrent run's failure) runs with :meth:`program`.
    """

    def __init__(
        self,
        model: type[Model],
        *,
        url: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.url = url
        #: A transport to reach ``url`` with instead of the network (an app served
        #: in-process); the replay does not close it.
        self.transport = transport
        self._rules = dict(_members(model, stateful.RULE_MARKER))
        self._initializers = dict(_members(model, stateful.INITIALIZE_RULE_MARKER))
        self._invariants = [spec for _, spec in _members(model, stateful.INVARIANT_MARKER)]
        self._pending_init = set(self._initializers)
        self._stack = ExitStack()
        self._machine: Model | None = None
        self._state: RunState | None = None
        self._scripted = ScriptedFaults()
        self._next_faults: list[Fault | None] | None = None
        #: The record of an example whose model instance could not be made.
        self._unmade: ExampleRecord | None = None

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], class_name: str | None = None, *, url: str | None = None
    ) -> Replay:
        """A replay of the model class ``class_name`` (or the only one) in ``path``."""
        spec = f"{os.fspath(path)}::{class_name}" if class_name else os.fspath(path)
        model, _ = load_model(spec)
        return cls(model, url=url)

    @property
    def record(self) -> ExampleRecord:
        """What has been recorded so far: steps, exchanges, the failure if any."""
        if self._machine is None and self._unmade is not None:
            return self._unmade
        return self.machine._pw_example

    @property
    def machine(self) -> Model:
        """The model instance the steps run on, made (with its ``reset()``, ``setup()``
        and the invariants' first check) by the first step or :meth:`start`."""
        if self._state is None:
            raise RuntimeError("use the Replay in a `with` block")
        if self._machine is None:
            try:
                with _unwrap_stop():
                    self._machine = self.model()
            except Exception:
                # The model's own __init__ raised: the record the base class began, if it
                # got that far, holds what was sent.
                began = self._state.current_example
                self._unmade = began if began is not None else ExampleRecord(number=1)
                raise
            self._check_invariants()
        return self._machine

    def start(self) -> None:
        """Make the model instance and check the invariants before any step (the first
        step does it otherwise)."""
        _ = self.machine

    def __enter__(self) -> Replay:
        try:
            url = self._stack.enter_context(
                resolve_target(self.url, sample=self.model.sample, owner=self.model.__name__)
            )
            probe(url, transport=self.transport)
            transport = self.transport
            if transport is None:
                transport = httpx.HTTPTransport(retries=0, verify=ssl_context())
                self._stack.callback(transport.close)
            state = RunState(url=url, transport=transport, scripted_faults=self._scripted)
            state.answered()  # the probe was answered
            self._stack.enter_context(using_run(state))
            self._state = state
        except BaseException:
            self._stack.close()
            raise
        return self

    @property
    def url_in_use(self) -> str:
        """The base URL the replay sends its requests to."""
        if self._state is None:
            raise RuntimeError("use the Replay in a `with` block")
        return self._state.url

    def value(self, recorded: Any) -> Any:
        """A value as a trace records it (``{"$decimal": "1.50"}``), as Python: what an
        emitted regression test passes for values that have no literal."""
        return decode_value(self.model, recorded, "a recorded value")

    def run_program(self, program: Program | dict[str, Any]) -> ExampleRecord:
        """Run a parallel program once (its clients at once, with the recorded delays and
        faults) and check its history; return the run's record (``failure`` set if it
        failed)."""
        if self._state is None:
            raise RuntimeError("use the Replay in a `with` block")
        if not isinstance(program, Program):
            program = decode_program(self.model, program)
        with _unwrap_stop():
            record = execute_program(self.model, program, self._state)
        lost = _unanswered([e for step in record.steps for e in step.exchanges])
        if lost is not None:
            # Not one operation was answered: "linearizable" would be a pass of nothing.
            raise TargetError(
                f"{redact_text(self.url_in_use)}: no request of the program was answered "
                f"({lost}); nothing could be checked"
            )
        return record

    def program(self, program: Program | dict[str, Any], *, repeat: int = 1) -> None:
        """Run a parallel program up to ``repeat`` times (scheduling differs from run to
        run); raise :class:`propworkload.InvariantFailure` at the first run that fails."""
        for number in range(1, repeat + 1):
            record = self.run_program(program)
            failure = record.failure
            if failure is not None:
                ids = {**failure.ids, "run": f"{number}/{repeat}"}
                raise InvariantFailure(
                    failure.invariant, expected=failure.expected, actual=failure.actual, ids=ids
                )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._machine is not None:
                self._machine.teardown()
        finally:
            self._machine = self._state = None
            self._stack.close()

    def _check_invariants(self) -> None:
        machine = self.machine
        with _unwrap_stop():
            for invariant in self._invariants:
                if self._pending_init and not invariant.check_during_init:
                    continue
                if all(precondition(machine) for precondition in invariant.preconditions):
                    invariant.function(machine)

    def has_rule(self, rule: str) -> bool:
        """Whether the model has a rule (or initialize rule) named ``rule``."""
        return rule in self._rules or rule in self._initializers

    def parameters(self, rule: str) -> list[str]:
        """The names of the arguments ``rule`` (a command, a rule or an initialize rule)
        takes: those a recorded step of it holds."""
        member = inspect.getattr_static(self.model, rule, None)
        if isinstance(member, Command):
            return list(member.arguments)
        spec = self._initializers.get(rule) or self._rules.get(rule)
        if spec is None:
            raise AttributeError(f"{self.model.__name__} has no rule {rule!r}")
        return list(spec.arguments)

    def check_step(self, rule: str, arguments: dict[str, Any], *, where: str) -> None:
        """Raise :class:`InvalidTrace` unless the model has ``rule`` and it takes exactly
        ``arguments`` (a trace made before the model changed no longer fits it)."""
        if not self.has_rule(rule):
            raise InvalidTrace(
                f"{where} runs rule {rule!r}, which {self.model.__name__} does not have "
                "(was the model changed?)"
            )
        wanted = self.parameters(rule)
        if set(arguments) != set(wanted):
            raise InvalidTrace(
                f"{where} calls {rule}({', '.join(arguments)}), but {self.model.__name__}."
                f"{rule} takes ({', '.join(wanted)}) (was the model changed?)"
            )

    @contextmanager
    def faults(self, *faults: str | dict[str, Any] | None) -> Iterator[None]:
        """Inject ``faults`` into the requests of the steps run inside the block, one per
        request in order: a kind (``"lost-response"``), a recorded fault
        (``{"kind": "delay", "delay": 0.05}``), or None for a request without one."""
        parsed = []
        for fault in faults:
            found = None if fault is None else Fault.from_json(fault)
            if fault is not None and found is None:
                raise ValueError(f"unknown fault {fault!r}: choose from {', '.join(FAULT_KINDS)}")
            parsed.append(found)
        self._scripted.load(parsed)
        try:
            yield
        finally:
            self._scripted.load([])

    def step(
        self,
        rule: str,
        arguments: dict[str, Any] | None = None,
        *,
        faults: Sequence[str | dict[str, Any] | None] = (),
    ) -> Any:
        """Run ``rule`` with ``arguments`` (injecting ``faults``, as :meth:`faults` does),
        then the invariants; return the rule's result."""
        if faults:
            with self.faults(*faults):
                return self.step(rule, arguments)
        spec = self._initializers.get(rule) or self._rules.get(rule)
        if spec is None:
            known = ", ".join(sorted({*self._rules, *self._initializers}))
            raise AttributeError(f"{self.model.__name__} has no rule {rule!r} (rules: {known})")
        self.check_step(rule, arguments or {}, where=f"the step {rule}")
        self._pending_init.discard(rule)
        before = len(self.record.steps)
        with _unwrap_stop():
            result = spec.function(self.machine, **(arguments or {}))
        ran = len(self.record.steps) > before
        if isinstance(getattr(self.model, rule, None), Command) and not ran:
            lost = _lost_answer(self.record)
            if lost is not None:
                # What the command needs (an id) came from an answer the service never
                # completed: the service, not the trace, is why the replay cannot go on.
                raise TargetError(
                    f"{redact_text(self.url_in_use)}: {self.model.__name__}.{rule} cannot run: "
                    f"an earlier answer of the service was lost ({lost}); nothing could be "
                    "checked"
                )
            raise InvalidTrace(
                f"{self.model.__name__}.{rule} cannot run here: its precondition fails in the "
                "model's state, or what it draws from the state is not there"
            )
        self._check_invariants()
        if isinstance(result, stateful.MultipleResults):
            return tuple(result.values)
        return result

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or (name not in self._rules and name not in self._initializers):
            raise AttributeError(name)

        def run_rule(**arguments: Any) -> Any:
            return self.step(name, arguments)

        run_rule.__name__ = name
        return run_rule


def _lost_answer(record: ExampleRecord) -> str | None:
    """The last transport error of the service (not a fault the tool injected) in
    ``record``, if any."""
    exchanges = [*record.setup, *(e for step in record.steps for e in step.exchanges)]
    lost = [e.error for e in exchanges if e.error and e.fault is None]
    return lost[-1] if lost else None


def _unanswered(exchanges: Sequence[Exchange]) -> str | None:
    """The last transport error of the service when it answered none of ``exchanges``
    (None if it answered one, or every failure was an injected fault)."""
    if any(e.status is not None for e in exchanges):
        return None
    lost = [e.error for e in exchanges if e.error and e.fault is None]
    return lost[-1] if lost else None


@contextmanager
def _unwrap_stop() -> Iterator[None]:
    """Turn a run-stopping error (target gone, reset failed) back into that error."""
    try:
        yield
    except StopRun as stop:
        if stop.error is not None:
            raise stop.error from None
        raise


@attrs.frozen
class ReplayOutcome:
    """One replay of a trace: what ran, whether the recorded failure happened again, and
    how the exchanges differed from the recording."""

    record: ExampleRecord
    #: The recorded failure's kind (``Failure.kind``: the invariant; for an unexpected
    #: error, ``unexpected_error@<rule>``).
    expected: str
    failure: Failure | None
    differences: list[str]

    @property
    def reproduced(self) -> bool:
        """The same kind of failure happened again (an unexpected error: in the same
        rule; another rule raising, as every rule does against a broken service, is a
        different failure)."""
        return self.failure is not None and self.failure.kind == self.expected


def recorded_kind(failure: dict[str, Any]) -> str:
    """The kind (``Failure.kind``) of a failure as a trace records it."""
    invariant = str(failure["invariant"])
    rule = failure.get("rule")
    if invariant == "unexpected_error" and rule:
        return f"{invariant}@{rule}"
    if failure.get("operation"):
        return invariant
    return check_signature(invariant, failure.get("expected"), failure.get("actual"))


def _raised(record: ExampleRecord, exc: Exception, where: str) -> None:
    """Note an error raised outside any step (the model's ``__init__``, its
    ``teardown``) as the example's failure, unless it failed already: a replay gives a
    verdict, never a traceback."""
    if record.failure is None:
        described = redact_text(describe_error(exc))
        record.failure = Failure(
            invariant="unexpected_error",
            expected="no exception",
            actual=described,
            ids={"rule": where},
            step=len(record.steps),
            error=described,
            rule=where,
        )


def replay_trace(
    trace: dict[str, Any],
    model: type[Model],
    url: str | None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> ReplayOutcome:
    """Replay the steps of ``trace`` once against ``url`` (None: ``APP_URL``, else the
    model's embedded sample service), through ``transport`` if given."""
    recorded_bundles: dict[str, list[Any]] = defaultdict(list)
    replayed_bundles: dict[str, list[Any]] = defaultdict(list)
    replay = Replay(model, url=url, transport=transport)
    # A trace the model no longer fits (a rule or an argument renamed) is refused before
    # any request: what it would do is a mistake of the replay, not a finding.
    version = trace.get("version", 2)
    steps = []
    for step in trace["steps"]:
        where = f"the trace's step {step.get('index', '?')}"
        step = {
            **step,
            "arguments": decode_value(
                model, step["arguments"], f"{where}'s arguments", version=version
            ),
            "result": decode_value(model, step.get("result"), f"{where}'s result", version=version),
        }
        replay.check_step(step["rule"], step["arguments"], where=where)
        if step.get("multiple") and not isinstance(step["result"], list | tuple | None):
            raise InvalidTrace(f"{where}'s result is not a list of values")
        steps.append(step)
    record: ExampleRecord | None = None
    try:
        with replay as run:
            try:
                run.start()
            except PropworkloadError:
                raise
            except Exception as exc:
                steps = []  # the failure came before the first step
                if run.record.failure is None:
                    _raised(run.record, exc, f"{model.__name__}()")
            for step in steps:
                arguments = _arguments(step, recorded_bundles, replayed_bundles)
                faults = [
                    exchange.get("fault")
                    for exchange in step.get("exchanges", [])
                    if exchange.get("phase") == "rule"
                ]
                try:
                    result = run.step(step["rule"], arguments, faults=faults if any(faults) else ())
                except PropworkloadError:
                    raise
                except Exception:
                    break  # the failure is in run.record
                multiple = step.get("multiple") and isinstance(result, tuple)
                values = list(result) if multiple else [result]
                recorded = step.get("result")
                recorded_values = list(recorded or []) if step.get("multiple") else [recorded]
                for target in step.get("targets", ()):
                    recorded_bundles[target].extend(recorded_values)
                    replayed_bundles[target].extend(values)
            record = run.record
            exchanges = [*record.setup, *(e for step in record.steps for e in step.exchanges)]
            lost = _unanswered(exchanges)
            if lost is not None:
                raise TargetError(
                    f"{redact_text(run.url_in_use)}: no request of the replay was answered "
                    f"({lost}); nothing could be checked"
                )
    except PropworkloadError:
        raise
    except Exception as exc:
        if record is None:
            raise
        _raised(record, exc, "teardown")  # the model's teardown raised
    differences = compare(trace, record)
    return ReplayOutcome(
        record=record,
        expected=recorded_kind(trace["failure"]),
        failure=record.failure,
        differences=differences,
    )


def _arguments(
    step: dict[str, Any],
    recorded_bundles: dict[str, list[Any]],
    replayed_bundles: dict[str, list[Any]],
) -> dict[str, Any]:
    """The step's arguments, with values drawn from bundles replaced by the values the
    replay placed at the same positions (ids the service generated differ on each run)."""
    arguments = dict(step["arguments"])
    for name, source in step.get("bundle_arguments", {}).items():
        bundle = source["bundle"]
        recorded, replayed = recorded_bundles[bundle], replayed_bundles[bundle]
        if arguments.get(name) not in recorded:
            continue
        index = recorded.index(arguments[name])
        arguments[name] = replayed[index]
        if source.get("consumes"):
            del recorded[index], replayed[index]
    return arguments


_GENERATED = re.compile(
    r"^[A-Za-z]{1,12}_[A-Za-z0-9]{4,}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
MAX_DIFFERENCES = 20


@attrs.define
class _Names:
    """Generated names (ids, tenants) matched between the recording and the replay: each
    recorded name must always be replayed as the same new name."""

    forward: dict[str, str] = attrs.field(factory=dict)
    backward: dict[str, str] = attrs.field(factory=dict)

    def same(self, recorded: str, replayed: str) -> bool | str:
        if recorded == replayed:
            return True
        if not (_GENERATED.match(recorded) and _GENERATED.match(replayed)):
            return False
        if recorded in self.forward:
            if self.forward[recorded] == replayed:
                return True
            return f"(the replay's name for it is {self.forward[recorded]})"
        if replayed in self.backward:
            return f"(the replay's name for recorded {self.backward[replayed]})"
        self.forward[recorded] = replayed
        self.backward[replayed] = recorded
        return True


def _compare_values(path: str, recorded: Any, replayed: Any, names: _Names, out: list[str]) -> None:
    if recorded == REDACTED:
        return
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in {**recorded, **replayed}:
            if key not in replayed:
                out.append(f"{path}.{key} missing, recorded {short(recorded[key])}")
            elif key not in recorded:
                out.append(f"{path}.{key}={short(replayed[key])} not in the recording")
            else:
                _compare_values(f"{path}.{key}", recorded[key], replayed[key], names, out)
        return
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            out.append(f"{path} has {len(replayed)} items, recorded {len(recorded)}")
            return
        for i, (r, p) in enumerate(zip(recorded, replayed, strict=True)):
            _compare_values(f"{path}[{i}]", r, p, names, out)
        return
    if isinstance(recorded, str) and isinstance(replayed, str):
        if REDACTED in recorded and scrub(replayed) == recorded:
            return  # the trace keeps no secret, the replay's had one in the same place
        same = names.same(recorded, replayed)
        if same is True:
            return
        note = f" {same}" if isinstance(same, str) else ""
        out.append(f"{path}={short(replayed)}{note}, recorded {short(recorded)}")
        return
    if recorded != replayed:
        out.append(f"{path}={short(replayed)}, recorded {short(recorded)}")


def _body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compare_exchange(recorded: dict[str, Any], replayed: Exchange, names: _Names) -> list[str]:
    out: list[str] = []
    r_path, p_path = recorded.get("target", "").split("/"), replayed.target.split("/")
    if len(r_path) == len(p_path):
        for r, p in zip(r_path, p_path, strict=True):
            if r and p and names.same(r, p) is not True:
                out.append(f"request {replayed.target}, recorded {recorded.get('target')}")
                break
    if recorded.get("status") != replayed.status:
        out.append(f"status {replayed.status}, recorded {recorded.get('status')}")
    _compare_values(
        "body", _body(recorded.get("response_body", "")), _body(replayed.response_body), names, out
    )
    return out


def compare(trace: dict[str, Any], record: ExampleRecord) -> list[str]:
    """Lines saying where the replay's exchanges differ from the recorded ones."""
    names = _Names()
    if isinstance(trace.get("tenant"), str) and record.tenant:
        names.same(trace["tenant"], record.tenant)
    lines: list[str] = []
    for recorded_step, replayed_step in zip(trace["steps"], record.steps, strict=False):
        label = f"step {replayed_step.index} {replayed_step.rule}"
        recorded_exchanges = recorded_step.get("exchanges", [])
        for recorded, replayed in zip(recorded_exchanges, replayed_step.exchanges, strict=False):
            for difference in _compare_exchange(recorded, replayed, names):
                lines.append(f"{label}: {replayed.method} {replayed.target}: {difference}")
        if len(recorded_exchanges) != len(replayed_step.exchanges):
            lines.append(
                f"{label}: {len(replayed_step.exchanges)} requests, "
                f"recorded {len(recorded_exchanges)}"
            )
    if len(record.steps) < len(trace["steps"]):
        lines.append(f"stopped after step {len(record.steps)} of {len(trace['steps'])}")
    if len(lines) > MAX_DIFFERENCES:
        lines = [*lines[:MAX_DIFFERENCES], f"... and {len(lines) - MAX_DIFFERENCES} more"]
    return lines


def model_path_from_trace(trace: dict[str, Any], trace_path: Path) -> Path:
    """The model file a trace names (absolute, or relative to the trace)."""
    recorded = Path(trace["model"]["file"])
    if recorded.is_absolute():
        return recorded
    return (trace_path.parent / recorded).resolve()
