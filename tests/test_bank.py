"""The README's ``Bank`` model, as written there, against a bank service written for these
tests (``tests/services/bank.py``), not a sample the tool ships: no false alarm in any
mode, and each of its bugs found in the mode that reveals it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, Completed, InProcess
from propworkload._asgi import InProcessTransport
from services import bank


def _readme_bank(tmp_path: Path) -> Path:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("reference state is an immutable value", 1)[1]
    path = tmp_path / "bank_model.py"
    path.write_text(block.split("```python\n", 1)[1].split("```", 1)[0])
    return path


def _run(tmp_path: Path, bugs: tuple[str, ...], *args: str) -> Completed:
    transport = InProcessTransport(bank.create_app(*bugs))
    try:
        return InProcess("http://bank.test", transport).run_args(_readme_bank(tmp_path), *args)
    finally:
        transport.close()


@pytest.mark.parametrize(
    "mode",
    [(), ("--faults", "all"), ("--concurrency", "3"), ("--faults", "all", "--concurrency", "3")],
)
def test_the_readme_model_passes_on_the_correct_bank(tmp_path: Path, mode: tuple[str, ...]) -> None:
    result = _run(tmp_path, (), "--seed", "4", "--examples", "40", *mode)
    assert result.code == 0, result.out + result.err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bug", "mode", "invariant"),
    [
        ("withdraw-rejects-whole-balance", (), "withdrawal_accepted"),
        ("deposit-key-ignored", ("--faults", "duplicate"), "balance_matches"),
        ("race-overdraw", ("--concurrency", "3"), "linearizable"),
    ],
)
def test_the_readme_model_finds_each_bank_bug(
    tmp_path: Path, bug: str, mode: tuple[str, ...], invariant: str
) -> None:
    """The boundary bug needs no rule of its own: ``from_state`` draws the whole balance."""
    result = _run(tmp_path, (bug,), "--seed", "9", *mode)
    assert result.code == 1, result.out + result.err
    assert f"INVARIANT FAIL {invariant} " in result.out
