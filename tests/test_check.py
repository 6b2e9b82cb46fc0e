"""``propworkload check HISTORY --model MODEL``: histories recorded elsewhere (the
project's JSON history format, a parallel program's trace, Porcupine's kv logs) checked
against a model's transitions. The histories in tests/data/porcupine-kv/ are Porcupine's
own (MIT licence, LICENSE-porcupine.md beside them): c*-ok are linearizable, c*-bad not.

Most tests run the command line in this process (``cli_main``, as test_hostile does);
the signal test and the run against etcd start processes."""

from __future__ import annotations

import io
import json
import re
import signal
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    PAYMENTS_MODEL,
    ROOT,
    Completed,
    in_process,
    one_line_error,
    read_until,
    run_command,
    spawn_cli,
)
from propworkload._cli import cli_main
from propworkload._histories import read_history
from propworkload._loader import load_model

DATA = ROOT / "tests" / "data" / "porcupine-kv"
KV_MODEL = ROOT / "models" / "kv.py"
SUMMARY = re.compile(r"^SUMMARY (?P<verdict>.+) partitions=\d+ core=(pure|compiled) seconds=\S+$")


def check(*args: str | Path) -> Completed:
    """``propworkload check ARGS...``: the command line, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as ended:
        cli_main(["check", *map(str, args)])
    assert isinstance(ended.value.code, int)
    return Completed(code=ended.value.code, out=out.getvalue(), err=err.getvalue())


def op(
    client: int, name: str, call: float, ret: float | None, output: Any = None, **arguments: Any
):
    """One operation of a JSON history."""
    return {
        "client": client,
        "operation": name,
        "arguments": arguments,
        "call": call,
        "return": ret,
        "output": output,
    }


def history(path: Path, *operations: dict[str, Any]) -> Path:
    """A JSON history of ``operations`` written at ``path``."""
    data = {"format": "propworkload-history", "version": 1, "operations": list(operations)}
    path.write_text(json.dumps(data))
    return path


def verdict(result: Completed) -> str:
    """The verdict on the SUMMARY line (``linearizable``, ``not linearizable``, ...)."""
    found = SUMMARY.match(result.lines[-1])
    assert found is not None, result.out + result.err
    return found["verdict"]


# -- Porcupine's kv histories ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "operations", "clients"),
    [("c01-ok", 58, 1), ("c01-bad", 38, 1), ("c10-ok", 337, 10), ("c10-bad", 405, 10)],
)
def test_porcupine_histories_get_porcupines_verdicts(
    name: str, operations: int, clients: int, tmp_path: Path
) -> None:
    """Each of Porcupine's kv histories, against models/kv.py: linearizable (exit 0) when
    Porcupine says so, not linearizable (exit 1) otherwise."""
    path = DATA / f"{name}.txt"
    result = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "timeline.html")
    ok = name.endswith("-ok")
    assert result.code == (0 if ok else 1), result.out + result.err
    assert result.lines[0] == (
        f"CHECK {path} model=keyvalue format=porcupine operations={operations} clients={clients}"
    )
    assert verdict(result) == ("linearizable" if ok else "not linearizable")
    assert any(line.startswith("INVARIANT FAIL linearizable ") for line in result.lines) != ok


@pytest.mark.parametrize("name", ["c10-ok", "c10-bad"])
def test_a_long_history_is_checked_in_processes_with_the_same_outcome(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From PARALLEL_CHECK_FROM operations, partitions are checked in a process per core:
    the same verdict, and for a linearizable history the same output and timeline as in
    one process. (Which illegal key is named first may differ: c10-bad has several.)"""
    from propworkload import _commands, _linearizability

    forked: list[int] = []
    in_processes = _linearizability._in_processes

    def counting(*args: Any) -> Any:
        forked.append(args[-1])
        return in_processes(*args)

    monkeypatch.setattr(_linearizability, "_in_processes", counting)
    monkeypatch.setattr(_commands.os, "cpu_count", lambda: 2)
    path = DATA / f"{name}.txt"
    one = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "one.html")
    assert forked == []  # 405 operations at most: below the threshold
    monkeypatch.setattr(_commands, "PARALLEL_CHECK_FROM", 10)
    two = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "two.html")
    assert forked == [2]
    assert two.code == one.code == (0 if name.endswith("-ok") else 1)
    assert verdict(two) == verdict(one)
    if name.endswith("-ok"):
        assert two.lines[:-2] == one.lines[:-2]  # all but the timeline path and the seconds
        pages = [(tmp_path / f"{n}.html").read_text() for n in ("one", "two")]
        assert pages[0].replace("one.html", "") == pages[1].replace("two.html", "")
    else:
        assert two.lines[1].startswith("INVARIANT FAIL linearizable expected=linearizable")


