"""Coverage statistics: how much of the model and the service a run exercised.

Per rule: times chosen (started), run (finished without raising) and rejected by a
precondition; per invariant: checks; per endpoint (method and path template): status
counts and latency percentiles; steps per example; hits of ``sometimes``/``reachable``
markers. A rule that never ran, an invariant method never run, or a marker never hit is a
coverage gap.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Any

import attrs

from ._record import ExampleRecord

__all__ = ["Coverage", "path_template"]

#: An id: a prefixed one (``cus_7f3a9b2c``: hex, or with a digit, so that ``batch_jobs``
#: is a name), a number, hex of 8 or more, a UUID.
_ID = (
    r"(?:[A-Za-z]{1,12}_(?:[0-9a-f]{8,}|(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{4,})|[0-9]+|[0-9a-f]{8,}|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_ID_SEGMENT = re.compile(rf"^{_ID}$")
#: An id with an extension: ``pw_1a2b3c4d.json``, ``1234.csv.gz`` (not ``1.0``).
_ID_WITH_SUFFIX = re.compile(rf"^{_ID}((?:\.[A-Za-z][A-Za-z0-9]{{0,9}})+)$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
#: Runs of one kind of character: lower case, upper case, digits, separators.
_RUNS = re.compile(r"[a-z]+|[A-Z]+|[0-9]+|[_-]+")
_LETTERS = re.compile(r"[a-z]+|[A-Z]+")


def _random_like(segment: str) -> bool:
    """A short random id (nanoid, base64url: ``-4e8N_x``, ``x7Kp2qRm``), told from a
    name (``deleterange``, ``v1beta1``, ``getItems``, ``user-profile-v2``) by how its
    characters change kind: at least two of lower case, upper case and digits, mostly in
    runs of one or two, and, unless all three are there, no run of four letters."""
    if not _TOKEN.match(segment):
        return False
    kinds = sum(any(test(c) for c in segment) for test in (str.islower, str.isupper, str.isdigit))
    if kinds < 2 or 2 * len(_RUNS.findall(segment)) < len(segment):
        return False
    return kinds == 3 or max(len(run) for run in _LETTERS.findall(segment)) <= 3


def _segment_template(segment: str, tenant: str) -> str:
    if tenant and tenant in segment:
        return segment.replace(tenant, "{id}")
    if _ID_SEGMENT.match(segment) or _random_like(segment):
        return "{id}"
    suffixed = _ID_WITH_SUFFIX.match(segment)
    if suffixed:
        return "{id}" + suffixed.group(1)
    return segment


@functools.lru_cache(maxsize=4096)
def path_template(target: str, tenant: str = "") -> str:
    """``/customers/cus_1a2b/charges?x=1`` -> ``/customers/{id}/charges``: segments that
    look like ids, and the example's ``tenant`` wherever it appears, become ``{id}``."""
    path = target.split("?", 1)[0]
    return "/".join(_segment_template(part, tenant) for part in path.split("/"))


#: Latencies kept per endpoint; beyond it every other one is dropped (memory stays bounded
#: on hour-long runs, percentiles stay close).
LATENCY_SAMPLE = 20_000


def _sample(values: list[float], value: float) -> None:
    values.append(value)
    if len(values) > LATENCY_SAMPLE:
        del values[::2]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@attrs.define
