"""Kinto: records, ETags, paginated listings and the ``_since`` change feed of a real Kinto.

Kinto (https://kinto.readthedocs.io, PyPI ``kinto``) documents how clients keep in sync
with it: every change gets a timestamp, unique and increasing within a collection, which
is the record's ETag; ``If-Match: "<timestamp>"`` makes a write conditional (412 if the
record changed meanwhile), ``If-None-Match: *`` makes a PUT create-only, and
``If-None-Match: "<timestamp>"`` makes a read answer 304 while nothing changed; listings
page through ``Next-Page``; ``?_since=<timestamp>`` lists every record changed after it,
with a tombstone for each one deleted; ``POST /v1/batch`` runs its requests "under one
transaction". Start Kinto (memory backend, two records per page) and run the model::

    python3 models/real/serve.py kinto --port 8888
    propworkload run models/real/kinto.py --url http://127.0.0.1:8888 --faults all

The URL is the server's root (no embedded service). Basic auth as ``$KINTO_USER`` /
``$KINTO_PASSWORD`` (``propworkload``: any pair is an account). Each example works in a
bucket of its own (``self.tenant``), made by ``reset()`` and deleted by ``teardown()``.

Commands: ``write`` a record (``a``, ``b`` or ``c``) by PUT, PATCH or DELETE, plain or with
``If-Match`` on the ETag the client last saw (``current``) or an older one (``stale``), or
``If-None-Match: *``; ``batch`` writes in one request, reading each but the last back;
``read`` a record, perhaps with ``If-None-Match``; list the ``changes`` since an ETag
observed before. The observation lists the collection page by page, and the changes since
its previous ETag. The reference ``Collection`` holds each record or tombstone with its
timestamp (from a listing when no answer came), the order of changes, and the ETags seen:

- ``read_your_writes``: a write's answer shows what was written (PUT replaces, PATCH
  merges, DELETE answers a tombstone; PATCH or DELETE of no record 404); a read, also in a
  batch, shows the record as last written, timestamp included (404 once deleted);
- ``stale_write_rejected``: a conditional write gets 412 exactly when its precondition
  fails (an ETag not the record's, ``If-None-Match: *`` on a live record);
- ``not_modified``: a read with the record's ETag answers 304, with another the record;
- ``listing_exactly_once``: the listing's pages hold every live record once, as written;
- ``changes_since_complete``: ``_since=<ETag>`` lists every record changed after it, as
  last written, and a tombstone for each one deleted after it, each once, and nothing else;
- ``timestamps_increase``: a write's timestamp exceeds every one observed before; a
  listing's are unique and none exceeds its ETag, which never goes back.

With ``--faults``, writes are sent again while unanswered (so a conditional retry may
rightly get 412, a DELETE 404), and one unanswered or delivered twice may land unseen until
a listing tells. With ``--concurrency``, every history must be linearizable: on the memory
backend batches interleave with other requests (README, "Real services"), a finding.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import (
    UNKNOWN,
    Model,
    check,
    command,
    expect_status,
    from_state,
    main,
    observation,
    sampled_from_state,
    sometimes,
)

#: The records the commands write and read (three: a listing of them takes two pages).
IDS = st.sampled_from(("a", "b", "c"))
VALUES = st.sampled_from(("v1", "v2", "v3"))
#: How ``write`` writes: the method, and the precondition it sends.
IF_MATCH = [f"{m} if-match {w}" for m in ("put", "delete", "patch") for w in ("current", "stale")]
HOW = st.sampled_from(["put", "delete", "patch", "put if-none-match *", *IF_MATCH])
COLLECTION = "items"
#: Reads of a record a batch wrote, before its next write: a batch that checks its own
#: writes, and lasts long enough for another client's request to land inside it.
READ_BACKS = 4
#: A listing that has not ended after this many pages (of two) never will.
MAX_PAGES = 50
#: Times a listing starts over when the collection changed between its pages.
RESTARTS = 3
#: Seconds a write waits after a reset before it is sent again (or given up): an attempt
#: Kinto is still running would interleave with the next request, as batches do.
SETTLE = 0.5
STATUS = {304: "304 Not Modified", 404: "404 Not Found", 412: "412 Precondition Failed"}
NOT_FOUND, PRECONDITION_FAILED = STATUS[404], STATUS[412]

Item = dict[str, Any]


@attrs.frozen
class Entry:
    """A record as last written or, with ``fields`` None, its tombstone."""

    fields: tuple[tuple[str, str], ...] | None
    ts: int | None  # its timestamp (ETag): None until an answer or a listing shows it
    rev: int  # the order of the change that made it
    older: int  # an ETag it had before: what a client that missed the change sends


@attrs.frozen
class Collection:
    """The reference model: each record ever written, the number of changes, the highest
    timestamp observed, and the collection's ETags observed (with the changes before)."""

    entries: dict[str, Entry] = attrs.field(factory=dict)
    rev: int = 0
    seen: int = 0
    marks: tuple[tuple[int, int], ...] = ((0, 0),)

    def live(self, rid: str) -> Entry | None:
        entry = self.entries.get(rid)
        return entry if entry is not None and entry.fields is not None else None

    def etag(self, rid: str, which: str | None) -> int | None:
        """The ETag a client sends: the record's (``current``; None while unknown: the
        command waits), an older one (``stale``), the collection's for a record never
        written; 0 for none (Kinto takes ``If-Match: "0"`` for none, so no ETag is 0)."""
        entry = self.entries.get(rid)
        if which == "current" and entry is not None:
            return entry.ts
        return 0 if which is None else max(1, self.seen if entry is None else entry.older)

    def answer(self, how: str, rid: str, value: str, etag: int | None) -> Any:
        """What a write should answer, but its timestamp: the record, a tombstone, or
        the error status."""
        method, _, create = _parse(how)
        live = self.live(rid)
        if create and live is not None:
            return PRECONDITION_FAILED
        if method != "PUT" and live is None:
            return NOT_FOUND
        if etag and (live is None or live.ts != etag):
            return PRECONDITION_FAILED
        if method == "DELETE":
            return {"id": rid, "deleted": True}
        old = dict(live.fields or ()) if method == "PATCH" and live else {}
        return {**old, "value" if method == "PUT" else "note": value, "id": rid}

    def written(self, rid: str, answer: Any, ts: int | None) -> Collection:
        """The collection after a write that answered ``answer``, at ``ts``."""
        if isinstance(answer, str):
            return self
        old = self.entries.get(rid)
        older = self.seen if old is None else old.older if old.ts is None else old.ts
        fields = None if answer.get("deleted") else _fields(answer)
        entries = {**self.entries, rid: Entry(fields, ts, self.rev + 1, older)}
        return Collection(entries, self.rev + 1, max(self.seen, ts or 0), self.marks)

    def view(self, rid: str, shown: list[Item]) -> Item:
        """The record or tombstone as Kinto shows it, with a timestamp the model does not
        know taken from what the service showed."""
        entry, learnt = self.entries[rid], [i for i in shown if i.get("id") == rid]
        ts = entry.ts if entry.ts is not None or not learnt else learnt[0].get("last_modified")
        body = {"deleted": True} if entry.fields is None else dict(entry.fields)
        return {**body, "id": rid, "last_modified": ts}

    def listing(self, shown: list[Item]) -> list[Item]:
        return [self.view(rid, shown) for rid in sorted(self.entries) if self.live(rid)]

    def changes(self, since: int, shown: list[Item]) -> list[Item]:
        """What ``_since=since`` lists: what changed after the collection had ETag
        ``since`` (older than every ETag observed: everything)."""
        mark = max(rev for etag, rev in self.marks if etag <= since)
        changed = sorted(rid for rid, entry in self.entries.items() if entry.rev > mark)
        return [self.view(rid, shown) for rid in changed]

    def learn(self, shown: list[Item], etag: int | None = None) -> Collection:
        """The timestamps ``shown`` teaches; with ``etag``, the collection's ETag now."""
        entries, seen = dict(self.entries), max(self.seen, etag or 0)
        for item in shown:
            entry, ts = entries.get(item.get("id", "")), item.get("last_modified")
            same_kind = bool(item.get("deleted")) == (entry is not None and entry.fields is None)
            if entry and entry.ts is None and isinstance(ts, int) and same_kind:
                entries[item["id"]] = attrs.evolve(entry, ts=ts)
                seen = max(seen, ts)
        marks = self.marks
        if etag is not None and all(etag != known for known, _ in marks):
            marks = (*marks, (etag, self.rev))
        return Collection(entries, self.rev, seen, marks)