def test_the_failure_names_the_first_operation_that_fits_no_order(tmp_path: Path) -> None:
    """The single client of c01-bad appends "x 0 0 y" and then "x 0 3 y" to key 7, then
    reads only the first: that read (invoked on line 59) fits no order. The timeline shows
    it in red; by default it is written beside the history."""
    path = tmp_path / "c01-bad.txt"
    path.write_text((DATA / "c01-bad.txt").read_text())
    result = check(path, "--model", KV_MODEL)
    assert result.code == 1, result.out + result.err
    assert result.lines[:3] == [
        f"CHECK {path} model=keyvalue format=porcupine operations=38 clients=1",
        'INVARIANT FAIL linearizable expected=linearizable actual=get(key=7) -> "x 0 0 y" '
        "fits no order of the operations client=0 line=59 call=59 return=60",
        f"  timeline: {tmp_path / 'c01-bad.txt.html'}",
    ]
    assert verdict(result) == "not linearizable"
    page = (tmp_path / "c01-bad.txt.html").read_text()
    assert "not linearizable: 38 operations, 1 clients" in page
    assert 'class="op first"' in page and "get(key=7) -&gt; &quot;x 0 0 y&quot;" in page


def test_a_timeline_that_cannot_go_beside_the_history_goes_to_the_artifacts(
    tmp_path: Path,
) -> None:
    """When the timeline cannot be written beside the history (here a folder is in the
    way), it goes to the artifact folder's timelines/, and the output says where."""
    (tmp_path / "c01-ok.txt.html").mkdir()
    path = tmp_path / "c01-ok.txt"
    path.write_text((DATA / "c01-ok.txt").read_text())
    result = check(path, "--model", KV_MODEL)
    assert result.code == 0, result.out + result.err
    written = tmp_path / "artifacts" / "timelines" / "c01-ok.txt.html"
    assert f"  timeline: {written}" in result.lines
    assert "linearizable: 58 operations" in written.read_text()


# -- the JSON history format ----------------------------------------------------------------


def test_a_read_concurrent_with_a_write_may_see_it_or_not(tmp_path: Path) -> None:
    """Two reads during a put, one before and one after it took effect, and one after it
    returned: linearizable."""
    path = history(
        tmp_path / "h.json",
        op(1, "put", 0, 10, key="x", value="1"),
        op(2, "get", 1, 2, "", key="x"),
        op(3, "get", 3, 4, "1", key="x"),
        op(2, "get", 11, 12, "1", key="x"),
    )
    result = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "t.html")
    assert result.code == 0, result.out + result.err
    assert result.lines[0] == f"CHECK {path} model=keyvalue format=json operations=4 clients=3"
    assert verdict(result) == "linearizable"


def test_a_stale_read_is_not_linearizable(tmp_path: Path) -> None:
    """A read called after a put returned does not see it: exit 1, the read named with
    its client, its place among the history's operations and its times."""
    path = history(
        tmp_path / "h.json",
        op(1, "put", 0, 1, key="x", value="1"),
        op(2, "get", 2, 3.5, "", key="x"),
    )
    result = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "t.html")
    assert result.code == 1, result.out + result.err
    assert result.lines[1] == (
        'INVARIANT FAIL linearizable expected=linearizable actual=get(key=x) -> "" fits no '
        "order of the operations client=2 operation=2 call=2 return=3.5"
    )


