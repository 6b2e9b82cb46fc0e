"""Parallel programs: drawing them, running one against the service, checking its history.

A program (``_program``) is a prefix of operations run by one client, K branches run by K
threads released together (each client with its own connection), and the model's final
operations (observations) after all of them. :func:`execute_program` runs it once and
returns an :class:`ExampleRecord` like any example's: one step per operation, with its
client, call and return times, what it observed, and its exchanges. The history is then
checked for linearizability against the operations' model transitions
(``_linearizability``).

Faults (``--faults``) go into the operations' requests as in sequential runs; they are
drawn with the program (a fault for each of an operation's first requests), so replay
injects the same ones. A request the service may have received without the client seeing
the answer (``lost-response``, ``reset``, the copy of a ``duplicate``) may have taken
effect on its own: the history gets one more operation of unknown outcome for it, which
may take effect at any moment after the call, or never.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import secrets
import threading
import time
from collections.abc import Callable, Container, Sequence
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from ._describe import describe_step
from ._errors import InvalidModel, InvalidOption, InvariantFailure
from ._faults import DrawnFaults, Fault, FaultPlan, ScriptedFaults
from ._linearizability import CheckResult, check_operations
from ._linearizability import Operation as HistoryOp
from ._model import Model, model_error
from ._operations import UNKNOWN, Operation, operations_of
from ._program import Invocation, Program
from ._record import ExampleRecord, Failure, HistoryCheck, Step, redact_text
from ._runtime import RunState, StopRun, counting_into
from ._spec import Command, Observation, accepting
from ._text import describe_error, short
from ._values import UnencodableValue, encode

__all__ = [
    "PERTURB_MAX",
    "ProgramShape",
    "check_history",
    "execute_program",
    "history_of",
    "idempotent_commands",
    "runs_needed",
]

#: Most operations in a program's prefix and in one client's branch. Measured against 3
#: (bench/results/races-per-client.md, 40 unseen seeds): 5 finds the payments refund race
#: in a median 7 examples against 20.5 and the jobs double lease in 6.5 against 9, no
#: slower in seconds, every race still shrunk to its minimum; a run takes longer (its
#: programs do more, and shrinking a longer one can take longer).
MAX_PER_CLIENT = 5
#: Requests of one operation that may get a drawn fault (its first ones).
FAULT_SLOTS = 2
#: Chance that a client waits before an operation, and the longest wait (seconds): the
#: schedule perturbation that moves clients' operations against each other. Measured
#: (bench/results/races*.md), they show no consistent effect: Kinto's batch race was found
#: sooner with them, the payments refund race later; longer, more frequent ones (30%, up
#: to 30 ms) made Kinto's slower to find; so they are rare and short.
PERTURB_RATE = 0.15
PERTURB_MAX = 0.01
#: Chance that a client's operations are those of an earlier client (mirroring).
MIRROR_RATE = 0.25


class ProgramShape:
    """What the programs of one run are made of: the model's operations (those clients
    draw and the final ones), the clients, the longest program, and the search's
    heuristics: faults, waits before operations (``perturb``), clients that repeat an
    earlier client's operations (``mirror``)."""

    def __init__(
        self,
        model_cls: type[Model],
        *,
        concurrency: int,
        steps: int,
        faults: FaultPlan | None = None,
        perturb: bool = True,
        mirror: bool = True,
    ) -> None:
        if model_cls.model_state is None:
            raise InvalidModel(
                f"{model_cls.__name__} has no model_state: --concurrency needs the initial "
                "state of the reference model (a class attribute, e.g. model_state = Ledger)"
            )
        operations = operations_of(model_cls)
        missing = [name for name in model_cls.final_operations if name not in operations]
        if missing:
            raise InvalidModel(
                f"{model_cls.__name__}.final_operations names {missing[0]!r}, which is not "
                "an @operation of the model"
            )
        final_names = model_cls.final_operations or tuple(
            name for name, op in operations.items() if isinstance(op, Observation)
        )
        finals = set(final_names)
        self.drawable = [
            op
            for name, op in operations.items()
            if name not in finals and not isinstance(op, Observation)
        ]
        if not self.drawable:
            raise InvalidModel(
                f"{model_cls.__name__} declares no @operation: --concurrency needs the "
                "operations clients run at once, each with its model transition (see docs)"
            )
        if steps < 2:
            raise InvalidOption("--steps must be at least 2 with --concurrency: two clients")
        self.final = tuple(Invocation(name) for name in final_names)
        self.concurrency = concurrency
        self.steps = steps
        self.faults = DrawnFaults(faults) if faults is not None else None
        self.perturb = perturb
        self.mirror = mirror
        self._invocation = st.one_of(
            [st.fixed_dictionaries(op.arguments).map(_invoking(op.name)) for op in self.drawable]
        )

    def operation_names(self) -> list[str]:
        """Every operation a program of this shape may run."""
        return [op.name for op in self.drawable] + [i.name for i in self.final]

    def draw(self, data: Any, conjecture: Any) -> Program:
        """A program, drawn from Hypothesis's ``data`` (``st.data()``) and, for faults
        and delays, its ``ConjectureData``."""
        left = self.steps
        groups: list[list[Invocation]] = []
        for index in range(self.concurrency + 1):
            # The prefix leaves two operations at least to the clients.
            most = min(MAX_PER_CLIENT, left - 2 if index == 0 else left)
            if index >= 2 and most and self.mirror and conjecture.draw_boolean(MIRROR_RATE):
                # This client does what an earlier one does: two clients at the same thing
                # at once is where races live (two charges with one key, two refunds of
                # one charge, two leases of one job).
                drawn = list(groups[conjecture.draw_integer(1, index - 1)][:most])
            else:
                # Two clients at least do something: a program with one is sequential.
                least = 1 if 1 <= index <= 2 and left >= 3 - index else 0
                drawn = (
                    data.draw(st.lists(self._invocation, min_size=least, max_size=most))
                    if most
                    else []
                )
            left -= len(drawn)
            groups.append(drawn)
        prefix, *branches = groups
        prefix = [self._decorate(inv, conjecture, delay=False) for inv in prefix]
        branches = [[self._decorate(inv, conjecture) for inv in b] for b in branches]
        return Program(tuple(prefix), tuple(tuple(b) for b in branches), self.final)

    def _decorate(
        self, invocation: Invocation, conjecture: Any, *, delay: bool = True
    ) -> Invocation:
        wait = 0.0
        if delay and self.perturb and conjecture.draw_boolean(PERTURB_RATE):
            wait = conjecture.draw_integer(1, round(PERTURB_MAX * 1000)) / 1000
        faults: tuple[Fault | None, ...] = ()
        if self.faults is not None:
            faults = tuple(self.faults.draw(conjecture) for _ in range(FAULT_SLOTS))
            if not any(faults):
                faults = ()
        return Invocation(invocation.name, invocation.arguments, wait, faults)