def _fields(answer: Item) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in answer.items() if k not in ("id", "last_modified")))


def _strip(answer: Any) -> Any:
    """An answer without its (server-assigned) timestamp."""
    if not isinstance(answer, dict):
        return answer
    return {k: v for k, v in answer.items() if k != "last_modified"}


def _by_id(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda item: str(item.get("id")))


def _parse(how: str) -> tuple[str, str | None, bool]:
    """``"put if-match stale"`` -> the method, which ETag it sends, whether create-only."""
    method, _, condition = how.partition(" ")
    which = condition.split()[-1] if condition.startswith("if-match") else None
    return method.upper(), which, condition == "if-none-match *"


def _write(state: Collection, out: Any, rid: str, how: str, value: str, etag: Any) -> Collection:
    """Check a write's answer (``how``, ``etag``: see ``write``), and move the model on."""
    expected = state.answer(how, rid, value, etag)
    if out is UNKNOWN:
        return state.written(rid, expected, None)
    if etag or how.endswith("*"):
        verdicts = [a if isinstance(a, str) else "taken" for a in (expected, out)]
        check("stale_write_rejected", expected=verdicts[0], actual=verdicts[1], record=rid)
    check("read_your_writes", expected=expected, actual=_strip(out), record=rid)
    ts = out.get("last_modified") if isinstance(out, dict) else None
    if not isinstance(expected, str):
        later = isinstance(ts, int) and ts > state.seen
        check("timestamps_increase", holds=later, expected=f"> {state.seen}", actual=ts)
    return state.written(rid, expected, ts if isinstance(ts, int) else None)


