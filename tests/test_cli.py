"""The CLI from the outside: bad input gets one line and the documented exit status."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PAYMENTS_MODEL, Completed, one_line_error


def test_missing_model_path(propworkload: Callable[..., Completed], tmp_path: Path) -> None:
    """A model path that does not exist: exit 2, one line naming it."""
    line = one_line_error(propworkload("run", str(tmp_path / "nope.py")), 2)
    assert "nope.py: no such model file" in line


def test_file_with_no_model(propworkload: Callable[..., Completed], tmp_path: Path) -> None:
    """A Python file without a model: exit 2, one line."""
    path = tmp_path / "empty.py"
    path.write_text("class Ledger:\n    pass\n")
    line = one_line_error(propworkload("run", str(path)), 2)
    assert "found none (classes: Ledger)" in line


def test_model_with_syntax_error(propworkload: Callable[..., Completed], tmp_path: Path) -> None:
    """A model that does not parse: exit 2, one line with file and line."""
    path = tmp_path / "broken.py"
    path.write_text("from propworkload import Model\n\nclass Broken(Model)\n    pass\n")
    line = one_line_error(propworkload("run", str(path)), 2)
    assert f"{path}:3: syntax error" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--examples", "0"], "Invalid value for '--examples'"),
        (["--time-budget", "-1"], "Invalid value for '--time-budget'"),
        (["--time-budget", "nan"], "nan is not a finite number of seconds"),
        (["--url", "http://127.0.0.1:99999"], "has port 99999, outside 1-65535"),
        (["--bogus"], "No such option '--bogus'"),
        (["--url", "ftp://example"], "is not an http(s) URL"),
    ],
)
def test_bad_options(propworkload: Callable[..., Completed], args: list[str], needle: str) -> None:
    """Bad options: exit 2 and one line that names the option."""
    line = one_line_error(propworkload("run", str(PAYMENTS_MODEL), *args), 2)
    assert needle in line


def test_unreachable_target(propworkload: Callable[..., Completed], free_url: str) -> None:
    """APP_URL where nothing listens: exit 3, one line saying how to fix it."""
    result = propworkload("run", str(PAYMENTS_MODEL), env={"APP_URL": free_url})
    line = one_line_error(result, 3)
    assert f"cannot reach {free_url}" in line
    assert "APP_URL" in line


def test_model_without_sample_needs_a_url(
    propworkload: Callable[..., Completed], tmp_path: Path
) -> None:
    """A model with no embedded service and no URL: exit 2, one line."""
    path = tmp_path / "m.py"
    path.write_text(
        "from propworkload import Model, rule\nclass M(Model):\n    @rule()\n"
        "    def s(self):\n        pass\n"
    )
    line = one_line_error(propworkload("run", str(path)), 2)
    assert "no target for M: set APP_URL or pass --url" in line


def test_failing_reset_hook_is_a_setup_failure(
    propworkload: Callable[..., Completed], tmp_path: Path, payments: Callable[..., object]
) -> None:
    """A reset() hook that fails stops the run with exit 3 and one line."""
    path = tmp_path / "m.py"
    path.write_text(
        "from propworkload import Model, rule\n"
        "class M(Model):\n"
        "    def reset(self):\n"
        "        self.http.post('/reset').raise_for_status()\n"
        "    @rule()\n"
        "    def s(self):\n"
        "        pass\n"
    )
    with payments() as url:  # type: ignore[attr-defined]
        line = one_line_error(propworkload("run", str(path), "--url", url), 3)
    assert "M.reset() failed: HTTPStatusError" in line


def test_demo_lists_bugs(propworkload: Callable[..., Completed]) -> None:
    """--list-bugs prints one bug per line: its name, then a description."""
    result = propworkload("demo", "payments", "--list-bugs")
    assert result.code == 0
    names = [line.split()[0] for line in result.lines]
    assert len(names) >= 5
    assert "retry-after-refund" in names
    assert all(len(line.split(maxsplit=1)) == 2 for line in result.lines)


def test_demo_unknown_bug_and_sample(propworkload: Callable[..., Completed]) -> None:
    """Unknown names get one line listing what exists."""
    line = one_line_error(propworkload("demo", "payments", "--bug", "nope"), 2)
    assert "unknown bug 'nope' for payments; known: " in line
    line = one_line_error(propworkload("demo", "ledger"), 2)
    assert "no sample service 'ledger'; samples: payments" in line


def test_demo_port_in_use(propworkload: Callable[..., Completed]) -> None:
    """A port that is taken: exit 2, one line suggesting another."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        line = one_line_error(propworkload("demo", "payments", "--port", str(port)), 2)
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_version(propworkload: Callable[..., Completed]) -> None:
    """--version prints the installed version and the checker core in use."""
    from propworkload import __version__, _linearizability

    result = propworkload("--version")
    assert result.code == 0
    assert __version__ in result.out
    built = _linearizability._lincheck is not None
    assert f"(checker core: {'compiled' if built else 'pure'})" in result.out
    forced = propworkload("--version", env={"PROPWORKLOAD_PURE_CHECKER": "1"})
    assert "(checker core: pure)" in forced.out


def test_budget_too_small_for_one_example(
    propworkload: Callable[..., Completed], payments: Callable[..., object]
) -> None:
    """A budget that ends before the first example is a usage error, not a pass."""
    with payments() as url:  # type: ignore[attr-defined]
        result = propworkload("run", str(PAYMENTS_MODEL), "--url", url, "--time-budget", "1e-6")
    line = one_line_error(result, 2)
    assert "ended before one example ran; raise --time-budget" in line


def test_model_file_that_exits_while_loading(
    propworkload: Callable[..., Completed], tmp_path: Path
) -> None:
    """sys.exit() at import time is reported as a model error with the fix."""
    path = tmp_path / "m.py"
    path.write_text("import sys\nsys.exit('bye')\n")
    line = one_line_error(propworkload("run", str(path)), 2)
    assert "exited while loading" in line
