"""The linearizability checker: hand-made histories of a register, properties over
generated ones, partitions, unknown outcomes and the timeout; each with both cores (the
compiled one and the pure-Python one), and the two cores agreeing on random histories."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propworkload import _linearizability
from propworkload._linearizability import Operation, check_operations

COMPILED = pytest.param(
    "compiled",
    marks=pytest.mark.skipif(
        _linearizability._lincheck is None, reason="the compiled core was not built"
    ),
)


@pytest.fixture(params=[COMPILED, "pure"])
def core(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs with each core."""
    return str(request.param)


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


def test_sequential_history_is_linearizable_and_a_stale_read_is_not(core: str) -> None:
    ok = [op(0, "write", 0, 1, 5), op(1, "read", 2, 3, 5)]
    stale = [op(0, "write", 0, 1, 5), op(1, "read", 2, 3, 0)]
    assert verdict(ok, core=core) == "ok"
    assert verdict(stale, core=core) == "illegal"


def test_overlapping_operations_may_take_effect_in_either_order(core: str) -> None:
    # The read overlaps the write: it may see the old value or the new one.
    for seen in (0, 5):
        assert verdict([op(0, "write", 0, 10, 5), op(1, "read", 1, 9, seen)], core=core) == "ok"
    assert verdict([op(0, "write", 0, 10, 5), op(1, "read", 1, 9, 7)], core=core) == "illegal"


def test_reads_cannot_go_back_in_time(core: str) -> None:
    # Two sequential reads overlapping one write: 5 then 0 is impossible.
    history = [op(0, "write", 0, 10, 5), op(1, "read", 1, 2, 5), op(1, "read", 3, 4, 0)]
    assert verdict(history, core=core) == "illegal"
    result = check_operations(Register(), history, core=core)
    assert result.blocked and result.blocked[0] == 2  # the read that cannot be placed


def test_unknown_outcome_may_take_effect_later_or_never(core: str) -> None:
    lost_write = op(0, "write", 0, None, 5)  # timed out: no return
    assert verdict([lost_write, op(1, "read", 1, 2, 0)], core=core) == "ok"  # never (so far)
    assert verdict([lost_write, op(1, "read", 1, 2, 5)], core=core) == "ok"  # took effect
    assert verdict([lost_write, op(1, "read", 1, 2, 5), op(1, "read", 3, 4, 5)], core=core) == "ok"
    # But not before it was called.
    late = op(0, "write", 5, None, 5)
    assert verdict([op(1, "read", 1, 2, 5), late], core=core) == "illegal"


def test_partitions_are_checked_alone(core: str) -> None:
    history = [
        Operation(0, ("write", 1), 0, 1, None),
        Operation(1, ("read", None), 2, 3, 1),
    ]
    result = check_operations(Register(), history, partition=lambda o: o.client, core=core)
    # Split by client, the read has no write before it: it must see 0.
    assert result.partitions == 2
    assert result.verdict == "illegal"
    assert check_operations(Register(), history, core=core).verdict == "ok"


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


CORES = pytest.mark.parametrize("core", [COMPILED, "pure"])


@CORES
@settings(max_examples=200, deadline=None)
@given(sequential_runs(), st.data())
def test_true_histories_pass_and_a_changed_read_fails(
    core: str, history: list[Operation], data: st.DataObject
) -> None:
    assert verdict(history, core=core) == "ok"
    # Stretch every operation so all overlap: still linearizable (the real order works).
    stretched = [Operation(o.client, o.input, o.call, 10_000.0, o.output) for o in history]
    assert verdict(stretched, core=core) == "ok"
    reads = [i for i, o in enumerate(history) if o.input[0] == "read"]
    if reads:
        i = data.draw(st.sampled_from(reads))
        wrong = history[i].output + 1 + data.draw(st.integers(0, 2))
        if wrong not in {o.input[1] for o in history if o.input[0] == "write"}:
            changed = list(history)
            changed[i] = Operation(
                history[i].client, ("read", None), history[i].call, history[i].ret, wrong
            )
            assert verdict(changed, core=core) == "illegal"


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


@CORES
@settings(max_examples=300, deadline=None)
@given(overlapping_runs())
def test_verdict_agrees_with_brute_force_on_overlapping_histories(
    core: str, history: list[Operation]
) -> None:
    """Overlapping operations, unknown outcomes, equal times: the search and an
    exhaustive oracle agree on every history."""
    expected = "ok" if _brute_force(history) else "illegal"
    assert verdict(history, core=core) == expected


def hard_history(writes: int) -> list[Operation]:
    """Overlapping writes of distinct values and reads of values nobody wrote: no order
    fits, and proving it means trying every subset of the writes (2**writes)."""
    history = [op(i, "write", 0, 100, i) for i in range(writes)]
    return history + [op(100 + i, "read", 1, 99, 1000 + i) for i in range(2)]


