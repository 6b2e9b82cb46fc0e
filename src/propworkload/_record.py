"""What the tool records of every example it runs, independently of Hypothesis.

An :class:`ExampleRecord` holds the steps of one example (rule, arguments, result or
error) and every HTTP exchange made during it, captured by :class:`RecordingTransport`,
which wraps the real ``httpx`` transport. Headers, query parameters and JSON fields that
look like secrets are redacted *when recorded*, so no later consumer (trace, console,
report) can leak them, and their values are learned (``_redact``): wherever one shows up
later (echoed back, in a message), what leaves the process has it scrubbed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import httpx

from ._linearizability import CheckResult, Operation
from ._program import Program
from ._redact import (
    DEFAULT_REDACT_FIELDS,
    REDACTED,
    is_secret_name,
    learn_fields,
    learn_header,
    learn_query,
    learn_userinfo,
    redact_fields,
    redact_text,
    redact_url,
    scrub,
)

__all__ = [
    "BODY_LIMIT",
    "DEFAULT_REDACT_FIELDS",
    "ExampleRecord",
    "Exchange",
    "Failure",
    "HistoryCheck",
    "RecordingTransport",
    "Step",
    "jsonable",
    "redact_fields",
    "redact_headers",
    "redact_text",
    "redact_url",
]

#: Request and response bodies are cut to this many characters in records and traces.
BODY_LIMIT = 4096


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict, with secret-looking values replaced by ``[redacted]``."""
    out: dict[str, str] = {}
    for name, value in headers:
        shown = REDACTED if is_secret_name(name) else value
        out[name] = f"{out[name]}, {shown}" if name in out else shown
    return out


def _recorded_headers(headers: httpx.Headers, keep: Container[str] = ()) -> dict[str, str]:
    """``redact_headers(headers.multi_items())``: lower-case names, values decoded with
    the headers' encoding (looked up once, not twice per header as ``multi_items`` does);
    the values of secret ones learned (except those in ``keep``)."""
    encoding = headers.encoding
    out: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        name, value = raw_name.lower().decode(encoding), raw_value.decode(encoding)
        if is_secret_name(name):
            learn_header(name, value, keep=keep)
            value = REDACTED
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _redact_target(url: httpx.URL) -> str:
    """Path and query of ``url``, secret-looking query values redacted."""
    target = url.raw_path.decode("ascii", "replace")
    if not url.query:
        return target
    pairs = parse_qsl(url.query.decode("ascii", "replace"), keep_blank_values=True)
    query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs])
    return f"{url.path}?{query}"


@functools.lru_cache(maxsize=64)
def _needles(fields: frozenset[str]) -> tuple[bytes, ...]:
    return tuple(f.encode() for f in fields)


def _redact_body(body: bytes, fields: frozenset[str], keep: Container[str] = ()) -> bytes:
    """``body`` with the JSON fields named like ``fields`` redacted, their values learned
    (except those in ``keep``)."""
    if not fields or not body:
        return body
    lowered = body.lower()
    if not any(needle in lowered for needle in _needles(fields)):
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    learn_fields(data, fields, keep=keep)
    return json.dumps(redact_fields(data, fields)).encode()


