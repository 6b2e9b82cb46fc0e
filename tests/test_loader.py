"""Loading model files: every way it can go wrong gives a one-line InvalidModel."""

from __future__ import annotations

from pathlib import Path

import pytest

from propworkload import InvalidModel
from propworkload._loader import load_model

GOOD = """
from propworkload import Model, rule

class First(Model):
    @rule()
    def step(self):
        pass
"""


def _write(tmp_path: Path, text: str, name: str = "model.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _message(spec: str) -> str:
    with pytest.raises(InvalidModel) as info:
        load_model(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_the_one_model_in_a_file(tmp_path: Path) -> None:
    """A file with one Model subclass yields that class."""
    cls, path = load_model(_write(tmp_path, GOOD))
    assert cls.__name__ == "First"
    assert path == tmp_path / "model.py"


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is named, with the fix."""
    assert "no such model file" in _message(str(tmp_path / "nope.py"))


def test_folder_instead_of_file(tmp_path: Path) -> None:
    """A folder is not a model file."""
    assert "is a folder" in _message(str(tmp_path))


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error points at the file and line."""
    message = _message(_write(tmp_path, "x = (\n\nclass A:\n"))
    assert "syntax error" in message
    assert str(tmp_path / "model.py") in message


def test_file_without_a_model_lists_its_classes(tmp_path: Path) -> None:
    """No Model subclass: say so and list what is there."""
    message = _message(_write(tmp_path, "class Ledger:\n    pass\nclass Charge:\n    pass\n"))
    assert "found none (classes: Ledger, Charge)" in message


def test_plain_state_machine_is_explained(tmp_path: Path) -> None:
    """A plain RuleBasedStateMachine gets told to derive from propworkload.Model."""
    text = (
        "from hypothesis.stateful import RuleBasedStateMachine, rule\n"
        "class Plain(RuleBasedStateMachine):\n"
        "    @rule()\n"
        "    def step(self):\n"
        "        pass\n"
    )
    assert "derive it from propworkload.Model" in _message(_write(tmp_path, text))


def test_model_without_rules(tmp_path: Path) -> None:
    """A Model subclass with no rules cannot run."""
    text = "from propworkload import Model\nclass Empty(Model):\n    pass\n"
    assert "Empty defines no rules" in _message(_write(tmp_path, text))


def test_rule_without_parentheses_gets_a_hint(tmp_path: Path) -> None:
    """@rule instead of @rule() fails at import with a hint about parentheses."""
    text = (
        "from propworkload import Model, rule\n"
        "class M(Model):\n"
        "    @rule\n"
        "    def s(self):\n"
        "        pass\n"
    )
    message = _message(_write(tmp_path, text))
    assert "model.py:3" in message
    assert "need parentheses: @rule()" in message


def test_misused_rule_is_reported_from_the_class_definition(tmp_path: Path) -> None:
    """InvalidModel raised while the class is defined keeps its message."""
    text = (
        "from propworkload import Model, rule\n"
        "class M(Model):\n"
        "    @classmethod\n"
        "    @rule()\n"
        "    def s(cls):\n"
        "        pass\n"
    )
    assert "M.s is a classmethod" in _message(_write(tmp_path, text))


def test_missing_import_names_the_module(tmp_path: Path) -> None:
    """A model importing something absent names the module."""
    message = _message(_write(tmp_path, "import no_such_module_here\n"))
    assert "module 'no_such_module_here'" in message


def test_two_models_need_a_choice(tmp_path: Path) -> None:
    """Two models in one file: pick one with path::Class, which then works."""
    text = GOOD + "\nclass Second(First):\n    pass\n"
    path = _write(tmp_path, text)
    assert f"pick one with {path}::First" in _message(path)
    cls, _ = load_model(f"{path}::Second")
    assert cls.__name__ == "Second"
    assert "no model class 'Third'" in _message(f"{path}::Third")


def test_readme_example_is_a_loadable_model(tmp_path: Path) -> None:
    """The model shown in the README loads as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("A complete model of a counter service:\n\n```python\n", 1)[1]
    code = block.split("```", 1)[0]
    cls, _ = load_model(_write(tmp_path, code, "counter.py"))
    assert cls.__name__ == "Counter"