def test_a_search_that_runs_out_of_time_says_unknown(core: str) -> None:
    # 2**26 sets of writes: far more than either core gets through in 50 ms.
    result = check_operations(Register(), hard_history(26), timeout=0.05, core=core)
    assert result.verdict == "unknown"
    assert result.seconds < 5


@pytest.mark.skipif(_linearizability._lincheck is None, reason="the compiled core was not built")
def test_the_compiled_core_out_of_memory_says_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_linearizability, "MEMORY_LIMIT", 1 << 20)
    result = check_operations(Register(), hard_history(26), core="compiled")
    assert result.verdict == "unknown"
    assert result.blocked == []


@attrs.frozen
class Store:
    """A state without a hash (a dict inside a frozen attrs class), as sample models have."""

    values: dict[str, str]


class KeyValue:
    """Porcupine's key-value store over a few keys: put, append and get. Its state is a
    sorted tuple (``hashable``), a dict, or a :class:`Store`: the compiled core interns
    states without a hash by comparing them with ==."""

    def __init__(self, state: str = "hashable") -> None:
        self.state = state

    def init(self) -> Any:
        return self.wrap({})

    def wrap(self, values: dict[str, str]) -> Any:
        if self.state == "hashable":
            return tuple(sorted(values.items()))
        return values if self.state == "dict" else Store(values)

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        f, key, value = op.input
        current = dict(state.values if isinstance(state, Store) else state)
        if f == "get":
            return op.unknown or op.output == current.get(key, ""), state
        current[key] = value if f == "put" else current.get(key, "") + value
        return True, self.wrap(current)


@st.composite
def key_value_histories(draw: st.DrawFn) -> list[Operation]:
    """Clients putting, appending and reading a few keys, with overlaps, equal times,
    unknown outcomes and reads of values that may or may not have been there."""
    history = []
    for client in range(draw(st.integers(1, 7))):
        call = draw(st.integers(0, 12))
        ret = None if draw(st.integers(0, 5)) == 0 else call + draw(st.integers(0, 6))
        f = draw(st.sampled_from(["put", "append", "get"]))
        key = draw(st.sampled_from("xy"))
        value = draw(st.sampled_from(["", "a", "b", "ab", "ba"]))
        output = value if f == "get" else None
        history.append(
            Operation(client, (f, key, None if f == "get" else value), call, ret, output)
        )
    return history


@settings(max_examples=400, deadline=None)
@given(key_value_histories(), st.booleans(), st.sampled_from(["hashable", "dict", "attrs"]))
@pytest.mark.skipif(_linearizability._lincheck is None, reason="the compiled core was not built")
def test_the_cores_agree_on_random_histories(
    history: list[Operation], partitioned: bool, state: str
) -> None:
    """Same verdict, same first operation that fits no order, same linearization (or
    longest prefix) with the same states: the two cores run the same search."""
    spec = KeyValue(state)
    partition = (lambda o: o.input[1]) if partitioned else None
    compiled = check_operations(spec, history, partition=partition, core="compiled")
    pure = check_operations(spec, history, partition=partition, core="pure")
    assert compiled.verdict == pure.verdict
    assert compiled.blocked == pure.blocked
    assert compiled.linearization == pure.linearization
    assert (compiled.core, pure.core) == ("compiled", "pure")


@pytest.mark.skipif(_linearizability._lincheck is None, reason="the compiled core was not built")
@pytest.mark.parametrize("state", ["hashable", "attrs"])
def test_the_compiled_core_asks_the_model_once_per_operation_and_state(state: str) -> None:
    """Operations with equal arguments and output, from one state, are asked about once
    (the pure core asks again each time the search comes back to them)."""
    asked: list[tuple[Any, Any, bool, Any]] = []

    class Counting(KeyValue):
        def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
            asked.append((op.input, op.output, op.unknown, state))
            return super().step(state, op)

    # Eight clients at once: four put "a" or "b", four read "a", "b" or "ab" (not there).
    history = [Operation(i, ("put", "x", "ab"[i % 2]), 0, 10) for i in range(4)]
    history += [
        Operation(4 + i, ("get", "x", None), 1, 9, ["a", "b", "ab"][i % 3]) for i in range(4)
    ]
    for core in ("compiled", "pure"):
        asked.clear()
        result = check_operations(Counting(state), history, core=core)
        assert result.verdict == "illegal"  # a read of "ab" fits nowhere
        repeats = len(asked) - len({(i, o, u, repr(s)) for i, o, u, s in asked})
        assert (repeats == 0) == (core == "compiled"), (core, repeats, len(asked))


def test_a_model_error_reaches_the_caller_from_either_core(core: str) -> None:
    class Broken(Register):
        def step(self, state: int, op: Operation) -> tuple[bool, int]:
            if op.input == ("write", 3):
                raise ZeroDivisionError("the model is broken")
            return super().step(state, op)

    history = [op(0, "write", 0, 10, 5), op(1, "write", 1, 9, 3)]
    with pytest.raises(ZeroDivisionError, match="the model is broken"):
        check_operations(Broken(), history, core=core)


