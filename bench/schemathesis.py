"""Schemathesis against the same sample services and seeded bugs as the bug zoo.

Usage: python bench/schemathesis.py [--seeds N] [--only SERVICE[/BUG]] [--no-write]
(needs the ``bench`` extra: ``pip install -e '.[bench]'``, which installs Schemathesis.)

Schemathesis (https://schemathesis.io, from PyPI) generates requests from an OpenAPI
document and checks every response against it; its stateful phase chains calls through
the document's links. Every sample service serves its OpenAPI document at
``/openapi.json``, with links from each created resource to the operations that take its
id. For each service, this runs ``st run URL/openapi.json --checks all --seed S`` (all
phases, Schemathesis's default budget) against the correct service, then against the
service with each seeded bug switched on, one bug at a time.

A bug counts as found when the run with it reports a failure (a check code on an
operation) that the run on the correct service with the same seed did not report.
The results sit beside propworkload's own (``bench/results/bugzoo.json``, from
``bench/bugzoo.py``) in ``bench/results/schemathesis.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bugzoo import machine  # noqa: E402

from propworkload._target import sample_service  # noqa: E402
from propworkload.samples import SAMPLES, Bug, load_sample  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: Wall-clock cap of one Schemathesis run.
RUN_TIMEOUT = 600.0

_OPERATION = re.compile(r"^_{3,} (\S+ \S+) _{3,}$")
_CHECK = re.compile(r"^- (ST\d+) (.+)$")


def schemathesis_command() -> list[str]:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        raise SystemExit(
            "bench/schemathesis.py: Schemathesis is not installed: pip install -e '.[bench]'"
        )
    return [st]


def version() -> str:
    out = subprocess.run(
        [*schemathesis_command(), "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "unknown"


def run_schemathesis(url: str, seed: int) -> dict[str, Any]:
    """One ``st run``; the failures it printed as (operation, check) pairs."""
    command = [
        *schemathesis_command(),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(seed),
        "--no-color",
    ]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as scratch:
        # Schemathesis keeps its own files (.schemathesis/) in the working directory.
        proc = subprocess.run(
            command,
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
    failures: set[tuple[str, str]] = set()
    operation = "?"
    for line in proc.stdout.splitlines():
        if (m := _OPERATION.match(line.strip())) is not None:
            operation = m[1]
        elif (m := _CHECK.match(line.strip())) is not None and operation != "?":
            failures.add((operation, f"{m[1]} {m[2]}".strip()))
    generated = re.search(r"(\d+) generated", proc.stdout)
    return {
        "exit": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "cases": int(generated[1]) if generated else None,
        "failures": sorted(failures),
    }


def bench_service(service: str, bugs: list[Bug], seeds: int) -> list[dict[str, Any]]:
    rows = []
    for seed in range(1, seeds + 1):
        with sample_service(service, ()) as url:
            baseline = run_schemathesis(url, seed)
        rows.append({"service": service, "bug": None, "seed": seed, **baseline})
        print(f"{service} (correct) seed={seed} failures={baseline['failures']}", flush=True)
        known = {tuple(f) for f in baseline["failures"]}
        for bug in bugs:
            with sample_service(service, (bug.name,)) as url:
                result = run_schemathesis(url, seed)
            new = [f for f in result["failures"] if tuple(f) not in known]
            rows.append({"service": service, "bug": bug.name, "seed": seed, "new": new, **result})
            print(f"{service}/{bug.name} seed={seed} new failures={new}", flush=True)
    return rows


def _propworkload_results() -> dict[tuple[str, str], str]:
    path = RESULTS / "bugzoo.json"
    if not path.exists():
        return {}
    runs = json.loads(path.read_text())["runs"]
    found: dict[tuple[str, str], list[bool]] = {}
    for run in runs:
        found.setdefault((run["service"], run["bug"]), []).append(run["found"])
    return {key: f"{sum(v)}/{len(v)}" for key, v in found.items()}


def write_results(rows: list[dict[str, Any]], chosen: list[tuple[str, Bug]], seeds: int) -> None:
    ours = _propworkload_results()
    lines = [
        "# Schemathesis and propworkload on the same seeded bugs",
        "",
        f"Date: {date.today().isoformat()}. Machine: {machine()}. Schemathesis: {version()}.",
        f"Reproduce with `pip install -e '.[bench]' && python bench/schemathesis.py "
        f"--seeds {seeds}` (propworkload's column: `python bench/bugzoo.py`, "
        "[bugzoo.md](bugzoo.md)).",
        "",
        "Schemathesis runs as its documentation recommends, `st run URL/openapi.json "
        "--checks all --seed S` (examples, coverage, fuzzing and stateful phases, default "
        "budget), against each sample service's OpenAPI document, which has links from "
        "every created resource to the operations that take its id. A bug counts as found "
        "when its run reports a failure the run on the correct service (same seed) did not. "
        "Schemathesis has no way to inject network faults or to run clients at once, so the "
        "bugs that need them are out of its reach by construction; they are listed anyway.",
        "",
        "## Correct services",
        "",
        "| service | seed | test cases | failures | seconds |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if row["bug"] is None:
            failures = "; ".join(f"{op}: {check}" for op, check in row["failures"]) or "none"
            lines.append(
                f"| {row['service']} | {row['seed']} | {row['cases']} | {failures} | "
                f"{row['seconds']} |"
            )
    lines += [
        "",
        "## Seeded bugs",
        "",
        "| service | bug | needs | Schemathesis found | what it reported | propworkload found |",
        "|---|---|---|---|---|---|",
    ]
    st_found = 0
    pw_found = 0
    for service, bug in chosen:
        mine = [r for r in rows if r["service"] == service and r["bug"] == bug.name]
        hits = [r for r in mine if r["new"]]
        st_found += bool(hits)
        reported = sorted({f"{op}: {check}" for r in hits for op, check in r["new"]})
        pw = ours.get((service, bug.name), "not run")
        pw_found += pw != "not run" and not pw.startswith("0/")
        lines.append(
            f"| {service} | {bug.name} | {' '.join(bug.run_options()) or '-'} | "
            f"{len(hits)}/{len(mine)} | {'; '.join(reported) or '-'} | {pw} |"
        )
    lines += [
        "",
        f"Bugs found at least once: Schemathesis {st_found}/{len(chosen)}, "
        f"propworkload {pw_found}/{len(chosen)}.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "schemathesis.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "schemathesis.json").write_text(
        json.dumps({"date": date.today().isoformat(), "machine": machine(), "runs": rows}, indent=1)
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--only", help="SERVICE or SERVICE/BUG, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--merge", action="store_true", help="keep the results file's runs of other services"
    )
    args = parser.parse_args()
    schemathesis_command()
    chosen: list[tuple[str, Bug]] = []
    rows: list[dict[str, Any]] = []
    wanted = None if args.only is None else set(args.only.split(","))
    for service in SAMPLES:
        if wanted is not None and not any(w.split("/")[0] == service for w in wanted):
            continue
        bugs = [
            bug
            for bug in load_sample(service).BUGS
            if wanted is None or wanted & {service, f"{service}/{bug.name}"}
        ]
        chosen += [(service, bug) for bug in bugs]
        rows += bench_service(service, bugs, args.seeds)
    if args.merge and (RESULTS / "schemathesis.json").exists():
        ran = {row["service"] for row in rows}
        earlier = json.loads((RESULTS / "schemathesis.json").read_text())["runs"]
        rows = [row for row in earlier if row["service"] not in ran] + rows
        chosen = [(s, bug) for s in SAMPLES for bug in load_sample(s).BUGS]
    if not args.no_write:
        write_results(rows, chosen, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