@pytest.mark.parametrize(("put_returned", "code"), [(None, 0), (0.5, 1)])
def test_a_write_whose_outcome_is_unknown_may_take_effect_late(
    put_returned: float | None, code: int, tmp_path: Path
) -> None:
    """A put with no return (a timeout) may take effect at any time after its call: it
    explains a read that does not see it and a later one that does. Had it returned
    before the first read, that read would be stale."""
    path = history(
        tmp_path / "h.json",
        op(1, "put", 0, put_returned, key="x", value="1"),
        op(2, "get", 1, 2, "", key="x"),
        op(2, "get", 3, 4, "1", key="x"),
    )
    result = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "t.html")
    assert result.code == code, result.out + result.err


@pytest.mark.parametrize(("read_called", "code"), [(1, 0), (1.001, 1)])
def test_equal_times_are_concurrent(read_called: float, code: int, tmp_path: Path) -> None:
    """A read called at the time a put returned may come before it (docs/history-format.md);
    one called later may not."""
    path = history(
        tmp_path / "h.json",
        op(1, "put", 0, 1, key="x", value="1"),
        op(2, "get", read_called, 2, "", key="x"),
    )
    result = check(path, "--model", KV_MODEL, "--timeline", tmp_path / "t.html")
    assert result.code == code, result.out + result.err


def test_a_check_that_runs_out_of_time_is_unknown(tmp_path: Path) -> None:
    """Twelve appends at once and a read that no order of them explains: the search would
    try every order (billions), so it stops at --timeout, exit 3, and still draws the
    timeline. However busy the machine, the search cannot finish first."""
    appends = [op(i, "append", 0, 1, key="x", value=chr(97 + i)) for i in range(12)]
    path = history(tmp_path / "h.json", *appends, op(12, "get", 0, 1, "none of them", key="x"))
    result = check(path, "--model", KV_MODEL, "--timeout", "0.5")
    assert result.code == 3, result.out + result.err
    assert verdict(result) == "unknown (timed out after 0.5 s)"
    assert "unknown (the check timed out)" in (tmp_path / "h.json.html").read_text()


TUPLES = """
from hypothesis import strategies as st
from propworkload import Model, check, command


class Pairs(Model):
    model_state = tuple

    @command(a=st.integers())
    def pair(self, a):
        return (a, a + 1)

    @pair.model
    def pair(state, out, a):
        check("pair", expected=(a, a + 1), actual=out)
"""


@pytest.mark.parametrize(("output", "code"), [({"$tuple": [1, 2]}, 0), ([1, 2], 1)])
def test_values_are_read_as_traces_record_them(output: Any, code: int, tmp_path: Path) -> None:
    """A history's values are JSON, with the trace format's tags for other Python values:
    a tuple is {"$tuple": [...]}; a list stays a list, which a model comparing tuples
    rejects."""
    model = tmp_path / "pairs.py"
    model.write_text(TUPLES)
    path = history(tmp_path / "h.json", op(1, "pair", 0, 1, output, a=1))
    result = check(path, "--model", model, "--timeline", tmp_path / "t.html")
    assert result.code == code, result.out + result.err


# -- traces of parallel programs ------------------------------------------------------------

ACCEPTING = """
import sys

sys.path.insert(0, {models!r})
from payments import Payments

from propworkload import accept


class DoubleChargeAccepted(Payments):
    \"\"\"Payments with the double charge of a race accepted as a known deviation.\"\"\"

    accepted = (
        accept("charged_once"),
        accept("balance_matches_model"),
        accept("charges_listed"),
    )
"""