def _invoking(name: str) -> Callable[[dict[str, Any]], Invocation]:
    return lambda arguments: Invocation(name, arguments)


class _Spec:
    """The model's operations as the linearizability checker's sequential model."""

    def __init__(self, model_cls: type[Model]) -> None:
        self._operations = operations_of(model_cls)
        initial = model_cls.model_state
        assert initial is not None
        self._init = initial

    def init(self) -> Any:
        return self._init()

    def step(self, state: Any, op: HistoryOp) -> tuple[bool, Any]:
        name, arguments = op.input
        transition = self._operations[name].transition
        assert transition is not None
        output = UNKNOWN if op.unknown else op.output
        try:
            return transition(state, output, **arguments)
        except Exception as exc:
            raise model_error(
                f"the model transition of {name} raised {type(exc).__name__}: {exc} "
                f"(on output {short(output)})"
            ) from exc


def _partition(model_cls: type[Model]) -> Callable[[HistoryOp], Any] | None:
    """The model's ``partition``, its errors made model errors."""
    partition = model_cls.partition
    if partition is None:
        return None

    def part(op: HistoryOp) -> Any:
        try:
            return partition(op)
        except Exception as exc:
            raise model_error(
                f"{model_cls.__name__}.partition raised {type(exc).__name__}: {exc}"
            ) from exc

    return part


