"""The exceptions propworkload raises.

The tool's own errors form one tree; each carries the process exit status the CLI uses::

    PropworkloadError              (exit 2 unless a subclass says otherwise)
     ├── InvalidModel              a model file or class cannot be used     exit 2
     ├── InvalidOption             a run option has a bad value             exit 2
     ├── InvalidTrace              a trace file cannot be read or replayed  exit 2
     ├── InvalidHistory            a history to check cannot be read        exit 2
     └── TargetError               the service cannot be used               exit 3
          ├── TargetUnreachable    connection refused, DNS, timeout on connect
          └── SetupFailed          a model's reset() hook failed

    InvariantFailure (AssertionError)
        raised by ``Model.check`` when the service breaks a rule: a finding,
        not a tool error (exit 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._redact import DEFAULT_REDACT_FIELDS, redact_fields, scrub

__all__ = [
    "InvalidHistory",
    "InvalidModel",
    "InvalidOption",
    "InvalidTrace",
    "InvariantFailure",
    "PropworkloadError",
    "SetupFailed",
    "TargetError",
    "TargetUnreachable",
]


class PropworkloadError(Exception):
    """Base class of the errors the tool reports as one line and an exit status."""

    exit_code = 2


class InvalidModel(PropworkloadError):
    """The model file or class cannot be used (no model, syntax error, misused decorator)."""


class InvalidOption(PropworkloadError):
    """A run option has a value that cannot work (for example no target for the model)."""


class InvalidTrace(PropworkloadError):
    """A trace file is not JSON, not a propworkload trace, of an unknown version, or names
    a model that cannot be found."""


class InvalidHistory(PropworkloadError):
    """A history given to ``propworkload check`` cannot be read (not a format the tool
    knows, a malformed operation or event), or does not fit the model (an operation it
    does not have, arguments it does not take)."""


class TargetError(PropworkloadError):
    """The service under test cannot be used."""

    exit_code = 3


class TargetUnreachable(TargetError):
    """No connection to the target could be made."""


class SetupFailed(TargetError):
    """The model's ``reset()`` hook failed, so no example can start from a known state."""


class InvariantFailure(AssertionError):
    """A rule of the service was broken: ``expected`` and ``actual`` differ.

    Raised by :meth:`propworkload.Model.check`; it carries the invariant's ``name``,
    ``expected`` and ``actual`` values and the ``ids`` (customer, key, ...) involved. Its
    message (what pytest prints) shows them with secrets redacted: ids and fields named
    like ``password``, ``secret`` or ``token``, and every secret the process learned.
    """

    def __init__(
        self, name: str, *, expected: Any, actual: Any, ids: Mapping[str, Any] | None = None
    ) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        self.ids = dict(ids or {})
        fields = DEFAULT_REDACT_FIELDS
        shown = " ".join(f"{k}={v}" for k, v in redact_fields(self.ids, fields).items())
        expected, actual = redact_fields(expected, fields), redact_fields(actual, fields)
        super().__init__(f"{name} expected={expected!r} actual={actual!r} {shown}".rstrip())

    def __str__(self) -> str:
        # Scrubbed when shown, not when raised: a secret learned in between counts too.
        return scrub(super().__str__())
