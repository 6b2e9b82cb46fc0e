"""Races on purpose: what the parallel search's heuristics buy, bug by bug.

Usage: python bench/races.py [--seeds N] [--jobs J] [--no-write]

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


def run_once(job: tuple[str, str, int, str]) -> dict[str, Any]:
    """One run: ``(service, bug, seed, variant)``, against a service of its own (or, for
    ``kinto=URL``, against the Kinto at URL)."""
    service, bug_name, seed, variant = job
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
    started = time.monotonic()

    def listen(event: Event) -> None:
        # FailureFound comes before the failing example's ExampleFinished: it counts too.
        if isinstance(event, FailureFound) and event.first:
            first.update(
                examples=seen["examples"] + 1,
                runs=seen["runs"] + event.example.runs,
                seconds=round(time.monotonic() - started, 2),
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
    return {
        "service": service,
        "bug": bug.name,
        "seed": seed,
        "variant": variant,
        "found": found,
        "examples_to_failure": first.get("examples"),
        "runs_to_failure": first.get("runs"),
        "seconds_to_failure": first.get("seconds"),
        "shrunk": result.example.size if found and result.example else None,
        "minimal": bug.minimal_steps,
        "seconds": round(time.monotonic() - started, 2),
    }


def variants_in(rows: list[dict[str, Any]]) -> list[str]:
    return [v for v in VARIANTS if any(r["variant"] == v for r in rows)]


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
    lines = [
        "# Races on purpose: the parallel search's heuristics",
        "",
        f"Date: {date.today().isoformat()}. Machine: {machine()}.",
        f"Reproduce with `python bench/races.py --seeds {seeds} --jobs {jobs}{options}`. "
        f"Raw runs: [{name}.json]({name}.json).",
        "",
        f"{what}, `--concurrency 3` with default settings, seeds "
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
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        found = [r for r in mine if r["found"]]
        minimal = sum(1 for r in found if r["shrunk"] == r["minimal"])
        lines.append(
            f"| {variant} | {len(found)}/{len(mine)} | {minimal}/{len(found)} | "
            f"{_median([r['examples_to_failure'] for r in found])} | "
            f"{_median([r['runs_to_failure'] for r in found])} | "
            f"{_median([r['seconds_to_failure'] for r in found])} |"
        )
    lines += [
        "",
        "Per bug (found / minimal, median examples to the first failure):",
        "",
        "| bug | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for service, bug in bugs:
        cells = []
        for variant in variants:
            mine = [r for r in rows if r["bug"] == bug.name and r["variant"] == variant]
            found = [r for r in mine if r["found"]]
            minimal = sum(1 for r in found if r["shrunk"] == r["minimal"])
            examples = _median([r["examples_to_failure"] for r in found])
            cells.append(f"{len(found)}/{len(mine)} / {minimal}, {examples}")
        where = "kinto" if service.startswith("kinto=") else service
        lines.append(f"| {where}/{bug.name} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"date": date.today().isoformat(), "machine": machine(), "runs": rows}, indent=1)
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=1, help="seeds first-seed..first-seed+seeds-1"
    )
    parser.add_argument("--output", default="races", help="results file name, in results/")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--kinto",
        metavar="URL",
        help="instead of the samples, Kinto's batch race at URL (models/real/serve.py kinto), "
        "up to 2000 examples a run",
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    bugs = [(f"kinto={args.kinto}", KINTO_RACE)] if args.kinto else race_bugs()
    jobs = [
        (service, bug.name, seed, variant)
        for service, bug in bugs
        for variant in variants
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    rows = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for row in pool.map(run_once, jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    if not args.no_write:
        write(rows, args.first_seed, args.seeds, args.jobs, args.output, bugs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
