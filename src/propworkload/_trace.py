"""Trace files: a failing example as JSON, written atomically in the artifact folder.

The folder is ``$PROPWORKLOAD_ARTIFACTS`` if set, else ``.propworkload/`` in the working
directory; when that cannot be written (simulation guests mount the repository
read-only) a fresh temporary folder is used and its path reported. A parallel program's
trace has its HTML timeline beside it (same name, ``.html``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import attrs
import hypothesis

from ._describe import timeline_html
from ._errors import InvalidTrace
from ._faults import FAULT_KINDS, Fault
from ._model import Model
from ._record import ExampleRecord, Exchange, Step, jsonable, redact_url
from ._redact import write_text_atomic
from ._results import RunResult
from ._values import encode
from ._version import __version__

__all__ = [
    "READABLE_VERSIONS",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "Artifacts",
    "TraceWriter",
    "artifacts_dir",
    "is_parallel",
    "load_trace",
    "write_json_atomic",
    "write_text_atomic",
]

TRACE_FORMAT = "propworkload-trace"
TRACE_VERSION = 2
#: Versions this propworkload reads: version 1 recorded values as plain JSON (a tuple
#: as a list), which version 2 reads as they are.
READABLE_VERSIONS = (1, 2)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def artifacts_dir(notify: Callable[[str], None] = lambda message: None) -> Path:
    """The artifact folder, created if needed (see the module docstring)."""
    configured = os.environ.get("PROPWORKLOAD_ARTIFACTS")
    preferred = Path(configured) if configured else Path(".propworkload")
    if _writable(preferred):
        return preferred
    fallback = Path(tempfile.mkdtemp(prefix="propworkload-"))
    notify(f"artifacts: {preferred} is not writable; writing to {fallback}")
    return fallback


@attrs.define
class Artifacts:
    """The run's artifact folder, chosen once, when first needed."""

    notify: Callable[[str], None] = lambda message: None
    _folder: Path | None = None

    def folder(self) -> Path:
        if self._folder is None:
            self._folder = artifacts_dir(self.notify)
        return self._folder


