"""Sample services: real HTTP services with seeded bugs, for examples, tests and benchmarks.

Each sample is a module here exposing ``DESCRIPTION``, ``BUGS`` (a tuple of :class:`Bug`)
and ``create_app(bugs)`` returning an ASGI app. They need the ``demo`` extra
(``starlette``, ``uvicorn``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .._errors import InvalidOption
from ._bugs import Bug

__all__ = ["SAMPLES", "Bug", "load_sample", "validate_bugs"]

#: Names of the sample services, each a module of this package.
SAMPLES = ("payments", "signup", "jobs", "sync", "checkout")


def load_sample(name: str) -> ModuleType:
    """The module of sample ``name``; a one-line error if unknown or if extras are missing."""
    if name not in SAMPLES:
        raise InvalidOption(f"no sample service {name!r}; samples: {', '.join(SAMPLES)}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise InvalidOption(
            f"the sample services need the demo extra (missing {exc.name}): "
            "pip install 'propworkload[demo]'"
        ) from None


def validate_bugs(module: ModuleType, bugs: tuple[str, ...] | list[str]) -> frozenset[str]:
    """``bugs`` as a set, or a one-line error naming the unknown one and the known ones."""
    known = {bug.name for bug in module.BUGS}
    for bug in bugs:
        if bug not in known:
            sample = module.__name__.rsplit(".", 1)[-1]
            raise InvalidOption(
                f"unknown bug {bug!r} for {sample}; known: {', '.join(sorted(known))} "
                f"(propworkload demo {sample} --list-bugs)"
            )
    return frozenset(bugs)
