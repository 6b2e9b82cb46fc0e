"""Overhead of propworkload: steps per second of a model against a hand-written machine.

Usage: python bench/overhead.py [--rounds N] [--examples N] [--steps N] [--seed S]
                                [--profile {model,hand,both}] [--no-write]

On one embedded payments sample service (started on a free loopback port, stopped at the
end) it measures, in the same process and the same run:

- **A, propworkload**: the payments model (``models/payments.py``) run by the engine
  (``run_model``, as ``propworkload run`` does, with the console reporter writing to a
  buffer), steps counted by the engine.
- **B, hand-written**: :class:`HandWritten` below, a plain Hypothesis
  ``RuleBasedStateMachine`` with the same rules (names, arguments, strategies, bundle)
  and the same invariant, issuing the same HTTP requests (paths, bodies, headers; as many
  per step and per invariant check) with one raw ``httpx.Client``, against a
  plain-Python reference model (a dict per charge), under the same Hypothesis settings
  and seed, one fresh tenant per example.
- **C, raw httpx**: the requests B made in one run, replayed in a tight loop with a raw
  ``httpx.Client`` (fresh tenants, charge ids mapped to the new ones): the service's own
  limit for this mix of requests.

A and B take turns for ``--rounds`` rounds (A first in odd rounds, B first in even ones)
so that machine noise hits both; C runs once per round. It prints each run and the
medians, checks that A and B ran the same steps and requests, and writes the table into
bench/results/overhead.md (the part above its notes; the notes are kept).

``--profile`` runs A and/or B once more under cProfile and prints the functions that cost
the most (by own time and by cumulative time), for finding what A costs beyond B.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import io
import os
import platform
import pstats
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, Verbosity, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.reporting import with_reporter  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RULE_MARKER,
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from propworkload._console import ConsoleReporter  # noqa: E402
from propworkload._engine import RunConfig, run_model  # noqa: E402
from propworkload._loader import load_model  # noqa: E402
from propworkload._model import rules_of  # noqa: E402
from propworkload._target import sample_service  # noqa: E402

MODEL = ROOT / "models" / "payments.py"
RESULTS = Path(__file__).resolve().parent / "results" / "overhead.md"
#: The results file's hand-written notes start at this line; the script keeps them.
NOTES_MARKER = "<!-- notes: kept by bench/overhead.py -->"


# -- B: the hand-written state machine ------------------------------------------------


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path} returned "
            f"{response.status_code}, expected {statuses}: {response.text[:200]}"
        )
    return response


class HandWritten(RuleBasedStateMachine):
    """The payments model as one would write it with Hypothesis and httpx alone.

    Same rule names, arguments and strategies as ``models/payments.py`` (so the same seed
    draws the same steps), same requests; the reference model is a dict of charges by
    idempotency key. ``http`` is set per run (one client for the whole run).
    """

    http: httpx.Client
    steps = 0
    requests = 0

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.tenant = f"cus_{secrets.token_hex(4)}"
        self.charges: dict[str, dict[str, Any]] = {}
        self.amounts: dict[str, int] = {}
        self.refunds_sent = 0

    def _charge(self, key: str, amount: int) -> httpx.Response:
        HandWritten.requests += 1
        return self.http.post(
            f"/customers/{self.tenant}/charges",
            json={"amount": amount},
            headers={"Idempotency-Key": key},
        )

    def _charged(self, key: str, amount: int, response: httpx.Response) -> None:
        charge_id = _expect(response, 200, 201).json()["id"]
        if key not in self.charges:
            self.charges[key] = {"id": charge_id, "amount": amount, "refunded": 0, "keys": set()}

    @rule(target=keys, amount=st.integers(min_value=1, max_value=1000))
    def charge(self, amount: int) -> str:
        HandWritten.steps += 1
        key = f"k{len(self.amounts)}"
        self.amounts[key] = amount
        self._charged(key, amount, self._charge(key, amount))
        return key

    @rule(key=keys)
    def retry_charge(self, key: str) -> None:
        HandWritten.steps += 1
        amount = self.amounts[key]
        self._charged(key, amount, self._charge(key, amount))

    @rule(key=keys, amount=st.none() | st.integers(min_value=1, max_value=1000))
    def refund(self, key: str, amount: int | None) -> None:
        HandWritten.steps += 1
        self._refund(key, amount)

    @rule(key=keys)
    def refund_rest(self, key: str) -> None:
        HandWritten.steps += 1
        charge = self.charges[key]
        remaining = charge["amount"] - charge["refunded"]
        if remaining:
            self._refund(key, remaining)

    @rule(key=keys)
    def refund_half(self, key: str) -> None:
        HandWritten.steps += 1
        charge = self.charges[key]
        remaining = charge["amount"] - charge["refunded"]
        if remaining >= 2:
            self._refund(key, remaining // 2)

    def _refund(self, key: str, amount: int | None) -> None:
        charge = self.charges[key]
        refund_key = f"{key}-r{self.refunds_sent}"
        self.refunds_sent += 1
        body = {} if amount is None else {"amount": amount}
        HandWritten.requests += 1
        response = self.http.post(
            f"/charges/{charge['id']}/refunds", json=body, headers={"Idempotency-Key": refund_key}
        )
        accepted = _expect(response, 201, 409).status_code == 201
        remaining = charge["amount"] - charge["refunded"]
        wanted = remaining if amount is None else amount
        expected = refund_key in charge["keys"] or 0 < wanted <= remaining
        assert accepted == expected, f"refund of {amount} accepted={accepted}"
        if accepted and refund_key not in charge["keys"]:
            charge["refunded"] += wanted
            charge["keys"].add(refund_key)

    @rule(key=keys)
    def read(self, key: str) -> None:
        HandWritten.steps += 1
        charge = self.charges[key]
        HandWritten.requests += 1
        shown = _expect(self.http.get(f"/charges/{charge['id']}"), 200).json()
        actual = {k: shown[k] for k in ("id", "amount", "refunded")}
        assert actual == {k: charge[k] for k in ("id", "amount", "refunded")}, actual
        assert shown["idempotency_key"] == key

    @invariant()
    def service_matches_model(self) -> None:
        HandWritten.requests += 2
        listed = _expect(self.http.get(f"/customers/{self.tenant}/charges"), 200).json()["data"]
        balance = _expect(self.http.get(f"/customers/{self.tenant}/balance"), 200).json()
        balance = balance["balance"]
        per_key = Counter(charge["idempotency_key"] for charge in listed)
        for key in self.amounts:
            assert per_key[key] == 1, f"charged_once {key}: {per_key[key]}"
        shared = [i for i, n in Counter(c["id"] for c in listed).items() if n > 1]
        assert not shared, f"unique_ids: {shared}"
        for charge in listed:
            assert charge["refunded"] <= charge["amount"], f"refund_within_charge {charge}"
        assert balance >= 0, f"balance_non_negative: {balance}"
        expected = sum(c["amount"] - c["refunded"] for c in self.charges.values())
        assert balance == expected, f"balance_matches_model: {balance} != {expected}"
        actual = [(c["idempotency_key"], c["id"], c["amount"], c["refunded"]) for c in listed]
        model = [(k, c["id"], c["amount"], c["refunded"]) for k, c in self.charges.items()]
        assert actual == model, f"charges_listed: {actual} != {model}"


# -- the runs -------------------------------------------------------------------------


def _settings(examples: int, steps: int) -> settings:
    """The settings the engine uses for ``--seed S`` (pinned: no database, no reuse)."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
        print_blob=True,
    )


