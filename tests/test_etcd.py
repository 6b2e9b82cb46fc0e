"""The etcd model against a real etcd (Debian's etcd-server, started by
models/real/serve.py): no false alarm sequentially, under faults and with concurrent
clients; and every invariant caught failing when a proxy makes etcd deviate from its
documented behaviour in one way."""

from __future__ import annotations

import base64
import json
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT, Completed, Exchange, assert_shrunk, run_command, serve

ETCD_MODEL = ROOT / "models" / "real" / "etcd.py"
INVARIANTS = {
    "read_your_writes",
    "keys_match_model",
    "revisions_grow",
    "cas_matches_model",
    "old_revisions_readable",
    "compacted_revision_refused",
}

pytestmark = pytest.mark.slow


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _run(url: str, tmp_path: Path, *args: str, command: str = "run") -> Completed:
    env = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    # Runs are bounded by examples; time budgets (300 s) and this timeout only guard
    # against a hang: a busy machine must not cut a search or a shrink short.
    return run_command(
        ["-m", "propworkload", command, str(ETCD_MODEL), "--url", url, *args],
        env=env,
        timeout=600,
    )


def _explore_concurrently(url: str, tmp_path: Path, *, examples: int) -> Completed:
    """``explore --concurrency 3`` for ``examples`` programs."""
    args = ("--seed", "1", "--concurrency", "3", "--examples", str(examples))
    return _run(url, tmp_path, *args, command="explore")


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


# -- what the model relies on -----------------------------------------------------------


def test_etcd_gateway_speaks_base64_string_integers_and_omits_zero_fields(
    etcd_service: Any,
) -> None:
    """The v3 JSON gateway's encoding, as the model decodes it: base64 keys and values,
    64-bit integers as strings, zero and false fields left out, and the documented
    errors for compacted and future revisions."""
    with httpx.Client(base_url=etcd_service.url, trust_env=False) as etcd:
        key = _b64("gateway-test/k")
        put = etcd.post("/v3/kv/put", json={"key": key, "value": _b64("one")}).json()
        revision = put["header"]["revision"]
        assert isinstance(revision, str) and int(revision) > 1
        etcd.post("/v3/kv/put", json={"key": key, "value": _b64("two")})
        now = etcd.post("/v3/kv/range", json={"key": key}).json()
        (kv,) = now["kvs"]
        assert base64.b64decode(kv["value"]) == b"two"
        assert (kv["version"], now["count"]) == ("2", "1")
        then = etcd.post("/v3/kv/range", json={"key": key, "revision": revision}).json()
        assert base64.b64decode(then["kvs"][0]["value"]) == b"one"
        missing = etcd.post("/v3/kv/range", json={"key": _b64("gateway-test/none")}).json()
        assert "kvs" not in missing and "count" not in missing
        failed = etcd.post(
            "/v3/kv/txn",
            json={
                "compare": [{"key": key, "target": "VERSION", "version": 0, "result": "EQUAL"}],
                "success": [{"request_put": {"key": key, "value": _b64("three")}}],
            },
        ).json()
        assert "succeeded" not in failed
        assert etcd.post("/v3/kv/compaction", json={"revision": revision}).status_code == 200
        below = etcd.post("/v3/kv/range", json={"key": key, "revision": int(revision) - 1})
        assert below.status_code == 400
        assert "required revision has been compacted" in below.json()["error"]
        future = etcd.post("/v3/kv/range", json={"key": key, "revision": 10**9})
        assert "required revision is a future revision" in future.json()["error"]


def test_serve_runs_etcd_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    """``python3 models/real/serve.py etcd --port P`` says where etcd listens, serves,
    and stops etcd (exit 0) on SIGTERM, keeping its data in --dir."""
    if serve.missing_reason("etcd"):
        pytest.skip(serve.missing_reason("etcd"))
    port = serve.free_port()
    script = str(ROOT / "models/real/serve.py")
    args = [script, "etcd", "--port", str(port), "--dir", str(tmp_path / "etcd")]
    with subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdout is not None
        said, _, _ = select.select([proc.stdout], [], [], 60)
        assert said, "serve.py said nothing within 60 s"
        line = proc.stdout.readline()
        assert line.startswith(f"etcd listening on http://127.0.0.1:{port} "), line
        answer = httpx.post(f"http://127.0.0.1:{port}/v3/kv/range", json={"key": "AA=="})
        assert answer.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{port}/v3/kv/range", json={"key": "AA=="}, timeout=2)
    assert (tmp_path / "etcd" / "data").is_dir()


