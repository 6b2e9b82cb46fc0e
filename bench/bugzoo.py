"""The bug zoo: every seeded bug of every sample service, searched for with five seeds
(ten for the race bugs).

Usage: python bench/bugzoo.py [--seeds N] [--race-seeds N] [--seed-from S] [--jobs J]
                              [--only SERVICE[/BUG]] [--merge] [--no-write]

For each bug, its sample service is started on a free loopback port with that bug switched
on, and ``propworkload run models/SERVICE.py --seed S`` runs against it with default
settings plus what the bug needs (``Bug.run_options()``: ``--faults KIND`` or
``--concurrency 3``), for seeds S..S+N-1 (``--seed-from``, 1 by default: other first
seeds measure with seeds no one looked at; ``--race-seeds`` of them for the bugs that need
``--concurrency``), with no failure database (every run starts cold). Concurrent runs go
through the same engine and the same output as the others.
The script reads the run's output as it comes and records, per run:

* found: exit status 1 with the bug's own invariant on the ``INVARIANT FAIL`` line (also
  recorded: the invariant of the ``FOUND`` line, and those of any ``ALSO FAIL`` lines, the
  other invariants the run saw fail);
* seconds to the first failure: from the ``SEED`` line (the run has started, the service
  answered) to the ``FOUND`` line; examples to the first failure (``FOUND ... in example N``);
* the shrunk length (``minimal sequence (N steps`` or ``minimal parallel program (N
  operations``) against the bug's ``minimal_steps``; seconds spent shrinking (``FOUND`` to
  the ``INVARIANT FAIL`` line).

It writes ``bench/results/bugzoo.md`` (a table per bug and the summary against the targets)
and ``bench/results/bugzoo.json`` (every run), with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from propworkload._target import sample_service  # noqa: E402
from propworkload.samples import SAMPLES, Bug, load_sample  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: Wall-clock cap of one run (the default time budget is 120 s; this leaves room for it).
RUN_TIMEOUT = 180.0
#: Targets from the issue.
TARGET_TTF = 10.0
TARGET_MINIMAL = 0.95

_FOUND = re.compile(r"^FOUND .* in example (\d+) ")
_SHRUNK = re.compile(r"^  minimal (?:sequence \((\d+) steps?|parallel program \((\d+) operations?)")


def machine() -> str:
    """One line about this machine."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
        f"{', ' + cpu if cpu else ''}, Python {platform.python_version()}"
    )


def run_once(service: str, bug: Bug, seed: int, url: str) -> dict[str, Any]:
    """One ``propworkload run`` against ``url``; what its output shows, timed as it comes."""
    with tempfile.TemporaryDirectory(prefix="bugzoo-") as artifacts:
        command = [
            sys.executable,
            "-m",
            "propworkload",
            "run",
            str(ROOT / "models" / f"{service}.py"),
            "--url",
            url,
            "--seed",
            str(seed),
            "--database",
            "none",
            *bug.run_options(),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("APP_URL", "PROPWORKLOAD_SEED")}
        env["PROPWORKLOAD_ARTIFACTS"] = artifacts
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=ROOT,
        )
        killer = threading.Timer(RUN_TIMEOUT, proc.kill)
        killer.start()
        marks: dict[str, float] = {}
        row: dict[str, Any] = {"service": service, "bug": bug.name, "seed": seed}
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                now = time.monotonic()
                if line.startswith("SEED "):
                    marks["seed"] = now
                elif (m := _FOUND.match(line)) is not None:
                    marks["found"] = now
                    row["examples"] = int(m[1])
                    row["first"] = line.split()[1]
                elif line.startswith("INVARIANT FAIL "):
                    marks["fail"] = now
                    row["invariant"] = line.split()[2]
                elif line.startswith("ALSO FAIL "):
                    row.setdefault("also", []).append(line.split()[2])
                elif (m := _SHRUNK.match(line)) is not None:
                    row["shrunk"] = int(m[1] or m[2])
            code = proc.wait()
            stderr = proc.stderr.read() if proc.stderr else ""
        finally:
            killer.cancel()
            proc.kill()
            proc.wait()
    row["exit"] = code
    row["seconds"] = round(time.monotonic() - started, 2)
    row["found"] = code == 1 and row.get("invariant") == bug.invariant
    start = marks.get("seed", started)
    if "found" in marks:
        row["ttf"] = round(marks["found"] - start, 2)
    if "found" in marks and "fail" in marks:
        row["shrink_seconds"] = round(marks["fail"] - marks["found"], 2)
    row["minimal"] = bug.minimal_steps
    row["expected"] = bug.invariant
    if code not in (0, 1):
        row["error"] = (stderr.strip().splitlines() or [f"exit {code}"])[-1][:200]
    return row