@pytest.fixture(scope="module")
def race_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trace of a race found by ``run --concurrency 2`` (payments' same-key double
    charge: two charges with one key at once both create one)."""
    folder = tmp_path_factory.mktemp("race")
    # (Module-scoped: made before the autouse fixture points the artifacts at a test's
    # folder, so it points them itself.)
    with (
        pytest.MonkeyPatch.context() as patch,
        in_process("payments", "race-same-key-double-charge") as service,
    ):
        patch.setenv("PROPWORKLOAD_ARTIFACTS", str(folder / "artifacts"))
        found = service.run(PAYMENTS_MODEL, concurrency=2, seed=1)
    assert found.code == 1, found.out + found.err
    (line,) = [line for line in found.lines if line.startswith("  trace: ")]
    assert line.startswith(f"  trace: {folder}")
    return Path(line.removeprefix("  trace: "))


def test_a_recorded_race_is_checked_again_against_the_model(
    race_trace: Path, tmp_path: Path
) -> None:
    """The trace of a race, checked against the model that found it: not linearizable,
    the operation that fits no order named by its step. Against an edited model that
    accepts double charges as a known deviation, the same history is linearizable."""
    steps = len(json.loads(race_trace.read_text())["steps"])
    found = check(race_trace, "--model", PAYMENTS_MODEL, "--timeline", tmp_path / "t.html")
    assert found.code == 1, found.out + found.err
    assert found.lines[0] == (
        f"CHECK {race_trace} model=payments format=trace operations={steps} clients=3"
    )
    (fail,) = [line for line in found.lines if line.startswith("INVARIANT FAIL linearizable")]
    assert " fits no order of the operations client=" in fail
    assert re.search(r" step=\d+ call=[\d.]+ return=[\d.]+$", fail), fail
    tolerant = tmp_path / "accepting.py"
    tolerant.write_text(ACCEPTING.format(models=str(PAYMENTS_MODEL.parent)))
    accepted = check(race_trace, "--model", tolerant, "--timeline", tmp_path / "t.html")
    assert accepted.code == 0, accepted.out + accepted.err
    assert verdict(accepted) == "linearizable"


def test_a_delivery_the_client_did_not_see_may_have_taken_effect(
    race_trace: Path, tmp_path: Path
) -> None:
    """A trace step whose request was duplicated by a fault gets one more operation, of
    unknown outcome, as the run's own check gives it; unless the model's command is
    idempotent (the service applies it once)."""
    data = json.loads(race_trace.read_text())
    step = next(s for s in data["steps"] if s["rule"] == "charge")
    exchange = next(e for e in step["exchanges"] if e["phase"] == "rule")
    exchange["fault"] = {"kind": "duplicate"}
    duplicated = tmp_path / "duplicated.json"
    duplicated.write_text(json.dumps(data))
    payments, _ = load_model(str(PAYMENTS_MODEL))
    copied = read_history(duplicated)
    assert len(copied.operations) == len(data["steps"]) + 1
    own, copy = [n for n, place in enumerate(copied.places) if place == ("step", step["index"])]
    assert not copied.operations[own].unknown and copied.operations[copy].unknown
    assert copied.operations[copy].input == copied.operations[own].input
    assert len(read_history(duplicated, model=payments).operations) == len(data["steps"])


# -- signals and a real service ---------------------------------------------------------------


def test_sigterm_stops_a_check_in_order(tmp_path: Path) -> None:
    """SIGTERM while the search runs: it stops at once, says so, and exits 143."""
    appends = [op(i, "append", 0, 1, key="x", value=chr(97 + i)) for i in range(12)]
    path = history(tmp_path / "h.json", *appends, op(12, "get", 0, 1, "none", key="x"))
    proc = spawn_cli(
        ["check", str(path), "--model", str(KV_MODEL), "--timeout", "600"],
        env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")},
    )
    read_until(proc, "CHECK ")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert re.fullmatch(r"SUMMARY stopped seconds=\S+ stopped=terminated", out.splitlines()[-1])
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_kv_model_runs_against_etcd_with_clients_at_once(
    etcd_service: Any, tmp_path: Path
) -> None:
    """models/kv.py drives a real etcd (append as a compare-and-swap loop): two clients at
    once, every history linearizable."""
    options = ("--concurrency", "2", "--examples", "20", "--seed", "1")
    result = run_command(
        ["-m", "propworkload", "run", str(KV_MODEL), "--url", etcd_service.url, *options],
        env={"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")},
    )
    assert result.code == 0, result.out + result.err
    assert "INVARIANT PASS linearizable checks=60" in result.lines
    assert result.lines[-1].startswith("SUMMARY passed examples=20 ")


# -- bad input: exit 2, one line ------------------------------------------------------------


def _json(**fields: Any) -> str:
    return json.dumps({"format": "propworkload-history", "version": 1, **fields})


def _one(**fields: Any) -> str:
    operation = {"client": 1, "operation": "get", "arguments": {"key": "x"}, "call": 0}
    return _json(operations=[{**operation, "return": 1, "output": "", **fields}])


GET = '{:process 1, :type :invoke, :f :get, :key "x", :value nil}\n'
BAD_HISTORIES = {
    "empty": ("", "h.txt: the file is empty; there is no history to check"),
    "text": ("hello\n", "h.txt: not a history propworkload reads (neither JSON nor"),
    "damaged JSON": ('{"format": "propworkload-history", "operations": [', "not valid JSON"),
    "JSON not an object": ("[1, 2]", "not a history: the JSON is not an object"),
    "another format": ('{"format": "jepsen"}', 'without "format": "propworkload-history"'),
    "another version": (
        _json(version=2, operations=[]),
        "history version 2 is not supported (this propworkload reads version 1)",
    ),
    "no operations": (_json(), "'operations' is missing or not a list"),
    "no call": (_one(call=None), "operation 1: 'call' is missing or not a finite number"),
    "call a boolean": (_one(call=True), "operation 1: 'call' is missing or not a finite"),
    "call too large": (_one(call=10**400), "operation 1: 'call' is missing or not a finite"),
    "return endless": (_one().replace('"return": 1', '"return": 1e999'), "'return' is not a"),
    "return before call": (_one(call=2), "operation 1: it returned (1) before it was called"),
    "client a name": (_one(client="web-1"), "operation 1: 'client' is missing or not a whole"),
    "arguments a list": (_one(arguments=["x"]), "operation 1: 'arguments' is not an object"),
    "unknown tag": (_one(output={"$bogus": 1}), "operation 1: its output cannot be read"),
    "operation the model lacks": (
        _one(operation="cas"),
        "operation 1: 'cas' is not an operation of KeyValue (its operations: append, get, put)",
    ),
    "arguments the model does not take": (
        _one(arguments={"key": "x", "value": "v"}),
        "operation 1: get(key=x, value=v) does not fit KeyValue.get (got an unexpected keyword",
    ),
    "event not a map": (GET + "{:process 1, :type :ok\n", "h.txt:2: not an event {:process N"),
    "event of another type": (
        GET.replace(":invoke", ":started"),
        "h.txt:1: :type is :started, not :invoke, :ok, :fail or :info",
    ),
    "event of another function": (GET.replace(":get", ":cas"), ":f is :cas, not :get, :put"),
    "key not a string": (GET.replace('"x"', "7"), "h.txt:1: :key is 7, not a string"),
    "end of nothing": (GET.replace(":invoke", ":ok"), "h.txt:1: :ok of process 1, which has no"),
    "end of another operation": (
        GET + GET.replace(":invoke", ":ok").replace(":get", ":put"),
        "h.txt:2: ends :put of key 'x', but process 1 invoked :get of key 'x' on line 1",
    ),
    "two at once": (GET + GET, "h.txt:2: process 1 invokes an operation before the one"),
    "put without value": (GET.replace(":get", ":put"), "h.txt:1: a :put needs a :value"),
}


@pytest.mark.parametrize("case", BAD_HISTORIES, ids=str)
def test_a_history_that_cannot_be_read_is_one_line(case: str, tmp_path: Path) -> None:
    """A history that is not one, or does not fit the model: exit 2, one line that says
    where (the operation, or the file's line) and why."""
    text, needle = BAD_HISTORIES[case]
    path = tmp_path / "h.txt"
    path.write_text(text)
    line = one_line_error(check(path, "--model", KV_MODEL, "--timeline", tmp_path / "t.html"))
    assert needle in line


MODELS = {
    "no model_state": (
        "from propworkload import Model, rule\n\nclass Plain(Model):\n"
        "    @rule()\n    def poke(self):\n        pass\n",
        "Plain has no model_state: check runs the history on the reference model",
    ),
    "no operations": (
        "from propworkload import Model, rule\n\nclass Plain(Model):\n"
        "    model_state = tuple\n\n    @rule()\n    def poke(self):\n        pass\n",
        "Plain declares no commands or operations",
    ),
    "model function raises": (
        "from hypothesis import strategies as st\nfrom propworkload import Model, command\n\n"
        "class Raising(Model):\n    model_state = tuple\n\n"
        "    @command(key=st.just('x'))\n    def get(self, key):\n        return ''\n\n"
        "    @get.model\n    def get(state, out, key):\n        return state.missing\n",
        "the model function of get raised AttributeError: 'tuple' object has no attribute",
    ),
    "syntax error": ("class Broken(\n", "syntax error"),
}


@pytest.mark.parametrize("case", MODELS, ids=str)
def test_a_model_that_cannot_check_is_one_line(case: str, tmp_path: Path) -> None:
    """A model without a state, without operations, or whose model function raises:
    exit 2, one line, as for run."""
    source, needle = MODELS[case]
    model = tmp_path / "model.py"
    model.write_text(source)
    path = history(tmp_path / "h.json", op(1, "get", 0, 1, "", key="x"))
    line = one_line_error(check(path, "--model", model, "--timeline", tmp_path / "t.html"))
    assert needle in line


SEQUENTIAL_TRACE = {
    "format": "propworkload-trace",
    "version": 2,
    "model": {"file": "payments.py", "class": "Payments"},
    "seed": 1,
    "target": "http://127.0.0.1:9",
    "failure": {"invariant": "charged_once"},
    "steps": [],
}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no such file", "nope.json: no such history file"),
        ("a folder", "is a folder; pass a history file"),
        ("a sequential trace", "a trace of a sequential run holds no concurrent history"),
        ("a damaged trace", "trace version 9 is not supported"),
        ("a parallel trace without times", "trace.json: step 1 has no client or no call time"),
        ("no model", "Missing option '--model' (see: propworkload check --help)"),
        ("no model file", "nope.py: no such model file"),
        ("a format it is not", "c01-ok.txt: not valid JSON (Expecting property name"),
        ("a timeline nowhere", "--timeline"),
        ("a negative timeout", "Invalid value for '--timeout'"),
        ("an endless timeout", "inf is not a finite number of seconds"),
        ("an unknown format", "Invalid value for '--format'"),
    ],
)
def test_bad_arguments_are_one_line(case: str, needle: str, tmp_path: Path) -> None:
    """Files that are no history, a missing model, bad options: exit 2, one line."""
    good = DATA / "c01-ok.txt"
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(SEQUENTIAL_TRACE))
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps({**SEQUENTIAL_TRACE, "version": 9}))
    untimed = tmp_path / "untimed" / "trace.json"
    untimed.parent.mkdir()
    step = {"rule": "get", "arguments": {"key": "x"}, "exchanges": [], "client": 1}
    program = {"prefix": [], "clients": [[{"operation": "get", "arguments": {"key": "x"}}]]}
    parallel = {"kind": "parallel", "program": program, "steps": [step]}
    untimed.write_text(json.dumps({**SEQUENTIAL_TRACE, **parallel}))
    timeline = ["--timeline", str(tmp_path / "t.html")]
    model = ["--model", str(KV_MODEL)]
    args = {
        "no such file": [tmp_path / "nope.json", *model, *timeline],
        "a folder": [tmp_path, *model, *timeline],
        "a sequential trace": [trace, *model, *timeline],
        "a damaged trace": [damaged, *model, *timeline],
        "a parallel trace without times": [untimed, *model, *timeline],
        "no model": [good, *timeline],
        "no model file": [good, "--model", tmp_path / "nope.py", *timeline],
        "a format it is not": [good, *model, "--format", "json", *timeline],
        "a timeline nowhere": [good, *model, "--timeline", good / "t.html"],
        "a negative timeout": [good, *model, "--timeout", "-1", *timeline],
        "an endless timeout": [good, *model, "--timeout", "inf", *timeline],
        "an unknown format": [good, *model, "--format", "edn", *timeline],
    }[case]
    line = one_line_error(check(*args))
    assert needle in line