def test_the_compiled_core_says_what_a_bad_step_returned() -> None:
    if _linearizability._lincheck is None:
        pytest.skip("the compiled core was not built")

    class NoPair(Register):
        def step(self, state: int, op: Operation) -> Any:
            return True

    with pytest.raises(TypeError, match=r"returned True, not a \(possible, state after\) pair"):
        check_operations(NoPair(), [op(0, "write", 0, 1, 5)], core="compiled")


def test_the_core_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPWORKLOAD_PURE_CHECKER", "1")
    assert _linearizability.checker_core() == "pure"
    assert check_operations(Register(), [op(0, "write", 0, 1, 5)]).core == "pure"
    monkeypatch.setenv("PROPWORKLOAD_PURE_CHECKER", "0")
    built = _linearizability._lincheck is not None
    assert _linearizability.checker_core() == ("compiled" if built else "pure")
    monkeypatch.setattr(_linearizability, "_lincheck", None)  # as if built without a compiler
    assert _linearizability.checker_core() == "pure"
    assert check_operations(Register(), [op(0, "write", 0, 1, 5)]).verdict == "ok"
    with pytest.raises(ValueError, match="compiled checker core was not built"):
        check_operations(Register(), [], core="compiled")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(key_value_histories(), min_size=2, max_size=4), st.sampled_from(["hashable", "attrs"])
)
@pytest.mark.parametrize("core", [COMPILED, "pure"])
def test_partitions_checked_in_processes_give_the_verdict_of_one_process(
    core: str, parts: list[list[Operation]], state: str
) -> None:
    """Histories over disjoint keys (one partition each), checked by two forked processes:
    the same verdict as in one, the same linearization when there is one, and an
    operation that fits no order of its own partition when there is not."""
    history = [
        Operation(o.client, (o.input[0], f"{n}{o.input[1]}", o.input[2]), o.call, o.ret, o.output)
        for n, part in enumerate(parts)
        for o in part
    ]
    spec = KeyValue(state)
    one = check_operations(spec, history, partition=lambda o: o.input[1], core=core)
    two = check_operations(spec, history, partition=lambda o: o.input[1], core=core, workers=2)
    assert two.verdict == one.verdict
    if one.verdict == "ok":
        assert sorted(map(_indexes, two.linearization)) == sorted(map(_indexes, one.linearization))
    else:  # which illegal partition ends the check first may differ; each blocked op fits none
        key = history[two.blocked[0]].input[1]
        alone = [o for o in history if o.input[1] == key]
        assert check_operations(spec, alone, core=core).verdict == "illegal"


def _indexes(path: list[Any]) -> list[int]:
    return [step.index for step in path]


def test_a_model_error_in_a_checking_process_reaches_the_caller(core: str) -> None:
    class Broken(KeyValue):
        def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
            if op.input[1] == "y" and op.input[0] == "put":
                raise ZeroDivisionError("the model is broken")
            return super().step(state, op)

    history = [Operation(0, ("put", "x", "a"), 0, 1), Operation(1, ("put", "y", "b"), 0, 1)]
    with pytest.raises(ZeroDivisionError, match="the model is broken"):
        check_operations(Broken(), history, partition=lambda o: o.input[1], core=core, workers=2)


def test_partitions_in_processes_that_run_out_of_time_say_unknown(core: str) -> None:
    hard = hard_history(26)
    history = hard + [Operation(o.client + 200, o.input, o.call, o.ret, o.output) for o in hard]
    result = check_operations(
        Register(), history, partition=lambda o: o.client >= 200, timeout=0.2, core=core, workers=2
    )
    assert result.verdict == "unknown"
    assert result.seconds < 10


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_checking_processes_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A check killed with SIGKILL (no cleanup runs) leaves no process searching on."""
    script = tmp_path / "check.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}]\n"
        "from test_linearizability import *\n"
        "hard = hard_history(40)\n"
        "twin = [Operation(o.client + 200, o.input, o.call, o.ret, o.output) for o in hard]\n"
        "check_operations(\n"
        "    Register(), hard + twin, partition=lambda o: o.client >= 200, workers=2\n"
        ")\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)])
    children: list[int] = []
    try:
        for _ in range(600):  # until both checking processes run (at most 60 s)
            listed = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
            children = [int(pid) for pid in listed.read_text().split()] if listed.exists() else []
            if len(children) == 2 or parent.poll() is not None:
                break
            time.sleep(0.1)
        assert len(children) == 2, "the check did not start two processes"
    finally:
        parent.kill()
        parent.wait()
    for _ in range(300):  # each looks for its parent between turns (milliseconds apart)
        alive = [pid for pid in children if _running(pid)]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"checking processes {alive} outlived their parent"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended, waiting to be reaped