def _read(state: Collection, out: Any, rid: str, etag: int = 0) -> Collection:
    """Check what a read of the record answered (sent with ``If-None-Match: etag``)."""
    if out is UNKNOWN:
        return state
    live = state.live(rid)
    if live is None:
        expected: Any = NOT_FOUND
    elif etag and live.ts == etag:
        expected = STATUS[304]
    else:
        expected = state.view(rid, [out] if isinstance(out, dict) else [])
    name = "not_modified" if etag else "read_your_writes"
    check(name, expected=expected, actual=out, record=rid, etag=etag)
    return state.learn([out]) if isinstance(out, dict) else state


def _batch(record_ids: list[str], delete_last: bool) -> list[tuple[str, str]]:
    """A batch's requests: a PUT of each record (the last a DELETE with ``delete_last``),
    each but the last followed by ``READ_BACKS`` reads of it."""
    requests = []
    for i, rid in enumerate(record_ids, 1):
        last = i == len(record_ids)
        requests += [("delete" if delete_last and last else "put", rid)]
        requests += [] if last else [("get", rid)] * READ_BACKS
    return requests


def _answer(status: int, body: Any) -> Any:
    """A request's answer as the model compares it: the record, or the error status."""
    if status not in (200, 201, *STATUS):
        raise AssertionError(f"a request answered {status}: {str(body)[:200]}")
    return STATUS[status] if status in STATUS else body["data"]


class Retryable(httpx.TransportError):
    """No attempt answered, or Kinto said to retry (409, 503): the outcome is unknown."""