class Coverage:
    """Counts gathered from finished examples; mergeable across runs and workers."""

    chosen: Counter[str] = attrs.field(factory=Counter)
    ran: Counter[str] = attrs.field(factory=Counter)
    rejected: Counter[str] = attrs.field(factory=Counter)
    checks: Counter[str] = attrs.field(factory=Counter)
    invariant_runs: Counter[str] = attrs.field(factory=Counter)
    statuses: dict[str, Counter[str]] = attrs.field(factory=dict)
    latencies: dict[str, list[float]] = attrs.field(factory=dict)
    steps_per_example: Counter[int] = attrs.field(factory=Counter)
    markers: Counter[str] = attrs.field(factory=Counter)
    #: Faults injected, by kind; steps whose outcome stayed unknown, by rule; invariant
    #: runs that could not observe the service (transport errors), by invariant.
    faults: Counter[str] = attrs.field(factory=Counter)
    unknown: Counter[str] = attrs.field(factory=Counter)
    unobserved: Counter[str] = attrs.field(factory=Counter)
    #: The last error that kept each invariant from observing the service.
    unobserved_errors: dict[str, str] = attrs.field(factory=dict)

    def add_example(self, record: ExampleRecord, *, count_length: bool = True) -> None:
        if count_length:
            self.steps_per_example[len(record.steps)] += 1
        self.checks.update(record.checks)
        self.rejected.update(record.rejected)
        self.invariant_runs.update(record.invariant_runs)
        self.markers.update(record.markers)
        exchanges = list(record.setup)
        for step in record.steps:
            self.chosen[step.rule] += 1
            if step.error is None:
                self.ran[step.rule] += 1
            if step.unknown is not None:
                self.unknown[step.rule] += 1
            self._unobserved(step.unobserved)
            exchanges.extend(step.exchanges)
        self._unobserved(record.setup_unobserved)
        for exchange in exchanges:
            if exchange.fault is not None:
                self.faults[exchange.fault["kind"]] += 1
            endpoint = f"{exchange.method} {path_template(exchange.target, record.tenant)}"
            status = str(exchange.status) if exchange.status is not None else "error"
            self.statuses.setdefault(endpoint, Counter())[status] += 1
            _sample(self.latencies.setdefault(endpoint, []), exchange.duration_ms)

    def _unobserved(self, notes: list[str]) -> None:
        for note in notes:
            name, _, error = note.partition(": ")
            self.unobserved[name] += 1
            self.unobserved_errors[name] = error

    def never_observed(self) -> dict[str, str]:
        """Invariants that ran but could not observe the service a single time, with the
        last error."""
        return {
            name: self.unobserved_errors.get(name, "")
            for name, runs in self.invariant_runs.items()
            if runs and self.unobserved[name] >= runs
        }

    def merge(self, other: Coverage) -> None:
        for name in (
            "chosen",
            "ran",
            "rejected",
            "checks",
            "invariant_runs",
            "markers",
            "faults",
            "unknown",
            "unobserved",
        ):
            getattr(self, name).update(getattr(other, name))
        self.steps_per_example.update(other.steps_per_example)
        self.unobserved_errors.update(other.unobserved_errors)
        for endpoint, counts in other.statuses.items():
            self.statuses.setdefault(endpoint, Counter()).update(counts)
        for endpoint, values in other.latencies.items():
            mine = self.latencies.setdefault(endpoint, [])
            for value in values:
                _sample(mine, value)

    def gaps(self, *, rules: list[str], invariants: list[str], markers: list[str]) -> list[str]:
        """What the run never reached, as lines (``rule refund never ran``)."""
        out = [f"rule {name} never ran" for name in rules if self.ran[name] == 0]
        out += [
            f"invariant {name} never checked"
            for name in invariants
            if not self.invariant_runs[name]
        ]
        out += [f"sometimes {name} never hit" for name in markers if self.markers[name] == 0]
        return out

    def to_json(
        self, *, rules: list[str], invariants: list[str], markers: list[str]
    ) -> dict[str, Any]:
        """The ``coverage`` object of the JSON report (see docs/report-format.md)."""
        return {
            "rules": {
                name: {
                    "chosen": self.chosen[name],
                    "ran": self.ran[name],
                    "rejected_by_precondition": self.rejected[name],
                }
                for name in sorted({*rules, *self.chosen})
            },
            "invariants": {
                name: {"runs": self.invariant_runs[name]}
                for name in sorted({*invariants, *self.invariant_runs})
            },
            "checks": dict(sorted(self.checks.items())),
            "endpoints": {
                endpoint: {
                    "statuses": dict(sorted(self.statuses[endpoint].items())),
                    "p50_ms": round(_percentile(self.latencies[endpoint], 0.5), 3),
                    "p99_ms": round(_percentile(self.latencies[endpoint], 0.99), 3),
                }
                for endpoint in sorted(self.statuses)
            },
            "steps_per_example": {str(k): v for k, v in sorted(self.steps_per_example.items())},
            "sometimes": {name: self.markers[name] for name in sorted({*markers, *self.markers})},
            "faults": dict(sorted(self.faults.items())),
            "unknown_outcomes": dict(sorted(self.unknown.items())),
            "unobserved_invariants": dict(sorted(self.unobserved.items())),
            "gaps": self.gaps(rules=rules, invariants=invariants, markers=markers),
        }