def write_json_atomic(path: Path, data: Any, *, keep: Collection[str] = ()) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename (secrets
    scrubbed, but for ``keep``, as from every file: :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n", keep=keep)


def _exchange(exchange: Exchange) -> dict[str, Any]:
    return attrs.asdict(exchange)


def _step(step: Step) -> dict[str, Any]:
    data = {
        "index": step.index,
        "rule": step.rule,
        "arguments": encode(step.arguments),
        "bundle_arguments": step.bundle_args,
        "targets": list(step.targets),
        "multiple": step.multiple,
        "result": encode(step.result),
        "error": step.error,
        "failed_check": step.failed_check,
        "duration_ms": round(step.duration_ms, 3),
        "unknown": step.unknown,
        "unobserved": list(step.unobserved),
        "exchanges": [_exchange(e) for e in step.exchanges],
    }
    if step.client is not None:
        data.update(
            {
                "client": step.client,
                "call": step.call,
                "return": step.ret,
                "delay": step.delay,
                "output": encode(step.output) if step.ret is not None else None,
            }
        )
    return data


@attrs.define
class TraceWriter:
    """Writes the trace of one run's failure; the same path is rewritten as it improves."""

    model_file: str | None
    model_class: str
    model_name: str
    seed: int
    target: str
    artifacts: Artifacts = attrs.field(factory=Artifacts)
    sample: str | None = None
    #: The trace of each kind of failure (``Failure.kind``) the run saw: the first kind
    #: gets the run's name, the others sit beside it with their kind in theirs.
    paths: dict[str, Path] = attrs.field(factory=dict)

    @classmethod
    def for_model(
        cls,
        model: type[Model],
        model_file: str | None,
        *,
        seed: int,
        target: str,
        artifacts: Artifacts,
        sample: str | None,
    ) -> TraceWriter:
        """The writer for one run of ``model`` (``sample`` when the target is embedded)."""
        return cls(
            model_file=model_file,
            model_class=model.__name__,
            model_name=model.model_name(),
            seed=seed,
            target=target,
            artifacts=artifacts,
            sample=sample,
        )

    def _path(self, example: ExampleRecord) -> Path:
        kind = example.failure.kind if example.failure else "failure"
        path = self.paths.get(kind)
        if path is None:
            if not self.paths:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                folder = self.artifacts.folder() / "traces"
                folder.mkdir(parents=True, exist_ok=True)
                kind_suffix = "-concurrent" if example.parallel else ""
                path = _reserve(folder, f"{self.model_name}-{self.seed}-{stamp}{kind_suffix}")
            else:
                first = next(iter(self.paths.values()))
                suffix = re.sub(r"[^\w.]+", "-", kind).strip("-")[:80]
                path = first.with_name(f"{first.stem}-{suffix}.json")
            self.paths[kind] = path
        return path

    def __call__(self, example: ExampleRecord, result: RunResult | None) -> Path:
        path = self._path(example)
        failure = example.failure
        reproduced: bool | None = None
        if result is None:
            status = "shrinking"
        elif example is not result.example:
            # Another kind of failure than the run's; flaky if shrinking ended on it and it
            # did not fail again.
            flaky = any(o.flaky for o in result.others if o.example is example)
            status, reproduced = ("flaky", False) if flaky else ("also-failed", None)
        elif result.flaky:
            status, reproduced = "flaky", False
        elif result.stopped:
            status = "shrink-stopped"
        else:
            status, reproduced = "minimal", True
        data = {
            "format": TRACE_FORMAT,
            "version": TRACE_VERSION,
            "model": {
                "file": str(Path(self.model_file).resolve()) if self.model_file else None,
                "class": self.model_class,
                "name": self.model_name,
            },
            "seed": self.seed,
            "target": redact_url(self.target),
            "sample": self.sample,
            "propworkload_version": __version__,
            "hypothesis_version": hypothesis.__version__,
            "status": status,
            "reproduced": reproduced,
            "reproduction_blob": result.blob
            if result is not None and example is result.example
            else None,
            "shrunk_from": result.first_example.size
            if result is not None and result.first_example is not None and example is result.example
            else example.size,
            "tenant": example.tenant,
            "failure": jsonable(attrs.asdict(failure)) if failure else None,
            "setup_exchanges": [_exchange(e) for e in example.setup],
            "steps": [_step(s) for s in example.steps],
        }
        if example.program is not None:
            timeline = path.with_suffix(".html")
            history = example.history
            data.update(
                {
                    "kind": "parallel",
                    "concurrency": example.program.clients,
                    "program": example.program.to_json(),
                    "runs": example.runs,
                    "failed_runs": example.failed_runs,
                    "replay_runs": example.replay_runs,
                    "first_unlinearizable": history.blocked_step() if history else None,
                    "timeline": str(timeline),
                }
            )
            if history is not None:
                write_text_atomic(timeline, timeline_html(self.model_name, example))
        # The arguments stay as they were, a secret or not: replay sends them again.
        write_json_atomic(path, data, keep=example.generated)
        return path


def _reserve(folder: Path, stem: str) -> Path:
    """A trace path in ``folder`` no other run has: ``stem.json``, else ``stem-2.json``
    and so on. The name is claimed by creating the file (two runs with one seed started
    in the same second would otherwise write one trace over the other)."""
    for number in range(1, 10_000):
        path = folder / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise OSError(f"{folder}: no free name for a trace of {stem}")


_REQUIRED = {
    "model": dict,
    "seed": int,
    "target": str,
    "failure": dict,
    "steps": list,
}
_STEP_REQUIRED = {"rule": str, "arguments": dict, "exchanges": list}
_NONE = type(None)
#: Fields replay and ``--emit-pytest`` read when a trace has them, and their types: a
#: trace is input like any other (edited, truncated, from another version), so a field of
#: another type is a damaged trace (one line, exit 2), never a crash mid-replay.
_STEP_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "index": int,
    "bundle_arguments": dict,
    "targets": list,
    "multiple": bool,
    "error": (str, _NONE),
    "unknown": (str, _NONE),
    "failed_check": (str, _NONE),
    "unobserved": list,
    "client": (int, _NONE),
}
_EXCHANGE_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "method": str,
    "target": str,
    "status": (int, _NONE),
    "request_headers": dict,
    "request_body": str,
    "response_headers": dict,
    "response_body": str,
    "phase": str,
    "error": (str, _NONE),
    "fault": (dict, str, _NONE),
}
_KIND_NAMES = {str: "string", int: "number", bool: "true/false", dict: "object", list: "list"}


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES.get(kind, "null") for kind in kinds)


def _wrong_type(
    data: dict[str, Any], fields: dict[str, type | tuple[type, ...]]
) -> tuple[str, str] | None:
    """The first field of ``data`` that is there with another type than ``fields`` says,
    and the type it should have (true and false are not numbers)."""
    for field, kind in fields.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if field in data:
            value = data[field]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                return field, _kind_name(kinds)
    return None