def _describe_error(exc: BaseException) -> str:
    return redact_text(describe_error(exc))


class _Client:
    """One client of a program run: its model instance, the record it writes into and
    the faults it injects."""

    def __init__(
        self,
        model_cls: type[Model],
        run: RunState,
        record: ExampleRecord,
        tenant: str,
        shared: dict[str, Any],
    ) -> None:
        self.record = record
        self.faults = ScriptedFaults()
        self.model = model_cls._pw_client(
            run, record, tenant=tenant, shared=shared, faults=self.faults
        )
        self.operations = operations_of(model_cls)

    def perform(self, client: int, invocation: Invocation, started: float) -> Invocation | None:
        """Run one operation of the program; return it as it ran (arguments that depend on
        the model state resolved), or None when a command could not run (its precondition
        failed in this client's view of the state)."""
        operation: Operation = self.operations[invocation.name]
        record = self.record
        model = self.model
        command = operation if isinstance(operation, Command) else None
        arguments = invocation.arguments
        if command is not None:
            # The client's view: the state after the prefix and its own operations.
            resolved = model._pw_arguments(command, arguments)
            if resolved is None:
                record.rejected[invocation.name] += 1
                return None
            arguments = resolved
            invocation = attrs.evolve(invocation, arguments=arguments)
        if invocation.delay:
            time.sleep(invocation.delay)
        self.faults.load(list(invocation.faults))
        try:
            encode(arguments)
        except UnencodableValue as exc:
            raise model_error(f"the arguments of operation {invocation.name}: {exc}") from None
        step = record.begin_step(invocation.name, arguments)
        step.client, step.delay = client, invocation.delay
        step.call = time.perf_counter() - started
        try:
            if command is not None:
                output = model._pw_call(command, arguments)
            else:
                output = operation.call(model, **arguments)
        except httpx.TransportError as exc:
            # Unanswered (a fault, a timeout): the outcome is unknown.
            step.unknown = _describe_error(exc)
        except InvariantFailure as exc:
            step.ret = time.perf_counter() - started
            step.error, step.failed_check = _describe_error(exc), exc.name
            model._pw_note_failure(exc, rule=invocation.name, invariant=None)
        except Exception as exc:
            step.ret = time.perf_counter() - started
            step.error = _describe_error(exc)
            model._pw_note_failure(exc, rule=invocation.name, invariant=None)
        else:
            step.ret = time.perf_counter() - started
            step.output = output
        finally:
            step.duration_ms = (time.perf_counter() - started - step.call) * 1000
            self.faults.load([])
            record.phase = "after"
        if step.ret is not None and step.error is None and step.unknown is None:
            try:
                encode(output)
            except UnencodableValue as exc:
                raise model_error(f"the output of operation {invocation.name}: {exc}") from None
        if command is not None:
            model._pw_advance(command, arguments, step, strict=False)
        return invocation