Run = dict[str, Any]


def run_a(model: type[Any], url: str, args: argparse.Namespace) -> Run:
    config = RunConfig(
        url=url,
        examples=args.examples,
        steps=args.steps,
        seed=args.seed,
        time_budget=3600.0,
        database=None,
        retry_saved=False,
    )
    console = ConsoleReporter(io.StringIO())
    cpu, started = time.process_time(), time.perf_counter()
    result = run_model(model, config, listeners=[console])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not result.passed:
        raise SystemExit(f"the model failed on the sample service: {result.failure}")
    requests = sum(sum(c.values()) for c in result.coverage.statuses.values())
    return {"steps": result.steps, "requests": requests, "seconds": seconds, "cpu": cpu}


def run_b(url: str, args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> Run:
    HandWritten.steps = HandWritten.requests = 0
    with httpx.Client(
        base_url=url,
        transport=transport or httpx.HTTPTransport(retries=0),
        timeout=httpx.Timeout(10.0),
        trust_env=False,
        headers={"user-agent": "propworkload"},  # as A's client: the very same requests
    ) as client:
        HandWritten.http = client
        factory = functools.partial(HandWritten)
        hypothesis.seed(args.seed)(factory)
        cpu, started = time.process_time(), time.perf_counter()
        with with_reporter(lambda _message: None):
            run_state_machine_as_test(factory, settings=_settings(args.examples, args.steps))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "steps": HandWritten.steps,
        "requests": HandWritten.requests,
        "seconds": seconds,
        "cpu": cpu,
    }


