"""etcd: a key-value store whose revisions only grow and whose old revisions stay readable.

A model of etcd's v3 key-value API through its JSON gateway (``POST /v3/kv/put``,
``/v3/kv/range``, ``/v3/kv/deleterange``, ``/v3/kv/txn``, ``/v3/kv/compaction``), as
documented at https://etcd.io/docs/v3.4/learning/api/ and api_guarantees/. Start an etcd and
run it::

    python3 models/real/serve.py etcd --port 2379          # or any etcd v3.4+
    propworkload run models/real/etcd.py --url http://127.0.0.1:2379
    propworkload explore models/real/etcd.py --url http://127.0.0.1:2379 --faults all
    propworkload explore models/real/etcd.py --url http://127.0.0.1:2379 --concurrency 3

On the gateway, keys and values are base64, 64-bit integers arrive as strings, and fields
whose value is zero or false are left out (``"succeeded"`` of a failed transaction, the
``"count"`` of an empty range).

Each example works under its own key prefix (``self.tenant`` + ``/``), so examples, runs
and other users of the cluster never see each other's keys; revisions are the cluster's,
so the model learns them from answers rather than predicting them. Compaction is the
cluster's too: the ``compact`` rule discards old revisions of every key, so point the
model at an etcd of its own (``serve.py``), never at one that others (a Kubernetes) use.
Other clients' compactions are allowed for: a read refused as compacted that the
example's own compactions do not explain is checked by asking etcd to compact just above
it, which it refuses only if the history there is already gone. The reference model is
a frozen ``Keyspace``: each key's value, version (puts since it was created) and create
and modification revisions, and every write of the example with its revision. Checks:

- ``read_your_writes``: a read answers what the model says (value, version, revisions);
  ``keys_match_model`` compares the whole prefix after every step;
- ``revisions_grow``: no answer shows an older revision than one seen before, and a write
  gets a newer revision than any seen before it was sent;
- ``cas_matches_model``: a transaction comparing a key's modification revision succeeds
  exactly when the model says the key still has that revision (compare-and-swap);
- ``old_revisions_readable``: a read at an earlier revision answers the value the key had
  then (multi-version concurrency control);
- ``compacted_revision_refused``: once compacted up to R, a read below R fails with
  etcd's documented error ("mvcc: required revision has been compacted").

Faults: etcd's ``put`` is not idempotent (no request ids over the gateway): a put
delivered twice takes effect twice, which adds a revision and a version, with the same
value. So, like etcd's own client, the model sends a write once and, when its answer is
lost, keeps it pending (``Possible``: it may land now, later or never); reads are retried.
A duplicated write is a pending second write, and the next read decides. The duplicates
it knows of are the tool's own (``duplicate`` fault); a real network that silently
delivers a request twice would show up as a deviation.

Concurrent mode (``--concurrency K``): clients put, read, delete and compare-and-swap two
shared keys at once; every history must be linearizable (etcd guarantees linearizable
key-value operations) against a map of keys to (value, modification revision), where
each write's revision is newer than every revision before it in the linearization.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import UNKNOWN, Model, Possible, invariant, main, operation, rule, sometimes

#: The keys rules use, under the example's prefix.
KEYS = st.sampled_from(("a", "b"))
#: How far back a read at an old revision or a compaction goes: 0 is the latest revision
#: a write of the example got, 1 the one before, and so on.
BACK = st.integers(min_value=0, max_value=3)
#: The modification revision a compare-and-swap compares with: the key's current one,
#: an older one (a client that missed a write), or 0 ("the key does not exist").
BASED_ON = st.sampled_from(("current", "stale", "absent"))

COMPACTED = "required revision has been compacted"
#: Statuses of the gateway's temporary refusals: the request may or may not take effect.
TEMPORARY = frozenset((429, 503, 504))


class Unavailable(httpx.TransportError):
    """etcd refused a request for now (overloaded, no leader, timed out): its outcome is
    unknown, as a lost answer's is."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(field: str | None) -> str:
    return base64.b64decode(field or "").decode()


def _int(field: Any) -> int:
    """A 64-bit integer as the gateway sends it: a string, or absent for zero."""
    return int(field or 0)


