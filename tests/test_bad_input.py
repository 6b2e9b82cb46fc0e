"""Bad input from the outside: empty URLs, names that would shadow modules, paths that
cannot be written, failure databases that cannot be used. Each is one line and exit 2,
before the run starts; nothing is tested in silence instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PAYMENTS_MODEL, Completed
from propworkload import InvalidOption
from propworkload._scaffold import scaffold

CLI = Callable[..., Completed]


def _one_line_error(result: Completed, code: int = 2) -> str:
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("propworkload: error: ")
    return lines[0]


def test_an_empty_url_is_refused(propworkload: CLI) -> None:
    """`--url ''` is a mistake (a variable that expanded to nothing), not a request for
    the embedded sample service: exit 2 before any example runs."""
    result = propworkload("run", str(PAYMENTS_MODEL), "--url", "", "--examples", "1")
    line = _one_line_error(result)
    assert "--url is empty" in line
    assert "SEED" not in result.out


def test_an_empty_app_url_is_refused(propworkload: CLI) -> None:
    """`APP_URL=` (set, but empty) is refused the same way."""
    result = propworkload("run", str(PAYMENTS_MODEL), "--examples", "1", env={"APP_URL": ""})
    line = _one_line_error(result)
    assert "APP_URL is empty" in line


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("hypothesis", "an installed module"),
        ("httpx", "an installed module"),
        ("propworkload", "an installed module"),
        ("queue", "a module of Python's standard library"),
        ("email", "a module of Python's standard library"),
    ],
)
def test_new_refuses_a_name_that_shadows_a_module(name: str, why: str, tmp_path: Path) -> None:
    """A model named like a module the models import would be imported in its place by
    every model of the folder: refused, and nothing is written."""
    with pytest.raises(InvalidOption, match=why):
        scaffold(name, tmp_path)
    assert not (tmp_path / "models").exists()


def test_new_hypothesis_exits_2(propworkload: CLI, tmp_path: Path) -> None:
    """On the command line: one line saying why, exit 2."""
    line = _one_line_error(propworkload("new", "hypothesis", cwd=tmp_path))
    assert "models/hypothesis.py would be imported instead of it" in line
    assert list(tmp_path.iterdir()) == []
