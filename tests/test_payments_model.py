"""The payments model against the real payments service: no false alarm, every seeded bug
found and named, the minimal sequence exactly as printed, and the same seed, same steps."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from conftest import (
    PAYMENTS_MODEL,
    PAYMENTS_WORKLOAD,
    ROOT,
    Completed,
    assert_shrunk,
    in_process,
    mask_ids,
    run_command,
    shrunk,
)
from propworkload._engine import RunConfig, run_model
from propworkload._events import Event, ExampleFinished
from propworkload._loader import load_model
from propworkload.samples import payments as payments_sample

Service = Callable[..., AbstractContextManager[str]]
SEQUENTIAL_BUGS = [bug for bug in payments_sample.BUGS if not bug.needs]
INVARIANTS = {
    "charged_once",
    "unique_ids",
    "refund_within_charge",
    "refund_accepted",
    "balance_non_negative",
    "balance_matches_model",
    "charges_listed",
    "read_your_writes",
}


@pytest.mark.slow
def test_correct_service_passes_200_examples() -> None:
    """No false alarm over 200 examples; every invariant is checked and passes."""
    with in_process("payments") as service:
        result = service.run_args(PAYMENTS_MODEL, "--examples", "200")
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED ")
    assert f"target={service.url}" in result.lines[0]
    passed = {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}
    assert passed == INVARIANTS
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    examples = int(summary.split("examples=")[1].split()[0])
    assert summary.startswith("SUMMARY passed") and examples >= 200


def test_every_invariant_has_a_seeded_bug() -> None:
    """Each invariant of the model is the one some seeded bug breaks (no check that
    cannot fail)."""
    assert {bug.invariant for bug in SEQUENTIAL_BUGS} == INVARIANTS


@pytest.mark.slow
@pytest.mark.parametrize("bug", SEQUENTIAL_BUGS, ids=lambda bug: bug.name)
def test_seeded_bug_is_found_and_named(
    bug: payments_sample.Bug, payments: Service, tmp_path: Path
) -> None:
    """Default settings find the bug: exit 1, its invariant named, shrunk to its minimum."""
    with in_process("payments", bug.name) as service:
        result = service.run_args(PAYMENTS_MODEL, "--seed", "1")
        assert result.code == 1, result.out + result.err
        trace_line = next(line for line in result.lines if line.startswith("  trace: "))
        replayed = service.replay(trace_line.split("trace: ", 1)[1])
    fail = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert len(fail) == 1
    assert fail[0].startswith(f"INVARIANT FAIL {bug.invariant} expected=")
    assert "minimal sequence (" in result.out, result.out
    assert_shrunk(result.out, bug.minimal_steps, least=bug.minimal_steps)
    assert "Traceback" not in result.out + result.err
    trace = trace_line.split("trace: ", 1)[1]
    assert f"  replay: propworkload replay {trace}" in result.lines
    assert replayed.code == 1, replayed.out + replayed.err
    assert f"REPLAY reproduced: {bug.invariant} failed again at step" in replayed.out


@pytest.mark.slow
def test_retry_bug_minimal_sequence_line_for_line(
    payments: Service, propworkload: Callable[..., Completed]
) -> None:
    """The printed failure for retry-after-refund is the three steps that matter, the
    charged_once line saying which charge was expected and which came."""
    with payments("retry-after-refund") as url:
        result = propworkload("run", str(PAYMENTS_MODEL), "--seed", "1", env={"APP_URL": url})
    assert result.code == 1, result.out + result.err
    if shrunk(result.out).stopped:
        return  # a busy machine cut shrinking short: the transcript is not the minimal one
    lines = mask_ids(result.out).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("INVARIANT FAIL"))
    assert re.fullmatch(
        r'INVARIANT FAIL charged_once expected=\{"created":false,"id":"ch_\*","amount":\d+\} '
        r'actual=\{"created":true,"id":"ch_\*","amount":\d+\} key=(k\d) step=3',
        lines[start],
    ), lines[start]
    assert lines[start + 1].startswith("  minimal sequence (3 steps, shrunk from ")
    steps = [re.sub(r"\s+", " ", line.strip()) for line in lines[start + 2 : start + 5]]
    assert re.fullmatch(r"1\. charge\(key=(k\d), amount=(\d+)\) -> 201 ch_\*", steps[0])
    assert re.fullmatch(r"2\. refund\(key=k\d, amount=.*\) -> 201 re_\*", steps[1])
    third = r"3\. charge\(key=k\d, amount=\d+\) -> 201 ch_\* \[charged_once failed\]"
    assert re.fullmatch(third, steps[2])
    assert lines[start + 5].startswith("  trace: ")
    assert lines[start + 6].startswith("  replay: propworkload replay ")
    assert lines[start + 7].startswith("SUMMARY failed examples=")


@pytest.mark.slow
def test_trace_is_written_without_secrets(
    payments: Service, propworkload: Callable[..., Completed], tmp_path: Path
) -> None:
    """The trace named in the output is JSON with the minimal steps and their exchanges,
    and the Idempotency-Key header is redacted."""
    with payments("retry-credits-balance") as url:
        result = propworkload("run", str(PAYMENTS_MODEL), "--seed", "1", env={"APP_URL": url})
    assert result.code == 1
    trace_line = next(line for line in result.lines if line.startswith("  trace: "))
    path = Path(trace_line.split("trace: ", 1)[1])
    assert path.parent == tmp_path / "artifacts" / "traces"
    trace = json.loads(path.read_text())
    assert trace["status"] == "minimal"
    assert trace["failure"]["invariant"] == "balance_matches_model"
    assert [step["rule"] for step in trace["steps"]] == ["charge", "charge"]
    request_headers = trace["steps"][0]["exchanges"][0]["request_headers"]
    assert request_headers["idempotency-key"] == "[redacted]"
    # Every trace the run wrote (other kinds of failure too) has the key redacted.
    for written in path.parent.glob("*.json"):
        for step in json.loads(written.read_text())["steps"]:
            for exchange in step["exchanges"]:
                assert exchange["request_headers"].get("idempotency-key") in (None, "[redacted]")


@pytest.mark.slow
def test_unwritable_artifact_folder_falls_back_to_a_temporary_one(
    payments: Service, propworkload: Callable[..., Completed], tmp_path: Path
) -> None:
    """When the artifact folder cannot be created, the trace goes to a printed temp folder."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with payments("retry-credits-balance") as url:
        result = propworkload(
            "run",
            str(PAYMENTS_MODEL),
            "--seed",
            "1",
            env={"APP_URL": url, "PROPWORKLOAD_ARTIFACTS": str(blocker / "sub")},
        )
    assert result.code == 1
    (note,) = [line for line in result.lines if line.startswith("NOTE artifacts:")]
    fallback = note.rsplit("writing to ", 1)[1]
    trace_line = next(line for line in result.lines if line.startswith("  trace: "))
    assert trace_line.split("trace: ", 1)[1].startswith(fallback)
    assert Path(trace_line.split("trace: ", 1)[1]).is_file()


