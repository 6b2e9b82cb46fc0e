"""Checking a concurrent history for linearizability against a sequential model.

The search is Wing and Gong's, with Lowe's memoisation of (set of linearized operations,
model state) pairs, as Porcupine implements it (Athalye, MIT licence; this is a new
Python implementation of the published algorithm):

- every operation has a call and a return event; the events sorted by time form a doubly
  linked list;
- walking the list, a call whose operation the model accepts next (from the current
  state, with the output the operation observed) is *lifted*: both its events leave the
  list and the search restarts from the head; reaching a return event means the operation
  it belongs to should have been linearized by now, so the search backtracks;
- a (linearized set, state) pair seen before is not explored again.

An operation with an unknown outcome (a timeout; Jepsen's "info") has no return event: it
may take effect at any point after its call, or never. The search succeeds once every
operation with a known outcome is linearized.

P-compositionality: when the model partitions operations (by key, by customer), each
partition is checked alone, which is exponentially cheaper for independent keys.

Two cores run that search. The compiled one (``_lincheck.c``, built when the package is
installed on a machine with a C compiler) keeps the linearized set in machine words with a
Zobrist hash, the memo in an open-addressing table of (set, state id), and asks the model
once per distinct (operation, state) pair: model states are interned to ids here, so the
model's states need ``==`` and, to be fast, a hash. The pure-Python one below is the
fallback and the oracle the compiled one is tested against; ``PROPWORKLOAD_PURE_CHECKER=1``
forces it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

try:
    from . import _lincheck  # type: ignore[attr-defined]
except ImportError:  # built without a compiler: the pure core is all there is
    _lincheck = None

__all__ = [
    "CheckResult",
    "LinearizationStep",
    "Operation",
    "SequentialSpec",
    "check_operations",
    "checker_core",
]

#: The environment variable that forces the pure-Python core.
PURE_ENV = "PROPWORKLOAD_PURE_CHECKER"


def checker_core() -> str:
    """The core :func:`check_operations` uses by default: ``compiled``, or ``pure`` when
    the compiled one was not built or ``PROPWORKLOAD_PURE_CHECKER`` is set (not ``0``)."""
    if _lincheck is None or os.environ.get(PURE_ENV, "0") not in ("", "0"):
        return "pure"
    return "compiled"


S = TypeVar("S")


@attrs.frozen
class Operation:
    """One operation of a concurrent history.

    ``call`` and ``ret`` are times (any comparable numbers); ``ret`` is None when the
    outcome is unknown. ``output`` is what the client observed (ignored when unknown).
    """

    client: int
    input: Any
    call: float
    ret: float | None
    output: Any = None

    @property
    def unknown(self) -> bool:
        return self.ret is None


class SequentialSpec(Protocol[S]):
    """The sequential model a history is checked against."""

    def init(self) -> S:
        """The initial state."""

    def step(self, state: S, operation: Operation) -> tuple[bool, S]:
        """Whether ``operation`` may happen in ``state`` with the output it observed (any
        output, when its outcome is unknown), and the state after it.

        It must depend only on the state and the operation's ``input``, ``output`` and
        ``unknown`` (as Porcupine's models do), not on its client or times: the compiled
        core asks once per distinct (input, output, state)."""


@attrs.frozen
class LinearizationStep:
    """One operation of a linearization, and the model state after it."""

    index: int
    state: Any


@attrs.frozen
class CheckResult:
    """The verdict on a history: ``ok``, ``illegal``, or ``unknown`` (timed out).

    ``linearization`` is a linearization when ``ok``; otherwise the longest linearizable
    prefix found, per partition. ``blocked`` lists the operations (indexes into the
    history) left out of that prefix, earliest return first: the first of them is the
    first operation that cannot be linearized (empty unless illegal).
    """

    verdict: str
    linearization: list[list[LinearizationStep]]
    blocked: list[int]
    seconds: float
    partitions: int
    #: The core that checked it, ``compiled`` or ``pure``.
    core: str = "pure"

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


class _Entry:
    __slots__ = ("call", "id", "match", "next", "prev", "time")

    def __init__(self, id_: int, time_: float, call: bool) -> None:
        self.id = id_
        self.time = time_
        self.call = call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _events(operations: Sequence[Operation]) -> list[tuple[int, bool]]:
    """The (operation, is a call) events of ``operations`` in time order; an unknown
    outcome's return comes last."""
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(operations):
        # At equal times calls come first: the operations then count as concurrent.
        events.append((op.call, 0, i))
        events.append((float("inf") if op.ret is None else op.ret, 1, i))
    events.sort()
    return [(i, kind == 0) for _, kind, i in events]


def _entries(operations: Sequence[Operation]) -> _Entry:
    """The events of ``operations`` as a linked list behind a sentinel head."""
    calls: dict[int, _Entry] = {}
    head = _Entry(-1, float("-inf"), False)
    previous = head
    for i, call in _events(operations):
        op = operations[i]
        entry = _Entry(i, op.call if call else float("inf") if op.ret is None else op.ret, call)
        if call:
            calls[i] = entry
        else:
            calls[i].match = entry
        previous.next = entry
        entry.prev = previous
        previous = entry
    return head


def _lift(entry: _Entry) -> None:
    """Take a call and its return out of the list."""
    assert entry.prev is not None and entry.match is not None
    entry.prev.next = entry.next
    if entry.next is not None:
        entry.next.prev = entry.prev
    match = entry.match
    assert match.prev is not None
    match.prev.next = match.next
    if match.next is not None:
        match.next.prev = match.prev


def _unlift(entry: _Entry) -> None:
    """Put a lifted call and its return back where they were."""
    match = entry.match
    assert match is not None and match.prev is not None and entry.prev is not None
    match.prev.next = match
    if match.next is not None:
        match.next.prev = match
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry


class _Seen(Generic[S]):
    """Memo of (linearized set, state) pairs; states need only ``==`` (hashable ones
    are found faster)."""

    def __init__(self) -> None:
        self._hashed: set[tuple[int, Hashable]] = set()
        self._lists: dict[int, list[Any]] = {}

    def add(self, linearized: int, state: S) -> bool:
        """Record the pair; False if it was there already."""
        try:
            key = (linearized, state)
            if key in self._hashed:
                return False
            self._hashed.add(key)
            return True
        except TypeError:
            bucket = self._lists.setdefault(linearized, [])
            if any(seen == state for seen in bucket):
                return False
            bucket.append(state)
            return True


#: A partition's verdict (None: the compiled core ran out of memory), its linearization or
#: longest linearizable prefix, and the operations left out of that prefix.
_Outcome = tuple[bool | None, list[LinearizationStep], list[int]]
#: Search steps a partition takes before the next one gets its turn, by core: short turns
#: find an illegal partition sooner (the ok ones before it wait), at a cost of a generator
#: switch a turn (measured on Porcupine's c50 histories: 2,000 to 5,000 steps are best for
#: the compiled core, 20,000 made the illegal one 50% slower to find).
SLICE = 512
COMPILED_SLICE = 4096
#: Memory the compiled core's tables of one partition may take before its verdict is
#: ``unknown`` (the memo of a hard history grows by a set of all its operations a step).
MEMORY_LIMIT = 2 << 30


def _left_out(
    operations: Sequence[Operation], indexes: Sequence[int], path: list[LinearizationStep]
) -> list[int]:
    """The operations with a known outcome that ``path`` leaves out, earliest return first."""
    done = {step.index for step in path}
    left = [i for i, op in enumerate(operations) if not op.unknown and indexes[i] not in done]
    left.sort(key=lambda i: (operations[i].ret, operations[i].call))
    return [indexes[i] for i in left]


def _classes(operations: Sequence[Operation]) -> list[int]:
    """A class per operation: operations with equal inputs and outputs (none, when unknown)
    share one, and the model is asked once per class and state. Ones whose input or output
    holds something :func:`_frozen` cannot freeze stay alone."""
    first: dict[Hashable, int] = {}
    classes = []
    for i, op in enumerate(operations):
        try:
            key = (_frozen(op.input), op.unknown, None if op.unknown else _frozen(op.output))
            classes.append(first.setdefault(key, i))
        except TypeError:
            classes.append(i)
    return classes


#: Types whose values are their own key (beside their type, since 1 == 1.0 == True).
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})


