"""Python values in traces: encoded as JSON so that decoding gives the same values back.

Rules receive what Hypothesis drew and transitions receive what the real call returned,
as Python values. A trace must hand a replay the *same* values, so plain JSON is not
enough: a tuple would come back as a list, a ``Decimal`` as a string. :func:`encode`
keeps JSON's own values as they are and tags the others::

    (1, 2)                  {"$tuple": [1, 2]}
    Decimal("1.50")         {"$decimal": "1.50"}
    b"\\x00"                 {"$bytes": "AA=="}              (base64)
    {1, 2}                  {"$set": [1, 2]}                (and "$frozenset")
    {1: "a"}                {"$dict": [[1, "a"]]}           (keys that are not strings)
    float("nan")            {"$float": "nan"}
    Color.RED               {"$enum": "module:Color", "name": "RED"}
    Ledger(charges={})      {"$attrs": "module:Ledger", "fields": {"charges": {}}}

(also dataclasses, ``datetime``, ``date``, ``time``, ``timedelta`` and ``UUID``). A value
of any other type cannot be recorded: :func:`encode` raises :class:`UnencodableValue`, and
the tool reports it as a model error when the value is first recorded, never converting
it silently. :func:`decode` reverses :func:`encode`; classes are found by module and
qualified name, or in the modules the caller names (a model run as ``__main__`` and
replayed from its file).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import importlib
import json
import math
import sys
import uuid
from collections.abc import Iterable
from decimal import Decimal
from types import ModuleType
from typing import Any

import attrs

__all__ = ["UnencodableValue", "decode", "encodable", "encode"]

_PLAIN = (str, int, bool, type(None))


class UnencodableValue(ValueError):
    """A value that a trace cannot record so that replay gets it back."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _sorted(items: Iterable[Any]) -> list[Any]:
    """Encoded items in a stable order (set iteration order varies between processes)."""
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _check_class(cls: type, hidden: list[str]) -> None:
    """A class whose instances a trace can rebuild: reachable by name, every field taken
    by its ``__init__``."""
    if "<locals>" in cls.__qualname__:
        raise UnencodableValue(
            f"a {cls.__qualname__} cannot be recorded in a trace: a class defined inside a "
            "function cannot be found again by replay; define it at module level"
        )
    if hidden:
        raise UnencodableValue(
            f"a {cls.__qualname__} cannot be recorded in a trace: its field "
            f"{hidden[0]!r} is not taken by __init__ (init=False), so replay cannot rebuild it"
        )


def encode(value: Any) -> Any:
    """``value`` as JSON data that :func:`decode` turns back into an equal value."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, enum.Enum):  # before str and int: a StrEnum is a str
        _check_class(kind, [])
        return {"$enum": _class_name(kind), "name": value.name}
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind is list:
        return [encode(item) for item in value]
    if kind is dict:
        if all(type(key) is str and not key.startswith("$") for key in value):
            return {key: encode(item) for key, item in value.items()}
        return {"$dict": [[encode(key), encode(item)] for key, item in value.items()]}
    if kind is tuple:
        return {"$tuple": [encode(item) for item in value]}
    if kind in (set, frozenset):
        tag = "$set" if kind is set else "$frozenset"
        return {tag: _sorted(encode(item) for item in value)}
    if kind is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if kind is Decimal:
        return {"$decimal": str(value)}
    if attrs.has(kind):
        fields = attrs.fields(kind)
        _check_class(kind, [f.name for f in fields if not f.init])
        encoded = {f.alias or f.name: encode(getattr(value, f.name)) for f in fields}
        return {"$attrs": _class_name(kind), "fields": encoded}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        _check_class(kind, [f.name for f in fields if not f.init])
        encoded = {f.name: encode(getattr(value, f.name)) for f in fields}
        return {"$dataclass": _class_name(kind), "fields": encoded}
    if kind is dt.datetime:
        return {"$datetime": value.isoformat()}
    if kind is dt.date:
        return {"$date": value.isoformat()}
    if kind is dt.time:
        return {"$time": value.isoformat()}
    if kind is dt.timedelta:
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if kind is uuid.UUID:
        return {"$uuid": str(value)}
    raise UnencodableValue(
        f"a {type(value).__qualname__} ({_describe(value)}) cannot be recorded in a trace; "
        "use plain values, tuples, Decimals, bytes, enums or attrs/dataclass classes"
    )


def encodable(value: Any) -> bool:
    """Whether :func:`encode` can record ``value``."""
    try:
        encode(value)
    except UnencodableValue:
        return False
    return True


def _find_class(name: str, modules: Iterable[ModuleType]) -> type:
    module_name, _, qualname = name.partition(":")
    candidates: list[ModuleType] = []
    if module_name in sys.modules:
        candidates.append(sys.modules[module_name])
    elif module_name and module_name != "__main__":
        with contextlib.suppress(ImportError):
            candidates.append(importlib.import_module(module_name))
    candidates += list(modules)
    for module in candidates:
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
            if found is None:
                break
        if isinstance(found, type):
            return found
    raise ValueError(f"class {name} is not defined (was the model changed?)")


def decode(data: Any, *, modules: Iterable[ModuleType] = ()) -> Any:
    """The value :func:`encode` encoded as ``data``.

    Raises ``ValueError`` (and nothing else) for data that no encoding produces (a
    damaged trace) or a class that cannot be found (``modules`` are searched when the
    recorded module is not loaded: the model's own, for a model recorded as
    ``__main__``)."""
    try:
        return _decode(data, tuple(modules))
    except ValueError:
        raise
    except (RecursionError, ArithmeticError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def _decode(data: Any, modules: tuple[ModuleType, ...]) -> Any:
    if type(data) in _PLAIN or type(data) is float:
        return data
    if isinstance(data, list):
        return [_decode(item, modules) for item in data]
    if not isinstance(data, dict):
        raise ValueError(f"not JSON data: {_describe(data)}")
    tags = [key for key in data if isinstance(key, str) and key.startswith("$")]
    if not tags:
        return {key: _decode(item, modules) for key, item in data.items()}
    tag = tags[0]
    body = data[tag]
    if tag == "$tuple":
        return tuple(_decode(item, modules) for item in body)
    if tag == "$set":
        return {_decode(item, modules) for item in body}
    if tag == "$frozenset":
        return frozenset(_decode(item, modules) for item in body)
    if tag == "$dict":
        return {_decode(k, modules): _decode(v, modules) for k, v in body}
    if tag == "$float":
        return float(body)
    if tag == "$bytes":
        return base64.b64decode(body, validate=True)
    if tag == "$decimal":
        return Decimal(body)
    if tag == "$datetime":
        return dt.datetime.fromisoformat(body)
    if tag == "$date":
        return dt.date.fromisoformat(body)
    if tag == "$time":
        return dt.time.fromisoformat(body)
    if tag == "$timedelta":
        days, seconds, microseconds = body
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "$uuid":
        return uuid.UUID(body)
    if tag == "$enum":
        cls = _find_class(body, modules)
        if not issubclass(cls, enum.Enum):
            raise ValueError(f"{body} is not an enum")
        return cls[data["name"]]
    if tag in ("$attrs", "$dataclass"):
        cls = _find_class(body, modules)
        if not (attrs.has(cls) if tag == "$attrs" else dataclasses.is_dataclass(cls)):
            raise ValueError(f"{body} is not an {tag[1:]} class")
        fields = {key: _decode(item, modules) for key, item in data["fields"].items()}
        return cls(**fields)
    raise ValueError(f"unknown tag {tag!r} in recorded value")
