"""Benchmark of the linearizability checker on Porcupine's key-value histories.

Usage: python bench/linearizability.py [FOLDER]   (default: ../shared/anchors/porcupine-kv)

The folder holds Jepsen-format histories from the Porcupine project (MIT licence,
https://github.com/anishathalye/porcupine): ``c<N>-ok.txt`` are linearizable,
``c<N>-bad.txt`` are not; N is the number of clients. Each line is one event::

    {:process 3, :type :invoke, :f :append, :key "4", :value "x 3 1 y"}
    {:process 3, :type :ok, :f :append, :key "4", :value "x 3 1 y"}

The model is Porcupine's key-value store: ``put`` sets a key, ``append`` appends to it,
``get`` returns it ("" when never written). For every history this prints one line
(name, operations, clients, verdict, seconds), checked with and without partitioning by
key, and writes bench/results/linearizability.md with the machine and the date.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from propworkload._linearizability import Operation, check_operations

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "porcupine-kv"
RESULTS = Path(__file__).resolve().parent / "results" / "linearizability.md"
#: Seconds allowed per history: the partitioned checks take well under a second; the
#: whole 50-client histories are too big to check without partitioning in that time
#: (Porcupine does not try either) and show up as "unknown".
TIMEOUT = {"partitioned": 60.0, "whole": 30.0}

_EVENT = re.compile(
    r":process (?P<process>\d+), :type :(?P<type>\w+), :f :(?P<f>\w+), "
    r':key "(?P<key>[^"]*)", :value (?:nil|"(?P<value>[^"]*)")'
)


def parse(path: Path) -> list[Operation]:
    """The operations of a Jepsen history; event positions serve as times."""
    calls: dict[int, tuple[int, str, str, str | None]] = {}
    operations: list[tuple[int, Operation]] = []
    for position, line in enumerate(path.read_text().splitlines()):
        match = _EVENT.search(line)
        if match is None:
            if line.strip():
                raise ValueError(f"{path}:{position + 1}: not a history event: {line!r}")
            continue
        process = int(match["process"])
        if match["type"] == "invoke":
            calls[process] = (position, match["f"], match["key"], match["value"])
            continue
        start, f, key, value = calls.pop(process)
        output = match["value"] if f == "get" else None
        ret: float | None = position if match["type"] == "ok" else None
        if match["type"] == "fail":
            continue  # it did not happen
        operations.append(
            (
                start,
                Operation(
                    client=process, input=(f, key, value), call=start, ret=ret, output=output
                ),
            )
        )
    for process, (start, f, key, value) in calls.items():  # never answered: unknown
        operations.append(
            (start, Operation(client=process, input=(f, key, value), call=start, ret=None))
        )
    operations.sort(key=lambda item: item[0])
    return [op for _, op in operations]


class OneKey:
    """Porcupine's key-value model for one key (a partition): the state is its value."""

    def init(self) -> str:
        return ""

    def step(self, state: str, op: Operation) -> tuple[bool, str]:
        f, _key, value = op.input
        if f == "get":
            return op.unknown or op.output == state, state
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


def main(folder: Path) -> int:
    files = sorted(p for p in folder.glob("c*-*.txt"))
    if not files:
        print(f"no c*-ok.txt / c*-bad.txt histories in {folder}", file=sys.stderr)
        return 2
    rows = []
    wrong = 0
    for path in files:
        history = parse(path)
        expected = "ok" if path.stem.endswith("-ok") else "illegal"
        clients = len({op.client for op in history})
        for partitioned in (True, False):
            mode = "partitioned" if partitioned else "whole"
            result = check_operations(
                OneKey() if partitioned else KeyValue(),
                history,
                partition=(lambda op: op.input[1]) if partitioned else None,
                timeout=TIMEOUT[mode],
            )
            right = result.verdict == expected
            # Only a wrong verdict counts against the checker; running out of time is
            # reported as such.
            wrong += result.verdict not in (expected, "unknown")
            line = (
                f"{path.stem:8} ops={len(history):5} clients={clients:3} {mode:11} "
                f"verdict={result.verdict:8} seconds={result.seconds:.3f}"
                f"{'' if right else _note(result.verdict, expected, TIMEOUT[mode])}"
            )
            print(line, flush=True)
            rows.append(
                (path.stem, len(history), clients, mode, result.verdict, expected, result.seconds)
            )
    write_results(rows, folder)
    decided = [row for row in rows if row[4] != "unknown"]
    print(
        f"{len(decided) - wrong}/{len(decided)} verdicts right "
        f"({len(rows) - len(decided)} checks timed out); results in {RESULTS}"
    )
    return 1 if wrong else 0


def _note(verdict: str, expected: str, timeout: float) -> str:
    if verdict == "unknown":
        return f"  (timed out at {timeout:g} s; expected {expected})"
    return f"  WRONG (expected {expected})"


def write_results(rows: list[tuple[Any, ...]], folder: Path) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Linearizability checker on Porcupine's key-value histories",
        "",
        f"Date: {time.strftime('%Y-%m-%d')}. Machine: {platform.system()} {cpu}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        f"Histories: `{folder.name}` (Porcupine, MIT licence). Reproduce with "
        "`python bench/linearizability.py`.",
        "",
        "| history | operations | clients | mode | verdict | expected | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ops, clients, mode, verdict, expected, seconds in rows:
        lines.append(
            f"| {name} | {ops} | {clients} | {mode} | {verdict} | {expected} | {seconds:.3f} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