def _steps_of_run(url: str, seed: int) -> list[list[tuple[str, object]]]:
    model, _ = load_model(str(PAYMENTS_MODEL))
    examples: list[list[tuple[str, object]]] = []

    def listen(event: Event) -> None:
        if isinstance(event, ExampleFinished):
            examples.append([(s.rule, s.arguments) for s in event.example.steps])

    run_model(model, RunConfig(url=url, seed=seed, examples=15), listeners=[listen])
    return examples


@pytest.mark.slow
def test_same_seed_same_steps(payments: Service) -> None:
    """Against a deterministic service, one seed repeats the same steps; another does not."""
    with payments() as url:
        first = _steps_of_run(url, 42)
        second = _steps_of_run(url, 42)
        other = _steps_of_run(url, 43)
    assert len(first) >= 15
    assert first == second
    assert first != other


@pytest.mark.slow
def test_embedded_sample_service_is_the_default_target(
    propworkload: Callable[..., Completed],
) -> None:
    """With no URL, run starts the model's sample service on loopback and passes."""
    result = propworkload("run", str(PAYMENTS_MODEL), "--examples", "20")
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED ")
    assert "target=http://127.0.0.1:" in result.lines[0]


@pytest.mark.slow
def test_model_file_runs_as_a_script(tmp_path: Path) -> None:
    """python3 models/payments.py is a workload command with the run options."""
    result = run_command(
        [str(PAYMENTS_MODEL), "--examples", "5", "--seed", "3"],
        env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path)},
    )
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED 3 model=payments target=http://127.0.0.1:")


def test_workload_entry_without_dependencies_says_which(tmp_path: Path) -> None:
    """Where the dependencies are missing, the entry names one, in one line, exit 2."""
    env = {"PYTHONNOUSERSITE": "1"}
    result = run_command(["-S", str(PAYMENTS_WORKLOAD)], env=env, cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    assert line.startswith("propworkload: error: missing dependency '")
    assert f"pip install -e '{ROOT}'" in line


def test_interpreter_without_site_packages_cannot_import_the_dependencies() -> None:
    """Guard for the test above: -S really hides the installed dependencies."""
    result = run_command(["-S", "-c", "import hypothesis"], env={})
    assert result.code != 0