def execute_program(
    model_cls: type[Model],
    program: Program,
    run: RunState,
    *,
    number: int = 0,
    check_timeout: float = 10.0,
) -> ExampleRecord:
    """Run ``program`` once against the run's target and check its history.

    The first client runs the model's ``reset()`` and ``setup()``, the prefix, then (once
    every branch is done) the final operations and ``teardown()``, which runs even when
    something failed; the returned record holds the steps of all clients, the check and
    the failure, if any."""
    tenant = f"{model_cls.tenant_prefix}{secrets.token_hex(4)}"
    record = ExampleRecord(number=number, tenant=tenant, program=program)
    run.current_example = record  # where sometimes() and reachable() count
    shared: dict[str, Any] = {}
    first = _Client(model_cls, run, record, tenant, shared)
    clients = [first]
    started = time.perf_counter()
    # The program as it ran: what depends on the model state resolved, what could not
    # run left out (what a trace records and a replay runs).
    ran: list[list[Invocation]] = [[] for _ in range(len(program.branches) + 2)]
    try:
        first.model._pw_prepare()
        for invocation in program.prefix:
            _keep(ran[0], first.perform(0, invocation, started))
        branch_records = [ExampleRecord(number=number, tenant=tenant) for _ in program.branches]
        branch_clients = {
            i: _Client(model_cls, run, branch_records[i], tenant, shared)
            for i, branch in enumerate(program.branches)
            if branch
        }
        if hasattr(first.model, "possible"):  # each client starts from the prefix's view
            for client in branch_clients.values():
                client.model.possible = first.model.possible
        clients += list(branch_clients.values())
        _run_branches(program, branch_clients, run, started, ran[1:-1])
        for branch_record in branch_records:
            _merge(record, branch_record)
        _learn_branches(first, branch_records)
        for invocation in program.final:
            _keep(ran[-1], first.perform(0, invocation, started))
    finally:
        record.program = Program(tuple(ran[0]), tuple(map(tuple, ran[1:-1])), tuple(ran[-1]))
        with record.in_phase("after"):
            try:
                first.model.teardown()
            except StopRun:
                raise
            except Exception as exc:
                if record.failure is None:
                    record.failure = Failure(
                        invariant="unexpected_error",
                        expected="no exception",
                        actual=_describe_error(exc),
                        ids={"rule": "teardown"},
                        step=len(record.steps),
                        error=_describe_error(exc),
                        rule="teardown",
                    )
        for client in clients:
            client.model.http.close()
    for index, step in enumerate(record.steps, 1):
        step.index = index
    _check(model_cls, record, timeout=check_timeout)
    return record


def _learn_branches(first: _Client, branches: list[ExampleRecord]) -> None:
    """Before the final observations, let the first client's view of the state take in
    what the other clients did (their commands in client order, where they fit), so that
    observations read what they made (ids of their charges, say). The view only steers
    what is read; the linearizability check judges what was seen."""
    model = first.model
    if not hasattr(model, "possible"):
        return
    for branch in branches:
        for step in branch.steps:
            command = first.operations.get(step.rule)
            if isinstance(command, Command):
                model._pw_advance(command, step.arguments, step, strict=False)


def _keep(ran: list[Invocation], invocation: Invocation | None) -> None:
    if invocation is not None:
        ran.append(invocation)


def _merge(record: ExampleRecord, branch: ExampleRecord) -> None:
    """Append a client's steps, counts and failure to the program's record (a failure's
    step becomes its place in the program)."""
    offset = len(record.steps)
    record.steps += branch.steps
    for name in ("checks", "rejected", "invariant_runs", "markers"):
        getattr(record, name).update(getattr(branch, name))
    if record.failure is None and branch.failure is not None:
        record.failure = attrs.evolve(branch.failure, step=branch.failure.step + offset)