def _cut(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    if len(text) <= BODY_LIMIT:
        return text
    text = scrub(text)  # no secret cut in two, its first half kept
    return text[:BODY_LIMIT] + f"...[{len(text) - BODY_LIMIT} more characters]"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (attrs classes as dicts, unknown objects as repr)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if attrs.has(type(value)):
        return jsonable(attrs.asdict(value, recurse=False))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return repr(value)


@attrs.define
class Exchange:
    """One HTTP request and its response (or the transport error that replaced it)."""

    method: str
    target: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str
    duration_ms: float
    phase: str
    error: str | None = None
    #: The fault the tool injected into this request (``{"kind": ..., ...}``), if any.
    fault: dict[str, Any] | None = None

    def json(self) -> Any:
        """The response body parsed as JSON, or None."""
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None


@attrs.define
class Step:
    """One executed rule (or operation of a parallel program): its name, arguments,
    outcome and the exchanges it made. ``arguments``, ``result`` and ``output`` are the
    Python values the model drew and got back (traces encode them with ``_values``)."""

    index: int
    rule: str
    arguments: dict[str, Any]
    exchanges: list[Exchange] = attrs.field(factory=list)
    bundle_args: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    targets: tuple[str, ...] = ()
    multiple: bool = False
    result: Any = None
    error: str | None = None
    failed_check: str | None = None
    duration_ms: float = 0.0
    #: Set when the step's outcome is unknown: every attempt ended in a transport error.
    unknown: str | None = None
    #: Invariants that could not observe the service after this step (transport errors).
    unobserved: list[str] = attrs.field(factory=list)
    #: Parallel programs: the client that ran the operation (0: the prefix and the final
    #: operations), when it was called and returned (seconds from the program's start;
    #: ``ret`` is None when the outcome is unknown), what it observed, and the delay its
    #: client waited before calling it.
    client: int | None = None
    call: float | None = None
    ret: float | None = None
    output: Any = None
    delay: float = 0.0

    def own_exchanges(self) -> list[Exchange]:
        """Exchanges made by the rule itself (not by the invariants checked after it)."""
        return [e for e in self.exchanges if e.phase == "rule"]

    @property
    def outcome_unknown(self) -> bool:
        """Whether the step's outcome is unknown: unanswered, raised, or every attempt
        failed."""
        if self.client is not None:  # an operation of a parallel program
            return self.ret is None or self.error is not None or self.unknown is not None
        return self.unknown is not None

    def hidden_deliveries(self) -> int:
        """Deliveries of the step's writes whose effect the client did not see (a lost
        answer, a reset, the copy of a duplicate), each of which may have taken effect on
        its own; when the step's own outcome is unknown because its last request was such
        a delivery, that one is the step itself."""
        exchanges = self.own_exchanges()
        hidden = [
            exchange
            for exchange in exchanges
            if exchange.fault is not None
            and exchange.fault.get("kind") in HIDDEN_DELIVERY
            and exchange.method.upper() not in SAFE_METHODS
        ]
        itself = self.outcome_unknown and bool(hidden) and exchanges[-1] is hidden[-1]
        return len(hidden) - itself


#: Methods whose requests change nothing: a lost answer to one needs no extra operation.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Faults after which the service may have applied a request the client got no answer to.
HIDDEN_DELIVERY = frozenset({"lost-response", "reset", "duplicate"})


def check_signature(name: str, expected: Any, actual: Any) -> str:
    """What tells failures of one check apart: its name, and, when it compares yes/no
    answers, which way it failed (a refund refused that should pass is another bug than
    one accepted that should be refused). Other values (amounts, ids) vary from one
    example to the next and would split one bug into many."""
    answers = (bool, type(None))
    if isinstance(expected, answers) and isinstance(actual, answers):
        return f"{name}[{expected}->{actual}]"
    return name


@attrs.define
class Failure:
    """Why an example failed: a broken invariant, or a step that raised."""

    invariant: str
    expected: Any
    actual: Any
    ids: dict[str, Any]
    step: int
    error: str | None = None
    rule: str | None = None
    #: Parallel programs: the operation that fits no order of the history.
    operation: str | None = None

    @property
    def signature(self) -> str:
        """What tells two failures apart: the invariant (and which way a yes/no check
        failed: :func:`check_signature`); for a history that is not
        linearizable, also the operation that fits no order; for an unexpected error,
        the rule or operation that raised."""
        if self.operation:
            return f"{self.invariant}@{self.operation}"
        if self.invariant == "unexpected_error" and self.rule:
            return f"{self.invariant}@{self.rule}"
        return check_signature(self.invariant, self.expected, self.actual)

    @property
    def kind(self) -> str:
        """What shrinking keeps to (each kind is shrunk on its own, and has a trace of
        its own): the signature, but for a history that is not linearizable only the
        invariant. The operation that fits no order may change as a race shrinks, and it
        is still the same race."""
        if self.operation:
            return self.invariant
        return self.signature


@attrs.define
class HistoryCheck:
    """A parallel program's history as the linearizability checker saw it: the operations
    (with the record's step each one came from) and the verdict."""

    operations: list[Operation]
    steps: list[int]
    result: CheckResult

    def blocked_step(self) -> int | None:
        """The index (1-based) of the step that fits no order, if any."""
        blocked = self.result.blocked
        return self.steps[blocked[0]] if blocked else None


@attrs.define
class ExampleRecord:
    """Everything the tool saw while running one example."""

    number: int
    tenant: str = ""
    setup: list[Exchange] = attrs.field(factory=list)
    steps: list[Step] = attrs.field(factory=list)
    failure: Failure | None = None
    checks: Counter[str] = attrs.field(factory=Counter)
    #: Failed checks the model accepts as known deviations (``Model.accepted``).
    accepted: Counter[str] = attrs.field(factory=Counter)
    rejected: Counter[str] = attrs.field(factory=Counter)
    invariant_runs: Counter[str] = attrs.field(factory=Counter)
    markers: Counter[str] = attrs.field(factory=Counter)
    phase: str = "setup"
    started: float = attrs.field(factory=time.perf_counter)
    #: Invariant runs that could not observe the service before the first step.
    setup_unobserved: list[str] = attrs.field(factory=list)
    #: Parallel programs: the program, how many times it ran in this example and how
    #: many of those runs failed, and the linearizability check of the run this record
    #: holds; None for sequential examples.
    program: Program | None = None
    runs: int = 1
    failed_runs: int = 0
    history: HistoryCheck | None = None
    #: Parallel programs: the runs a replay should make to see the failure again.
    replay_runs: int = 1
    #: The strings in the arguments of the steps so far: values Hypothesis generated,
    #: never learned as secrets (a trace keeps them, replay needs them).
    generated: set[str] = attrs.field(factory=set)

    @property
    def parallel(self) -> bool:
        return self.program is not None

    @property
    def size(self) -> int:
        """How long the example is: a parallel program's operations (without the final
        observations), a sequential example's steps."""
        return self.program.size if self.program is not None else len(self.steps)

    @property
    def unobserved(self) -> list[str]:
        """Where to note an invariant run that could not observe the service."""
        step = self.current_step
        return step.unobserved if step is not None else self.setup_unobserved

    @property
    def current_step(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def begin_step(self, rule: str, arguments: Mapping[str, Any]) -> Step:
        step = Step(index=len(self.steps) + 1, rule=rule, arguments=dict(arguments))
        self.generated.update(_strings(step.arguments))
        self.steps.append(step)
        self.phase = "rule"
        return step

    @contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def add_exchange(self, exchange: Exchange) -> None:
        step = self.current_step
        if step is None:
            self.setup.append(exchange)
        else:
            step.exchanges.append(exchange)


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """The strings in ``value`` (an argument: containers, attrs and dataclass values)."""
    if isinstance(value, str):
        yield value
        return
    if depth > 20 or value is None or isinstance(value, int | float | bytes):
        return
    if isinstance(value, Mapping):
        items: Iterable[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    elif attrs.has(type(value)):
        items = attrs.astuple(value, recurse=False)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    else:
        return
    for item in items:
        yield from _strings(item, depth + 1)


def _fault(request: httpx.Request) -> dict[str, Any] | None:
    fault = request.extensions.get("propworkload.fault")
    to_json = getattr(fault, "to_json", None)
    return to_json() if callable(to_json) else None


class RecordingTransport(httpx.BaseTransport):
    """Wraps the run's real transport and records each exchange into one example.

    Closing it does not close the wrapped transport: the run owns that, and reuses its
    connections across examples.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        record: ExampleRecord,
        *,
        redact: frozenset[str] = DEFAULT_REDACT_FIELDS,
        on_answer: Callable[[], None] = lambda: None,
        on_connect_error: Callable[[httpx.TransportError], None] = lambda exc: None,
    ) -> None:
        self._inner = inner
        self._record = record
        self._redact = frozenset(f.lower() for f in redact)
        self._on_answer = on_answer
        self._on_connect_error = on_connect_error

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        keep = self._record.generated
        url = request.url
        if url.userinfo:
            learn_userinfo(url.userinfo.decode("ascii", "replace"), keep=keep)
        if url.query:
            learn_query(url.query.decode("ascii", "replace"), keep=keep)
        request_headers = _recorded_headers(request.headers, keep)
        request_body = _cut(_redact_body(request.read(), self._redact, keep))
        phase = self._record.phase

        def record(
            status: int | None, headers: dict[str, str], body: str, error: str | None
        ) -> None:
            self._record.add_exchange(
                Exchange(
                    method=request.method,
                    target=_redact_target(request.url),
                    request_headers=request_headers,
                    request_body=request_body,
                    status=status,
                    response_headers=headers,
                    response_body=body,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    phase=phase,
                    error=error,
                    fault=_fault(request),
                )
            )

        try:
            response = self._inner.handle_request(request)
            body = response.read()
        except httpx.TransportError as exc:
            record(None, {}, "", redact_text(f"{type(exc).__name__}: {exc}"))
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                self._on_connect_error(exc)
            raise
        self._on_answer()
        headers = _recorded_headers(response.headers, keep)
        record(response.status_code, headers, _cut(_redact_body(body, self._redact, keep)), None)
        return response

    def close(self) -> None:
        """Leave the shared transport open; the run closes it."""
