"""Kinto: records, ETags, paginated listings and the ``_since`` change feed of a real Kinto.

Kinto (https://kinto.readthedocs.io, PyPI ``kinto``) stores JSON records in collections
and documents how clients keep in sync with it: every change gets a server timestamp that
is unique and increases within a collection; ``If-Match: "<timestamp>"`` makes a write
conditional (``412 Precondition Failed`` if the record changed meanwhile) and
``If-None-Match: *`` makes a PUT create-only; ``If-None-Match: "<timestamp>"`` on a read
answers ``304 Not Modified`` while nothing changed; listings page through ``Next-Page``
headers; ``?_since=<timestamp>`` lists every record changed after it, with a tombstone
``{"id": ..., "deleted": true}`` for each one deleted. This model drives those promises.

Start Kinto (memory backend, basic auth, two records per page) and run the model::

    python3 models/real/serve.py kinto --port 8888
    propworkload run models/real/kinto.py --url http://127.0.0.1:8888
    propworkload explore models/real/kinto.py --url http://127.0.0.1:8888 --faults all
    APP_URL=http://127.0.0.1:8888 python3 models/real/kinto.py

The URL is the server's root (the model adds ``/v1``). There is no embedded service: a URL
(``--url`` or ``APP_URL``) is required. Credentials: basic auth as ``$KINTO_USER``
(default ``propworkload``) with ``$KINTO_PASSWORD`` (default ``propworkload``); with
Kinto's basicauth policy any pair is an account, so the defaults work with serve.py. Each
example works in a bucket of its own, named after ``self.tenant`` (``kt_<hex>``), with
one collection ``items``, both created by ``reset()`` (a Kinto that refuses them stops
the run with exit status 3) and deleted when the example ends (Kinto's memory backends
scan everything they hold on some requests: buckets left behind slow a long run down).

Rules: ``write`` one record (``a``, ``b`` or ``c``) by PUT, PATCH or DELETE, plain or
conditional on the ETag the client last saw (``current``), an older one (``stale``), or
``If-None-Match: *``; ``batch`` several writes in one ``POST /v1/batch``; ``read`` a
record, possibly with ``If-None-Match``; ``changes_since`` lists the changes of the last
few steps. After every step the invariant pulls the full listing, page by page (later
pages with ``If-Match`` on the first one's ETag, as Kinto advises, starting over on 412),
and, if the collection's ETag moved, the changes since the previous one. The reference
model is a frozen ``Collection``: the live records, the tombstones, the timestamps the
service gave them (learned from its answers and from the listing: the server assigns
them), the order of the changes, and the collection ETag observed after each step.
Rules are few, and each example starts in an empty collection, so that a failure
shrinks to the few steps that show it.

Invariants:

- ``read_your_writes``: a write's answer shows what was written (PUT replaces, PATCH
  merges, DELETE answers a tombstone; 404 for a PATCH or DELETE of no record), and a read
  shows the record as last written (404 once deleted);
- ``stale_write_rejected``: a conditional write is refused with 412 exactly when its
  precondition fails (a stale ``If-Match``, ``If-None-Match: *`` on a live record) and the
  record is left as it was; one on the current ETag is taken;
- ``not_modified``: a read with the record's current ETag answers 304, with an older one
  the record;
- ``listing_exactly_once``: the full paginated listing holds every live record exactly
  once, as last written, and no deleted one;
- ``changes_since_complete``: ``_since=<ETag>`` lists every record changed after it (with
  its latest data) and a tombstone for every record deleted after it, each once, and
  nothing changed before it;
- ``timestamps_increase``: each write's timestamp exceeds every timestamp observed before
  it was sent; a listing's timestamps are unique and none exceeds its ETag, which never
  goes back.

Faults (``--faults all``): requests are retried (PUT, PATCH and DELETE by id are
idempotent but for the timestamp; a batch of them too). When a retry is answered, the
earlier attempt may have landed, so its conditional write may rightly get 412 and its
DELETE 404; when no attempt is answered the write is kept pending in ``Possible`` and the
listing after the step settles it. A duplicated unconditional write only moves the
record's timestamp: the model takes timestamps from the listing. An attempt that failed
after it may have been sent (a reset, a timeout) may still land later, even after the
step: its record may then get a new timestamp with the same data, so the model neither
sends that record's ETag as current nor minds the record showing up again in changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import UNKNOWN, Model, Possible, invariant, main, operation, rule, sometimes

#: The records the rules write and read.
IDS = st.sampled_from(("a", "b", "c"))
#: How ``write`` writes: the method, and the precondition it sends.
HOW = st.sampled_from(
    (
        "put",
        "delete",
        "patch",
        "put if-match current",
        "put if-match stale",
        "put if-none-match *",
        "delete if-match current",
        "delete if-match stale",
        "patch if-match current",
        "patch if-match stale",
    )
)
#: The collection each example's bucket holds.
COLLECTION = "items"
#: A listing that has not ended after this many pages (of two) never will.
MAX_PAGES = 50
#: Times a listing starts over when the collection changed between its pages.
RESTARTS = 3
#: Concurrent mode: reads of x between the two writes of a ``put_both`` batch.
READ_BACKS = 4

PRECONDITION_FAILED = "412 Precondition Failed"
NOT_FOUND = "404 Not Found"
NOT_MODIFIED = "304 Not Modified"
#: ``Collection.etag`` of a live record whose timestamp the model does not know for sure.
UNKNOWN_ETAG = "unknown"

#: A record's data (without ``id`` and ``last_modified``), as sorted (field, value) pairs.
Fields = tuple[tuple[str, str], ...]


@attrs.frozen
class Op:
    """One write, as sent alone or in a batch."""

    #: Unique within an example; the write's value is ``v<number>``.
    number: int
    method: str  # PUT, PATCH or DELETE
    record_id: str
    if_match: int | None = None
    if_none_match: bool = False
    #: The highest timestamp the client had observed when it sent the write.
    seen: int = 0

    @property
    def value(self) -> str:
        return f"v{self.number}"

    @property
    def conditional(self) -> bool:
        return self.if_match is not None or self.if_none_match

    def body(self) -> dict[str, Any] | None:
        """PUT replaces the data with ``{"value": ...}``; PATCH merges ``{"note": ...}``."""
        if self.method == "DELETE":
            return None
        return {"data": {"value" if self.method == "PUT" else "note": self.value}}

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.if_match is not None:
            headers["If-Match"] = f'"{self.if_match}"'
        if self.if_none_match:
            headers["If-None-Match"] = "*"
        return headers


@attrs.frozen
class Entry:
    """A record (or, with no fields, a tombstone) as the model expects it."""

    fields: Fields
    #: Its timestamp (``last_modified``, its ETag); None until the service tells it.
    ts: int | None
    #: The order of its last change in the collection (compared with ``marks``).
    rev: int
    #: A timestamp it had before (or, new, one the client saw before creating it): the
    #: ETag a client that missed the last change sends.
    older: int
    #: The write that made this version: the same write landing again (a duplicate, or a
    #: retry after an attempt whose answer was lost) only moves the timestamp.
    by: int
    #: That write may still land again, later (an attempt of it failed after it may have
    #: been sent): the record may get a new timestamp, with the same data, at any time.
    echo: bool = False

    def view(self, record_id: str) -> dict[str, Any]:
        if not self.fields:
            return {"id": record_id, "deleted": True}
        return {**dict(self.fields), "id": record_id}


@attrs.frozen
class Collection:
    """The reference model: live records and tombstones by id, the number of changes so
    far, and the collection ETags observed (each -> the number of changes before it)."""

    records: dict[str, Entry] = attrs.field(factory=dict)
    deleted: dict[str, Entry] = attrs.field(factory=dict)
    rev: int = 0
    marks: dict[int, int] = attrs.field(factory=dict)

    def answer(self, op: Op) -> Any:
        """What the service should answer ``op``: the record's data (without
        ``last_modified``), a tombstone, or the error (a string)."""
        live = self.records.get(op.record_id)
        if op.if_none_match and live is not None:
            return PRECONDITION_FAILED
        if op.method != "PUT" and live is None:
            return NOT_FOUND
        if op.if_match is not None and (live is None or live.ts != op.if_match):
            return PRECONDITION_FAILED
        if op.method == "DELETE":
            return {"id": op.record_id, "deleted": True}
        return {**dict(_written(op, live)), "id": op.record_id}

    def apply(self, op: Op, ts: int | None, echo: bool = False) -> Collection:
        """The collection once ``op`` landed, at timestamp ``ts`` (None: unknown); with
        ``echo``, a copy of it may land again later."""
        if isinstance(self.answer(op), str):
            return self
        rid = op.record_id
        live = self.records.get(rid)
        previous = live or self.deleted.get(rid)
        if live is not None and live.by == op.number:
            # The same write again: only the timestamp moves.
            again = attrs.evolve(live, ts=ts, echo=live.echo or echo)
            return attrs.evolve(self, records={**self.records, rid: again})
        if previous is None:
            older = op.seen
        else:
            older = previous.ts if previous.ts is not None else previous.older
        rev = self.rev + 1
        records = {k: v for k, v in self.records.items() if k != rid}
        deleted = {k: v for k, v in self.deleted.items() if k != rid}
        if op.method == "DELETE":
            deleted[rid] = Entry((), ts, rev, older, op.number)
        else:
            records[rid] = Entry(_written(op, live), ts, rev, older, op.number, echo)
        return attrs.evolve(self, records=records, deleted=deleted, rev=rev)

    def run(
        self, ops: list[Op], stamps: list[int | None] | None = None, echo: bool = False
    ) -> tuple[list[Any], Collection]:
        """The answers to ``ops`` sent in order, and the collection after them."""
        state, answers = self, []
        for i, op in enumerate(ops):
            answers.append(state.answer(op))
            state = state.apply(op, stamps[i] if stamps else None, echo)
        return answers, state

    def etag(self, record_id: str, which: str) -> int | str | None:
        """The ETag a client sends for the record: ``current`` (the last it saw) or
        ``stale`` (an older one); None if the record never existed."""
        live = self.records.get(record_id)
        if live is not None:
            if which == "stale":
                return live.older
            # A timestamp a late copy of the write may have moved is no sure ETag.
            return live.ts if live.ts is not None and not live.echo else UNKNOWN_ETAG
        dead = self.deleted.get(record_id)
        if dead is None:
            return None
        if which == "stale" or dead.ts is None:
            return dead.older
        return dead.ts

    def read(self, record_id: str, etag: int | None) -> Any:
        """What ``GET`` of the record answers (with ``If-None-Match: etag``)."""
        live = self.records.get(record_id)
        if live is None:
            return NOT_FOUND
        if etag is not None and live.ts == etag:
            return NOT_MODIFIED
        return live.view(record_id)

    def listing(self) -> list[dict[str, Any]]:
        """The full listing's records (without ``last_modified``), by id."""
        return [entry.view(rid) for rid, entry in sorted(self.records.items())]

    def changes_since(self, etag: int) -> list[dict[str, Any]] | None:
        """What ``_since=etag`` lists (by id): the records and tombstones changed after
        the collection had that ETag; None if the model never observed it."""
        mark = self.marks.get(etag)
        if mark is None:
            return None
        changed = [
            entry.view(rid)
            for entries in (self.records, self.deleted)
            for rid, entry in entries.items()
            if entry.rev > mark
        ]
        return sorted(changed, key=lambda item: item["id"])

    def changes_agree(self, etag: int, listed: list[dict[str, Any]]) -> bool:
        """Whether ``_since=etag`` may list ``listed`` (by id): the changes since, and
        perhaps records whose last write may have landed again meanwhile."""
        expected = self.changes_since(etag)
        if expected is None or listed == expected:
            return expected is not None
        rest = list(listed)
        for rid, entry in self.records.items():
            view = entry.view(rid)
            if entry.echo and view not in expected and view in rest:
                rest.remove(view)
        return rest == expected

    def learn(self, listed: list[dict[str, Any]]) -> Collection | None:
        """This collection with the timestamps the listing shows, or None if the listing
        contradicts it."""
        if _by_id(listed) != self.listing():
            return None
        records = {
            item["id"]: attrs.evolve(self.records[item["id"]], ts=item.get("last_modified"))
            for item in listed
        }
        return attrs.evolve(self, records=records)

    def mark(self, etag: int) -> Collection:
        """Note that the collection had ETag ``etag`` after the changes so far."""
        if etag in self.marks:
            return self
        return attrs.evolve(self, marks={**self.marks, etag: self.rev})