def test_exit_statuses_from_a_real_process(tmp_path: Path) -> None:
    """``python -m propworkload check``, as a user runs it: 0, 1 and 3."""
    env = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    slow = history(
        tmp_path / "slow.json",
        *[op(i, "append", 0, 1, key="x", value=chr(97 + i)) for i in range(12)],
        op(12, "get", 0, 1, "none", key="x"),
    )
    codes = []
    for path, extra in (
        (DATA / "c01-ok.txt", []),
        (DATA / "c01-bad.txt", []),
        (slow, ["--timeout", "0.2"]),
    ):
        args = ["-m", "propworkload", "check", str(path), "--model", str(KV_MODEL)]
        result = run_command([*args, "--timeline", str(tmp_path / "t.html"), *extra], env=env)
        assert result.err == "", result.err
        codes.append(result.code)
    assert codes == [0, 1, 3]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_KV_OPERATION = st.builds(
    lambda client, name, key, call, took, output: {
        "client": client,
        "operation": name,
        "arguments": {"key": key} if name == "get" else {"key": key, "value": "1"},
        "call": call,
        "return": None if took is None else call + took,
        "output": output,
    },
    st.integers(0, 3),
    st.sampled_from(["get", "put", "append"]),
    st.sampled_from(["x", "y"]),
    st.integers(0, 5),
    st.none() | st.integers(0, 3),
    st.sampled_from(["", "1", "11"]),
)
_TIMES = st.integers(-2, 5) | st.floats(allow_nan=True) | st.just(10**400) | _JSON
#: An operation with any of its fields missing or of any value.
_ANY_OPERATION = st.fixed_dictionaries(
    {},
    optional={
        "client": st.integers(0, 3) | _JSON,
        "operation": st.sampled_from(["get", "put", "cas", ""]) | _JSON,
        "arguments": st.fixed_dictionaries(
            {}, optional={"key": st.sampled_from(["x", "$t"]) | _JSON, "value": _JSON}
        )
        | _JSON,
        "call": _TIMES,
        "return": _TIMES,
        "output": _JSON,
    },
)
_HISTORY = st.builds(
    lambda operations, fields: json.dumps(
        {"format": "propworkload-history", "version": 1, "operations": operations, **fields}
    ),
    st.lists(_KV_OPERATION, max_size=6) | st.lists(_KV_OPERATION | _ANY_OPERATION, max_size=6),
    st.just({}) | st.dictionaries(st.sampled_from(["format", "version", "operations"]), _JSON),
)
_EVENT = st.builds(
    "{{:process {}, :type {}, :f {}, :key {}, :value {}}}".format,
    st.sampled_from(["1", "2", "3", ":nemesis", '"1"']),
    st.sampled_from([":invoke", ":ok", ":fail", ":info", ":other"]),
    st.sampled_from([":get", ":put", ":append", ":cas"]),
    st.sampled_from(['"x"', '"y"', "1"]),
    st.sampled_from(['"1"', '"\\"2\\""', "nil", "3", '"']),
)


