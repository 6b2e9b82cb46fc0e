"""The package's layers point one way: values and algorithms at the bottom, then
transports, the model base class, the engine and its drivers, traces and replay,
reporters, the commands and the command line at the top. No module imports one above
it, and no import hides inside a function to dodge a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "propworkload"

#: Bottom to top; a module may import only from layers below its own.
LAYERS: list[set[str]] = [
    {"_lincheck"},  # the compiled checker core (_lincheck.c): it imports nothing of ours
    {"_redact"},  # what never leaves the process: below everything that writes a string
    {"_errors", "_version", "_values", "_linearizability", "_possible", "_text"},
    {"_database", "_faults", "_limits", "_scaffold", "_signals", "samples"},
    {"_program"},
    {"_record"},
    {"_coverage", "_timeline"},
    {"_describe"},
    {"_results"},
    {"_events", "_asgi", "_target"},
    {"_runtime"},
    {"_operations"},
    {"_spec"},
    {"_model"},
    {"_loader", "_parallel"},
    {"_engine"},
    {"_trace"},
    {"_replay", "_explore", "_histories"},
    {"_console", "_progress", "_regression"},
    {"_report"},
    {"_commands"},
    {"_cli"},
    {"__init__", "__main__"},
]


def _layer(module: str) -> int:
    for index, names in enumerate(LAYERS):
        if module in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imports(tree: ast.AST) -> list[str]:
    """The package modules a module imports (relative imports, first component)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module.split(".")[0])
            else:
                found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 2:
            found.append((node.module or "").split(".")[0])
    return found


def test_every_import_points_down() -> None:
    upward = []
    for path in sorted(PACKAGE.glob("*.py")):
        module = path.stem
        for target in _imports(ast.parse(path.read_text())):
            if target in ("__version__",):
                continue
            if _layer(target) >= _layer(module) and module not in ("__init__", "__main__"):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_no_relative_import_inside_a_function() -> None:
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [
                    f"{path.name}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.ImportFrom) and inner.level > 0
                ]
    assert hidden == []


def test_the_samples_import_nothing_of_the_engine() -> None:
    """The sample services stand alone: from the package they take only its errors."""
    for path in sorted((PACKAGE / "samples").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module == "_errors", f"{path.name} imports {node.module}"