def seeds_for(bug: Bug, seeds: int, race_seeds: int) -> int:
    return race_seeds if "concurrency" in bug.needs else seeds


def bench_bug(service: str, bug: Bug, seeds: int, first: int = 1) -> list[dict[str, Any]]:
    """The bug's runs, one service process for all seeds (examples use their own tenants)."""
    rows = []
    with sample_service(service, (bug.name,)) as url:
        for seed in range(first, first + seeds):
            row = run_once(service, bug, seed, url)
            print(_progress(row), flush=True)
            rows.append(row)
    return rows


def _progress(row: dict[str, Any]) -> str:
    found = "found" if row["found"] else f"MISSED (exit {row['exit']})"
    return (
        f"{row['service']}/{row['bug']} seed={row['seed']} {found} ttf={row.get('ttf')} "
        f"examples={row.get('examples')} shrunk={row.get('shrunk')}/{row['minimal']} "
        f"shrink={row.get('shrink_seconds')}s total={row['seconds']}s"
        + (f" (FOUND {row['first']})" if row.get("first") != row.get("invariant") else "")
        + (f" (ALSO FAIL {', '.join(row['also'])})" if row.get("also") else "")
    )


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _needs(bug: Bug) -> str:
    return " ".join(bug.run_options()) or "-"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in rows if r["found"]]
    return {
        "runs": len(rows),
        "found": len(found),
        "named": sum(
            1
            for r in rows
            if r["exit"] == 1 and r.get("expected") in (r.get("invariant"), *r.get("also", ()))
        ),
        "median_ttf": _median([r["ttf"] for r in found]),
        "minimal": sum(1 for r in found if r.get("shrunk") == r["minimal"]),
        "median_shrink": _median([r["shrink_seconds"] for r in found if "shrink_seconds" in r]),
    }