def _run_branches(
    program: Program,
    clients: dict[int, _Client],
    run: RunState,
    started: float,
    ran: list[list[Invocation]],
) -> None:
    """Run every client's branch in a thread of its own, released together."""
    if not clients:
        return
    barrier = threading.Barrier(len(clients))
    raised: list[BaseException] = []

    def branch(i: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        try:
            with counting_into(clients[i].record):
                for invocation in program.branches[i]:
                    _keep(ran[i], clients[i].perform(i + 1, invocation, started))
        except BaseException as exc:  # a stop (target gone, model error) or a bug: the
            raised.append(exc)  # main thread raises it after the join

    threads = [
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(branch, i),
            daemon=True,
            name=f"propworkload-client-{i + 1}",
        )
        for i in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        remaining = run.remaining()
        # A client stuck past the run's deadline is left behind (its thread is a daemon).
        thread.join(timeout=None if remaining is None else remaining + 1.0)
        if thread.is_alive():
            run.stopped = "time budget"
            raise StopRun("time budget")
    if raised:
        raise raised[0]


def history_of(
    steps: Sequence[Step], *, idempotent: Container[str] = ()
) -> tuple[list[HistoryOp], list[int]]:
    """A program run's steps as the checker's history, and the index of the step each
    operation comes from: one operation per step (its outcome unknown when it was not
    answered, or raised), and one more of unknown outcome for each delivery of a step's
    writes that its client did not see (a lost answer, a reset, a duplicate's copy), unless
    the command is ``idempotent`` (applied once however often it arrived; its answer tells
    of that once)."""
    operations: list[HistoryOp] = []
    indexes: list[int] = []
    for step in steps:
        assert step.client is not None and step.call is not None
        unknown = step.outcome_unknown
        operations.append(
            HistoryOp(
                client=step.client,
                input=(step.rule, step.arguments),
                call=step.call,
                ret=None if unknown else step.ret,
                output=None if unknown else step.output,
            )
        )
        indexes.append(step.index)
        if step.rule in idempotent:
            continue
        for _ in range(step.hidden_deliveries()):
            operations.append(
                HistoryOp(
                    client=step.client, input=(step.rule, step.arguments), call=step.call, ret=None
                )
            )
            indexes.append(step.index)
    return operations, indexes


def idempotent_commands(model_cls: type[Model]) -> frozenset[str]:
    """The names of the model's idempotent commands."""
    return frozenset(
        name
        for name, operation in operations_of(model_cls).items()
        if isinstance(operation, Command) and operation.idempotent
    )


def check_history(
    model_cls: type[Model],
    history: Sequence[HistoryOp],
    *,
    timeout: float | None,
    workers: int = 1,
) -> CheckResult:
    """Whether ``history`` (each operation's input ``(name, arguments)``) is linearizable
    with respect to the model's transitions, partitioned as the model says. A transition
    or partition that raises stops the check with a model error (``StopRun``). The
    model's accepted deviations hold throughout (set once: the checker calls the
    transitions hundreds of thousands of times on a long history)."""
    accepts = accepting(model_cls._pw_accepts) if model_cls.accepted else contextlib.nullcontext()
    with accepts:
        return check_operations(
            _Spec(model_cls),
            history,
            partition=_partition(model_cls),
            timeout=timeout,
            workers=workers,
        )


def _check(model_cls: type[Model], record: ExampleRecord, *, timeout: float) -> None:
    """Check the record's history; set its check, counts and failure."""
    operations, steps = history_of(record.steps, idempotent=idempotent_commands(model_cls))
    # Markers a transition calls count no orders the checker tries.
    with counting_into(ExampleRecord(number=record.number)):
        result = check_history(model_cls, operations, timeout=timeout)
    record.history = HistoryCheck(operations=operations, steps=steps, result=result)
    if result.verdict != "unknown":
        record.invariant_runs["linearizable"] += 1
        record.checks["linearizable"] += 1
    if record.failure is not None and record.failure.invariant != "unexpected_error":
        return  # a check inside an operation failed: that is the finding
    if result.verdict == "illegal":
        index = record.history.blocked_step()
        blocked = record.steps[index - 1] if index else None
        actual = "no order of the operations explains the results"
        if blocked is not None:
            call, answer = describe_step(blocked)
            actual = f"{call} -> {answer} fits no order of the operations"
        record.failure = Failure(
            invariant="linearizable",
            expected="linearizable",
            actual=actual,
            ids={"tenant": record.tenant, "client": blocked.client if blocked else None},
            step=index or 0,
            operation=blocked.rule if blocked else None,
        )


def runs_needed(rate: float, *, confidence: float, least: int, most: int) -> int:
    """Runs of a program that see a failure it shows at ``rate`` (a fraction of runs)
    with probability ``confidence``, between ``least`` and ``most``."""
    if rate >= 1:
        return least
    needed = math.ceil(math.log(1 - confidence) / math.log(1 - rate))
    return max(least, min(most, needed))
