"""Bad input from the outside: empty URLs, names that would shadow modules, paths that
cannot be written, failure databases that cannot be used. Each is one line and exit 2,
before the run starts; nothing is tested in silence instead."""

from __future__ import annotations

from collections.abc import Callable

from conftest import PAYMENTS_MODEL, Completed

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