def write_results(
    bugs: list[tuple[str, Bug]],
    rows: list[dict[str, Any]],
    seeds: int,
    race_seeds: int,
    jobs: int,
    first: int = 1,
) -> None:
    total = summary(rows)
    races = [
        r for r in rows if any(b.name == r["bug"] and "concurrency" in b.needs for _, b in bugs)
    ]
    race_total = summary(races)
    lines = [
        f"# Bug zoo: every seeded bug, {seeds} seeds ({race_seeds} for the race bugs)"
        + (f" from seed {first}" if first != 1 else ""),
        "",
        f"Date: {date.today().isoformat()}. Machine: {machine()}.",
        f"Reproduce with `python bench/bugzoo.py --seeds {seeds} --race-seeds {race_seeds} "
        + (f"--seed-from {first} " if first != 1 else "")
        + f"--jobs {jobs}` "
        f"({jobs} run{'s' if jobs > 1 else ''} at a time). Raw runs: "
        "[bugzoo.json](bugzoo.json).",
        "",
        "Each run: `propworkload run models/SERVICE.py --url URL --seed S --database none` "
        "with default settings (100 examples, 20 steps, 120 s budget) plus what the bug "
        "needs, against the sample service with that one bug switched on. Time to the first "
        "failure is from the `SEED` line to the `FOUND` line; shrinking is from `FOUND` to "
        "the `INVARIANT FAIL` line. Found means exit 1 naming the bug's invariant on the "
        "`INVARIANT FAIL` line. A run also prints `ALSO FAIL` for each other invariant it saw "
        "fail (shrinking may move from the failure found to a simpler one of another "
        "invariant); a missed run below says which invariant it found first and which it saw "
        "fail besides.",
        "",
        "## Summary",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| bugs | {len(bugs)} in {len({s for s, _ in bugs})} services | |",
        f"| runs that found their bug | {total['found']}/{total['runs']} | every one |",
        f"| runs that named the bug's invariant on `INVARIANT FAIL` or `ALSO FAIL` | "
        f"{total['named']}/{total['runs']} | |",
        f"| median seconds to the first failure | {total['median_ttf']} | < {TARGET_TTF:g} |",
        f"| shrunk to the known minimal length | {total['minimal']}/{total['found']} "
        f"({_share(total['minimal'], total['found'])}) | >= {TARGET_MINIMAL:.0%} |",
        f"| median seconds shrinking | {total['median_shrink']} | |",
        f"| race bugs (`--concurrency 3`): runs that found their bug | "
        f"{race_total['found']}/{race_total['runs']} | every one |",
        f"| race bugs: shrunk to the known minimal program | {race_total['minimal']}/"
        f"{race_total['found']} ({_share(race_total['minimal'], race_total['found'])}) | "
        ">= 90% |",
        "",
        "## Per bug",
        "",
        "| service | bug | needs | invariant | found | median s to failure | "
        "median examples | shrunk lengths (minimal) | median s shrinking |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for service, bug in bugs:
        mine = [r for r in rows if r["service"] == service and r["bug"] == bug.name]
        s = summary(mine)
        examples = _median([r["examples"] for r in mine if r["found"] and "examples" in r])
        lengths = ",".join(str(r.get("shrunk", "-")) for r in mine)
        lines.append(
            f"| {service} | {bug.name} | {_needs(bug)} | {bug.invariant} | "
            f"{s['found']}/{s['runs']} | {s['median_ttf']} | {examples} | "
            f"{lengths} ({bug.minimal_steps}) | {s['median_shrink']} |"
        )
    missed = [r for r in rows if not r["found"]]
    if missed:
        lines += ["", "## Runs that missed", ""]
        lines += [f"- {_progress(r)} {r.get('error', '')}".rstrip() for r in missed]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bugzoo.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "bugzoo.json").write_text(
        json.dumps({"date": date.today().isoformat(), "machine": machine(), "runs": rows}, indent=1)
        + "\n"
    )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def select(only: str | None) -> list[tuple[str, Bug]]:
    """The (service, bug) pairs ``only`` names (comma-separated SERVICE or SERVICE/BUG)."""
    wanted = None if only is None else set(only.split(","))
    chosen = []
    for service in SAMPLES:
        if wanted is not None and not any(w.split("/")[0] == service for w in wanted):
            continue
        for bug in load_sample(service).BUGS:
            if wanted is None or wanted & {service, f"{service}/{bug.name}"}:
                chosen.append((service, bug))
    if not chosen:
        raise SystemExit(f"bugzoo: nothing matches {only!r}")
    return chosen


def merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` plus the runs in the results file of every bug not run now."""
    path = RESULTS / "bugzoo.json"
    if not path.exists():
        return rows
    done = {(r["service"], r["bug"]) for r in rows}
    kept = [r for r in json.loads(path.read_text())["runs"] if (r["service"], r["bug"]) not in done]
    return kept + rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--race-seeds", type=int, default=10, help="seeds for the bugs that need --concurrency"
    )
    parser.add_argument(
        "--seed-from", type=int, default=1, help="the first seed (others than 1..N: unseen)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="bugs benchmarked at once")
    parser.add_argument("--only", help="SERVICE or SERVICE/BUG, comma-separated")
    parser.add_argument(
        "--merge", action="store_true", help="keep the results file's runs of other bugs"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    bugs = select(args.only)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(
            pool.map(
                lambda sb: bench_bug(
                    sb[0], sb[1], seeds_for(sb[1], args.seeds, args.race_seeds), args.seed_from
                ),
                bugs,
            )
        )
    rows = [row for rows in results for row in rows]
    if args.merge:
        rows = merged(rows)
        bugs = select(None)
    total = summary(rows)
    print(
        f"found {total['found']}/{total['runs']}, median ttf {total['median_ttf']} s, "
        f"minimal {total['minimal']}/{total['found']}"
    )
    if not args.no_write:
        write_results(bugs, rows, args.seeds, args.race_seeds, args.jobs, args.seed_from)
    return 0 if total["found"] == total["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
