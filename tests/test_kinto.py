"""The Kinto model (models/real/kinto.py) against a real Kinto (PyPI, started by
models/real/serve.py): what the model relies on, no false alarm (also under every fault),
and every invariant caught failing when a proxy makes Kinto deviate from its documented
behaviour in one way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest

from conftest import ROOT, Completed, Exchange, assert_shrunk, run_command

KINTO_MODEL = ROOT / "models" / "real" / "kinto.py"
INVARIANTS = {
    "read_your_writes",
    "stale_write_rejected",
    "not_modified",
    "listing_exactly_once",
    "changes_since_complete",
    "timestamps_increase",
}
AUTH = ("propworkload", "propworkload")

pytestmark = pytest.mark.slow


def _run(url: str, tmp_path: Path, *args: str, command: str = "run") -> Completed:
    env = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    # Runs are bounded by examples; their time budgets (300 s) and this timeout only
    # guard against a hang: a busy machine must not cut a search or a shrink short.
    return run_command(
        ["-m", "propworkload", command, str(KINTO_MODEL), "--url", url, *args],
        env=env,
        timeout=600,
    )


def _passed(result: Completed) -> set[str]:
    return {line.split()[2] for line in result.lines if line.startswith("INVARIANT PASS")}


# -- what the model relies on -----------------------------------------------------------


def test_kinto_behaves_as_the_model_expects(kinto_service: Any) -> None:
    """Kinto's documented behaviour, as the model reads it: ETags are the records'
    timestamps, preconditions answer 412, ``If-None-Match`` answers 304, listings page
    by two through ``Next-Page``, ``_since`` lists tombstones (``_before`` bounds it), a
    batch answers each request in order."""
    records = "/v1/buckets/kt_relies/collections/items/records"
    with httpx.Client(base_url=kinto_service.url, auth=AUTH, trust_env=False) as kinto:
        assert kinto.put("/v1/buckets/kt_relies", json={"data": {}}).status_code in (200, 201)
        created = kinto.put("/v1/buckets/kt_relies/collections/items", json={"data": {}})
        assert created.status_code in (200, 201)
        empty = kinto.get(records)
        assert empty.json() == {"data": []}
        start = int(empty.headers["ETag"].strip('"'))

        a = kinto.put(f"{records}/a", json={"data": {"value": "v1"}})
        assert a.status_code == 201
        first = a.json()["data"]
        assert first["value"] == "v1" and first["last_modified"] > start
        assert a.headers["ETag"] == f'"{first["last_modified"]}"'
        again = kinto.put(
            f"{records}/a", json={"data": {"value": "x"}}, headers={"If-None-Match": "*"}
        )
        assert again.status_code == 412
        current = {"If-Match": f'"{first["last_modified"]}"'}
        replaced = kinto.put(f"{records}/a", json={"data": {"value": "v2"}}, headers=current)
        assert replaced.status_code == 200
        stale = kinto.put(f"{records}/a", json={"data": {"value": "v3"}}, headers=current)
        assert stale.status_code == 412
        patched = kinto.patch(f"{records}/a", json={"data": {"note": "n"}}).json()["data"]
        assert (patched["value"], patched["note"]) == ("v2", "n")
        etag = {"If-None-Match": f'"{patched["last_modified"]}"'}
        assert kinto.get(f"{records}/a", headers=etag).status_code == 304
        older = {"If-None-Match": f'"{first["last_modified"]}"'}
        assert kinto.get(f"{records}/a", headers=older).status_code == 200

        batch = kinto.post(
            "/v1/batch",
            json={
                "defaults": {"method": "PUT"},
                "requests": [
                    {"path": "/buckets/kt_relies/collections/items/records/b", "body": {}},
                    {"path": "/buckets/kt_relies/collections/items/records/c", "body": {}},
                    {"method": "DELETE", "path": "/buckets/kt_relies/collections/items/records/a"},
                ],
            },
        ).json()["responses"]
        assert [r["status"] for r in batch] == [201, 201, 200]
        stamps = [r["body"]["data"]["last_modified"] for r in batch]
        assert stamps == sorted(set(stamps)) and stamps[0] > patched["last_modified"]
        tombstone = batch[2]["body"]["data"]
        assert tombstone == {"id": "a", "deleted": True, "last_modified": stamps[2]}

        listing = kinto.get(records)
        assert len(listing.json()["data"]) == 2 and "Next-Page" not in listing.headers
        kinto.put(f"{records}/d", json={"data": {}})
        page = kinto.get(records)
        assert len(page.json()["data"]) == 2
        following = httpx.URL(page.headers["Next-Page"])
        rest = kinto.get(following.raw_path.decode())
        assert [r["id"] for r in rest.json()["data"]] == ["b"]
        assert "Next-Page" not in rest.headers

        since = kinto.get(records, params={"_since": str(first["last_modified"])}).json()
        assert {"id": "a", "deleted": True, "last_modified": stamps[2]} in since["data"]
        assert all(r["last_modified"] > first["last_modified"] for r in since["data"])
        before = {"_since": str(first["last_modified"]), "_before": str(stamps[2])}
        assert [r["id"] for r in kinto.get(records, params=before).json()["data"]] == ["c", "b"]
        # A quirk the model steers clear of: If-Match "0" reads as no If-Match at all.
        zero = kinto.put(f"{records}/e", json={"data": {}}, headers={"If-Match": '"0"'})
        assert zero.status_code == 201
        assert kinto.delete("/v1/buckets/kt_relies").status_code == 200


# -- no false alarm ---------------------------------------------------------------------


def test_kinto_model_passes_against_real_kinto(kinto_service: Any, tmp_path: Path) -> None:
    """A correct Kinto passes: every invariant checked and held."""
    result = _run(kinto_service.url, tmp_path, "--seed", "1", "--examples", "15")
    assert result.code == 0, result.out + result.err
    assert result.lines[0].startswith("SEED 1 model=kinto ")
    assert _passed(result) == INVARIANTS, result.out
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY passed examples=")


@pytest.mark.parametrize("seed", ["1", "2"])
def test_kinto_model_no_false_alarm_under_every_fault(
    kinto_service: Any, tmp_path: Path, seed: str
) -> None:
    """Lost answers, duplicates, timeouts, resets and delays: writes are retried,
    unknown outcomes kept possible, timestamps learned from the listing; a correct
    Kinto never fails."""
    result = _run(
        kinto_service.url, tmp_path, "--seed", seed, "--faults", "all", "--examples", "12"
    )
    assert result.code == 0, result.out + result.err
    assert _passed(result) == INVARIANTS, result.out
    (summary,) = [line for line in result.lines if line.startswith("SUMMARY")]
    for kind in ("lost-response", "duplicate", "timeout-before-send", "reset", "delay"):
        assert f"{kind}=" in summary


def test_kinto_model_explores_without_failure(kinto_service: Any, tmp_path: Path) -> None:
    result = _run(
        kinto_service.url,
        tmp_path,
        "--seed",
        "3",
        "--faults",
        "all",
        "--examples",
        "8",
        command="explore",
    )
    assert result.code == 0, result.out + result.err
    assert "failures=0" in result.lines[-1]
    assert "COVERAGE rules:" in result.out


def test_kinto_model_without_url_or_with_a_refused_setup_says_so(
    kinto_service: Any, tmp_path: Path, rewriting_proxy: Callable[..., Any]
) -> None:
    """No embedded service: a URL is required (exit 2). A Kinto that refuses the
    credentials stops the run as a setup failure (exit 3), in one line."""
    env = {"PROPWORKLOAD_ARTIFACTS": str(tmp_path / "artifacts")}
    missing = run_command(["-m", "propworkload", "run", str(KINTO_MODEL)], env=env)
    assert missing.code == 2
    assert "set APP_URL or pass --url" in missing.err

    def forbid(request: Exchange, response: Exchange) -> Exchange:
        return attrs.evolve(response, status=401, body=b'{"code": 401}')

    proxy = rewriting_proxy(kinto_service.url, on_response=forbid)
    refused = _run(proxy.url, tmp_path, "--seed", "1", "--examples", "2")
    assert refused.code == 3, refused.out + refused.err
    (line,) = refused.err.strip().splitlines()
    assert "reset() failed" in line and "401" in line
    assert "Traceback" not in refused.out + refused.err


# -- every invariant can fail -------------------------------------------------------------


def _json(exchange: Exchange) -> Any:
    return json.loads(exchange.body) if exchange.body else None


def _with_json(exchange: Exchange, body: Any) -> Exchange:
    return attrs.evolve(exchange, body=json.dumps(body).encode())


def _is_record(exchange: Exchange) -> bool:
    return "/records/" in urlsplit(exchange.path).path


def _is_listing(exchange: Exchange) -> bool:
    return exchange.method == "GET" and urlsplit(exchange.path).path.endswith("/records")


def _drop_header(name: str, method: str | None = None) -> Callable[[Exchange], Exchange]:
    def rewrite(request: Exchange) -> Exchange:
        if method is not None and request.method != method:
            return request
        headers = {k: v for k, v in request.headers.items() if k.lower() != name}
        return attrs.evolve(request, headers=headers)

    return rewrite


def _put_answer(change: Callable[[dict[str, Any]], None]) -> Callable[..., Exchange]:
    """Rewrite the data of successful PUT answers of records."""

    def rewrite(request: Exchange, response: Exchange) -> Exchange:
        if request.method != "PUT" or not _is_record(request) or response.status >= 300:
            return response
        body = _json(response)
        change(body["data"])
        return _with_json(response, body)

    return rewrite


def _skip_page_boundary(request: Exchange, response: Exchange) -> Exchange:
    """A listing page followed by another loses its last record."""
    if not _is_listing(request) or "next-page" not in {k.lower() for k in response.headers}:
        return response
    body = _json(response)
    return _with_json(response, {**body, "data": body["data"][:-1]})


def _hide_tombstones(request: Exchange, response: Exchange) -> Exchange:
    if not _is_listing(request) or "_since=" not in request.path:
        return response
    body = _json(response)
    return _with_json(response, {**body, "data": [r for r in body["data"] if not r.get("deleted")]})


@attrs.frozen
class Deviation:
    """One way a proxy makes Kinto break its documentation, the invariant that catches
    it, the longest minimal sequence we accept, and the steps per example that find it
    quickly (short examples shrink fast)."""

    name: str
    invariant: str
    most_steps: int
    steps: int
    on_request: Callable[[Exchange], Exchange] | None = None
    on_response: Callable[[Exchange, Exchange], Exchange] | None = None


DEVIATIONS = [
    # A write on a stale ETag (or on the collection's, for a record never written) is taken.
    Deviation(
        "if-match-ignored",
        "stale_write_rejected",
        2,
        4,
        on_request=_drop_header("if-match"),
    ),
    Deviation(
        "put-answers-other-data",
        "read_your_writes",
        1,
        3,
        on_response=_put_answer(lambda data: data.update(value="v0")),
    ),
    # A read on the current ETag answers the record again instead of 304.
    Deviation(
        "if-none-match-ignored-on-get",
        "not_modified",
        3,
        3,
        on_request=_drop_header("if-none-match", "GET"),
    ),
    Deviation(
        "record-skipped-at-page-boundary",
        "listing_exactly_once",
        1,
        3,
        on_response=_skip_page_boundary,
    ),
    Deviation(
        "tombstones-missing-from-changes",
        "changes_since_complete",
        3,
        6,
        on_response=_hide_tombstones,
    ),
    Deviation(
        "put-answers-an-old-timestamp",
        "timestamps_increase",
        1,
        3,
        on_response=_put_answer(lambda data: data.update(last_modified=1)),
    ),
]


def test_kinto_every_invariant_has_a_deviation() -> None:
    assert {deviation.invariant for deviation in DEVIATIONS} == INVARIANTS


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=lambda deviation: deviation.name)
def test_kinto_deviation_is_caught_named_and_shrunk(
    deviation: Deviation,
    kinto_service: Any,
    tmp_path: Path,
    rewriting_proxy: Callable[..., Any],
) -> None:
    """Each invariant fails when Kinto (behind a rewriting proxy) deviates in its way,
    with a short minimal sequence."""
    proxy = rewriting_proxy(
        kinto_service.url, on_request=deviation.on_request, on_response=deviation.on_response
    )
    steps = str(deviation.steps)
    # Bounded by examples; the budget only guards against a hang (a busy machine must
    # not cut the shrinking short).
    result = _run(proxy.url, tmp_path, "--seed", "1", "--steps", steps, "--time-budget", "300")
    assert result.code == 1, result.out + result.err
    fail = [line for line in result.lines if line.startswith("INVARIANT FAIL")]
    assert len(fail) == 1, result.out
    assert fail[0].startswith(f"INVARIANT FAIL {deviation.invariant} expected="), result.out
    assert "minimal sequence (" in result.out, result.out
    assert_shrunk(result.out, deviation.most_steps)
    assert "Traceback" not in result.out + result.err


# -- clients at once ------------------------------------------------------------------------


def _concurrently(url: str, tmp_path: Path, examples: int, *options: str) -> Completed:
    """``run --concurrency 3`` for ``examples`` programs or until a failure: clients run
    the model's commands at once (writes, batches, reads, changes) and list the
    collection; every history must be linearizable."""
    args = ("--seed", "1", "--concurrency", "3", "--time-budget", "300", *options)
    return _run(url, tmp_path, *args, "--examples", str(examples))


# Examples: about what 7 s ran on an idle machine (a budget of 10 s found too few on a busy
# one, and the run then checked nothing).
@pytest.mark.parametrize(
    ("faults", "examples"), [((), 40), (("--faults", "all"), 20)], ids=["plain", "faults"]
)
def test_kinto_concurrent_histories_are_linearizable_one_request_at_a_time(
    kinto_service: Any,
    tmp_path: Path,
    rewriting_proxy: Callable[..., Any],
    faults: tuple[str, ...],
    examples: int,
) -> None:
    """With Kinto serving one request at a time (a proxy in front of it lets no two
    overlap), every concurrent history has a linearization, also with faults: the model
    functions raise no false alarm on real answers."""
    proxy = rewriting_proxy(kinto_service.url, serialize=True)
    result = _concurrently(proxy.url, tmp_path, examples, *faults)
    assert result.code == 0, result.out + result.err
    assert any(line.startswith("INVARIANT PASS linearizable checks=") for line in result.lines)


def test_kinto_batches_at_once_interleave_on_the_memory_backend(
    kinto_service: Any, tmp_path: Path
) -> None:
    """A real deviation (README, "Real services"): Kinto documents that "the whole batch
    of requests is executed under one transaction only", yet with its memory backend
    a batch that writes a record, reads it back and writes another sees another client's
    write land in between, or a listing sees half of it. A race, found in seconds (in
    about 11 programs; shrinking it takes a minute, and no assertion needs it: a budget of
    60 s cuts it short, well after the finding on any machine)."""
    args = ("--seed", "1", "--concurrency", "3", "--time-budget", "60")
    result = _run(kinto_service.url, tmp_path, *args, "--examples", "100000")
    assert result.code == 1, result.out + result.err
    fail = next(line for line in result.lines if line.startswith("INVARIANT FAIL "))
    assert fail.startswith("INVARIANT FAIL linearizable expected=linearizable actual="), fail
    program = result.out.split("parallel program", 1)[1].split("  trace: ", 1)[0]
    assert "batch(" in program, result.out