class _Recorder(httpx.BaseTransport):
    """Records B's requests (method, path, JSON body, idempotency key, created id)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport(retries=0)
        self.log: list[tuple[str, str, bytes, str | None, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        created = None
        if request.method == "POST" and request.url.path.endswith("/charges"):
            created = httpx.Response(200, content=response.content).json()["id"]
        content = request.read()
        key = request.headers.get("idempotency-key")
        self.log.append((request.method, request.url.path, content, key, created))
        return response

    def close(self) -> None:
        self.inner.close()


def record_mix(url: str, args: argparse.Namespace) -> list[tuple[Any, ...]]:
    """B's requests in one run, for C to replay."""
    recorder = _Recorder()
    run_b(url, args, transport=recorder)
    return recorder.log


def run_c(url: str, log: list[tuple[Any, ...]]) -> Run:
    """Replay ``log`` in a tight loop: the same requests, fresh tenants, new charge ids."""
    tenants: dict[str, str] = {}
    ids: dict[str, str] = {}
    with httpx.Client(
        base_url=url,
        transport=httpx.HTTPTransport(retries=0),
        timeout=httpx.Timeout(10.0),
        trust_env=False,
        headers={"user-agent": "propworkload"},
    ) as client:
        cpu, started = time.process_time(), time.perf_counter()
        for method, path, content, key, created in log:
            _, kind, name, *rest = path.split("/")
            if kind == "customers":
                name = tenants.get(name) or tenants.setdefault(name, f"cus_{secrets.token_hex(4)}")
            else:
                name = ids[name]
            headers = {"content-type": "application/json"} if content else {}
            if key is not None:
                headers["idempotency-key"] = key
            response = client.request(
                method, "/".join(("", kind, name, *rest)), content=content, headers=headers
            )
            if created is not None:
                ids[created] = response.json()["id"]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"steps": 0, "requests": len(log), "seconds": seconds, "cpu": cpu}


def _line(name: str, run: Run) -> str:
    rate = f"steps/s={run['steps'] / run['seconds']:6.1f} " if run["steps"] else " " * 15
    cpu = f"client-cpu-ms/step={1000 * run['cpu'] / run['steps']:5.3f}" if run["steps"] else ""
    return (
        f"  {name:13} steps={run['steps']:5} requests={run['requests']:5} "
        f"seconds={run['seconds']:6.2f} {rate}requests/s={run['requests'] / run['seconds']:6.1f} "
        f"{cpu}"
    ).rstrip()


def profile(name: str, call: Callable[[], Run], top: int = 30) -> None:
    profiler = cProfile.Profile()
    run = profiler.runcall(call)
    print(f"\nPROFILE {name}: {_line(name, run).strip()}")
    out = ROOT / ".propworkload" / f"overhead-{name}.pstats"
    out.parent.mkdir(exist_ok=True)
    profiler.dump_stats(out)
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(order).print_stats(top)
        text = buffer.getvalue()
        print(text[text.index("   ncalls") :])
    print(f"(stats in {out})")


