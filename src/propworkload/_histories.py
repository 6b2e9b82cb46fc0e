"""Histories recorded elsewhere, read as the linearizability checker's operations.

``propworkload check`` reads three kinds of file, told apart by their content:

- the project's own JSON history format (``docs/history-format.md``)::

      {"format": "propworkload-history", "version": 1, "operations": [
        {"client": 1, "operation": "put", "arguments": {"key": "x", "value": "1"},
         "call": 0.0, "return": 0.4, "output": null}, ...]}

- a trace of a parallel program (``run --concurrency`` writes one for each failure): its
  operations as the run checked them, with one more of unknown outcome for each delivery
  of a write its client did not see;
- Jepsen's event log as Porcupine's key-value tests have it, one map a line::

      {:process 3, :type :invoke, :f :append, :key "4", :value "x 3 1 y"}
      {:process 3, :type :ok, :f :append, :key "4", :value "x 3 1 y"}

Every operation's ``input`` is ``(name, arguments)``, as in a run's own history, so a
model's transitions check it as they check a run. Whether the operations fit a model
(names it has, arguments it takes) is the caller's to check.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from ._errors import InvalidHistory
from ._faults import Fault
from ._linearizability import Operation
from ._model import Model
from ._parallel import history_of, idempotent_commands
from ._record import Exchange, Step
from ._trace import TRACE_FORMAT, is_parallel, load_trace
from ._values import decode

__all__ = [
    "FORMATS",
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "History",
    "read_history",
    "read_porcupine",
]

HISTORY_FORMAT = "propworkload-history"
HISTORY_VERSION = 1
#: The formats :func:`read_history` reads, by the name ``--format`` gives them.
FORMATS = ("json", "trace", "porcupine")


@attrs.frozen
class History:
    """A history read from a file: the checker's operations, the format they were read
    from, and where each operation comes from in the file (``("operation", 3)``: the
    third of a JSON history's operations; ``("step", 4)``: a trace's fourth step;
    ``("line", 17)``: the line of a Porcupine log where it was invoked)."""

    operations: list[Operation]
    format: str
    places: list[tuple[str, int]]

    def place(self, index: int) -> str:
        """Where operation ``index`` comes from, as text (``line 17``)."""
        kind, number = self.places[index]
        return f"{kind} {number}"


def read_history(
    path: str | Path, *, format: str = "auto", model: type[Model] | None = None
) -> History:
    """The history in ``path``, in ``format`` (``auto``: told by its content).

    ``model`` is the model it will be checked against, when known: recorded values of its
    classes are found in its module, and an unseen delivery of one of its idempotent
    commands adds no operation to a trace's history (the service applies it once). Raises
    :class:`InvalidHistory` (one line, naming the place) when the file cannot be read as
    a history."""
    path = Path(path)
    if format not in ("auto", *FORMATS):
        raise InvalidHistory(f"unknown history format {format!r}: auto, {', '.join(FORMATS)}")
    text = _read(path)
    if format == "auto":
        format = _detect(path, text)
    if format == "porcupine":
        return _porcupine(path, text)
    if format == "trace":
        return _trace(path, model)
    data = _json(path, text)
    if data.get("format") != HISTORY_FORMAT:
        raise InvalidHistory(
            f'{path}: not a propworkload history (no "format": "{HISTORY_FORMAT}")'
        )
    modules = [] if model is None else _modules(model)
    return _json_history(path, data, modules)


def read_porcupine(path: str | Path) -> History:
    """The history in a Porcupine key-value log (see the module's docstring): operations
    ``put(key, value)``, ``append(key, value)`` and ``get(key)``, whose output is the value
    read (``""`` for ``nil``: a key never written). Event positions (line numbers) are the
    times; an operation that ended ``:fail`` did not happen and is left out; one that
    ended ``:info``, or never ended, has an unknown outcome."""
    path = Path(path)
    return _porcupine(path, _read(path))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidHistory(f"{path}: no such history file") from None
    except IsADirectoryError:
        raise InvalidHistory(f"{path}: is a folder; pass a history file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidHistory(f"{path!s:.200}: cannot read the history ({exc})") from None


def _detect(path: Path, text: str) -> str:
    start = text.lstrip()
    if start.startswith("{:"):
        return "porcupine"
    if not start:
        raise InvalidHistory(f"{path}: the file is empty; there is no history to check")
    data = _json(path, text)
    if data.get("format") == HISTORY_FORMAT:
        return "json"
    if data.get("format") == TRACE_FORMAT:
        return "trace"
    raise InvalidHistory(
        f'{path}: not a history propworkload reads: a JSON object without "format": '
        f'"{HISTORY_FORMAT}" or "{TRACE_FORMAT}" (see docs/history-format.md)'
    )


def _json(path: Path, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if text.lstrip()[:1] not in ("{", "["):
            raise InvalidHistory(
                f"{path}: not a history propworkload reads (neither JSON nor Porcupine's "
                "kv log; see docs/history-format.md)"
            ) from None
        raise InvalidHistory(f"{path}: not valid JSON ({exc.args[0]})") from None
    if not isinstance(data, dict):
        raise InvalidHistory(f"{path}: not a history: the JSON is not an object")
    return data


def _modules(model: type[Model]) -> list[ModuleType]:
    module = sys.modules.get(model.__module__)
    return [module] if module is not None else []


def _time(value: Any) -> float | None:
    """A time as a history gives it (any finite number), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a whole number too large to be a time
        return None
    return value if finite else None


def _value(path: Path, where: str, what: str, data: Any, modules: list[ModuleType]) -> Any:
    try:
        return decode(data, modules=modules)
    except ValueError as exc:
        raise InvalidHistory(f"{path}: {where}: its {what} cannot be read ({exc})") from None


def _json_history(path: Path, data: dict[str, Any], modules: list[ModuleType]) -> History:
    version = data.get("version")
    if version != HISTORY_VERSION or isinstance(version, bool):
        raise InvalidHistory(
            f"{path}: history version {version!r:.40} is not supported (this propworkload "
            f"reads version {HISTORY_VERSION})"
        )
    items = data.get("operations")
    if not isinstance(items, list):
        raise InvalidHistory(f"{path}: 'operations' is missing or not a list")
    operations = []
    for number, item in enumerate(items, 1):
        where = f"operation {number}"
        if not isinstance(item, dict):
            raise InvalidHistory(f"{path}: {where} is not an object")
        client = item.get("client")
        if isinstance(client, bool) or not isinstance(client, int):
            raise InvalidHistory(f"{path}: {where}: 'client' is missing or not a whole number")
        name = item.get("operation")
        if not isinstance(name, str) or not name:
            raise InvalidHistory(f"{path}: {where}: 'operation' is missing or not a name")
        arguments = _value(path, where, "arguments", item.get("arguments", {}), modules)
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            raise InvalidHistory(f"{path}: {where}: 'arguments' is not an object")
        call = _time(item.get("call"))
        if call is None:
            raise InvalidHistory(f"{path}: {where}: 'call' is missing or not a finite number")
        ret = None
        if item.get("return") is not None:
            ret = _time(item["return"])
            if ret is None:
                raise InvalidHistory(
                    f"{path}: {where}: 'return' is not a finite number (null: outcome unknown)"
                )
            if ret < call:
                raise InvalidHistory(
                    f"{path}: {where}: it returned ({ret}) before it was called ({call})"
                )
        output = None
        if ret is not None:
            output = _value(path, where, "output", item.get("output"), modules)
        operations.append(Operation(client, (name, arguments), call, ret, output))
    return History(operations, "json", [("operation", n) for n in range(1, len(items) + 1)])


# -- Porcupine's kv log -------------------------------------------------------------------

#: One item of an EDN map on one line: a keyword, a string, a whole number or nil.
_ATOM = re.compile(
    r'[\s,]*(?::(?P<keyword>[^\s,{}\[\]()"]+)|"(?P<string>(?:[^"\\]|\\.)*)"'
    r"|(?P<integer>-?\d+)|(?P<nil>nil))(?=[\s,}]|$)"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_EVENT_SHAPE = (
    '{:process N, :type :invoke|:ok|:fail|:info, :f :get|:put|:append, :key "K", :value "V"|nil}'
)


class _Keyword(str):
    """An EDN keyword (``:ok``), told apart from a string."""


def _edn_map(line: str) -> dict[str, Any]:
    """A flat EDN map (``{:a 1, :b "x", :c :d, :e nil}``) as a dict; ValueError if not."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not a {...} map")
    body, position = text[1:-1], 0
    items: list[Any] = []
    while body[position:].strip(" ,\t"):
        match = _ATOM.match(body, position)
        if match is None:
            raise ValueError(f"cannot read {body[position:].strip()[:30]!r}")
        position = match.end()
        if match["keyword"] is not None:
            items.append(_Keyword(match["keyword"]))
        elif match["string"] is not None:
            items.append(re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), match["string"]))
        elif match["integer"] is not None:
            items.append(int(match["integer"]))
        else:
            items.append(None)
    if len(items) % 2 or not all(isinstance(key, _Keyword) for key in items[::2]):
        raise ValueError("not pairs of a :keyword and a value")
    return dict(zip(items[::2], items[1::2], strict=True))


@attrs.frozen
class _Invoked:
    line: int
    f: str
    key: str
    value: str | None


def _porcupine(path: Path, text: str) -> History:
    pending: dict[int, _Invoked] = {}
    done: list[tuple[_Invoked, Operation]] = []

    def bad(number: int, why: str) -> InvalidHistory:
        return InvalidHistory(f"{path}:{number}: {why}")

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        try:
            event = _edn_map(line)
        except ValueError as exc:
            raise bad(number, f"not an event {_EVENT_SHAPE} ({exc})") from None
        process = event.get("process")
        if process == "nemesis":
            continue  # a fault injected into the system, no client's operation
        if isinstance(process, bool) or not isinstance(process, int):
            raise bad(number, ":process is missing or not a whole number")
        kind, f, key = event.get("type"), event.get("f"), event.get("key")
        if not isinstance(kind, _Keyword) or kind not in ("invoke", "ok", "fail", "info"):
            raise bad(number, f":type is {_edn(kind)}, not :invoke, :ok, :fail or :info")
        if not isinstance(f, _Keyword) or f not in ("get", "put", "append"):
            raise bad(number, f":f is {_edn(f)}, not :get, :put or :append")
        if not isinstance(key, str) or isinstance(key, _Keyword):
            raise bad(number, f":key is {_edn(key)}, not a string")
        value = event.get("value")
        if value is not None and (not isinstance(value, str) or isinstance(value, _Keyword)):
            raise bad(number, f":value is {_edn(value)}, not a string or nil")
        if kind == "invoke":
            if process in pending:
                raise bad(
                    number,
                    f"process {process} invokes an operation before the one it invoked on "
                    f"line {pending[process].line} ended",
                )
            if f != "get" and value is None:
                raise bad(number, f"a :{f} needs a :value (a string)")
            pending[process] = _Invoked(number, str(f), key, value)
            continue
        invoked = pending.pop(process, None)
        if invoked is None:
            raise bad(number, f":{kind} of process {process}, which has no operation under way")
        if (invoked.f, invoked.key) != (f, key):
            raise bad(
                number,
                f"ends :{f} of key {key!r}, but process {process} invoked :{invoked.f} of "
                f"key {invoked.key!r} on line {invoked.line}",
            )
        if kind == "fail":
            continue  # it did not happen
        ret = number if kind == "ok" else None
        output = (value or "") if f == "get" and ret is not None else None
        done.append((invoked, _kv_operation(process, invoked, ret, output)))
    for process, invoked in pending.items():  # never ended: its outcome is unknown
        done.append((invoked, _kv_operation(process, invoked, None, None)))
    done.sort(key=lambda item: item[0].line)
    return History(
        [operation for _, operation in done],
        "porcupine",
        [("line", invoked.line) for invoked, _ in done],
    )


def _kv_operation(process: int, invoked: _Invoked, ret: int | None, output: Any) -> Operation:
    arguments = {"key": invoked.key}
    if invoked.f != "get":
        assert invoked.value is not None
        arguments["value"] = invoked.value
    return Operation(process, (invoked.f, arguments), invoked.line, ret, output)


def _edn(value: Any) -> str:
    if value is None:
        return "missing or nil"
    if isinstance(value, _Keyword):
        return f":{value}"
    return json.dumps(value)[:40]


# -- traces of parallel programs ----------------------------------------------------------


def _trace(path: Path, model: type[Model] | None) -> History:
    trace = load_trace(path)
    if not is_parallel(trace):
        raise InvalidHistory(
            f"{path}: a trace of a sequential run holds no concurrent history to check; "
            f"replay it instead: propworkload replay {path}"
        )
    modules = [] if model is None else _modules(model)
    steps = [
        _step(path, number, data, trace["version"], modules)
        for number, data in enumerate(trace["steps"], 1)
    ]
    idempotent = frozenset() if model is None else idempotent_commands(model)
    operations, indexes = history_of(steps, idempotent=idempotent)
    return History(operations, "trace", [("step", index) for index in indexes])


def _step(
    path: Path, number: int, data: dict[str, Any], version: int, modules: list[ModuleType]
) -> Step:
    """A trace's step (already checked by ``load_trace``) as the run recorded it."""
    where = f"step {number}"
    client, call = data.get("client"), _time(data.get("call"))
    if isinstance(client, bool) or not isinstance(client, int) or call is None:
        raise InvalidHistory(f"{path}: {where} has no client or no call time")
    ret = None
    if data.get("return") is not None:
        ret = _time(data["return"])
        if ret is None or ret < call:
            raise InvalidHistory(f"{path}: {where}'s return time is not a number after its call")

    def value(what: str, recorded: Any) -> Any:
        return recorded if version == 1 else _value(path, where, what, recorded, modules)

    arguments = value("arguments", data["arguments"])
    if not isinstance(arguments, dict):
        raise InvalidHistory(f"{path}: {where}'s arguments are not an object")
    return Step(
        index=number,
        rule=data["rule"],
        arguments=arguments,
        exchanges=[_exchange(exchange) for exchange in data["exchanges"]],
        error=data.get("error"),
        unknown=data.get("unknown"),
        client=client,
        call=call,
        ret=ret,
        output=value("output", data.get("output")) if ret is not None else None,
    )


def _exchange(data: dict[str, Any]) -> Exchange:
    """What a trace records of an exchange, as far as the history needs it (its method,
    phase and fault tell whether the service may have applied it unseen)."""
    fault = Fault.from_json(data.get("fault"))
    return Exchange(
        method=data.get("method", ""),
        target=data.get("target", ""),
        request_headers=data.get("request_headers", {}),
        request_body=data.get("request_body", ""),
        status=data.get("status"),
        response_headers=data.get("response_headers", {}),
        response_body=data.get("response_body", ""),
        duration_ms=0.0,
        phase=data.get("phase", "rule"),
        error=data.get("error"),
        fault=None if fault is None else fault.to_json(),
    )