class Retryable(httpx.TransportError):
    """Kinto asked the client to retry (409 on two creates of one id at once, 503): the
    request's outcome is unknown."""


def _written(op: Op, live: Entry | None) -> Fields:
    """The fields a PUT or PATCH leaves: PUT replaces them, PATCH merges into them."""
    if op.method == "PUT" or live is None:
        return (("value", op.value),)
    return tuple(sorted({**dict(live.fields), "note": op.value}.items()))


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    """A record as the service shows it, without its (server-assigned) timestamp."""
    return {k: v for k, v in item.items() if k != "last_modified"}


def _by_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without timestamps, sorted by id (a repeated record stays repeated)."""
    return sorted((_strip(item) for item in items), key=lambda item: str(item.get("id")))


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """The response, if its status is one Kinto documents for this call."""
    if response.status_code not in statuses:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url.path} returned {response.status_code}, "
            f"expected {' or '.join(map(str, statuses))}: {response.text[:200]}"
        )
    return response


def _answer(status: int, body: Any) -> tuple[Any, int | None]:
    """A write's answer as the model compares it, and the timestamp it gave."""
    if status == 412:
        return PRECONDITION_FAILED, None
    if status == 404:
        return NOT_FOUND, None
    data = body["data"]
    return _strip(data), data.get("last_modified")


