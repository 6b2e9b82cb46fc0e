"""The installed version of propworkload (a leaf module, so that traces can name it)."""

from __future__ import annotations

import importlib.metadata as _metadata

__all__ = ["__version__"]

try:
    __version__ = _metadata.version("propworkload")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"
