"""Benchmark of the linearizability checker on Porcupine's key-value histories.

Usage: python bench/linearizability.py [FOLDER] [--no-write]

FOLDER holds Jepsen-format histories from the Porcupine project (MIT licence,
https://github.com/anishathalye/porcupine): ``c<N>-ok.txt`` are linearizable,
``c<N>-bad.txt`` are not; N is the number of clients. Without FOLDER the bench looks for
``anchors/porcupine-kv`` in a ``shared`` folder beside or above the checkout (where the
project's public test data lives). Each line of a history is one event::

    {:process 3, :type :invoke, :f :append, :key "4", :value "x 3 1 y"}
    {:process 3, :type :ok, :f :append, :key "4", :value "x 3 1 y"}

The model is Porcupine's key-value store: ``put`` sets a key, ``append`` appends to it,
``get`` returns it ("" when never written). A second set, made up by the bench, is 100
register histories of the kind etcd's tests record (few states, many operations).

Every key-value history is checked with and without partitioning by key, by the compiled
core and by the pure-Python one (only the pure one when PROPWORKLOAD_PURE_CHECKER=1 or the
compiled one was not built), and partitioned by the first of them with the partitions
shared by two processes (``compiledx2``); each line gives the verdict, CPU seconds (the
process's and its checking processes', the figure Porcupine's are compared with) and
wall seconds. Checks that take under a second are run three times and the fastest kept.
The results, beside Porcupine's own figures, go to bench/results/linearizability.md with
the machine and the date (not with --no-write).
"""

from __future__ import annotations

import os
import platform
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from propworkload._histories import read_porcupine
from propworkload._linearizability import Operation, check_operations, checker_core

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "linearizability.md"
#: Seconds allowed per check: the partitioned checks take well under a second; the whole
#: 50-client histories are too big to check without partitioning in that time (Porcupine
#: does not try either) and show up as "unknown".
TIMEOUT = {"partitioned": 60.0, "whole": 15.0}
#: Porcupine's CPU seconds on the same histories and machine type, as measured for
#: propworkload issue 17 (Porcupine partitions by key as the "partitioned" mode does).
PORCUPINE = {
    ("c50-ok", "partitioned"): 0.22,
    ("c50-bad", "partitioned"): 0.03,
    ("c10-ok", "whole"): 13.0,
}
#: Checks faster than this (CPU seconds) are repeated, the fastest of three kept.
REPEAT_BELOW = 1.0


def find_histories() -> Path | None:
    """``shared/anchors/porcupine-kv`` beside the checkout or in a folder above it."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "anchors" / "porcupine-kv"
        if candidate.is_dir():
            return candidate
    return None


def kv_operations(path: Path) -> list[Operation]:
    """The history as ``propworkload check`` reads it, each input made ``(f, key, value)``:
    the struct Porcupine's own model is given (the reader's ``(f, arguments)`` costs a dict
    lookup a step, a tenth of the checking time on c50-ok)."""
    return [
        attrs.evolve(op, input=(op.input[0], op.input[1]["key"], op.input[1].get("value")))
        for op in read_porcupine(path).operations
    ]


class OneKey:
    """Porcupine's key-value model for one key (a partition): the state is its value."""

    def init(self) -> str:
        return ""

    def step(self, state: str, op: Operation) -> tuple[bool, str]:
        f, _key, value = op.input
        if f == "get":
            return op.output == state or op.unknown, state
        return True, value if f == "put" else state + value


class KeyValue:
    """Porcupine's key-value model over all keys; the state maps keys to strings (a
    sorted tuple, so that the memo can hash it)."""

    def init(self) -> tuple[tuple[str, str], ...]:
        return ()

    def step(self, state: tuple[tuple[str, str], ...], op: Operation) -> tuple[bool, Any]:
        f, key, value = op.input
        current = dict(state)
        old = current.get(key, "")
        if f == "get":
            return op.unknown or op.output == old, state
        current[key] = value if f == "put" else old + value
        return True, tuple(sorted(current.items()))


Row = tuple[str, int, int, str, str, str, str, float, float]