@st.composite
def _kv_log(draw: st.DrawFn) -> str:
    """A log of well-formed events: each process invokes, then ends what it invoked."""
    lines, pending = [], {}
    for process in draw(st.lists(st.integers(1, 3), max_size=10)):
        if process in pending:
            f, key = pending.pop(process)
            kind = draw(st.sampled_from([":ok", ":ok", ":fail", ":info"]))
            value = draw(st.sampled_from(['"1"', '"11"', '""', "nil"])) if f == ":get" else '"1"'
        else:
            f, key = draw(st.sampled_from([":get", ":put", ":append"])), '"x"'
            pending[process], kind = (f, key), ":invoke"
            value = "nil" if f == ":get" else '"1"'
        lines.append(f"{{:process {process}, :type {kind}, :f {f}, :key {key}, :value {value}}}")
    return "\n".join(lines)


_LOG = _kv_log() | st.lists(_EVENT | st.text(max_size=10), max_size=8).map("\n".join)


@settings(max_examples=150, deadline=None, database=None)
@given(text=_HISTORY | _LOG)
def test_any_history_gets_a_verdict_or_one_line(text: str) -> None:
    """Whatever a history file holds, check ends with a verdict (0, 1, 3) or one error
    line (2), never a traceback."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.txt"
        path.write_text(text)
        result = check(path, "--model", KV_MODEL, "--timeout", "5")
    shown = f"{text}\n{result.out}{result.err}"
    assert result.code in (0, 1, 2, 3), shown
    assert "Traceback" not in result.out + result.err, shown
    if result.code == 2:
        one_line_error(result)
    else:
        assert result.err == "" and SUMMARY.match(result.lines[-1]), shown
