"""Values as text on one line: what every printed line of the tool is made of."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ._redact import scrub

__all__ = ["VALUE_WIDTH", "cut", "describe_error", "focus", "short", "where_they_differ"]


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ``...`` marking the cut."""
    return text if len(text) <= width else text[: width - 3] + "..."


_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]{1,64}$")
VALUE_WIDTH = 60


def short(value: Any, width: int = VALUE_WIDTH) -> str:
    """``value`` on one line, at most ``width`` characters; plain words unquoted."""
    if isinstance(value, str) and _BARE.match(value):
        text = value
    elif value is None or isinstance(value, bool):
        text = repr(value)
    elif isinstance(value, str | int | float):
        text = json.dumps(value)
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), sort_keys=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.split())
    if len(text) > width:
        # Scrubbed before it is cut: a secret cut in two would keep its first half.
        text = scrub(text)
        if len(text) > width:
            text = text[: width - 3] + "..."
    return text


_MISSING = object()
_IDENTITY = ("id", "key", "name")


def focus(expected: Any, actual: Any) -> tuple[Any, Any]:
    """The parts of ``expected`` and ``actual`` that differ.

    Dicts keep the differing keys (and identity keys such as ``id`` that tell items
    apart); equal-length lists keep the differing items, keyed ``"[i]"``; lists of
    different lengths keep their lengths and the first item that differs (cut to the same
    prefix, they would print the same).
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = [
            k
            for k in {**expected, **actual}
            if expected.get(k, _MISSING) != actual.get(k, _MISSING)
        ]
        same_ids = [k for k in _IDENTITY if k in expected and expected.get(k) == actual.get(k)]
        picked_e: dict[str, Any] = {k: expected[k] for k in same_ids}
        picked_a: dict[str, Any] = {k: actual[k] for k in same_ids}
        for k in keys:
            e, a = focus(expected.get(k, _MISSING), actual.get(k, _MISSING))
            if e is not _MISSING:
                picked_e[k] = e
            if a is not _MISSING:
                picked_a[k] = a
        return picked_e, picked_a
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        differ = [i for i, (e, a) in enumerate(zip(expected, actual, strict=True)) if e != a]
        pairs = {f"[{i}]": focus(expected[i], actual[i]) for i in differ}
        return {k: e for k, (e, _) in pairs.items()}, {k: a for k, (_, a) in pairs.items()}
    if isinstance(expected, list) and isinstance(actual, list):
        first = next(
            (i for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if e != a),
            min(len(expected), len(actual)),
        )
        sides = []
        for side in (expected, actual):
            shown: dict[str, Any] = {"len": len(side)}
            if first < len(side):
                shown[f"[{first}]"] = side[first]
            sides.append(shown)
        return sides[0], sides[1]
    return expected, actual


def where_they_differ(expected: str, actual: str, width: int = VALUE_WIDTH) -> tuple[str, str]:
    """Two texts that differ only after ``width`` characters, each cut to a window that
    starts a little before the first character where they differ (``...`` marking cuts)."""
    first = next(
        (i for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if e != a),
        min(len(expected), len(actual)),
    )
    start = max(0, first - 10)

    def window(text: str) -> str:
        if start == 0:
            return cut(text, width)
        return "..." + cut(text[start:], width - 3)

    return window(expected), window(actual)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line); an ``httpx`` status error
    as ``HTTPStatusError: 500 Internal Server Error from GET /path``, the status first so
    that a line cut to fit still shows it (httpx's message puts the whole URL before it)."""
    if isinstance(exc, httpx.HTTPStatusError):
        response, request = exc.response, exc.request
        text = f"{response.status_code} {response.reason_phrase} from {request.method} "
        text += request.url.path
    else:
        text = str(exc).strip().split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