def _etag(response: httpx.Response) -> int:
    return int(response.headers["ETag"].strip('"'))


def _one(values: list[Any]) -> Any:
    """A single write's answer shown alone, a batch's as a list."""
    return values[0] if len(values) == 1 else values


class Kinto(Model):
    """Records of one Kinto collection written (plain, conditional, batched), read and
    listed, compared with a frozen ``Collection`` after every step."""

    sample = None
    tenant_prefix = "kt_"

    def __init__(self) -> None:
        super().__init__()  # runs reset(): the example's bucket and collection exist
        self.stores = Possible(Collection())
        self.sent = 0
        #: The highest timestamp observed so far (answers, listings, ETags).
        self.max_seen = 0
        #: The collection's ETag after each step (the first: before the first step).
        self.marks: list[int] = []

    @property
    def collection(self) -> str:
        return f"/v1/buckets/{self.tenant}/collections/{COLLECTION}"

    def _authenticate(self) -> None:
        self.http.auth = httpx.BasicAuth(
            os.environ.get("KINTO_USER", "propworkload"),
            os.environ.get("KINTO_PASSWORD", "propworkload"),
        )

    def reset(self) -> None:
        """Authenticate, and create the example's bucket and its collection (one batch)."""
        self._authenticate()
        bucket = f"/buckets/{self.tenant}"
        setup = {
            "defaults": {"method": "PUT", "body": {"data": {}}},
            "requests": [
                {"path": bucket, "headers": {"If-None-Match": "*"}},
                {"path": f"{bucket}/collections/{COLLECTION}"},
            ],
        }
        response = self.http.post("/v1/batch", json=setup)
        statuses = []
        if response.status_code == 200:
            statuses = [answer.get("status") for answer in response.json().get("responses", [])]
        if statuses != [201, 201]:
            raise RuntimeError(
                f"creating bucket {self.tenant} and its collection got "
                f"{statuses or response.status_code}: {response.text[:120]} "
                "(is the URL the root of a Kinto server with basic auth? "
                "see models/real/serve.py; KINTO_USER/KINTO_PASSWORD set the account)"
            )

    def teardown(self) -> None:
        """Delete the example's bucket: Kinto's memory backends scan every object and
        permission they hold on some requests, so buckets left behind would slow a long
        run down (the trace keeps what the example did)."""
        with contextlib.suppress(httpx.HTTPError):
            self.http.delete(f"/v1/buckets/{self.tenant}")

    # -- writes --------------------------------------------------------------------

    def _op(self, method: str, record_id: str, condition: str = "") -> Op:
        """The next write; for ``if-match <which>``, with the ETag the client would
        send (none, so unconditional, while the model is unsure which it is)."""
        self.sent += 1
        if_match = None
        if condition.startswith("if-match"):
            which = condition.split()[1]
            etags = self.stores.values(lambda s: s.etag(record_id, which))
            if len(etags) == 1 and etags[0] != UNKNOWN_ETAG:
                # A record never seen: the collection ETag the client last saw.
                if_match = self.max_seen if etags[0] is None else int(etags[0])
        return Op(
            self.sent,
            method,
            record_id,
            if_match=if_match,
            if_none_match=condition == "if-none-match *",
            seen=self.max_seen,
        )

    @rule(record_id=IDS, how=HOW)
    def write(self, record_id: str, how: str) -> None:
        """Write one record: ``put``, ``patch`` or ``delete``, plain or conditional
        (``if-match current``: the ETag the client last saw; ``if-match stale``: an
        older one; ``if-none-match *``: create only)."""
        method, _, condition = how.partition(" ")
        op = self._op(method.upper(), record_id, condition)
        url = f"{self.collection}/records/{record_id}"

        def send() -> httpx.Response:
            return self.http.request(op.method, url, json=op.body(), headers=op.headers())

        def parse(response: httpx.Response) -> tuple[list[Any], list[int | None]]:
            status = _expect(response, 200, 201, 404, 412).status_code
            answer, ts = _answer(status, response.json())
            return [answer], [ts]

        self._send([op], send, parse)

    @rule(record_ids=st.lists(IDS, min_size=1, max_size=3, unique=True), delete_last=st.booleans())
    def batch(self, record_ids: list[str], delete_last: bool) -> None:
        """Write several records in one ``POST /v1/batch``: a PUT each (the last one a
        DELETE with ``delete_last``)."""
        ops = [
            self._op("DELETE" if delete_last and i == len(record_ids) - 1 else "PUT", rid)
            for i, rid in enumerate(record_ids)
        ]
        base = f"/buckets/{self.tenant}/collections/{COLLECTION}/records"
        requests = []
        for op in ops:
            request: dict[str, Any] = {"path": f"{base}/{op.record_id}"}
            if op.method == "DELETE":
                request["method"] = "DELETE"
            else:
                request["body"] = op.body()
            requests.append(request)
        body = {"defaults": {"method": "PUT"}, "requests": requests}

        def parse(response: httpx.Response) -> tuple[list[Any], list[int | None]]:
            answers = _expect(response, 200).json()["responses"]
            if len(answers) != len(ops):
                raise AssertionError(f"{len(ops)} requests in the batch, {len(answers)} answers")
            parsed = []
            for sub in answers:
                if sub["status"] not in (200, 201, 404, 412):
                    raise AssertionError(f"a batched request got {sub['status']}: {sub['body']}")
                parsed.append(_answer(sub["status"], sub["body"]))
            return [a for a, _ in parsed], [ts for _, ts in parsed]

        self._send(ops, lambda: self.http.post("/v1/batch", json=body), parse)
        sometimes(delete_last and len(ops) > 1, "a batch wrote and deleted")

    def _send(
        self,
        ops: list[Op],
        request: Callable[[], httpx.Response],
        parse: Callable[[httpx.Response], tuple[list[Any], list[int | None]]],
    ) -> None:
        """Send the writes (retried), check their answers and move the model."""
        seen = self.max_seen
        attempts = 0

        def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return request()

        response = self.retry(send)
        key = ops[0].number

        def landed(state: Collection) -> Collection:
            return state.run(ops, echo=True)[1]

        if response is None:  # no attempt was answered: landed or not, now or later
            self.stores = self.stores.maybe(landed, key=key)
            return
        answers, stamps = parse(response)
        ids = {"bucket": self.tenant, "record": _one([op.record_id for op in ops])}

        applied = [ts for ts in stamps if ts is not None]
        self.check(
            "timestamps_increase",
            holds=all(b > a for a, b in zip([seen, *applied], applied, strict=False)),
            expected=f"increasing, each > {seen}",
            actual=_one(applied),
            **ids,
        )
        self.max_seen = max([self.max_seen, *applied])

        # An earlier attempt (whose answer was lost) may have landed before this one.
        before = self.stores.maybe(landed, key=key) if attempts > 1 else self.stores
        sometimes(attempts > 1, "a write was retried after a lost answer")

        def expected(state: Collection) -> list[Any]:
            return state.run(ops)[0]

        def verdicts(answers: list[Any]) -> list[str]:
            return [a if isinstance(a, str) else "applied" for a in answers]

        if any(op.conditional for op in ops):
            # Taken or refused, as the preconditions say.
            self.check(
                "stale_write_rejected",
                holds=verdicts(answers) in before.values(lambda state: verdicts(expected(state))),
                expected=before.expected(lambda state: _one(verdicts(expected(state)))),
                actual=_one(verdicts(answers)),
                **ids,
                if_match=_one([op.if_match for op in ops]),
            )
        self.check(
            "read_your_writes",
            holds=answers in before.values(expected),
            expected=before.expected(lambda state: _one(expected(state))),
            actual=_one(answers),
            **ids,
        )
        echo = attempts > 1  # an attempt before this one may land again, later
        self.stores = before.where(lambda state: expected(state) == answers).then(
            lambda state: state.run(ops, stamps, echo)[1], key=key
        )
        for op, answer in zip(ops, answers, strict=True):
            if op.conditional:
                sometimes(answer == PRECONDITION_FAILED, "a conditional write was refused")
                sometimes(not isinstance(answer, str), "a conditional write was taken")
                # Read it back whatever the answer (a rule's requests must not depend on
                # answers: faults are drawn per request).
                self._unchanged(op, refused=answer == PRECONDITION_FAILED)

    def _unchanged(self, op: Op, *, refused: bool) -> None:
        """After a conditional write: the record is as the model has it (after a 412, as
        it was: the refused write changed nothing)."""
        url = f"{self.collection}/records/{op.record_id}"
        response = self.retry(lambda: self.http.get(url))
        if response is None:
            return
        status = _expect(response, 200, 404).status_code
        actual = NOT_FOUND if status == 404 else _strip(response.json()["data"])

        def expected(state: Collection) -> Any:
            return state.read(op.record_id, None)

        self.check(
            "stale_write_rejected" if refused else "read_your_writes",
            holds=actual in self.stores.values(expected),
            expected=self.stores.expected(expected),
            actual=actual,
            bucket=self.tenant,
            record=op.record_id,
            write=op.value,
        )
        self.stores = self.stores.where(lambda state: expected(state) == actual)

    # -- reads ---------------------------------------------------------------------

    @rule(record_id=IDS, if_none_match=st.sampled_from((None, "current", "stale")))
    def read(self, record_id: str, if_none_match: str | None) -> None:
        """Read one record; with ``If-None-Match`` and the ETag the client last saw
        (``current``) or an older one (``stale``)."""
        etag: int | None = None
        if if_none_match is not None:
            etags = self.stores.values(lambda s: s.etag(record_id, if_none_match))
            if len(etags) == 1 and etags[0] != UNKNOWN_ETAG:
                etag = self.max_seen if etags[0] is None else int(etags[0])
        headers = {"If-None-Match": f'"{etag}"'} if etag is not None else {}
        url = f"{self.collection}/records/{record_id}"
        response = self.retry(lambda: self.http.get(url, headers=headers))
        if response is None:
            return  # a read changes nothing: there is just nothing to compare
        status = _expect(response, 200, 304, 404).status_code
        if status == 200:
            actual: Any = _strip(response.json()["data"])
        else:
            actual = NOT_MODIFIED if status == 304 else NOT_FOUND

        def expected(state: Collection) -> Any:
            return state.read(record_id, etag)

        sometimes(actual == NOT_MODIFIED, "a read was answered 304 Not Modified")
        self.check(
            "read_your_writes" if etag is None else "not_modified",
            holds=actual in self.stores.values(expected),
            expected=self.stores.expected(expected),
            actual=actual,
            bucket=self.tenant,
            record=record_id,
            etag=etag,
        )
        self.stores = self.stores.where(lambda state: expected(state) == actual)

    def _pages(
        self, params: dict[str, str], *, retried: bool
    ) -> tuple[list[dict[str, Any]], int, int] | None:
        """Every record of a listing, following ``Next-Page`` (on our own base URL), with
        the first page's ETag and the number of pages; None if a page went unanswered.

        Later pages carry ``If-Match`` with the first page's ETag, as Kinto advises: a
        412 says the collection changed meanwhile (a late copy of a write landed), and
        the listing starts over; so does one showing a record newer than its ETag (a
        write landed while the first page was read), but for the last time."""
        for attempt in range(1, RESTARTS + 1):
            listed = self._pages_once(params, retried=retried, last=attempt == RESTARTS)
            if not isinstance(listed, str):
                return listed
        return None

    def _pages_once(
        self, params: dict[str, str], *, retried: bool, last: bool
    ) -> tuple[list[dict[str, Any]], int, int] | str | None:
        path = f"{self.collection}/records"
        query: dict[str, str] | None = params
        items: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        etag = None
        for page in range(1, MAX_PAGES + 1):

            def send(
                path: str = path, query: dict[str, str] | None = query, headers: Any = headers
            ) -> httpx.Response:
                return self.http.get(path, params=query, headers=headers)

            response = self.retry(send) if retried else send()
            if response is None:
                return None
            if page > 1 and response.status_code == 412:
                return "restart"  # rare (a late copy of a write): no coverage marker
            _expect(response, 200)
            if etag is None:
                etag = _etag(response)
                headers = {"If-Match": f'"{etag}"'}
            items.extend(response.json()["data"])
            if any(item.get("last_modified", 0) > etag for item in items):
                # A write landed while the listing was read: start over, or after the
                # last attempt, give up on this listing (its timestamps cannot be
                # compared with its ETag).
                return None if last else "restart"
            following = response.headers.get("Next-Page")
            if not following:
                return items, etag, page
            path, query = httpx.URL(following).raw_path.decode("ascii"), None
        self.check(
            "listing_exactly_once",
            holds=False,
            expected=f"a listing that ends (at most {MAX_PAGES} pages)",
            actual=f"Next-Page after page {MAX_PAGES}",
            bucket=self.tenant,
            params=params,
        )
        return None

    @rule(last_steps=st.integers(min_value=2, max_value=5))
    def changes_since(self, last_steps: int) -> None:
        """List the changes (``_since``) of the last ``last_steps`` steps: after the
        collection ETag observed before them (at most: from the start of the example).
        The invariant checks each step's own changes."""
        if self.marks:  # else no listing was observed yet: no ETag to start from
            self._changes(self.marks[max(0, len(self.marks) - 1 - last_steps)], retried=True)

    def _changes(self, since: int, *, retried: bool) -> None:
        """Check what ``_since=since`` lists, page by page, against the model."""
        listed = self._pages({"_since": str(since)}, retried=retried)
        if listed is None:
            return
        items, _, pages = listed
        early = [item for item in items if not item.get("last_modified", 0) > since]
        actual = _by_id(items)

        def expected(state: Collection) -> list[dict[str, Any]] | None:
            return state.changes_since(since)

        sometimes(any(item.get("deleted") for item in items), "changes held a tombstone")
        sometimes(pages > 1, "changes took several pages")

        def agrees(state: Collection) -> bool:
            return state.changes_agree(since, actual)

        self.check(
            "changes_since_complete",
            holds=not early and any(agrees(state) for state in self.stores),
            expected=self.stores.expected(expected),
            actual=actual if not early else {"not changed since": early},
            bucket=self.tenant,
            since=since,
        )
        self.stores = self.stores.where(agrees)

    @invariant()
    def service_matches_model(self) -> None:
        """The full listing, page by page: every live record exactly once, as the model
        has it; the timestamps it shows teach the model the ones it did not know. Then,
        if the collection's ETag moved, the changes since the previous one."""
        listed = self._pages({}, retried=False)
        if listed is None:
            return
        items, etag, pages = listed
        stamps = [item.get("last_modified") for item in items]
        self.check(
            "timestamps_increase",
            holds=len(set(stamps)) == len(stamps)
            and all(isinstance(ts, int) and ts <= etag for ts in stamps)
            and etag >= self.max_seen,
            expected=f"unique timestamps <= ETag {etag}, ETag >= {self.max_seen}",
            actual=stamps,
            bucket=self.tenant,
        )
        sometimes(pages > 1, "the listing took several pages")
        self.stores = self.stores.refine(lambda state: state.learn(items))
        actual = _by_id(items)
        self.check(
            "listing_exactly_once",
            holds=actual in self.stores.values(Collection.listing),
            expected=self.stores.expected(Collection.listing),
            actual=actual,
            bucket=self.tenant,
        )
        self.max_seen = max(self.max_seen, etag)
        if self.marks and etag != self.marks[-1]:
            # What changed in the last step (an ETag that did not move: nothing did).
            self._changes(self.marks[-1], retried=False)
        self.marks.append(etag)
        self.stores = self.stores.then(lambda state: state.mark(etag))

    # -- concurrent mode (--concurrency K) ------------------------------------------
    # Clients at once write records x and y (alone, or both in one batch, which Kinto
    # runs "under one transaction"), read them and list the collection. The state is
    # each record's value; every history must be linearizable against it, so a listing
    # that shows half of a batch has no place in any order. Judged by values only: the
    # status of a write (201 created or 200 replaced, 200 or 404 for a delete) is decided
    # from a read before the write, which a concurrent request may overtake, and a 409
    # (two creates of one id at once) or 503 asks the client to retry: outcome unknown.
    # reset() makes every program's bucket before any client starts; teardown() deletes
    # it after the final observation, as it does for every example.

    model_state = dict
    final_operations = ("observe",)

    def _values(self) -> dict[str, Any]:
        """The collection's records as {id: value}, every page of the listing."""
        values: dict[str, Any] = {}
        url: str | None = f"{self.collection}/records"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = _expect(self.http.get(url), 200)
            for item in response.json()["data"]:
                values[item["id"]] = item.get("value")
            following = response.headers.get("Next-Page")
            url = None if following is None else httpx.URL(following).raw_path.decode()
        return values

    def _write(self, send: Callable[[], httpx.Response], *statuses: int) -> httpx.Response:
        response = send()
        if response.status_code in (409, 503):
            raise Retryable(f"{response.status_code}: {response.text[:120]}")
        return _expect(response, *statuses)

    @operation(record_id=st.sampled_from(["x", "y"]), value=st.sampled_from(["1", "2", "3"]))
    def put(self, record_id: str, value: str) -> str:
        self._authenticate()
        url = f"{self.collection}/records/{record_id}"
        written = self._write(lambda: self.http.put(url, json={"data": {"value": value}}), 200, 201)
        return str(written.json()["data"]["value"])

    @put.model
    def put(state: dict[str, str], output: Any, record_id: str, value: str) -> tuple[bool, Any]:
        return output is UNKNOWN or output == value, {**state, record_id: value}

    @operation(value=st.sampled_from(["1", "2", "3"]))
    def put_both(self, value: str) -> list[str]:
        """One batch: PUT x to ``value``, read x back (``READ_BACKS`` times: a batch that
        checks its own write, and takes long enough that another can run meanwhile on
        a busy machine), PUT y to ``value``. Returns the value each request saw."""
        self._authenticate()
        records = f"{self.collection}/records"[len("/v1") :]
        put = {"method": "PUT", "body": {"data": {"value": value}}}
        batch = {
            "requests": [
                {**put, "path": f"{records}/x"},
                *[{"method": "GET", "path": f"{records}/x"}] * READ_BACKS,
                {**put, "path": f"{records}/y"},
            ],
        }
        response = self._write(lambda: self.http.post("/v1/batch", json=batch), 200)
        answers = response.json()["responses"]
        statuses = [answer["status"] for answer in answers]
        if any(status in (409, 503) for status in statuses):
            raise Retryable(f"batch answered {statuses}")
        if any(status not in (200, 201, 404) for status in statuses):
            raise AssertionError(f"a batch answered {statuses}: {response.text[:200]}")
        # None: a read back found no x (another client's delete came in between).
        return [
            answer["body"]["data"]["value"] if answer["status"] != 404 else None
            for answer in answers
        ]

    @put_both.model
    def put_both(state: dict[str, str], output: Any, value: str) -> tuple[bool, Any]:
        ok = output is UNKNOWN or output == [value] * (READ_BACKS + 2)
        return ok, {**state, "x": value, "y": value}

    @operation(record_id=st.sampled_from(["x", "y"]))
    def get(self, record_id: str) -> str | None:
        self._authenticate()
        response = _expect(self.http.get(f"{self.collection}/records/{record_id}"), 200, 404)
        return response.json()["data"]["value"] if response.status_code == 200 else None

    @get.model
    def get(state: dict[str, str], output: Any, record_id: str) -> tuple[bool, Any]:
        return output is UNKNOWN or output == state.get(record_id), state

    @operation(record_id=st.sampled_from(["x", "y"]))
    def remove(self, record_id: str) -> None:
        self._authenticate()
        url = f"{self.collection}/records/{record_id}"
        self._write(lambda: self.http.delete(url), 200, 404)

    @remove.model
    def remove(state: dict[str, str], output: Any, record_id: str) -> tuple[bool, Any]:
        return True, {k: v for k, v in state.items() if k != record_id}

    @operation()
    def observe(self) -> dict[str, Any]:
        """List the collection (x and y fit in one page of two)."""
        self._authenticate()
        return self._values()

    @observe.model
    def observe(state: dict[str, str], output: Any) -> tuple[bool, Any]:
        return output is UNKNOWN or output == state, state


if __name__ == "__main__":
    main(Kinto)