SIDES = {"A": "propworkload", "B": "hand-written", "C": "raw httpx loop"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", choices=["model", "hand", "both"])
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    model, _ = load_model(str(MODEL))
    hand = [name for name, f in inspect.getmembers(HandWritten) if hasattr(f, RULE_MARKER)]
    if sorted(rules_of(model)) != sorted(hand):
        print(
            f"the hand-written machine no longer mirrors {MODEL.name}: its rules are "
            f"{sorted(hand)}, the model's {sorted(rules_of(model))}; update HandWritten",
            file=sys.stderr,
        )
        return 2

    with sample_service("payments") as url:
        print(
            f"payments sample service at {url}; examples={args.examples} steps={args.steps} "
            f"seed={args.seed} rounds={args.rounds}",
            flush=True,
        )
        # Warm up both sides (imports, connections, the service) before measuring.
        warm = argparse.Namespace(**{**vars(args), "examples": 10})
        run_a(model, url, warm)
        run_b(url, warm)
        if args.profile:
            if args.profile in ("model", "both"):
                profile("model", lambda: run_a(model, url, args))
            if args.profile in ("hand", "both"):
                profile("hand", lambda: run_b(url, args))
            return 0
        log = record_mix(url, args)
        runs: dict[str, list[Run]] = {"A": [], "B": [], "C": []}
        for number in range(1, args.rounds + 1):
            print(f"round {number}", flush=True)
            for side in ("A", "B", "C") if number % 2 else ("B", "A", "C"):
                if side == "A":
                    run = run_a(model, url, args)
                elif side == "B":
                    run = run_b(url, args)
                else:
                    run = run_c(url, log)
                runs[side].append(run)
                print(_line(SIDES[side], run), flush=True)

    a, b = runs["A"], runs["B"]
    same = all(
        (x["steps"], x["requests"]) == (y["steps"], y["requests"])
        for x, y in zip(a, b, strict=True)
    )
    if not same:
        print("WARNING: A and B did not run the same steps and requests", file=sys.stderr)
    summary = summarize(runs)
    print()
    for line in table(summary):
        print(line)
    print(
        f"A/B = {summary['A/B']:.3f} (target >= 0.9; median of the rounds' ratios), "
        f"A/C = {summary['A/C']:.3f}"
    )
    if not args.no_write:
        write_results(args, summary, a[0], same)
        print(f"results in {RESULTS}")
    return 0


def summarize(runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Medians per side, and the ratios of A to B and to C (each the median over the
    rounds of the ratio within the round, so that a slow moment hits both of a pair)."""
    per_step = runs["B"][0]["requests"] / runs["B"][0]["steps"]
    out: dict[str, Any] = {"per_step": per_step, "rounds": len(runs["A"])}
    for side, side_runs in runs.items():
        requests = [r["requests"] / r["seconds"] for r in side_runs]
        steps = (
            [q / per_step for q in requests]
            if side == "C"
            else [r["steps"] / r["seconds"] for r in side_runs]
        )
        cpu = [1000 * r["cpu"] / r["requests"] * per_step for r in side_runs]
        out[side] = {
            "steps": steps,
            "steps/s": statistics.median(steps),
            "requests/s": statistics.median(requests),
            "cpu ms/step": statistics.median(cpu),
        }
    for other in ("B", "C"):
        ratios = [x / y for x, y in zip(out["A"]["steps"], out[other]["steps"], strict=True)]
        out[f"A/{other} each"] = ratios
        out[f"A/{other}"] = statistics.median(ratios)
    out["cpu A-B"] = out["A"]["cpu ms/step"] - out["B"]["cpu ms/step"]
    return out


def table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| side | steps/s (median) | requests/s (median) | client CPU ms/step (median) "
        "| steps/s of each round |",
        "|---|---|---|---|---|",
    ]
    for side, name in SIDES.items():
        row = summary[side]
        each = ", ".join(f"{s:.0f}" for s in row["steps"])
        lines.append(
            f"| {side} {name} | {row['steps/s']:.0f} | {row['requests/s']:.0f} "
            f"| {row['cpu ms/step']:.3f} | {each} |"
        )
    for other in ("B", "C"):
        each = ", ".join(f"{r:.3f}" for r in summary[f"A/{other} each"])
        lines.append(f"| **A/{other}** | **{summary[f'A/{other}']:.3f}** | | | {each} |")
    return lines


def write_results(
    args: argparse.Namespace, summary: dict[str, Any], first: Run, same: bool
) -> None:
    notes = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        if NOTES_MARKER in text:
            notes = text[text.index(NOTES_MARKER) :]
    lines = [
        "# Overhead of propworkload against a hand-written Hypothesis state machine",
        "",
        f"Date: {time.strftime('%Y-%m-%d')}. Machine: {platform.system()} {platform.machine()}, "
        f"{_cpu_model()}, {os.cpu_count()} cores (shared by the client, the service and "
        f"whatever else runs), Python {platform.python_version()}, "
        f"Hypothesis {hypothesis.__version__}, httpx {httpx.__version__}.",
        "",
        "Workload: the payments model on the embedded payments sample service, "
        f"`--examples {args.examples} --steps {args.steps} --seed {args.seed}`: "
        f"{first['steps']} steps and {first['requests']} requests per run "
        f"({summary['per_step']:.2f} requests per step)"
        f"{'' if same else ' (A and B DIFFERED)'}; {summary['rounds']} rounds of A, B "
        "(alternately first) and C. Reproduce with `python bench/overhead.py`.",
        "",
        *table(summary),
        "",
        f"A/B = {summary['A/B']:.3f} (target: at least 0.9); the client's CPU time is "
        f"{summary['cpu A-B']:+.3f} ms per step with propworkload. C's steps/s is its "
        "requests/s over B's requests per step; client CPU is this process's CPU time "
        "(the service runs in another process).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + ("\n" + notes if notes else ""))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