class Kinto(Model):
    """Records of one Kinto collection written (plain, conditional, batched), read,
    listed and followed through ``_since``, against a frozen ``Collection``."""

    sample = None
    tenant_prefix = "kt_"
    model_state = Collection

    @property
    def records(self) -> str:
        return f"/v1/buckets/{self.tenant}/collections/{COLLECTION}/records"

    def kinto(self) -> httpx.Client:
        """The HTTP client, authenticated (the clients of a parallel program too)."""
        user = os.environ.get("KINTO_USER", "propworkload")
        self.http.auth = httpx.BasicAuth(user, os.environ.get("KINTO_PASSWORD", "propworkload"))
        return self.http

    def reset(self) -> None:
        """Create the example's bucket and its collection, in one batch."""
        bucket = f"/buckets/{self.tenant}"
        requests = [
            {"path": bucket, "headers": {"If-None-Match": "*"}},
            {"path": f"{bucket}/collections/{COLLECTION}"},
        ]
        setup = {"defaults": {"method": "PUT", "body": {"data": {}}}, "requests": requests}
        response = self.kinto().post("/v1/batch", json=setup)
        ok = response.status_code == 200
        statuses = [a.get("status") for a in response.json().get("responses", [])] if ok else []
        if statuses != [201, 201]:
            raise RuntimeError(
                f"creating bucket {self.tenant} got {statuses or response.status_code}: "
                f"{response.text[:120]} (is the URL the root of a Kinto with basic auth? "
                "see models/real/serve.py; KINTO_USER/KINTO_PASSWORD set the account)"
            )

    def teardown(self) -> None:
        """Delete the example's bucket: Kinto's memory backend slows down with each one
        left behind (the trace keeps what the example did)."""
        with contextlib.suppress(httpx.HTTPError):
            self.kinto().delete(f"/v1/buckets/{self.tenant}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A write, sent again while unanswered or answered 409 or 503: its model
        function allows for earlier attempts having landed."""

        def attempt() -> httpx.Response:
            try:
                response = self.kinto().request(method, path, **kwargs)
            except httpx.NetworkError:
                time.sleep(SETTLE)  # a reset: Kinto may still be running the request
                raise
            statuses = [response.status_code]
            if path == "/v1/batch" and response.status_code == 200:
                statuses += [answer["status"] for answer in response.json()["responses"]]
            if 409 in statuses or 503 in statuses:
                raise Retryable(f"{method} {path} answered {statuses}: {response.text[:120]}")
            return response

        response = self.retry(attempt)
        if response is None:
            raise Retryable(f"{method} {path}: no attempt was answered")
        return response

    def _pages(self, params: dict[str, str]) -> tuple[int, list[Item]]:
        """Every item of a listing, through ``Next-Page``, and the first page's ETag.

        Later pages carry ``If-Match`` on that ETag, as Kinto advises: a 412, or an item
        newer than the ETag, says that a write landed meanwhile (one Kinto was still
        running after a reset), and the listing starts over (the last time, kept)."""
        for restart in range(RESTARTS):
            path, items, etag = str(httpx.URL(self.records, params=params)), [], 0
            headers: dict[str, str] = {}
            for _ in range(MAX_PAGES):
                response = self.kinto().get(path, headers=headers)
                if headers and response.status_code == 412:
                    break
                if not headers:
                    etag = int(expect_status(response, 200).headers["ETag"].strip('"'))
                    headers = {"If-Match": f'"{etag}"'}
                items += expect_status(response, 200).json()["data"]
                following = response.headers.get("Next-Page")
                if following:
                    path = httpx.URL(following).raw_path.decode("ascii")
                    continue
                sometimes(len(items) > 2, "a listing took several pages")
                if restart == RESTARTS - 1 or all(
                    item.get("last_modified", 0) <= etag for item in items
                ):
                    return etag, items
                break
            else:
                check("listing_exactly_once", holds=False, expected="an end", actual=params)
        raise Retryable("the collection kept changing while it was listed")

    @command(
        record_id=IDS,
        how=HOW,
        value=VALUES,
        etag=from_state(lambda state, record_id, how: state.etag(record_id, _parse(how)[1])),
    )
    def write(self, record_id: str, how: str, value: str, etag: int) -> Any:
        """PUT, PATCH or DELETE one record: plain, with ``If-Match: etag``, or with
        ``If-None-Match: *``."""
        method, _, create = _parse(how)
        headers = {"If-None-Match": "*"} if create else {}
        if etag:
            headers["If-Match"] = f'"{etag}"'
        body = {"data": {"value" if method == "PUT" else "note": value}}
        url = f"{self.records}/{record_id}"
        response = self._send(
            method, url, json=None if method == "DELETE" else body, headers=headers
        )
        status = expect_status(response, 200, 201, 404, 412).status_code
        sometimes(status == 412, "a conditional write was refused")
        sometimes(bool(headers) and status < 300, "a conditional write was taken")
        return _answer(status, response.json())

    @write.model
    def write(state: Collection, out: Any, record_id: str, how: str, value: str, etag: Any) -> Any:
        return _write(state, out, record_id, how, value, etag)

    @command(
        record_ids=st.lists(IDS, min_size=1, max_size=3, unique=True),
        delete_last=st.booleans(),
        value=VALUES,
    )
    def batch(self, record_ids: list[str], delete_last: bool, value: str) -> list[Any]:
        """PUT (or DELETE) several records in one ``POST /v1/batch``, reading them back."""
        path = self.records.removeprefix("/v1")
        requests = [
            {"method": method.upper(), "path": f"{path}/{rid}"}
            | ({"body": {"data": {"value": value}}} if method == "put" else {})
            for method, rid in _batch(record_ids, delete_last)
        ]
        response = self._send("POST", "/v1/batch", json={"requests": requests})
        answers = expect_status(response, 200).json()["responses"]
        if len(answers) != len(requests):
            raise AssertionError(f"{len(requests)} requests in a batch, {len(answers)} answers")
        sometimes(delete_last and len(record_ids) > 1, "a batch wrote and deleted")
        return [_answer(answer["status"], answer["body"]) for answer in answers]

    @batch.model
    def batch(
        state: Collection, out: Any, record_ids: list[str], delete_last: bool, value: str
    ) -> Any:
        requests = _batch(record_ids, delete_last)
        for i, (method, rid) in enumerate(requests):
            answer = UNKNOWN if out is UNKNOWN else out[i]
            if method == "get":
                state = _read(state, answer, rid)
            else:
                state = _write(state, answer, rid, method, value, 0)
        return state

    @command(
        record_id=IDS,
        which=st.sampled_from((None, "current", "stale")),
        etag=from_state(lambda state, record_id, which: state.etag(record_id, which)),
        idempotent=True,
    )
    def read(self, record_id: str, which: str | None, etag: int) -> Any:
        """GET one record; with ``If-None-Match`` on the ETag the client last saw
        (``current``) or an older one (``stale``)."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        response = self.kinto().get(f"{self.records}/{record_id}", headers=headers)
        status = expect_status(response, 200, 304, 404).status_code
        sometimes(status == 304, "a read was answered 304 Not Modified")
        return _answer(status, response.json() if status != 304 else None)

    @read.model
    def read(state: Collection, out: Any, record_id: str, which: Any, etag: Any) -> Collection:
        return _read(state, out, record_id, etag)

    @command(
        since=sampled_from_state(lambda state: [etag for etag, _ in state.marks]),
        idempotent=True,
    )
    def changes(self, since: int) -> list[Item]:
        """List the changes since a collection ETag observed before (0: the start)."""
        items = self._pages({"_since": str(since)})[1]
        sometimes(any(item.get("deleted") for item in items), "changes held a tombstone")
        return items

    @changes.model
    def changes(state: Collection, out: Any, since: int) -> Collection | None:
        if out is UNKNOWN:
            return None
        expected = state.changes(since, out)
        check("changes_since_complete", expected=expected, actual=_by_id(out), since=since)
        return state.learn(out)

    @observation
    def collection(self) -> dict[str, Any]:
        """The full listing and, if its ETag moved, the changes since the previous one."""
        etag, records = self._pages({})
        since, changes = self.state.marks[-1][0], []
        if etag != since:
            changes = self._pages({"_since": str(since), "_before": str(etag + 1)})[1]
        return {"etag": etag, "records": records, "since": since, "changes": changes}

    @collection.model
    def collection(state: Collection, seen: dict[str, Any]) -> Collection:
        etag, records, changes = seen["etag"], seen["records"], seen["changes"]
        stamps = [item.get("last_modified") for item in records]
        ordered = all(isinstance(ts, int) and ts <= etag for ts in stamps) and etag >= state.seen
        bound = f"unique timestamps <= ETag {etag}, ETag >= {state.seen}"
        unique = len(set(stamps)) == len(stamps)
        check("timestamps_increase", holds=ordered and unique, expected=bound, actual=stamps)
        check("listing_exactly_once", expected=state.listing(records), actual=_by_id(records))
        changed = state.changes(seen["since"], changes)
        check("changes_since_complete", expected=changed, actual=_by_id(changes))
        return state.learn(records + changes, etag)


if __name__ == "__main__":
    main(Kinto)
