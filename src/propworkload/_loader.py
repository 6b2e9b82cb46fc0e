"""Finding the model class in a model file, with one-line errors for everything that can go
wrong before a single request is sent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from hypothesis.stateful import RuleBasedStateMachine

from ._errors import InvalidModel, PropworkloadError
from ._model import Model, rules_of

__all__ = ["load_model"]


def _import_file(path: Path) -> ModuleType:
    module_name = f"propworkload_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidModel(f"{path}: not a Python file; a model file ends in .py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # Let a model import helpers that sit beside it, as `python3 models/x.py` would.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except PropworkloadError as exc:
        raise InvalidModel(f"{path}: {exc}") from None
    except SystemExit as exc:
        raise InvalidModel(
            f"{path}: the model file exited while loading (sys.exit({exc.code!r})); "
            'keep `main(...)` under `if __name__ == "__main__":`'
        ) from None
    except SyntaxError as exc:
        raise InvalidModel(
            f"{exc.filename or path}:{exc.lineno}: syntax error: {exc.msg}; fix the model file"
        ) from None
    except ImportError as exc:
        missing = f" (module {exc.name!r})" if exc.name else ""
        raise InvalidModel(
            f"{path}: import failed{missing}: {exc}; install what the model needs"
        ) from None
    except Exception as exc:
        line = _line_in(exc, path)
        hint = ""
        if isinstance(exc, TypeError) and "positional argument" in str(exc):
            hint = " (decorators such as @rule and @invariant need parentheses: @rule())"
        raise InvalidModel(
            f"{path}{line}: error while loading the model: {type(exc).__name__}: {exc}{hint}"
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


def load_model(spec: str) -> tuple[type[Model], Path]:
    """Load ``path/to/model.py`` or ``path/to/model.py::ClassName``; return class and path."""
    file_part, _, class_name = spec.partition("::")
    path = Path(file_part)
    if not path.exists():
        raise InvalidModel(f"{file_part}: no such model file; pass the path to a model's .py file")
    if path.is_dir():
        raise InvalidModel(f"{file_part}: is a folder; pass the path to a model's .py file")
    module = _import_file(path)
    return find_model(module, path, class_name or None), path


def find_model(module: ModuleType, path: Path | str, class_name: str | None) -> type[Model]:
    """The one :class:`Model` subclass ``module`` defines (or the one named)."""
    defined = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__
    ]
    models = [c for c in defined if issubclass(c, Model) and rules_of(c)]
    if class_name is not None:
        chosen = [c for c in models if c.__name__ == class_name]
        if not chosen:
            names = ", ".join(c.__name__ for c in models) or "none"
            raise InvalidModel(f"{path}: no model class {class_name!r} (models here: {names})")
        return chosen[0]
    if len(models) == 1:
        return models[0]
    if len(models) > 1:
        names = ", ".join(c.__name__ for c in models)
        raise InvalidModel(
            f"{path} defines {len(models)} models ({names}): "
            f"pick one with {path}::{models[0].__name__}"
        )
    plain = [
        c for c in defined if issubclass(c, RuleBasedStateMachine) and not issubclass(c, Model)
    ]
    if plain:
        raise InvalidModel(
            f"{path}: {plain[0].__name__} is a plain RuleBasedStateMachine; "
            "derive it from propworkload.Model so the tool can give it a client and record it"
        )
    without_rules = [c for c in defined if issubclass(c, Model)]
    if without_rules:
        raise InvalidModel(
            f"{path}: {without_rules[0].__name__} defines no rules; add at least one @rule() method"
        )
    names = ", ".join(c.__name__ for c in defined) or "none"
    raise InvalidModel(
        f"expected a propworkload.Model subclass in {path}, found none (classes: {names})"
    )