def _frozen(value: Any) -> Hashable:
    """A hashable key for a value, equal only for equal values of the same types: dicts,
    lists and tuples (an operation's arguments) are frozen item by item; anything else
    must have a hash (TypeError if not)."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if kind is dict:
        return (dict, frozenset([(key, _frozen(item)) for key, item in value.items()]))
    if kind is tuple or kind is list:
        return (kind, tuple([_frozen(item) for item in value]))
    hash(value)
    return (kind, value)


class _States:
    """The model states the compiled core met, by id (their index in ``states``). The core
    keeps hashable ones in a dict; the others come here, where they are grouped by
    :func:`_bucket` and compared with ``==`` only within their group."""

    def __init__(self, initial: Any) -> None:
        self.states = [initial]
        self._buckets: dict[Hashable, list[int]] = {}
        try:
            hash(initial)
        except TypeError:
            self._buckets[_bucket(initial)] = [0]

    def unhashable(self, state: Any) -> int:
        bucket = self._buckets.setdefault(_bucket(state), [])
        for n in bucket:
            if self.states[n] == state:
                return n
        self.states.append(state)
        bucket.append(len(self.states) - 1)
        return bucket[-1]


def _bucket(value: Any, depth: int = 0) -> Hashable:
    """A hashable stand-in for a value, the same for equal dicts, lists, sets and attrs
    instances (a model state with a dict in it has no hash). Only a grouping: values in one
    group are still compared with ``==``, so a stand-in too coarse costs time, never a
    wrong verdict."""
    try:
        hash(value)
    except TypeError:
        pass
    else:
        return value  # type: ignore[no-any-return]
    if depth > 6:
        return type(value).__qualname__
    if isinstance(value, dict):
        return frozenset((key, _bucket(item, depth + 1)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_bucket(item, depth + 1) for item in value)
    if isinstance(value, set):
        return frozenset(value)
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value), *(_bucket(getattr(value, f.name), depth + 1) for f in fields))
    return type(value).__qualname__


def _compiled_partition(
    spec: SequentialSpec[Any],
    operations: Sequence[Operation],
    indexes: Sequence[int],
) -> Generator[None, None, _Outcome]:
    """The search over one partition in the compiled core; like :func:`_check_partition`."""
    assert _lincheck is not None
    events = [i * 2 + call for i, call in _events(operations)]
    met = _States(spec.init())
    search = _lincheck.Search(
        events,
        list(operations),
        [op.unknown for op in operations],
        _classes(operations),
        spec.step,
        met.states,
        met.unhashable,
        MEMORY_LIMIT,
    )
    while (status := search.run(COMPILED_SLICE)) == 0:
        yield
    states = met.states
    path = [LinearizationStep(indexes[op], states[state]) for op, state in search.path()]
    if status == 3:
        return None, path, []
    if status == 1:
        return True, path, []
    return False, path, _left_out(operations, indexes, path)


def _check_partition(
    spec: SequentialSpec[Any],
    operations: Sequence[Operation],
    indexes: Sequence[int],
) -> Generator[None, None, _Outcome]:
    """The search over one partition, yielding every ``SLICE`` steps so that several
    partitions take turns (the first illegal one ends the check) and a deadline holds."""
    head = _entries(operations)
    state = spec.init()
    step = spec.step
    unknown = [op.unknown for op in operations]
    known_left = unknown.count(False)
    linearized = 0
    # The stack of lifted calls, with the state before each; ``after`` the state after.
    stack: list[tuple[_Entry, Any]] = []
    remember = _Seen[Any]().add
    best: list[tuple[_Entry, Any]] = []
    best_state: Any = None
    entry = head.next
    steps = 0
    while known_left:
        steps += 1
        if steps % SLICE == 0:
            yield
        assert entry is not None  # a return event always ends the list before it runs out
        if entry.call:
            ok, after = step(state, operations[entry.id])
            if ok and remember(linearized | (1 << entry.id), after):
                stack.append((entry, state))
                state = after
                linearized |= 1 << entry.id
                known_left -= not unknown[entry.id]
                _lift(entry)
                if len(stack) > len(best):
                    best, best_state = list(stack), state
                entry = head.next
            else:
                entry = entry.next
            continue
        # A return event: its operation had to be linearized before this point.
        if not stack:
            path = _path(best, best_state, indexes)
            return False, path, _left_out(operations, indexes, path)
        entry, state = stack.pop()
        linearized &= ~(1 << entry.id)
        known_left += not unknown[entry.id]
        _unlift(entry)
        entry = entry.next
    return True, _path(stack, state, indexes), []


def _path(
    stack: list[tuple[_Entry, Any]], last: Any, indexes: Sequence[int]
) -> list[LinearizationStep]:
    """A stack of (call, state before it) as steps with the state after each."""
    if not stack:
        return []
    after = [*(state for _, state in stack[1:]), last]
    return [
        LinearizationStep(indexes[entry.id], state)
        for (entry, _), state in zip(stack, after, strict=True)
    ]


def check_operations(
    spec: SequentialSpec[Any],
    history: Sequence[Operation],
    *,
    partition: Callable[[Operation], Hashable] | None = None,
    timeout: float | None = None,
    core: str | None = None,
    workers: int = 1,
) -> CheckResult:
    """Whether ``history`` is linearizable with respect to ``spec``.

    ``partition(op)`` names the independent part an operation belongs to (its key): each
    part is then checked alone. ``timeout`` (seconds) bounds the search; when it runs
    out the verdict is ``unknown``. ``core`` is ``compiled`` or ``pure`` (default:
    :func:`checker_core`). With ``workers`` above 1, partitions are checked in that many
    processes at once (forked: where ``fork`` is missing, or with one partition, they take
    turns in this one); the first illegal one still ends the check.
    """
    core = core or checker_core()
    if core == "compiled" and _lincheck is None:
        raise ValueError("the compiled checker core was not built (no C compiler?)")
    if core not in ("compiled", "pure"):
        raise ValueError(f"unknown checker core {core!r}: compiled or pure")
    searching = _compiled_partition if core == "compiled" else _check_partition
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    groups: dict[Hashable, list[int]] = {}
    for i, op in enumerate(history):
        groups.setdefault(partition(op) if partition else None, []).append(i)
    parts = list(enumerate(groups.values()))
    if workers > 1 and len(parts) > 1 and "fork" in multiprocessing.get_all_start_methods():
        outcomes = _in_processes(spec, history, parts, deadline, searching, workers)
    else:
        outcomes = _taking_turns(spec, history, parts, deadline, searching)
    paths: dict[int, list[LinearizationStep]] = {}
    blocked: list[int] = []
    verdict = "ok"
    with contextlib.closing(outcomes):
        for n, (ok, path, stuck) in outcomes:
            paths[n] = path
            if ok is None:
                verdict = "unknown"
                break
            if not ok:
                verdict, blocked = "illegal", stuck
                break
    return CheckResult(
        verdict=verdict,
        linearization=[paths[n] for n in sorted(paths)],
        blocked=blocked,
        seconds=time.monotonic() - started,
        partitions=len(groups),
        core=core,
    )


_Searching = Callable[
    [SequentialSpec[Any], Sequence[Operation], Sequence[int]], Generator[None, None, _Outcome]
]
#: What a partition that ran out of time (or memory) ends with.
_UNKNOWN: _Outcome = (None, [], [])


def _taking_turns(
    spec: SequentialSpec[Any],
    history: Sequence[Operation],
    parts: list[tuple[int, list[int]]],
    deadline: float | None,
    searching: _Searching,
    parent: int | None = None,
) -> Generator[tuple[int, _Outcome], None, None]:
    """Each partition's outcome as it ends, the partitions taking turns; once the deadline
    passes, one unknown outcome. In a checking process, ``parent`` is the process that
    wants the outcomes: without it, the search ends."""
    searches = {n: searching(spec, [history[i] for i in indexes], indexes) for n, indexes in parts}
    while searches:
        if deadline is not None and time.monotonic() > deadline:
            yield next(iter(searches)), _UNKNOWN
            return
        if parent is not None and os.getppid() != parent:
            return
        for n, search in list(searches.items()):
            try:
                next(search)
            except StopIteration as done:
                del searches[n]
                yield n, done.value


def _in_processes(
    spec: SequentialSpec[Any],
    history: Sequence[Operation],
    parts: list[tuple[int, list[int]]],
    deadline: float | None,
    searching: _Searching,
    workers: int,
) -> Generator[tuple[int, _Outcome], None, None]:
    """Like :func:`_taking_turns`, with the partitions shared among forked processes (the
    biggest first, each to the least loaded), which take turns among theirs. A process
    sends back the operations of its linearizations; the states along them are computed
    again here, so model states never need pickling. A process that fails (a model error)
    leaves its partitions to be checked here, where the error is raised as usual."""
    context = multiprocessing.get_context("fork")
    shares: list[list[tuple[int, list[int]]]] = [[] for _ in range(min(workers, len(parts)))]
    for part in sorted(parts, key=lambda part: -len(part[1])):
        min(shares, key=lambda share: sum(len(p[1]) for p in share)).append(part)
    running: dict[Any, tuple[Any, list[tuple[int, list[int]]]]] = {}
    done: set[int] = set()
    left: list[tuple[int, list[int]]] = []
    try:
        for share in shares:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_check_share,
                args=(send, spec, history, share, deadline, searching, os.getpid()),
                daemon=True,
            )
            process.start()
            send.close()
            running[receive] = (process, share)
        while running:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(list(running), timeout=remaining)
            if not ready:
                yield parts[0][0], _UNKNOWN
                return
            for connection in ready:
                process, share = running[connection]
                pipe: Any = connection
                try:
                    message: tuple[int, bool | None, list[int], list[int]] = pipe.recv()
                except EOFError:  # the process ended: all sent, or it failed
                    del running[connection]
                    pipe.close()
                    process.join()
                    left += [part for part in share if part[0] not in done]
                    continue
                n, ok, order, stuck = message
                done.add(n)
                yield n, (ok, _replay(spec, history, order), stuck)
        if left:
            yield from _taking_turns(spec, history, left, deadline, searching)
    finally:
        for receive, (process, _) in running.items():
            process.kill()
            process.join()
            receive.close()


def _check_share(
    send: Any,
    spec: SequentialSpec[Any],
    history: Sequence[Operation],
    share: list[tuple[int, list[int]]],
    deadline: float | None,
    searching: _Searching,
    parent: int,
) -> None:
    """In a forked process: check ``share``, sending each partition's outcome (with the
    operations of its path, not the states) as it ends. An error ends the process with
    the partitions it did not send (the parent checks them again); so does the end of
    the parent."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent owns stopping
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception), contextlib.closing(send):
        turns = _taking_turns(spec, history, share, deadline, searching, parent)
        for n, (ok, path, stuck) in turns:
            send.send((n, ok, [step.index for step in path], stuck))
            if not ok:
                break  # illegal or unknown: the check is over


def _replay(
    spec: SequentialSpec[Any], history: Sequence[Operation], order: list[int]
) -> list[LinearizationStep]:
    """The steps of a linearization found elsewhere, with the model's states along it."""
    state = spec.init()
    path = []
    for index in order:
        ok, state = spec.step(state, history[index])
        assert ok, "the model's step is not deterministic"
        path.append(LinearizationStep(index, state))
    return path
