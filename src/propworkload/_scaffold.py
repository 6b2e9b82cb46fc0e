"""``propworkload new NAME``: a model and its workload entry to start from."""

from __future__ import annotations

import importlib.machinery
import os
import re
import sys
from pathlib import Path

from ._errors import InvalidOption
from ._redact import write_text_atomic

__all__ = ["scaffold"]

_MODEL = '''"""{name}: a propworkload model. Edit it to describe your service.

Each behaviour of the service is described once, as a command: the strategies of its
arguments, the real call (returns what it observed) and a model function that checks what
was observed against the reference state and returns the next state. Observations read
the whole state. Plain runs, --faults and --concurrency all derive from that. See the
README of propworkload, "Writing a model".

Run it against your service:

    APP_URL=http://127.0.0.1:8000 python3 models/{name}.py
    propworkload run models/{name}.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]
"""

import attrs
from hypothesis import strategies as st

from propworkload import UNKNOWN, Model, check, command, main, observation


@attrs.frozen
class State:
    """The reference model: what the service should hold. Replace with yours."""

    requests: int = 0


class {cls}(Model):
    # No embedded sample service: a target is needed (APP_URL or --url).
    sample = None
    # Each example gets a fresh self.tenant starting with this: use it in paths or bodies
    # so that examples never see each other's data.
    tenant_prefix = "{name}_"
    model_state = State

    @command(path=st.sampled_from(["/"]), idempotent=True)
    def read(self, path: str) -> int:
        """A command: one request. Add one per operation your users depend on."""
        return self.http.get(path).status_code

    @read.model
    def read(state: State, status: int, path: str) -> State:
        """What the service should have answered, and the state after the command
        (status is UNKNOWN when no answer came)."""
        if status is not UNKNOWN:
            check("no_server_errors", holds=status < 500, expected="<500", actual=status)
        return attrs.evolve(state, requests=state.requests + 1)

    @observation
    def home(self) -> int:
        """An observation: read the service's state; checked after every step."""
        return self.http.get("/").status_code

    @home.model
    def home(state: State, status: int) -> None:
        check("no_server_errors", holds=status < 500, expected="<500", actual=status)


if __name__ == "__main__":
    main({cls})
'''

_WORKLOAD = '''"""Workload entry for the {name} model, for reliability simulators:

    APP_URL=http://service:8000 python3 .workers/workloads/{name}.py

Exit status: 0 every invariant held, 1 an invariant failed, 2 usage or model error,
3 the target could not be reached. Options are those of `propworkload run`.
"""

import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "models" / "{name}.py"

try:
    from propworkload._cli import cli_main
except ImportError as exc:
    print(
        f"propworkload: error: missing dependency {{exc.name!r}}: pip install propworkload",
        file=sys.stderr,
    )
    sys.exit(2)

cli_main(["run", str(MODEL), *sys.argv[1:]])
'''


def _shadowed(name: str) -> str | None:
    """What ``models/NAME.py`` would hide, or None. ``python3 models/x.py`` puts
    ``models/`` first on ``sys.path`` (and the loader does the same), so a model file named
    like a module is imported in that module's place by every model of the folder."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return "a module of Python's standard library"
    # Installed modules, looked up where every model would look: not in the current
    # folder, which is only on the path of this command.
    here = {"", os.getcwd()}
    path = [entry for entry in sys.path if entry not in here]
    if importlib.machinery.PathFinder.find_spec(name, path) is not None:
        return "an installed module"
    return None


def _refuse_shadowing(name: str) -> None:
    shadowed = _shadowed(name)
    if shadowed is not None:
        raise InvalidOption(
            f"model name {name!r} is {shadowed}: models/{name}.py would be imported instead "
            f"of it by every model in models/; pick another name (e.g. {name}_model)"
        )


def scaffold(name: str, root: Path) -> list[Path]:
    """Write ``models/NAME.py`` and ``.workers/workloads/NAME.py`` under ``root``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise InvalidOption(
            f"model name {name!r} must be lower case letters, digits and _ (e.g. checkout)"
        )
    _refuse_shadowing(name)
    cls = "".join(part.capitalize() for part in name.split("_")) or "Model"
    files = {
        root / "models" / f"{name}.py": _MODEL.format(name=name, cls=cls),
        root / ".workers" / "workloads" / f"{name}.py": _WORKLOAD.format(name=name),
    }
    for path in files:
        if path.exists():
            raise InvalidOption(f"{path} exists; pick another name or remove it")
    for path, text in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
        except OSError as exc:
            raise InvalidOption(
                f"cannot write {path} ({exc.strerror or exc}); check the folder"
            ) from None
    return list(files)
