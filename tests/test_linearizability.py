"""The linearizability checker: hand-made histories of a register, properties over
generated ones, partitions, unknown outcomes and the timeout."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from propworkload._linearizability import Operation, check_operations


class Register:
    """A register of integers, 0 at first: ("write", v) and ("read", None) -> v."""

    def init(self) -> int:
        return 0

    def step(self, state: int, op: Operation) -> tuple[bool, int]:
        kind, value = op.input
        if kind == "write":
            return True, value
        return op.unknown or op.output == state, state


def op(client: int, kind: str, call: float, ret: float | None, value: Any = None) -> Operation:
    if kind == "read":
        return Operation(client=client, input=("read", None), call=call, ret=ret, output=value)
    return Operation(client=client, input=("write", value), call=call, ret=ret)


def verdict(history: list[Operation], **kwargs: Any) -> str:
    return check_operations(Register(), history, **kwargs).verdict


def test_sequential_history_is_linearizable_and_a_stale_read_is_not() -> None:
    ok = [op(0, "write", 0, 1, 5), op(1, "read", 2, 3, 5)]
    stale = [op(0, "write", 0, 1, 5), op(1, "read", 2, 3, 0)]
    assert verdict(ok) == "ok"
    assert verdict(stale) == "illegal"


def test_overlapping_operations_may_take_effect_in_either_order() -> None:
    # The read overlaps the write: it may see the old value or the new one.
    for seen in (0, 5):
        assert verdict([op(0, "write", 0, 10, 5), op(1, "read", 1, 9, seen)]) == "ok"
    assert verdict([op(0, "write", 0, 10, 5), op(1, "read", 1, 9, 7)]) == "illegal"


def test_reads_cannot_go_back_in_time() -> None:
    # Two sequential reads overlapping one write: 5 then 0 is impossible.
    history = [op(0, "write", 0, 10, 5), op(1, "read", 1, 2, 5), op(1, "read", 3, 4, 0)]
    assert verdict(history) == "illegal"
    result = check_operations(Register(), history)
    assert result.blocked and result.blocked[0] == 2  # the read that cannot be placed


def test_unknown_outcome_may_take_effect_later_or_never() -> None:
    lost_write = op(0, "write", 0, None, 5)  # timed out: no return
    assert verdict([lost_write, op(1, "read", 1, 2, 0)]) == "ok"  # never (so far)
    assert verdict([lost_write, op(1, "read", 1, 2, 5)]) == "ok"  # took effect
    assert verdict([lost_write, op(1, "read", 1, 2, 5), op(1, "read", 3, 4, 5)]) == "ok"
    # But not before it was called.
    late = op(0, "write", 5, None, 5)
    assert verdict([op(1, "read", 1, 2, 5), late]) == "illegal"


def test_partitions_are_checked_alone() -> None:
    history = [
        Operation(0, ("write", 1), 0, 1, None),
        Operation(1, ("read", None), 2, 3, 1),
    ]
    result = check_operations(Register(), history, partition=lambda o: o.client)
    # Split by client, the read has no write before it: it must see 0.
    assert result.partitions == 2
    assert result.verdict == "illegal"
    assert check_operations(Register(), history).verdict == "ok"


@st.composite
def sequential_runs(draw: st.DrawFn) -> list[Operation]:
    """A register driven by one client at a time: reads see the last write."""
    value, now, history = 0, 0.0, []
    for client in draw(st.lists(st.integers(0, 3), max_size=20)):
        if draw(st.booleans()):
            value = draw(st.integers(0, 3))
            history.append(op(client, "write", now, now + 1, value))
        else:
            history.append(op(client, "read", now, now + 1, value))
        now += 2
    return history


@settings(max_examples=200, deadline=None)
@given(sequential_runs(), st.data())
def test_true_histories_pass_and_a_changed_read_fails(
    history: list[Operation], data: st.DataObject
) -> None:
    assert verdict(history) == "ok"
    # Stretch every operation so all overlap: still linearizable (the real order works).
    stretched = [Operation(o.client, o.input, o.call, 10_000.0, o.output) for o in history]
    assert verdict(stretched) == "ok"
    reads = [i for i, o in enumerate(history) if o.input[0] == "read"]
    if reads:
        i = data.draw(st.sampled_from(reads))
        wrong = history[i].output + 1 + data.draw(st.integers(0, 2))
        if wrong not in {o.input[1] for o in history if o.input[0] == "write"}:
            changed = list(history)
            changed[i] = Operation(
                history[i].client, ("read", None), history[i].call, history[i].ret, wrong
            )
            assert verdict(changed) == "illegal"


def _brute_force(history: list[Operation]) -> bool:
    """Linearizable by trying every order of every subset of the unknown operations (a
    slow oracle for small histories)."""
    import itertools

    spec = Register()
    known = [i for i, o in enumerate(history) if o.ret is not None]
    unknown = [i for i, o in enumerate(history) if o.ret is None]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            for order in itertools.permutations(known + list(chosen)):
                position = {o: n for n, o in enumerate(order)}
                if any(
                    history[a].ret is not None
                    and history[a].ret < history[b].call  # type: ignore[operator]
                    and position[a] > position[b]
                    for a in order
                    for b in order
                ):
                    continue
                state, fits = spec.init(), True
                for index in order:
                    fits, state = spec.step(state, history[index])
                    if not fits:
                        break
                if fits:
                    return True
    return False


@st.composite
def overlapping_runs(draw: st.DrawFn) -> list[Operation]:
    history = []
    for client in range(draw(st.integers(1, 5))):
        call = draw(st.integers(0, 8))
        ret = None if draw(st.integers(0, 4)) == 0 else call + draw(st.integers(0, 4))
        if draw(st.booleans()):
            history.append(op(client, "write", call, ret, draw(st.integers(0, 2))))
        else:
            history.append(op(client, "read", call, ret, draw(st.integers(0, 2))))
    return history


@settings(max_examples=300, deadline=None)
@given(overlapping_runs())
def test_verdict_agrees_with_brute_force_on_overlapping_histories(
    history: list[Operation],
) -> None:
    """Overlapping operations, unknown outcomes, equal times: the search and an
    exhaustive oracle agree on every history."""
    expected = "ok" if _brute_force(history) else "illegal"
    assert verdict(history) == expected


def test_a_search_that_runs_out_of_time_says_unknown() -> None:
    # Sixteen overlapping writes and reads of values nobody wrote: no order fits, and
    # proving that takes far longer than the 50 ms allowed.
    history = [op(i, "write", 0, 100, i) for i in range(16)]
    history += [op(20 + i, "read", 1, 99, 100 + i) for i in range(2)]
    result = check_operations(Register(), history, timeout=0.05)
    assert result.verdict == "unknown"
    assert result.seconds < 5
