"""propworkload: property-based, stateful workloads for HTTP services.

A model is a Hypothesis ``RuleBasedStateMachine`` derived from :class:`Model`; the names
Hypothesis users know (``rule``, ``invariant``, ``precondition``, ``initialize``,
``Bundle``, ``consumes``, ``multiple``) are re-exported unchanged.
"""

from hypothesis.stateful import (
    Bundle,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from ._cli import main
from ._errors import (
    InvalidModel,
    InvalidOption,
    InvalidTrace,
    InvariantFailure,
    PropworkloadError,
    SetupFailed,
    TargetError,
    TargetUnreachable,
)
from ._model import Model
from ._operations import UNKNOWN, operation
from ._possible import Possible
from ._replay import Replay
from ._runtime import reachable, sometimes
from ._spec import (
    accept,
    check,
    command,
    expect_status,
    from_state,
    observation,
    sampled_from_state,
)
from ._version import __version__

__all__ = [  # noqa: RUF022 - plain sorted order (tests/test_exported_members.py)
    "Bundle",
    "InvalidModel",
    "InvalidOption",
    "InvalidTrace",
    "InvariantFailure",
    "Model",
    "Possible",
    "PropworkloadError",
    "Replay",
    "SetupFailed",
    "TargetError",
    "TargetUnreachable",
    "UNKNOWN",
    "__version__",
    "accept",
    "check",
    "command",
    "consumes",
    "expect_status",
    "from_state",
    "initialize",
    "invariant",
    "main",
    "multiple",
    "observation",
    "operation",
    "precondition",
    "reachable",
    "rule",
    "sampled_from_state",
    "sometimes",
]

# Show the public classes as propworkload.X (in tracebacks and reprs), not the private
# module that defines them.
for _cls in (
    InvalidModel,
    InvalidOption,
    InvalidTrace,
    InvariantFailure,
    Model,
    Possible,
    PropworkloadError,
    Replay,
    SetupFailed,
    TargetError,
    TargetUnreachable,
):
    _cls.__module__ = __name__
del _cls
