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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

__all__ = [
    "CheckResult",
    "LinearizationStep",
    "Operation",
    "SequentialSpec",
    "check_operations",
]

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
        output, when its outcome is unknown), and the state after it."""


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


def _entries(operations: Sequence[Operation]) -> _Entry:
    """The events of ``operations`` as a linked list behind a sentinel head."""
    events: list[tuple[float, int, int, _Entry]] = []
    for i, op in enumerate(operations):
        call = _Entry(i, op.call, True)
        ret = _Entry(i, float("inf") if op.ret is None else op.ret, False)
        call.match = ret
        # At equal times calls come first: the operations then count as concurrent.
        events.append((call.time, 0, i, call))
        events.append((ret.time, 1, i, ret))
    events.sort(key=lambda event: event[:3])
    head = _Entry(-1, float("-inf"), False)
    previous = head
    for *_, entry in events:
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


_Outcome = tuple[bool, list[LinearizationStep], list[int]]
#: Search steps a partition takes before the next one gets its turn.
SLICE = 512


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
            done = {s.index for s in path}
            left = [i for i, flag in enumerate(unknown) if not flag and indexes[i] not in done]
            left.sort(key=lambda i: (operations[i].ret, operations[i].call))
            return False, path, [indexes[i] for i in left]
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
) -> CheckResult:
    """Whether ``history`` is linearizable with respect to ``spec``.

    ``partition(op)`` names the independent part an operation belongs to (its key): each
    part is then checked alone. ``timeout`` (seconds) bounds the search; when it runs
    out the verdict is ``unknown``.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    groups: dict[Hashable, list[int]] = {}
    for i, op in enumerate(history):
        groups.setdefault(partition(op) if partition else None, []).append(i)
    searches = {
        n: _check_partition(spec, [history[i] for i in indexes], indexes)
        for n, indexes in enumerate(groups.values())
    }
    paths: dict[int, list[LinearizationStep]] = {}
    blocked: list[int] = []
    verdict = "ok"
    while searches and verdict == "ok":
        if deadline is not None and time.monotonic() > deadline:
            verdict = "unknown"
            break
        for n, search in list(searches.items()):
            try:
                next(search)
            except StopIteration as done:
                ok, path, stuck = done.value
                paths[n] = path
                del searches[n]
                if not ok:
                    verdict, blocked = "illegal", stuck
                    break
    return CheckResult(
        verdict=verdict,
        linearization=[paths[n] for n in sorted(paths)],
        blocked=blocked,
        seconds=time.monotonic() - started,
        partitions=len(groups),
    )