def _kv(kv: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """A key-value record of an answer: (key without the prefix, its view)."""
    return _text(kv["key"])[len(prefix) :], {
        "value": _text(kv.get("value")),
        "version": _int(kv.get("version")),
        "create_revision": _int(kv.get("create_revision")),
        "mod_revision": _int(kv.get("mod_revision")),
    }


@attrs.frozen
class Entry:
    """A live key as the model expects it. Revisions are None until an answer shows
    them (a put whose answer was lost)."""

    value: str
    version: int
    created: int | None
    modified: int | None

    def view(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "version": self.version,
            "create_revision": self.created,
            "mod_revision": self.modified,
        }


@attrs.frozen
class Write:
    """A write of the example: a put (``value``) or delete (``value=None``) of ``key`` at
    ``revision`` (None: unknown), sent when ``floor`` was the newest revision seen."""

    key: str
    value: str | None
    revision: int | None
    floor: int


def _agrees(entry: Entry | None, shown: dict[str, Any] | None) -> bool:
    """Whether an answer's view of a key fits the model's entry (unknown revisions fit
    any)."""
    if entry is None or shown is None:
        return entry is None and shown is None
    return (
        entry.value == shown["value"]
        and entry.version == shown["version"]
        and entry.created in (None, shown["create_revision"])
        and entry.modified in (None, shown["mod_revision"])
    )


@attrs.frozen
class Keyspace:
    """The reference model: the example's keys, its writes, and how far it compacted."""

    entries: dict[str, Entry] = attrs.field(factory=dict)
    writes: tuple[Write, ...] = ()
    #: Reads below this revision must fail: a compaction up to it took effect.
    compacted: int = 0

    def view(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        return None if entry is None else entry.view()

    def listing(self) -> dict[str, dict[str, Any]]:
        return {key: entry.view() for key, entry in sorted(self.entries.items())}

    def put(self, key: str, value: str, revision: int | None, floor: int) -> Keyspace:
        old = self.entries.get(key)
        entry = Entry(
            value=value,
            version=1 if old is None else old.version + 1,
            created=revision if old is None else old.created,
            modified=revision,
        )
        return attrs.evolve(
            self,
            entries={**self.entries, key: entry},
            writes=(*self.writes, Write(key, value, revision, floor)),
        )

    def delete(self, key: str, revision: int | None, floor: int) -> Keyspace:
        if key not in self.entries:
            return self
        entries = {k: e for k, e in self.entries.items() if k != key}
        return attrs.evolve(
            self, entries=entries, writes=(*self.writes, Write(key, None, revision, floor))
        )

    def compact(self, revision: int) -> Keyspace:
        return attrs.evolve(self, compacted=max(self.compacted, revision))

    def revisions(self) -> list[int]:
        """The revisions the example's writes are known to have, newest last."""
        return sorted({w.revision for w in self.writes if w.revision is not None})

    def values_at(self, key: str, revision: int) -> frozenset[str | None]:
        """What reading ``key`` at ``revision`` may answer: its value then (None: it did
        not exist). More than one when a write of unknown revision may come before."""
        latest: tuple[int, str | None] = (0, None)
        unsure: set[str | None] = set()
        for write in self.writes:
            if write.key != key:
                continue
            if write.revision is None:
                if write.floor < revision:
                    unsure.add(write.value)
            elif latest[0] <= write.revision <= revision:
                latest = (write.revision, write.value)
        return frozenset({latest[1]} | unsure)

    def agrees_with(self, listed: dict[str, dict[str, Any]]) -> Keyspace | None:
        """This keyspace with the revisions it did not know taken from a listing of the
        prefix; None if the listing contradicts it."""
        if set(listed) != set(self.entries):
            return None
        entries = {}
        learned: dict[tuple[str, str], int] = {}
        for key, entry in self.entries.items():
            shown = listed[key]
            if not _agrees(entry, shown):
                return None
            if entry.modified is None:
                learned[key, entry.value] = shown["mod_revision"]
            entries[key] = Entry(
                entry.value, entry.version, shown["create_revision"], shown["mod_revision"]
            )
        if entries == self.entries:
            return self
        writes = list(self.writes)
        for i in range(len(writes) - 1, -1, -1):  # the latest write of that value
            write = writes[i]
            found = learned.pop((write.key, write.value or ""), None) if write.value else None
            if found is not None and write.revision is None:
                writes[i] = attrs.evolve(write, revision=found)
        return attrs.evolve(self, entries=entries, writes=tuple(writes))


def _fault(response: httpx.Response) -> str | None:
    """The kind of fault the tool injected into the request (``--faults``), if any."""
    fault = response.request.extensions.get("propworkload.fault")
    return getattr(fault, "kind", None)


def _error(response: httpx.Response) -> str:
    """The gateway's error message of a refused request ("" for a 200)."""
    if response.status_code == 200:
        return ""
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


class Etcd(Model):
    """Puts, deletes, compare-and-swaps, reads (now and at old revisions) and compactions
    under one key prefix per example, against a reference ``Keyspace``."""

    tenant_prefix = "pw_"

    def __init__(self) -> None:
        super().__init__()
        self.spaces = Possible(Keyspace())
        self.sent = 0
        #: The newest revision any answer showed.
        self.seen = 0
        #: A read refused as compacted that this example's compactions do not explain.
        self.unexplained: tuple[str, int] | None = None

    # -- talking to etcd ---------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"{self.tenant}/"

    def _call(
        self, path: str, body: dict[str, Any], *, write: bool = False
    ) -> tuple[httpx.Response | None, int, int]:
        """POST ``body`` to the gateway through ``self.retry``: a read until it is
        answered, a ``write`` once (as etcd's own client does: its writes are not
        idempotent, and every copy that may have landed is one more possibility the model
        must carry). Returns the answer (None if none came), how many earlier attempts
        may have reached etcd before the answered one, and how many copies of it may
        reach etcd after it (the tool's ``duplicate`` fault). etcd's temporary refusals
        (429, 503, 504: overloaded, no leader, timed out) leave the outcome unknown, as a
        lost answer does."""
        attempts = 0

        def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            response = self.http.post(path, json=body)
            if response.status_code in TEMPORARY:
                raise Unavailable(f"{response.status_code} {_error(response)}")
            return response

        response = self.retry(send, attempts=1 if write else None)
        if response is None:
            return None, attempts, 0
        return response, attempts - 1, int(_fault(response) == "duplicate")

    def _observe(self, response: httpx.Response, *, write_floor: int | None = None) -> int:
        """Check the answer's revision: never older than one seen before, and for a write
        newer than any seen before it was sent. Returns it."""
        revision = _int(response.json()["header"].get("revision"))
        if write_floor is None:
            self.check(
                "revisions_grow",
                holds=revision >= self.seen,
                expected=f">={self.seen}",
                actual=revision,
                prefix=self.prefix,
            )
        else:
            self.check(
                "revisions_grow",
                holds=revision > write_floor,
                expected=f">{write_floor}",
                actual=revision,
                prefix=self.prefix,
            )
        self.seen = max(self.seen, revision)
        return revision

    def _expect(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            request = response.request
            raise AssertionError(
                f"{request.url.path} returned {response.status_code}: {response.text[:200]}"
            )
        body: dict[str, Any] = response.json()
        return body

    def _range(self, key: str, revision: int = 0) -> httpx.Response | None:
        body: dict[str, Any] = {"key": _b64(self.prefix + key)}
        if revision:
            body["revision"] = revision
        response, _, _ = self._call("/v3/kv/range", body)
        return response

    # -- rules -------------------------------------------------------------------------

    @rule(key=KEYS, prev_kv=st.booleans())
    def put(self, key: str, prev_kv: bool) -> None:
        """Put a value of its own (``v1``, ``v2``, ...) at the key; with ``prev_kv``, the
        answer shows what it replaced."""
        self.sent += 1
        value = f"v{self.sent}"
        floor = self.seen
        body: dict[str, Any] = {"key": _b64(self.prefix + key), "value": _b64(value)}
        if prev_kv:
            body["prev_kv"] = True
        response, earlier, later = self._call("/v3/kv/put", body, write=True)

        def landed(space: Keyspace, revision: int | None = None) -> Keyspace:
            return space.put(key, value, revision, floor)

        if response is None:  # no answer: it may have been applied (even more than once)
            for _ in range(earlier):
                self.spaces = self.spaces.maybe(landed)
            return
        self._expect(response)
        revision = self._observe(response, write_floor=floor)
        if prev_kv:
            before = response.json().get("prev_kv")
            shown = None if before is None else _kv(before, self.prefix)[1]
            # Earlier copies of this put may have landed first: then it replaced itself.
            self.check(
                "read_your_writes",
                holds=any(
                    _agrees(space.entries.get(key), shown)
                    or (earlier and shown is not None and shown["value"] == value)
                    for space in self.spaces
                ),
                expected=self.spaces.expected(lambda space: space.view(key)),
                actual=shown,
                prefix=self.prefix,
                key=key,
                step="prev_kv",
            )
        self._landed(lambda space: space.put(key, value, revision, floor), landed, earlier + later)

    def _landed(self, answered: Any, copy: Any, copies: int) -> None:
        """The model after an answered write that ``copies`` other copies of the request
        may have repeated (with unknown revisions): each a pending write."""
        spaces = self.spaces
        for _ in range(copies):
            spaces = spaces.maybe(copy)
        self.spaces = spaces.then(answered)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        """Delete the key; the answer says how many keys went (0 or 1) and which."""
        floor = self.seen
        body = {"key": _b64(self.prefix + key), "prev_kv": True}
        response, earlier, _ = self._call("/v3/kv/deleterange", body, write=True)

        def gone(space: Keyspace, revision: int | None = None) -> Keyspace:
            return space.delete(key, revision, floor)

        if response is None:
            self.spaces = self.spaces.maybe(gone)
            return
        answer = self._expect(response)
        deleted = _int(answer.get("deleted"))
        revision = self._observe(response, write_floor=floor if deleted else None)
        shown = [_kv(kv, self.prefix)[1] for kv in answer.get("prev_kvs", [])]

        def fits(space: Keyspace) -> bool:
            if deleted:  # it deleted the key the model has, as the model has it
                return deleted == len(shown) == 1 and _agrees(space.entries.get(key), shown[0])
            # Nothing to delete; or a copy of this request deleted it first.
            return not shown and (key not in space.entries or earlier > 0)

        self.check(
            "read_your_writes",
            holds=any(fits(space) for space in self.spaces),
            expected=self.spaces.expected(lambda space: space.view(key)),
            actual=shown[0] if shown else f"deleted={deleted}",
            prefix=self.prefix,
            key=key,
            step="delete",
        )
        at = revision if deleted else None
        self.spaces = self.spaces.where(fits).then(lambda space: space.delete(key, at, floor))

    @rule(key=KEYS, based_on=BASED_ON)
    def compare_and_swap(self, key: str, based_on: str) -> None:
        """A transaction: if the key's modification revision is still the one the client
        read (or, ``absent``, it does not exist), put a new value, else read the key."""
        # Every rule sends the same requests whatever the service answered before (the
        # faults drawn for them must not depend on it): a client unsure of the revision
        # (an answer was lost) compares with the one it would have if the write landed.
        space = self.spaces.states[-1]
        modified = space.entries[key].modified or 0 if key in space.entries else 0
        if based_on == "absent":
            expect_revision = 0
        elif based_on == "stale":
            older = [
                w.revision
                for w in space.writes
                if w.key == key and w.revision is not None and w.revision < modified
            ]
            # An older revision the key had, or one it never had.
            expect_revision = older[-1] if older else max(modified - 1, 1)
        else:
            expect_revision = modified
        self.sent += 1
        value = f"v{self.sent}"
        floor = self.seen
        full = _b64(self.prefix + key)
        body = {
            "compare": [
                {"key": full, "target": "MOD", "mod_revision": expect_revision, "result": "EQUAL"}
            ],
            "success": [{"request_put": {"key": full, "value": _b64(value)}}],
            "failure": [{"request_range": {"key": full}}],
        }
        response, earlier, _ = self._call("/v3/kv/txn", body, write=True)

        def holds(space: Keyspace) -> bool:
            entry = space.entries.get(key)
            return (entry.modified if entry else 0) == expect_revision

        def swapped(space: Keyspace, revision: int | None = None) -> Keyspace:
            return space.put(key, value, revision, floor) if holds(space) else space

        if response is None:
            self.spaces = self.spaces.maybe(swapped)
            return
        answer = self._expect(response)
        succeeded = bool(answer.get("succeeded"))
        sometimes(succeeded and based_on != "absent", "a compare-and-swap took")
        sometimes(not succeeded and based_on == "stale", "a stale compare-and-swap was refused")
        revision = self._observe(response, write_floor=floor if succeeded else None)
        # A copy of the request that landed first (a retry) makes the answered one fail.
        verdicts = self.spaces.values(holds)
        self.check(
            "cas_matches_model",
            holds=succeeded in verdicts or (earlier > 0 and not succeeded),
            expected=self.spaces.expected(lambda s: "succeeded" if holds(s) else "failed"),
            actual="succeeded" if succeeded else "failed",
            prefix=self.prefix,
            key=key,
            mod_revision=expect_revision,
        )
        if succeeded:
            self.spaces = self.spaces.where(holds).then(
                lambda space: space.put(key, value, revision, floor)
            )
            return
        if earlier:
            self.spaces = self.spaces.then(swapped)
        else:
            self.spaces = self.spaces.where(lambda space: not holds(space))
        # A failed comparison ran the failure branch: a read of the key as it is.
        ranged = answer.get("responses", [{}])[0].get("response_range", {}).get("kvs", [])
        self._read_matches(key, ranged, step="compare_and_swap failed")

    def _read_matches(self, key: str, kvs: list[dict[str, Any]], **ids: Any) -> None:
        """Check a read of ``key`` (its ``kvs``: one record, or none) against the model."""
        shown = _kv(kvs[0], self.prefix)[1] if kvs else None
        self.check(
            "read_your_writes",
            holds=any(_agrees(space.entries.get(key), shown) for space in self.spaces),
            expected=self.spaces.expected(lambda space: space.view(key)),
            actual=shown,
            prefix=self.prefix,
            key=key,
            **ids,
        )
        self.spaces = self.spaces.where(lambda space: _agrees(space.entries.get(key), shown))

    @rule(key=KEYS)
    def read(self, key: str) -> None:
        """Read the key now (a linearizable read)."""
        response = self._range(key)
        if response is None:
            return
        kvs = self._expect(response).get("kvs", [])
        self._observe(response)
        self._read_matches(key, kvs)

    @rule(key=KEYS, back=BACK)
    def read_old(self, key: str, back: int) -> None:
        """Read the key at the revision of one of the example's earlier writes: the value
        it had then, or the compacted-revision error if a compaction passed it."""
        revisions = self.spaces.states[-1].revisions() or [self.seen]
        revision = revisions[max(len(revisions) - 1 - back, 0)]
        response = self._range(key, revision)
        if response is None:
            return
        if response.status_code == 200:
            self._observe(response)  # the header has the current revision
            kvs = response.json().get("kvs", [])
            actual: str | None = _kv(kvs[0], self.prefix)[1]["value"] if kvs else None
            sometimes(back > 0, "read an old revision")
        elif COMPACTED in _error(response):
            actual = "compacted"
        else:
            raise AssertionError(f"range at revision {revision}: {response.text[:200]}")
        if actual == "compacted" and not all(revision < s.compacted for s in self.spaces):
            # Not surely compacted by this example (a compaction of unknown outcome does
            # not prove it either): by another client of the cluster, or not at all. The
            # next invariant asks etcd (a rule's requests must not depend on answers).
            self.unexplained = (key, revision)
            return

        def expected(space: Keyspace) -> frozenset[str | None]:
            if revision < space.compacted:
                return frozenset({"compacted"})
            return space.values_at(key, revision)

        possible = self.spaces.values(expected)
        refusal = all(revision < space.compacted for space in self.spaces)
        self.check(
            "compacted_revision_refused" if refusal else "old_revisions_readable",
            holds=any(actual in values for values in possible),
            expected=_describe_values(possible),
            actual=actual,
            prefix=self.prefix,
            key=key,
            revision=revision,
        )
        self.spaces = self.spaces.where(lambda space: actual in expected(space))

    def _compacted_by_others(self, key: str, revision: int) -> None:
        """A read at ``revision`` was refused as compacted, though this example compacted
        no further: a compaction just above it asks etcd, and fails only if it already
        passed (another client of the cluster compacted)."""
        response = self.http.post("/v3/kv/compaction", json={"revision": revision + 1})
        already = COMPACTED in _error(response)
        if not already:
            self._expect(response)
            self.spaces = self.spaces.then(lambda space: space.compact(revision + 1))
        self.check(
            "old_revisions_readable",
            holds=already,
            expected=_describe_values(
                self.spaces.values(lambda space: space.values_at(key, revision))
            ),
            actual="compacted",
            prefix=self.prefix,
            key=key,
            revision=revision,
        )
        if already:
            self.spaces = self.spaces.then(lambda space: space.compact(revision + 1))

    @rule(back=BACK)
    def compact(self, back: int) -> None:
        """Compact the cluster's history up to the revision of an earlier write of the
        example (reads below it must fail from now on)."""
        revisions = self.spaces.states[-1].revisions() or [1]
        revision = revisions[max(len(revisions) - 1 - back, 0)]
        response, _, _ = self._call("/v3/kv/compaction", {"revision": revision}, write=True)
        if response is None:
            self.spaces = self.spaces.maybe(lambda space: space.compact(revision))
            return
        refused = COMPACTED in _error(response)
        if not refused:
            self._expect(response)
        # A compaction at or below the last one is refused; so is one that a copy of the
        # request, or another client of the cluster, already made.
        sometimes(refused, "a compaction was refused")
        self.check(
            "compacted_revision_refused",
            holds=refused or any(revision > space.compacted for space in self.spaces),
            expected=f"refused (compacted up to {self.spaces.expected(lambda s: s.compacted)})",
            actual="compacted",
            prefix=self.prefix,
            revision=revision,
        )
        self.spaces = self.spaces.then(lambda space: space.compact(revision))

    @invariant()
    def keys_match_model(self) -> None:
        if self.unexplained is not None:
            self._compacted_by_others(*self.unexplained)
            self.unexplained = None
        end = self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)
        response = self.http.post(
            "/v3/kv/range", json={"key": _b64(self.prefix), "range_end": _b64(end)}
        )
        answer = self._expect(response)
        self._observe(response)
        listed = dict(_kv(kv, self.prefix) for kv in answer.get("kvs", []))
        self.check(
            "keys_match_model",
            holds=_int(answer.get("count")) == len(listed),
            expected=len(listed),
            actual=_int(answer.get("count")),
            prefix=self.prefix,
            field="count",
        )
        self.spaces = self.spaces.refine(lambda space: space.agrees_with(listed))
        self.check(
            "keys_match_model",
            holds=listed in self.spaces.values(Keyspace.listing),
            expected=self.spaces.expected(Keyspace.listing),
            actual=listed,
            prefix=self.prefix,
        )

    # -- concurrent mode (--concurrency K) -------------------------------------------
    # Clients put, read, delete and compare-and-swap two shared keys at once. The state
    # is the keys' (value, modification revision) and the newest revision a write got
    # ("top"); a write's answer (put, a delete that deleted, a swap that took) must carry
    # a newer revision than every write linearized before it.

    model_state = dict
    final_operations = ("observe",)

    @operation(key=st.sampled_from(["x", "y"]), value=st.sampled_from(["1", "2", "3"]))
    def set(self, key: str, value: str) -> int:
        body = {"key": _b64(self.prefix + key), "value": _b64(value)}
        return _int(self._expect(self.http.post("/v3/kv/put", json=body))["header"]["revision"])

    @set.model
    def set(state: dict[str, Any], output: Any, key: str, value: str) -> tuple[bool, Any]:
        top = state.get("top", 0)
        if output is UNKNOWN:
            # Its revision is unknown: later writes may carry any newer one.
            return True, {**state, key: (value, None), "top": top}
        return output > top, {**state, key: (value, output), "top": output}

    @operation(key=st.sampled_from(["x", "y"]))
    def get(self, key: str) -> Any:
        kvs = self._expect(self.http.post("/v3/kv/range", json={"key": _b64(self.prefix + key)}))
        found = kvs.get("kvs", [])
        if not found:
            return None
        return [_text(found[0].get("value")), _int(found[0].get("mod_revision"))]

    @get.model
    def get(state: dict[str, Any], output: Any, key: str) -> tuple[bool, Any]:
        if output is UNKNOWN:
            return True, state
        held = state.get(key)
        if held is None:
            return output is None, state
        if output is None or output[0] != held[0]:
            return False, state
        if held[1] is None:  # a write of unknown outcome: now its revision is known (it
            # came before the later writes' revisions, which were checked without it)
            top = max(state.get("top", 0), output[1])
            return True, {**state, key: (held[0], output[1]), "top": top}
        return held[1] == output[1], state

    @operation(key=st.sampled_from(["x", "y"]))
    def remove(self, key: str) -> list[int]:
        body = {"key": _b64(self.prefix + key)}
        answer = self._expect(self.http.post("/v3/kv/deleterange", json=body))
        return [_int(answer.get("deleted")), _int(answer["header"]["revision"])]

    @remove.model
    def remove(state: dict[str, Any], output: Any, key: str) -> tuple[bool, Any]:
        after = {k: v for k, v in state.items() if k != key}
        if output is UNKNOWN:
            return True, after
        deleted, revision = output
        if deleted != (1 if key in state else 0):
            return False, state
        if not deleted:
            return True, state
        # A delete is a write: its revision is newer than every one before it.
        return revision > state.get("top", 0), {**after, "top": revision}

    @operation(
        key=st.sampled_from(["x", "y"]),
        expected=st.sampled_from([None, "1", "2", "3"]),
        value=st.sampled_from(["1", "2", "3"]),
    )
    def swap(self, key: str, expected: str | None, value: str) -> Any:
        """Compare-and-swap on the value: put ``value`` if the key holds ``expected``
        (None: if it does not exist)."""
        full = _b64(self.prefix + key)
        if expected is None:
            compare = {"key": full, "target": "VERSION", "version": 0, "result": "EQUAL"}
        else:
            compare = {"key": full, "target": "VALUE", "value": _b64(expected), "result": "EQUAL"}
        body = {
            "compare": [compare],
            "success": [{"request_put": {"key": full, "value": _b64(value)}}],
        }
        answer = self._expect(self.http.post("/v3/kv/txn", json=body))
        return [bool(answer.get("succeeded")), _int(answer["header"]["revision"])]

    @swap.model
    def swap(
        state: dict[str, Any], output: Any, key: str, expected: str | None, value: str
    ) -> tuple[bool, Any]:
        held = state.get(key)
        takes = (held is None) if expected is None else (held is not None and held[0] == expected)
        top = state.get("top", 0)
        if output is UNKNOWN:
            return True, ({**state, key: (value, None)} if takes else state)
        succeeded, revision = output
        if succeeded != takes:
            return False, state
        if not succeeded:
            return True, state
        return revision > top, {**state, key: (value, revision), "top": revision}

    @operation()
    def observe(self) -> Any:
        end = self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)
        body = {"key": _b64(self.prefix), "range_end": _b64(end)}
        kvs = self._expect(self.http.post("/v3/kv/range", json=body)).get("kvs", [])
        return {_kv(kv, self.prefix)[0]: _text(kv.get("value")) for kv in kvs}

    @observe.model
    def observe(state: dict[str, Any], output: Any) -> tuple[bool, Any]:
        if output is UNKNOWN:
            return True, state
        values = {k: v[0] for k, v in state.items() if k != "top"}
        return output == values, state


def _describe_values(possible: list[frozenset[str | None]]) -> Any:
    """What a read at an old revision may answer, for a failure line."""
    options = sorted({v for values in possible for v in values}, key=str)
    return options[0] if len(options) == 1 else {"one of": options}


if __name__ == "__main__":
    main(Etcd)
