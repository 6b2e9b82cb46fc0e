"""The repository holds sources, never what a run leaves behind: a stray ``d8.pid`` was
once committed at its top. Leftovers are ignored by ``.gitignore`` and none is tracked."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import ROOT

#: What runs, services, tools and editors leave in a checkout, as paths a .gitignore
#: pattern must match (one of each kind).
LEFTOVERS = [
    "d8.pid",
    "server.log",
    "logs/etcd.log",
    "nohup.out",
    "core",
    ".coverage",
    ".propworkload/traces/payments-1-20260101-000000.json",
    ".propworkload/examples/abc",
    ".hypothesis/examples/abc",
    ".pytest_cache/v/cache/lastfailed",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/content",
    "src/propworkload/__pycache__/_cli.cpython-311.pyc",
    "models/payments.pyc",
    ".ci-venv/bin/python",
    ".venv/bin/python",
    "dist/propworkload-0.1.0.tar.gz",
    "src/propworkload.egg-info/PKG-INFO",
    ".report.json.tmp",
    "models/.payments.py.swp",
    "tests/data/porcupine-kv/c01-bad.txt.html",
]


def _git(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], input=input, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def checkout() -> None:
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").returncode:
        pytest.skip("not a git checkout")


def test_gitignore_covers_every_kind_of_leftover(checkout: None) -> None:
    """Each kind of leftover is ignored, so that ``git add .`` cannot take it in."""
    ignored = _git("check-ignore", "--no-index", "--stdin", input="\n".join(LEFTOVERS))
    shown = set(ignored.stdout.splitlines())
    assert [path for path in LEFTOVERS if path not in shown] == []


def test_no_leftover_is_tracked(checkout: None) -> None:
    """No tracked file is a leftover (.gitignore does not untrack what was added before)."""
    tracked = _git("ls-files", "--cached", "--ignored", "--exclude-standard")
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.stdout.splitlines() == []