def _check_exchanges(path: Path, exchanges: Any, where: str) -> None:
    if not isinstance(exchanges, list):
        raise InvalidTrace(f"{path}: {where}: exchanges is not a list")
    for number, exchange in enumerate(exchanges, 1):
        if not isinstance(exchange, dict):
            raise InvalidTrace(f"{path}: {where}: exchange {number} is not an object")
        wrong = _wrong_type(exchange, _EXCHANGE_OPTIONAL)
        if wrong is not None:
            raise InvalidTrace(
                f"{path}: {where}: exchange {number}'s {wrong[0]!r} is not a {wrong[1]}"
            )
        fault = exchange.get("fault")
        if fault is not None and Fault.from_json(fault) is None:
            raise InvalidTrace(
                f"{path}: {where}: exchange {number} has fault {fault!r:.60}, which is none "
                f"of {', '.join(FAULT_KINDS)}"
            )


def _check_step(path: Path, number: int, step: Any) -> None:
    where = f"step {number}"
    if not isinstance(step, dict) or any(
        not isinstance(step.get(field), kind) for field, kind in _STEP_REQUIRED.items()
    ):
        raise InvalidTrace(f"{path}: {where} is malformed (needs rule, arguments, exchanges)")
    wrong = _wrong_type(step, _STEP_OPTIONAL)
    if wrong is not None:
        raise InvalidTrace(f"{path}: {where}'s {wrong[0]!r} is not a {wrong[1]}")
    if not all(isinstance(target, str) for target in step.get("targets", [])):
        raise InvalidTrace(f"{path}: {where}'s targets are not all names of bundles")
    for name, source in step.get("bundle_arguments", {}).items():
        if not isinstance(source, dict) or not isinstance(source.get("bundle"), str):
            raise InvalidTrace(f"{path}: {where}'s argument {name!r} names no bundle")
    _check_exchanges(path, step["exchanges"], where)


def _check_program(path: Path, program: Any) -> None:
    """The shape of a parallel program (its values are checked when replay decodes it)."""
    if not isinstance(program, dict):
        raise InvalidTrace(f"{path}: the trace of a parallel program has no program")
    clients = program.get("clients", program.get("branches"))
    parts = [program.get("prefix", []), program.get("final", [])]
    if not isinstance(clients, list) or not clients:
        raise InvalidTrace(f"{path}: the parallel program has no clients")
    for part in [*parts, *clients]:
        if not isinstance(part, list) or not all(isinstance(op, dict) for op in part):
            raise InvalidTrace(
                f"{path}: the parallel program's operations are not objects in a list"
            )


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read and check a trace file; :class:`InvalidTrace` (one line) if it cannot be used."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidTrace(f"{path}: no such trace file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # ValueError: a path Python cannot pass to the OS (a NUL byte in it).
        raise InvalidTrace(f"{path!s:.200}: cannot read the trace ({exc})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidTrace(
            f"{path}: not valid JSON ({exc.args[0]}); the trace is damaged, re-run to get a new one"
        ) from None
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise InvalidTrace(f'{path}: not a propworkload trace (no "format": "{TRACE_FORMAT}")')
    version = data.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise InvalidTrace(
            f"{path}: trace version {version!r:.40} is not supported (this propworkload reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}); replay it with the "
            "propworkload that wrote it"
        )
    for field, kind in _REQUIRED.items():
        if not isinstance(data.get(field), kind):
            raise InvalidTrace(f"{path}: field {field!r} is missing or not a {kind.__name__}")
    failure = data["failure"]
    if not isinstance(failure.get("invariant"), str):
        raise InvalidTrace(f"{path}: the failure has no invariant name")
    if not isinstance(failure.get("ids", {}), dict):
        raise InvalidTrace(f"{path}: the failure's ids are not an object")
    for number, step in enumerate(data["steps"], 1):
        _check_step(path, number, step)
    _check_exchanges(path, data.get("setup_exchanges", []), "setup")
    model = data["model"]
    if not isinstance(model.get("file"), str) or not isinstance(model.get("class"), str):
        raise InvalidTrace(f"{path}: the model's file and class are missing")
    if not isinstance(data.get("tenant", ""), str | _NONE):
        raise InvalidTrace(f"{path}: field 'tenant' is not a string")
    if is_parallel(data):
        _check_program(path, data.get("program"))
    for field in ("runs", "failed_runs", "replay_runs", "repeat"):
        value = data.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidTrace(f"{path}: field {field!r} is not a whole number")
    return data


def is_parallel(trace: dict[str, Any]) -> bool:
    """Whether a (loaded) trace holds a parallel program (version 1 said ``concurrent``)."""
    return trace.get("kind") in ("parallel", "concurrent")