def test_serve_reports_a_missing_etcd_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where etcd is not installed, the reason a test skips with says how to install it."""
    monkeypatch.setattr(serve, "binary", lambda name: None)
    assert serve.missing_reason("etcd") == "etcd is not installed: apt-get install etcd-server"
    with pytest.raises(serve.ServiceError, match="apt-get install etcd-server"):
        serve.Service("etcd")


# -- no false alarm ---------------------------------------------------------------------


def test_etcd_model_holds_against_a_real_etcd(etcd_service: Any, tmp_path: Path) -> None:
    result = _run(etcd_service.url, tmp_path, "--seed", "1", "--examples", "60")
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS
    assert result.lines[-1].startswith("SUMMARY passed examples=")


@pytest.mark.parametrize("seed", [1, 2])
def test_etcd_model_has_no_false_alarm_under_faults(
    etcd_service: Any, tmp_path: Path, seed: int
) -> None:
    """Lost answers, duplicates, resets: puts that may have landed twice, compactions
    and compare-and-swaps of unknown outcome are all allowed for, never reported."""
    result = _run(
        etcd_service.url, tmp_path, "--seed", str(seed), "--examples", "60", "--faults", "all"
    )
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS


def test_etcd_model_allows_for_other_clients_compacting(etcd_service: Any, tmp_path: Path) -> None:
    """Another client compacts the whole cluster every 20 ms while the model runs under
    faults (as a second explore worker, or etcd's auto-compaction, does): reads refused
    as compacted beyond the example's own compactions are explained by asking etcd, and
    nothing is reported."""
    stop = threading.Event()
    compactions = [0]

    def compact_everything() -> None:
        with httpx.Client(base_url=etcd_service.url, trust_env=False, timeout=5) as etcd:
            while not stop.wait(0.02):
                now = etcd.post("/v3/kv/range", json={"key": "AA=="}).json()
                etcd.post("/v3/kv/compaction", json={"revision": now["header"]["revision"]})
                compactions[0] += 1

    other = threading.Thread(target=compact_everything, daemon=True)
    other.start()
    try:
        args = ("--seed", "3", "--examples", "60", "--faults", "all")
        result = _run(etcd_service.url, tmp_path, *args)
    finally:
        stop.set()
        other.join(timeout=10)
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS
    assert compactions[0] > 50


def test_etcd_concurrent_histories_are_linearizable(etcd_service: Any, tmp_path: Path) -> None:
    """Every command of the model is an operation of concurrent clients, old reads and
    compactions too: no operation was written for concurrent mode."""
    # 8 s ran 217 on an idle machine: 40 run every command many times.
    result = _explore_concurrently(etcd_service.url, tmp_path, examples=40)
    assert result.code == 0, result.out + result.err
    assert any(line.startswith("INVARIANT PASS linearizable checks=") for line in result.lines)
    ran = {
        line.split()[0]: int(line.split(" ran=")[1].split()[0])
        for line in result.lines
        if " ran=" in line
    }
    commands = ("put", "delete", "compare_and_swap", "read", "read_old", "compact")
    assert all(ran.get(name, 0) > 0 for name in commands), ran


# -- every invariant can fail -------------------------------------------------------------
# etcd has no seeded bugs: a proxy between the model and etcd makes it deviate from its
# documentation in one way, and the model must name the invariant that breaks.


def _json(exchange: Exchange) -> dict[str, Any]:
    return dict(json.loads(exchange.body or b"{}"))


def _stale_reads() -> dict[str, Callable[..., Exchange]]:
    """Reads of one key (at the latest revision) answer the key as the first read of it
    found it (with the current revision in the header)."""
    first: dict[bytes, Any] = {}

    def on_response(request: Exchange, response: Exchange) -> Exchange:
        body = _json(request)
        if request.path == "/v3/kv/range" and not {"range_end", "revision"} & set(body):
            answer = json.loads(response.body)
            kvs = first.setdefault(request.body, answer.get("kvs", []))
            answer.pop("kvs", None)
            answer.pop("count", None)
            if kvs:
                answer.update(kvs=kvs, count=str(len(kvs)))
            response.body = json.dumps(answer).encode()
        return response

    return {"on_response": on_response}


def _listing_misses_a_key() -> dict[str, Callable[..., Exchange]]:
    """A range over a prefix leaves out its last key (when it has two)."""

    def on_response(request: Exchange, response: Exchange) -> Exchange:
        if request.path == "/v3/kv/range" and "range_end" in _json(request):
            answer = json.loads(response.body)
            if len(answer.get("kvs", [])) > 1:
                answer["kvs"].pop()
                answer["count"] = str(len(answer["kvs"]))
            response.body = json.dumps(answer).encode()
        return response

    return {"on_response": on_response}


def _compaction_not_applied() -> dict[str, Callable[..., Exchange]]:
    """Compactions are answered as done but never reach etcd (they become a read)."""

    def on_request(request: Exchange) -> Exchange:
        if request.path == "/v3/kv/compaction":
            request.path = "/v3/kv/range"
            request.body = json.dumps({"key": "AA=="}).encode()
        return request

    return {"on_request": on_request}


def _rewrite_request(path: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    def on_request(request: Exchange) -> Exchange:
        if request.path == path:
            body = _json(request)
            change(body)
            request.body = json.dumps(body).encode()
        return request

    return {"on_request": on_request}


def _old_revisions_on_writes() -> dict[str, Any]:
    """A put's answer carries a revision older than the one it made."""

    def on_response(request: Exchange, response: Exchange) -> Exchange:
        if request.path == "/v3/kv/put":
            answer = json.loads(response.body)
            answer["header"]["revision"] = str(int(answer["header"]["revision"]) - 1)
            response.body = json.dumps(answer).encode()
        return response

    return {"on_response": on_response}


def _old_revisions_ignored() -> dict[str, Callable[..., Exchange]]:
    """A read at an old revision (one that is not compacted) answers the latest."""
    compacted = [0]

    def on_request(request: Exchange) -> Exchange:
        body = _json(request)
        if request.path == "/v3/kv/compaction":
            compacted[0] = max(compacted[0], int(body.get("revision", 0)))
        elif request.path == "/v3/kv/range" and int(body.get("revision", 0)) >= compacted[0]:
            body.pop("revision", None)
            request.body = json.dumps(body).encode()
        return request

    return {"on_request": on_request}


def _old_revisions_refused() -> dict[str, Callable[..., Exchange]]:
    """A read at an old revision is refused as compacted, compacted or not."""

    def on_response(request: Exchange, response: Exchange) -> Exchange:
        if request.path == "/v3/kv/range" and "revision" in _json(request):
            response.status = 400
            error = "etcdserver: mvcc: required revision has been compacted"
            response.body = json.dumps({"error": error, "code": 11}).encode()
        return response

    return {"on_response": on_response}


def _invert_compare(body: dict[str, Any]) -> None:
    for compare in body.get("compare", []):
        compare["result"] = "NOT_EQUAL"


DEVIATIONS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    # deviation: (the invariant that must catch it, the proxy's rewrites)
    "stale-read": ("read_your_writes", _stale_reads),
    "listing-misses-a-key": ("keys_match_model", _listing_misses_a_key),
    "write-revision-goes-back": ("revisions_grow", _old_revisions_on_writes),
    "txn-compare-inverted": (
        "cas_matches_model",
        lambda: _rewrite_request("/v3/kv/txn", _invert_compare),
    ),
    "old-revision-ignored": ("old_revisions_readable", _old_revisions_ignored),
    "old-revision-refused": ("old_revisions_readable", _old_revisions_refused),
    "compaction-not-applied": ("compacted_revision_refused", _compaction_not_applied),
}


