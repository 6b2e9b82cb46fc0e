"""Races on purpose: what the parallel search's heuristics buy, bug by bug.

Usage: python bench/races.py [--seeds N] [--jobs J] [--per-client N,M] [--no-write]

Every race bug of the sample services (the bugs that need ``--concurrency``) is searched
for with ``--concurrency 3`` and default settings (100 examples, 20 steps, 120 s budget,
3 runs per program), seeds 1..N, with no failure database, in four variants of the search:

* ``both``: as shipped, with the two heuristics of the parallel search: drawn waits before
  clients' operations (schedule perturbation) and clients that repeat an earlier client's
  operations (mirroring);
* ``no-waits``: without the waits; ``no-mirror``: without mirroring; ``neither``:
  without both (clients released together, each drawing its own operations; what stays
  is the rest of the search: at least two busy clients, adaptive runs, the reduction).

Each run goes through the engine's Python API (``run_model``, the path ``propworkload
run`` takes) against the sample service over loopback, in a process of its own. Per run:
found (the run failed with ``linearizable``), examples and program runs until the first
failure, seconds to it, and the length the failure shrank to against the bug's known
minimum. Writes ``bench/results/races.md`` and ``races.json`` with the machine and date.

``--per-client 3,5`` adds an axis: the most operations of a program's prefix and of one
client's branch (``_parallel.MAX_PER_CLIENT``, set in the worker before each run; without
the option, the shipped value). Every run also counts the checker's share: the histories
checked, those whose check came back unknown (timed out: "unchecked"), and the seconds the
checks took, up to the first failure and in the whole run (shrinking included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bugzoo import machine  # noqa: E402

from propworkload import _parallel  # noqa: E402
from propworkload._engine import RunConfig, run_model  # noqa: E402
from propworkload._events import Event, ExampleFinished, FailureFound  # noqa: E402
from propworkload._loader import load_model  # noqa: E402
from propworkload._target import sample_service  # noqa: E402
from propworkload.samples import SAMPLES, Bug, load_sample  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VARIANTS = {
    "both": {"perturb": True, "mirror": True},
    "no-waits": {"perturb": False, "mirror": True},
    "no-mirror": {"perturb": True, "mirror": False},
    "neither": {"perturb": False, "mirror": False},
}


#: The shipped bound on a client's operations, restored in a worker for a run without
#: ``--per-client`` (workers run many jobs).
SHIPPED_PER_CLIENT = _parallel.MAX_PER_CLIENT

#: The checks of the run in progress in this worker: (verdict, seconds, operations).
_CHECKS: list[tuple[str, float, int]] = []
_check_operations = _parallel.check_operations


def _counting_check(spec: Any, history: Any, **options: Any) -> Any:
    result = _check_operations(spec, history, **options)
    _CHECKS.append((result.verdict, result.seconds, len(history)))
    return result


_parallel.check_operations = _counting_check  # type: ignore[assignment]


def race_bugs() -> list[tuple[str, Bug]]:
    return [
        (service, bug)
        for service in SAMPLES
        for bug in load_sample(service).BUGS
        if "concurrency" in bug.needs
    ]


#: A race in software nobody here wrote: Kinto's memory backend runs a batch's requests
#: one by one, and another client's write can land between them (README, "Real
#: services"). Its shortest program is two operations (a write, and a batch at once).
KINTO_RACE = Bug(
    name="batch-interleave",
    description="Kinto (memory backend): a write lands inside another client's batch",
    invariant="linearizable",
    minimal_steps=2,
    needs=("concurrency",),
)


def run_once(job: tuple[str, str, int, str, int | None]) -> dict[str, Any]:
    """One run: ``(service, bug, seed, variant, per_client)``, against a service of its
    own (or, for ``kinto=URL``, against the Kinto at URL); ``per_client`` None is the
    shipped bound."""
    service, bug_name, seed, variant, per_client = job
    _parallel.MAX_PER_CLIENT = SHIPPED_PER_CLIENT if per_client is None else per_client
    if service.startswith("kinto="):
        return _run(
            ROOT / "models" / "real" / "kinto.py",
            service,
            KINTO_RACE,
            seed,
            variant,
            url=service.split("=", 1)[1],
        )
    bug = next(b for b in load_sample(service).BUGS if b.name == bug_name)
    with sample_service(service, (bug.name,)) as url:
        return _run(ROOT / "models" / f"{service}.py", service, bug, seed, variant, url=url)


def _run(
    model_file: Path, service: str, bug: Bug, seed: int, variant: str, *, url: str
) -> dict[str, Any]:
    model, path = load_model(str(model_file))
    seen = {"examples": 0, "runs": 0}
    first: dict[str, Any] = {}
    _CHECKS.clear()
    started = time.monotonic()

    def listen(event: Event) -> None:
        # FailureFound comes before the failing example's ExampleFinished: it counts too.
        if isinstance(event, FailureFound) and event.first:
            first.update(
                examples=seen["examples"] + 1,
                runs=seen["runs"] + event.example.runs,
                seconds=round(time.monotonic() - started, 2),
                checks=len(_CHECKS),
            )
        elif isinstance(event, ExampleFinished) and not first:
            seen["examples"] += 1
            seen["runs"] += event.example.runs

    examples = 2000 if service.startswith("kinto=") else 100
    config = RunConfig(
        url=url,
        seed=seed,
        model_path=str(path),
        concurrency=3,
        examples=examples,
        **VARIANTS[variant],
    )
    result = run_model(model, config, listeners=[listen])
    failure = result.failure
    found = failure is not None and failure.invariant == bug.invariant
    before = _CHECKS[: first.get("checks", len(_CHECKS))]
    return {
        "service": service,
        "bug": bug.name,
        "seed": seed,
        "variant": variant,
        "per_client": _parallel.MAX_PER_CLIENT,
        "found": found,
        "examples_to_failure": first.get("examples"),
        "runs_to_failure": first.get("runs"),
        "seconds_to_failure": first.get("seconds"),
        "shrunk": result.example.size if found and result.example else None,
        "minimal": bug.minimal_steps,
        "seconds": round(time.monotonic() - started, 2),
        # The checker's share: up to the first failure (or the whole run without one),
        # and in the whole run.
        "checks_to_failure": len(before),
        "unchecked_to_failure": sum(1 for c in before if c[0] == "unknown"),
        "check_seconds_to_failure": round(sum(c[1] for c in before), 4),
        "mean_operations_to_failure": (
            round(statistics.mean(c[2] for c in before), 2) if before else None
        ),
        "checks": len(_CHECKS),
        "unchecked": sum(1 for c in _CHECKS if c[0] == "unknown"),
        "check_seconds": round(sum(c[1] for c in _CHECKS), 4),
        "longest_check_seconds": round(max((c[1] for c in _CHECKS), default=0.0), 4),
    }


def variants_in(rows: list[dict[str, Any]]) -> list[str]:
    return [v for v in VARIANTS if any(r["variant"] == v for r in rows)]


def settings_in(rows: list[dict[str, Any]], per_client: bool) -> list[tuple[str, int | None]]:
    """The settings the rows ran: (variant, per-client bound), the bound None when it was
    not an axis."""
    bounds = sorted({r.get("per_client") for r in rows}) if per_client else [None]
    return [(v, n) for v in variants_in(rows) for n in bounds]


def _label(setting: tuple[str, int | None]) -> str:
    variant, bound = setting
    return variant if bound is None else f"{variant}, {bound} per client"


def _of(rows: list[dict[str, Any]], setting: tuple[str, int | None]) -> list[dict[str, Any]]:
    variant, bound = setting
    return [
        r for r in rows if r["variant"] == variant and (bound is None or r["per_client"] == bound)
    ]


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else "-"


def write(
    rows: list[dict[str, Any]],
    first: int,
    seeds: int,
    jobs: int,
    name: str,
    bugs: list[tuple[str, Bug]],
    per_client: list[int] | None = None,
    only: str | None = None,
) -> None:
    last = first + seeds - 1
    options = f" --first-seed {first}" if first != 1 else ""
    if name != "races":
        options += f" --output {name}"
    if bugs and bugs[0][0].startswith("kinto="):
        options += " --kinto URL"
    ran = variants_in(rows)
    kinto = bool(bugs) and bugs[0][0].startswith("kinto=")
    what = (
        "Kinto's batch race (a real Kinto server, `models/real/kinto.py`)"
        if kinto
        else "Every race bug of the samples"
    )
    if len(ran) < len(VARIANTS):
        options += f" --variants {','.join(ran)}"
    if only:
        options += f" --bugs {only}"
        what = "The race bugs " + ", ".join(f"`{bug.name}`" for _, bug in bugs)
    bounds = ""
    if per_client:
        options += f" --per-client {','.join(map(str, per_client))}"
        bounds = (
            f" and at most {', '.join(map(str, per_client))} operations per client (prefix "
            f"included; {SHIPPED_PER_CLIENT} ships)"
        )
    settings = settings_in(rows, bool(per_client))
    lines = [
        "# Races on purpose: the parallel search's heuristics",
        "",
        f"Date: {date.today().isoformat()}. Machine: {machine()}.",
        f"Reproduce with `python bench/races.py --seeds {seeds} --jobs {jobs}{options}`. "
        f"Raw runs: [{name}.json]({name}.json).",
        "",
        f"{what}, `--concurrency 3` with default settings{bounds}, seeds "
        f"{first}..{last}, no failure database; {len(ran)} of the four variants of the search "
        "(see the script): `both` is what ships. Examples and runs are counted up to the "
        "first failure (medians over the runs that found the bug); minimal: shrunk to the "
        "bug's known "
        "shortest program.",
        "",
        "| variant | found | minimal | median examples to failure | median runs to failure | "
        "median s to failure |",
        "|---|---|---|---|---|---|",
    ]
    for setting in settings:
        mine = _of(rows, setting)
        found = [r for r in mine if r["found"]]
        minimal = sum(1 for r in found if r["shrunk"] == r["minimal"])
        lines.append(
            f"| {_label(setting)} | {len(found)}/{len(mine)} | {minimal}/{len(found)} | "
            f"{_median([r['examples_to_failure'] for r in found])} | "
            f"{_median([r['runs_to_failure'] for r in found])} | "
            f"{_median([r['seconds_to_failure'] for r in found])} |"
        )
    lines += [
        "",
        "Per bug (found / minimal, median examples to the first failure):",
        "",
        "| bug | " + " | ".join(map(_label, settings)) + " |",
        "|---|" + "---|" * len(settings),
    ]
    for service, bug in bugs:
        cells = []
        for setting in settings:
            mine = [r for r in _of(rows, setting) if r["bug"] == bug.name]
            found = [r for r in mine if r["found"]]
            minimal = sum(1 for r in found if r["shrunk"] == r["minimal"])
            examples = _median([r["examples_to_failure"] for r in found])
            cells.append(f"{len(found)}/{len(mine)} / {minimal}, {examples}")
        where = "kinto" if service.startswith("kinto=") else service
        lines.append(f"| {where}/{bug.name} | " + " | ".join(cells) + " |")
    if per_client:
        lines += _per_bug_detail(rows, bugs, settings)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"date": date.today().isoformat(), "machine": machine(), "runs": rows}, indent=1)
        + "\n"
    )


def _per_bug_detail(
    rows: list[dict[str, Any]], bugs: list[tuple[str, Bug]], settings: list[tuple[str, int | None]]
) -> list[str]:
    """Per bug and setting: what the search took to the first failure (median and mean
    over the runs that found it), how long programs were, and the checker's share."""
    lines = [
        "",
        "Per bug and setting (median / mean over the runs that found the bug): examples, "
        "program runs and seconds to the first failure; ops: operations of a checked "
        "history up to the first failure, on average (the final observations included); "
        "run s: the whole run, shrinking included. The checker over every run (shrinking "
        "included): histories checked, those whose check came back unknown (timed out: "
        "unchecked), its milliseconds per run (mean) and its longest check.",
        "",
        "| bug | setting | found | minimal | examples | runs | s to failure | ops | run s | "
        "checks | unknown | check ms per run | longest check ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(values: list[Any], digits: int) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return f"{statistics.median(values):.{digits}f} / {statistics.mean(values):.{digits}f}"

    for service, bug in bugs:
        where = "kinto" if service.startswith("kinto=") else service
        for setting in settings:
            mine = [r for r in _of(rows, setting) if r["bug"] == bug.name]
            found = [r for r in mine if r["found"]]
            minimal = sum(1 for r in found if r["shrunk"] == r["minimal"])
            ops = [r["mean_operations_to_failure"] for r in mine if r.get("checks")]
            check_ms = [r["check_seconds"] * 1000 for r in mine if "checks" in r]
            longest = max((r.get("longest_check_seconds", 0.0) for r in mine), default=0.0)
            lines.append(
                f"| {where}/{bug.name} | {_label(setting)} | {len(found)}/{len(mine)} | "
                f"{minimal}/{len(found)} | "
                f"{pair([r['examples_to_failure'] for r in found], 1)} | "
                f"{pair([r['runs_to_failure'] for r in found], 1)} | "
                f"{pair([r['seconds_to_failure'] for r in found], 2)} | "
                f"{statistics.mean(ops) if ops else 0:.2f} | "
                f"{pair([r['seconds'] for r in mine], 1)} | "
                f"{sum(r.get('checks', 0) for r in mine)} | "
                f"{sum(r.get('unchecked', 0) for r in mine)} | "
                f"{statistics.mean(check_ms) if check_ms else 0:.0f} | {longest * 1000:.0f} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=1, help="seeds first-seed..first-seed+seeds-1"
    )
    parser.add_argument("--output", default="races", help="results file name, in results/")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--per-client",
        metavar="N[,M...]",
        help="the most operations per client (and in the prefix) to run with, an axis "
        f"(default: the shipped {SHIPPED_PER_CLIENT}, not an axis)",
    )
    parser.add_argument(
        "--bugs", metavar="NAME[,NAME...]", help="only these race bugs (default: all of them)"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--kinto",
        metavar="URL",
        help="instead of the samples, Kinto's batch race at URL (models/real/serve.py kinto), "
        "up to 2000 examples a run",
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    per_client = [int(n) for n in args.per_client.split(",")] if args.per_client else None
    if per_client and min(per_client) < 1:
        parser.error("--per-client: at least 1")
    bugs = [(f"kinto={args.kinto}", KINTO_RACE)] if args.kinto else race_bugs()
    if args.bugs:
        names = args.bugs.split(",")
        unknown = sorted(set(names) - {bug.name for _, bug in bugs})
        if unknown:
            parser.error(f"--bugs: no race bug {unknown[0]!r}")
        bugs = [(service, bug) for service, bug in bugs if bug.name in names]
    # The bounds innermost: the runs they are compared in run side by side, under the same
    # load.
    jobs = [
        (service, bug.name, seed, variant, bound)
        for service, bug in bugs
        for variant in variants
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for bound in per_client or [None]
    ]
    rows = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for row in pool.map(run_once, jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    if not args.no_write:
        write(
            rows, args.first_seed, args.seeds, args.jobs, args.output, bugs, per_client, args.bugs
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
