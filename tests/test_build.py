"""Packaging: the checker's compiled core is optional. A machine without a C compiler still
builds and installs propworkload (with the pure-Python checker), and CI, which sets
PROPWORKLOAD_REQUIRE_COMPILED=1, fails instead of silently losing the compiled core."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Build a wheel of a copy of the project (the checkout stays clean) with ``env``; the
    names in the wheel, if one was built."""
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".*", "__pycache__", "*.so", "*.egg-info", "build", "tests", "bench", "models"
        ),
    )
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*pip, "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    wheels = list(out.glob("*.whl"))
    names = zipfile.ZipFile(wheels[0]).namelist() if wheels else []
    return done, names


@pytest.mark.slow
def test_without_a_compiler_the_package_builds_with_the_pure_checker(tmp_path: Path) -> None:
    done, names = build_wheel(tmp_path, CC="false", PROPWORKLOAD_REQUIRE_COMPILED="0")
    assert done.returncode == 0, done.stderr
    assert "propworkload/_linearizability.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))]


@pytest.mark.slow
def test_ci_requires_the_compiled_core(tmp_path: Path) -> None:
    done, names = build_wheel(tmp_path, CC="false", PROPWORKLOAD_REQUIRE_COMPILED="1")
    assert done.returncode != 0
    assert names == []


@pytest.mark.slow
def test_with_a_compiler_the_wheel_holds_the_compiled_core(tmp_path: Path) -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler on this machine")
    done, names = build_wheel(tmp_path)
    assert done.returncode == 0, done.stderr
    assert [name for name in names if name.startswith("propworkload/_lincheck.")]