def test_every_etcd_invariant_has_a_deviation() -> None:
    assert {invariant for invariant, _ in DEVIATIONS.values()} == INVARIANTS


@pytest.mark.parametrize("deviation", sorted(DEVIATIONS))
def test_etcd_deviation_is_caught_by_its_invariant(
    deviation: str, etcd_service: Any, rewriting_proxy: Any, tmp_path: Path
) -> None:
    invariant, rewrites = DEVIATIONS[deviation]
    proxy = rewriting_proxy(etcd_service.url, **rewrites())
    args = ("--seed", "1", "--examples", "100", "--time-budget", "300")
    result = _run(proxy.url, tmp_path, *args)
    assert result.code == 1, result.out + result.err
    fail = next(line for line in result.lines if line.startswith("INVARIANT FAIL "))
    assert fail.split()[2] == invariant, result.out
    assert "minimal sequence (" in result.out, result.out
    assert_shrunk(result.out, 4)


def test_etcd_stale_reads_are_not_linearizable(
    etcd_service: Any, rewriting_proxy: Any, tmp_path: Path
) -> None:
    """Concurrent clients, one of which reads a key from a cache: the history has no
    linearization, and the checker says so."""
    proxy = rewriting_proxy(etcd_service.url, **_stale_reads())
    args = ("--seed", "1", "--concurrency", "3", "--examples", "300", "--time-budget", "300")
    result = _run(proxy.url, tmp_path, *args)
    assert result.code == 1, result.out + result.err
    assert any(line.startswith("INVARIANT FAIL linearizable") for line in result.lines)
