"""Bad input from the outside: empty URLs, names that would shadow modules, paths that
cannot be written, failure databases that cannot be used. Each is one line and exit 2,
before the run starts; nothing is tested in silence instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PAYMENTS_MODEL, Completed, in_process, one_line_error
from propworkload import InvalidOption
from propworkload._scaffold import scaffold

CLI = Callable[..., Completed]


def test_an_empty_url_is_refused(propworkload: CLI) -> None:
    """`--url ''` is a mistake (a variable that expanded to nothing), not a request for
    the embedded sample service: exit 2 before any example runs."""
    result = propworkload("run", str(PAYMENTS_MODEL), "--url", "", "--examples", "1")
    line = one_line_error(result)
    assert "--url is empty" in line
    assert "SEED" not in result.out


def test_an_empty_app_url_is_refused(propworkload: CLI) -> None:
    """`APP_URL=` (set, but empty) is refused the same way."""
    result = propworkload("run", str(PAYMENTS_MODEL), "--examples", "1", env={"APP_URL": ""})
    line = one_line_error(result)
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
    line = one_line_error(propworkload("new", "hypothesis", cwd=tmp_path))
    assert "models/hypothesis.py would be imported instead of it" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--report-json", "--junit"])
def test_an_unwritable_report_path_is_refused_before_the_run(
    propworkload: CLI, option: str
) -> None:
    """A report that could not be written is known before the run: exit 2, one line, and
    no time spent exploring."""
    result = propworkload("explore", str(PAYMENTS_MODEL), option, "/proc/nope/r", "--examples", "1")
    line = one_line_error(result)
    assert f"{option} /proc/nope/r: cannot write" in line
    assert "SEED" not in result.out


VANISHING = """
import shutil
from pathlib import Path

from propworkload import Model, invariant, rule

FOLDER = Path({folder!r})


class Vanishing(Model):
    sample = "payments"

    @rule()
    def replace_the_report_folder_with_a_file(self):
        if FOLDER.is_dir():
            shutil.rmtree(FOLDER)
            FOLDER.write_text("a file now")
        self.http.get("/openapi.json")

    @invariant()
    def up(self):
        self.check("up", expected=200, actual=self.http.get("/openapi.json").status_code)
"""


def test_a_report_that_cannot_be_written_at_the_end_keeps_the_summary(tmp_path: Path) -> None:
    """The report's folder turned into a file during the run: the summary is still
    printed, then one error line, and the pass is not reported as one (exit 2)."""
    folder = tmp_path / "reports"
    folder.mkdir()
    model = tmp_path / "vanishing.py"
    model.write_text(VANISHING.format(folder=str(folder)))
    with in_process("payments") as service:
        result = service.explore(model, examples=1, report_json=folder / "r.json")
    assert result.code == 2, result.out + result.err
    assert result.lines[-1].startswith("SUMMARY passed examples=")
    assert f"cannot write the JSON report {folder / 'r.json'}" in result.err


STRICT = """
from propworkload import Model, invariant, rule


class Strict(Model):
    sample = "payments"

    @rule()
    def ping(self):
        self.http.get("/openapi.json")

    @invariant()
    def nothing_is_allowed(self):
        self.check("nothing_is_allowed", expected=0, actual=1)
"""


def _trace_of(result: Completed) -> Path:
    (line,) = [line for line in result.lines if line.startswith("  trace: ")]
    return Path(line.split("trace: ", 1)[1])


def test_an_unwritable_emit_pytest_path_is_one_line(propworkload: CLI, tmp_path: Path) -> None:
    """`replay --emit-pytest` to a path that cannot be written: exit 2, one line."""
    model = tmp_path / "strict.py"
    model.write_text(STRICT)
    with in_process("payments") as service:
        run = service.run(model, seed=1, examples=5)
    assert run.code == 1, run.out + run.err
    result = propworkload("replay", str(_trace_of(run)), "--emit-pytest", "/proc/nope/t.py")
    line = one_line_error(result)
    assert "--emit-pytest /proc/nope/t.py: cannot write" in line


def test_a_database_folder_that_cannot_be_made_is_refused(propworkload: CLI) -> None:
    """`--database /proc/nope/db`: no failure could be saved there, so the run does not
    start (it used to run and save nothing)."""
    result = propworkload(
        "run", str(PAYMENTS_MODEL), "--database", "/proc/nope/db", "--examples", "1"
    )
    line = one_line_error(result)
    assert "--database /proc/nope/db: cannot use the folder" in line
    assert "SEED" not in result.out


def test_an_unreachable_redis_database_is_refused(propworkload: CLI, free_url: str) -> None:
    """A Redis failure database nothing answers at: exit 2, one line naming it, instead
    of a failure blamed on the model."""
    database = free_url.replace("http://", "redis://") + "/0"
    result = propworkload("run", str(PAYMENTS_MODEL), "--database", database, "--examples", "1")
    line = one_line_error(result)
    assert f"--database {database}: cannot reach Redis" in line
    assert "outside any rule" not in line