def cpu_seconds() -> float:
    """CPU seconds of this process and of the checking processes it has waited for."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(history: list[Operation], mode: str, core: str) -> tuple[str, float, float]:
    """The verdict, CPU seconds and wall seconds of one check (the fastest of three when
    it is quick). ``core`` may end in ``x2``: that core with two checking processes."""
    partitioned = mode == "partitioned"
    name, _, processes = core.partition("x")
    best: tuple[str, float, float] | None = None
    for _ in range(3):
        cpu, wall = cpu_seconds(), time.perf_counter()
        result = check_operations(
            OneKey() if partitioned else KeyValue(),
            history,
            partition=(lambda op: op.input[1]) if partitioned else None,
            timeout=TIMEOUT[mode],
            core=name,
            workers=int(processes or 1),
        )
        took = (result.verdict, cpu_seconds() - cpu, time.perf_counter() - wall)
        best = took if best is None or took[1] < best[1] else best
        if took[1] >= REPEAT_BELOW or result.verdict == "unknown":
            break
    assert best is not None
    return best


class Register:
    """A register of small integers with reads, writes and compare-and-set: the model of
    Jepsen's and Porcupine's etcd tests, whose histories meet few distinct states."""

    def init(self) -> int:
        return 0

    def step(self, state: int, op: Operation) -> tuple[bool, int]:
        f, value, new = op.input
        if f == "read":
            return op.output == state or op.unknown, state
        if f == "write":
            return True, value
        swapped = state == value
        if op.unknown:  # a compare-and-set that may have happened: as if it did
            return True, new if swapped else state
        return op.output == swapped, new if swapped else state


def register_history(seed: int) -> tuple[list[Operation], str]:
    """A register history made up for the bench, and its expected verdict: 5 to 20 clients,
    100 to 1,000 operations with random durations, each taking effect at a random moment
    inside them (so the history is linearizable), 1% of them timing out (half of those
    never take effect); in one history of two a read is then changed to a value nobody
    wrote, so it is not."""
    rng = random.Random(seed)
    clients = rng.randint(5, 20)
    free = [0.0] * clients
    drafted = []
    for _ in range(rng.randint(100, 1000)):
        client = rng.randrange(clients)
        call = free[client] + rng.random() * 5  # a client waits, then its operation lasts
        effect = call + rng.random()  # up to 2: a few operations overlap each one
        ret = effect + rng.random()
        free[client] = ret
        f = rng.choice(["read", "read", "write", "cas"])
        value, new = rng.randrange(5), rng.randrange(5)
        lost = rng.random() < 0.01
        drafted.append(
            (effect, client, (f, value, new), call, ret, lost, lost and rng.random() < 0.5)
        )
    state, history = 0, []
    for _, client, (f, value, new), call, ret, lost, never in sorted(drafted):
        output: Any = None
        if not never:
            if f == "read":
                output = state
            elif f == "write":
                state = value
            else:
                output, state = state == value, new if state == value else state
        history.append(
            Operation(
                client, (f, value, new), call, None if lost else ret, None if lost else output
            )
        )
    history.sort(key=lambda op: op.call)
    if seed % 2:
        reads = [i for i, op in enumerate(history) if op.input[0] == "read" and not op.unknown]
        i = reads[len(reads) // 2]
        history[i] = attrs.evolve(history[i], output=99)
        return history, "illegal"
    return history, "ok"


def registers(cores: list[str], count: int = 100) -> tuple[list[str], int]:
    """Check ``count`` made-up register histories with each core: lines to print, and how
    many verdicts were wrong."""
    histories = [register_history(seed) for seed in range(1, count + 1)]
    lines, wrong = [], 0
    for core in cores:
        seconds = []
        for history, expected in histories:
            cpu = cpu_seconds()
            result = check_operations(Register(), history, timeout=60, core=core)
            seconds.append(cpu_seconds() - cpu)
            wrong += result.verdict != expected
        lines.append(
            f"registers {count} histories ({sum(len(h) for h, _ in histories)} ops) {core:8} "
            f"cpu={sum(seconds):7.3f}s worst={max(seconds):.3f}s"
        )
    return lines, wrong


def main(folder: Path, *, write: bool) -> int:
    files = sorted(p for p in folder.glob("c*-*.txt"))
    if not files:
        print(f"no c*-ok.txt / c*-bad.txt histories in {folder}", file=sys.stderr)
        return 2
    cores = ["compiled", "pure"] if checker_core() == "compiled" else ["pure"]
    print(f"histories: {folder}; cores: {', '.join(cores)}; times are CPU and wall seconds")
    rows: list[Row] = []
    wrong = 0
    for path in files:
        history = kv_operations(path)
        expected = "ok" if path.stem.endswith("-ok") else "illegal"
        clients = len({op.client for op in history})
        for mode in ("partitioned", "whole"):
            # Partitions in two processes at once: only wall time can gain.
            parallel = (
                [f"{cores[0]}x2"] if mode == "partitioned" and (os.cpu_count() or 1) > 1 else []
            )
            for core in cores + parallel:
                verdict, cpu, wall = measure(history, mode, core)
                # Only a wrong verdict counts against the checker; running out of time is
                # reported as such.
                wrong += verdict not in (expected, "unknown")
                note = "" if verdict == expected else _note(verdict, expected, TIMEOUT[mode])
                print(
                    f"{path.stem:8} ops={len(history):5} clients={clients:3} {mode:11} "
                    f"{core:8} verdict={verdict:8} cpu={cpu:7.3f}s wall={wall:7.3f}s{note}",
                    flush=True,
                )
                rows.append(
                    (path.stem, len(history), clients, mode, core, verdict, expected, cpu, wall)
                )
    register_lines, register_wrong = registers(cores)
    wrong += register_wrong
    for line in register_lines:
        print(line, flush=True)
    for line in comparison(rows):
        print(line)
    if write:
        write_results(rows, folder, register_lines)
    decided = [row for row in rows if row[5] != "unknown"]
    print(
        f"{len(decided) - wrong}/{len(decided)} verdicts right "
        f"({len(rows) - len(decided)} checks timed out)"
        + (f"; results in {RESULTS}" if write else "")
    )
    return 1 if wrong else 0


def _note(verdict: str, expected: str, timeout: float) -> str:
    if verdict == "unknown":
        return f"  (timed out at {timeout:g} s or out of memory; expected {expected})"
    return f"  WRONG (expected {expected})"


def comparison(rows: list[Row]) -> list[str]:
    """Porcupine's CPU seconds beside each core's, on the histories it was measured on."""
    cpu = {(name, mode, core): seconds for name, _, _, mode, core, _, _, seconds, _ in rows}
    lines = [
        "",
        "| history | mode | Porcupine CPU s | compiled CPU s | pure CPU s | compiled / Porcupine |",
        "|---|---|---|---|---|---|",
    ]
    for (name, mode), theirs in PORCUPINE.items():
        compiled = cpu.get((name, mode, "compiled"))
        pure = cpu.get((name, mode, "pure"))
        lines.append(
            f"| {name} | {mode} | {theirs:.2f} | {_seconds(compiled)} | {_seconds(pure)} | "
            + (f"{compiled / theirs:.2f} |" if compiled is not None else "- |")
        )
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_results(rows: list[Row], folder: Path, register_lines: list[str]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Linearizability checker on Porcupine's key-value histories",
        "",
        f"Date: {time.strftime('%Y-%m-%d')}. Machine: {platform.system()} {cpu}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        f"Histories: `{folder.name}` (Porcupine, MIT licence). Reproduce with "
        "`python bench/linearizability.py`. CPU and wall seconds of the check alone (not the",
        "parsing); checks under a second are the fastest of three. Porcupine's CPU seconds",
        "are those measured for issue 17 on the same kind of machine.",
        *comparison(rows),
        "",
        "Register histories made up by the bench (`register_history`: seeds 1 to 100, 5 to 20",
        "clients, 100 to 1,000 reads, writes and compare-and-sets, 1% timing out, one in two",
        "made illegal by a read of a value nobody wrote), few states and many operations, as",
        "in etcd's tests; every verdict right with each core:",
        "",
        "```",
        *register_lines,
        "```",
        "",
        "| history | operations | clients | mode | core | verdict | expected | CPU s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ops, clients, mode, core, verdict, expected, cpu_s, wall_s in rows:
        lines.append(
            f"| {name} | {ops} | {clients} | {mode} | {core} | {verdict} | {expected} | "
            f"{cpu_s:.3f} | {wall_s:.3f} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--no-write"]
    found = Path(arguments[0]) if arguments else find_histories()
    if found is None:
        print(
            "no Porcupine histories found (shared/anchors/porcupine-kv beside or above the "
            "checkout); give their folder",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(main(found, write="--no-write" not in sys.argv[1:]))
