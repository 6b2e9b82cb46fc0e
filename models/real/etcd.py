"""etcd: a key-value store whose revisions only grow and whose old revisions stay readable.

A model of etcd's v3 key-value API through its JSON gateway (``POST /v3/kv/put``,
``/v3/kv/range``, ``/v3/kv/deleterange``, ``/v3/kv/txn``, ``/v3/kv/compaction``), as
documented at https://etcd.io/docs/v3.4/learning/api/ and api_guarantees/. One description
runs plainly, under faults and with concurrent clients::

    python3 models/real/serve.py etcd --port 2379          # or any etcd v3.4+
    propworkload run models/real/etcd.py --url http://127.0.0.1:2379 --faults all
    propworkload run models/real/etcd.py --url http://127.0.0.1:2379 --concurrency 3

On the gateway, keys and values are base64, 64-bit integers arrive as strings, and fields
whose value is zero or false are left out (``"succeeded"`` of a failed transaction).

Each example works under its own key prefix (``self.tenant`` + ``/``); revisions are the
cluster's, so the model learns them from answers rather than predicting them. Compaction
is the cluster's too, so point the model at an etcd of its own (``serve.py``); other
clients' compactions are allowed for (see ``listing``).

The reference model is a frozen ``Keyspace``: each key's value, version and create and
modification revisions, the example's writes in revision order, the newest revision seen
and how far the example compacted. Checks:

- ``read_your_writes``: a read (and what a put or delete replaced, and the key a failed
  compare-and-swap reads) answers what the model says: value, version, revisions;
- ``keys_match_model``: a range over the whole prefix answers the model's keys;
- ``revisions_grow``: no answer shows an older revision than one seen before, and a write
  gets a newer revision than any seen before it;
- ``cas_matches_model``: a transaction comparing a key's modification revision succeeds
  exactly when the model says the key still has that revision (compare-and-swap);
- ``old_revisions_readable``: a read at an earlier revision answers the value the key had
  then (multi-version concurrency control);
- ``compacted_revision_refused``: once compacted up to R, a read below R, and a compaction
  at R or below, fail with etcd's documented error ("required revision has been compacted").

Faults: etcd's writes are not idempotent (no request ids over the gateway): a put delivered
twice takes effect twice. So, as etcd's own client does, writes are sent once (a copy that
may have landed unseen is one more possibility); reads and compactions are retried. With
``--concurrency``, every history must be linearizable (etcd's key-value operations are),
the writes' revisions growing in the order of the linearization.
"""

from __future__ import annotations

import base64
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
    reachable,
    sometimes,
)

#: The keys commands use, under the example's prefix, and the values puts write.
KEYS = st.sampled_from(["a", "b"])
VALUES = st.sampled_from(["v0", "v1", "v2"])

#: How far back a revision is drawn: 0 is the newest (what shrinking goes to), 1 the one
#: before, and so on.
BACK = st.integers(0, 3)
#: A revision to read at or compact to.
AT = BACK.flatmap(lambda back: from_state(lambda space: space.revision_back(back)))

COMPACTED = "required revision has been compacted"
#: Statuses of the gateway's temporary refusals: the request may or may not take effect.
TEMPORARY = frozenset((429, 503, 504))

#: A key as an answer shows it: value, version, create_revision, mod_revision.
View = dict[str, Any]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(field: str | None) -> str:
    return base64.b64decode(field or "").decode()


def _int(field: Any) -> int:
    """A 64-bit integer as the gateway sends it: a string, or absent for zero."""
    return int(field or 0)


def _revision(answer: dict[str, Any]) -> int:
    return _int(answer["header"].get("revision"))


def _view(kv: dict[str, Any] | None) -> View | None:
    if kv is None:
        return None
    numbers = ("version", "create_revision", "mod_revision")
    return {"value": _text(kv.get("value")), **{name: _int(kv.get(name)) for name in numbers}}


@attrs.frozen
class Entry:
    """A live key as the model expects it, as an answer shows it. Revisions are None
    until an answer shows them (a write whose answer was lost)."""

    value: str
    version: int
    create_revision: int | None
    mod_revision: int | None

    def agrees(self, shown: View) -> bool:
        """Whether an answer's view fits this entry (unknown revisions fit any)."""
        return all(mine in (None, shown[name]) for name, mine in attrs.asdict(self).items())


@attrs.frozen
class Write:
    """A put (``value``) or delete (``value=None``) of ``key`` at ``revision``; None: not
    known yet, but newer than ``floor``, the newest revision seen when it landed."""

    key: str
    value: str | None
    revision: int | None
    floor: int


@attrs.frozen
class Keyspace:
    """The reference model: the example's keys, its writes in revision order, the newest
    and the first revision any answer showed, and how far the example compacted."""

    entries: dict[str, Entry] = attrs.field(factory=dict)
    writes: tuple[Write, ...] = ()
    top: int = 0
    #: The first revision seen: the example's keys did not exist then.
    start: int = 0
    #: Reads below this revision must fail: a compaction up to it took effect.
    compacted: int = 0
    #: The newest revision a read was refused at as compacted, though this example did
    #: not compact that far (the listing asks etcd).
    doubt: int = 0

    def view(self, key: str) -> View | None:
        entry = self.entries.get(key)
        return None if entry is None else attrs.asdict(entry)

    def agrees(self, key: str, shown: View | None) -> bool:
        entry = self.entries.get(key)
        if entry is None or shown is None:
            return entry is None and shown is None
        return entry.agrees(shown)

    def mod_revision(self, key: str) -> int | None:
        """The key's modification revision (0: it does not exist; None: not known)."""
        entry = self.entries.get(key)
        return 0 if entry is None else entry.mod_revision

    def compare_with(self, key: str, back: int) -> int:
        """The key's modification revision (0: it does not exist, or not known) or, with
        ``back``, one it had before (a client that missed a write), or 0."""
        had = [w.revision for w in self.writes if w.key == key and w.value and w.revision]
        choices = [0, *had, self.mod_revision(key) or 0]
        return choices[max(len(choices) - 1 - back, 0)]

    def revision_back(self, back: int) -> int:
        """The newest revision of the example's writes, or one ``back`` before it (the
        first one: its first revision seen)."""
        known = sorted({w.revision for w in self.writes if w.revision} | {self.start} - {0})
        return known[max(len(known) - 1 - back, 0)]  # none yet: IndexError skips the command

    def saw(self, revision: int) -> Keyspace:
        return attrs.evolve(self, top=max(self.top, revision), start=self.start or revision)

    def put(self, key: str, value: str, revision: int | None) -> Keyspace:
        old = self.entries.get(key)
        created = revision if old is None else old.create_revision
        entry = Entry(value, old.version + 1 if old else 1, created, revision)
        return attrs.evolve(
            self.saw(revision or 0),
            entries={**self.entries, key: entry},
            writes=(*self.writes, Write(key, value, revision, self.top)),
        )

    def delete(self, key: str, revision: int | None) -> Keyspace:
        if key not in self.entries:
            return self
        return attrs.evolve(
            self.saw(revision or 0),
            entries={k: e for k, e in self.entries.items() if k != key},
            writes=(*self.writes, Write(key, None, revision, self.top)),
        )

    def compact(self, revision: int) -> Keyspace:
        return attrs.evolve(self, compacted=max(self.compacted, revision))

    def learn(self, key: str, shown: View | None) -> Keyspace:
        """This keyspace with the revisions of ``key`` it did not know taken from a view
        that agrees with it (the last write of the key is the one shown)."""
        entry = self.entries.get(key)
        if entry is None or shown is None or entry == Entry(**shown):
            return self
        writes = list(self.writes)
        last = max(i for i, write in enumerate(writes) if write.key == key)
        writes[last] = attrs.evolve(writes[last], revision=shown["mod_revision"])
        entries = {**self.entries, key: Entry(**shown)}
        return attrs.evolve(self, entries=entries, writes=tuple(writes))

    def values_at(self, key: str, revision: int) -> list[str | None]:
        """What reading ``key`` at ``revision`` may answer: its value then (None: it did
        not exist). More than one when writes of unknown revision may come before it."""
        value: str | None = None
        options: set[str | None] = set()
        for write in self.writes:
            if write.revision is None:
                if write.floor >= revision:
                    break  # surely newer
                options.add(value)  # the revision may come before this write
            elif write.revision > revision:
                break
            else:
                options.clear()
            if write.key == key:
                value = write.value
        return sorted(options | {value}, key=str)


def _grows(space: Keyspace, revision: int, *, wrote: bool) -> Keyspace:
    """Check an answer's revision: never older than one seen before; for a write, newer."""
    least = space.top + 1 if wrote else space.top
    check("revisions_grow", holds=revision >= least, expected=f">={least}", actual=revision)
    return space.saw(revision)


def _reads(space: Keyspace, key: str, shown: View | None, **ids: Any) -> Keyspace:
    """Check what an answer shows of ``key`` against the model, and learn its revisions."""
    check(
        "read_your_writes",
        holds=space.agrees(key, shown),
        expected=space.view(key),
        actual=shown,
        key=key,
        **ids,
    )
    return space.learn(key, shown)


class Etcd(Model):
    """Puts, deletes, compare-and-swaps, reads (now and at old revisions) and compactions
    under one key prefix per example, against a reference ``Keyspace``."""

    tenant_prefix = "pw_"
    model_state = Keyspace

    @property
    def prefix(self) -> str:
        return f"{self.tenant}/"

    def _post(self, path: str, body: dict[str, Any], *statuses: int) -> httpx.Response:
        """POST ``body``; a temporary refusal (overloaded, no leader, timed out) is an
        unknown outcome."""
        response = self.http.post(path, json=body)
        if response.status_code in TEMPORARY:
            raise httpx.TransportError(f"{response.status_code} {response.text[:200]}")
        return expect_status(response, *statuses) if statuses else response

    @command(key=KEYS, value=VALUES)
    def put(self, key: str, value: str) -> dict[str, Any]:
        """Put ``value`` at the key; the answer shows what it replaced."""
        body = {"key": _b64(self.prefix + key), "value": _b64(value), "prev_kv": True}
        answer = self._post("/v3/kv/put", body, 200).json()
        return {"revision": _revision(answer), "prev": _view(answer.get("prev_kv"))}

    @put.model
    def put(space: Keyspace, out: Any, key: str, value: str) -> Keyspace:
        if out is UNKNOWN:
            return space.put(key, value, None)
        space = _reads(space, key, out["prev"], step="prev_kv")
        return _grows(space, out["revision"], wrote=True).put(key, value, out["revision"])

    @command(key=KEYS)
    def delete(self, key: str) -> dict[str, Any]:
        """Delete the key; the answer says how many keys went (0 or 1) and which."""
        body = {"key": _b64(self.prefix + key), "prev_kv": True}
        answer = self._post("/v3/kv/deleterange", body, 200).json()
        prev = [_view(kv) for kv in answer.get("prev_kvs", [])]
        return {"revision": _revision(answer), "deleted": _int(answer.get("deleted")), "prev": prev}

    @delete.model
    def delete(space: Keyspace, out: Any, key: str) -> Keyspace:
        if out is UNKNOWN:
            return space.delete(key, None)
        shown = out["prev"]
        check(
            "read_your_writes",
            holds=out["deleted"] == len(shown) <= 1
            and space.agrees(key, shown[0] if shown else None),
            expected=space.view(key),
            actual=shown[0] if shown else f"deleted={out['deleted']}",
            key=key,
            step="delete",
        )
        space = _grows(space, out["revision"], wrote=bool(out["deleted"]))
        return space.delete(key, out["revision"])

    @command(
        key=KEYS,
        revision=BACK.flatmap(lambda back: from_state(lambda s, key: s.compare_with(key, back))),
        value=VALUES,
    )
    def compare_and_swap(self, key: str, revision: int, value: str) -> dict[str, Any]:
        """A transaction: if the key's modification revision is still ``revision``, put
        ``value``, else read the key."""
        full = _b64(self.prefix + key)
        body = {
            "compare": [
                {"key": full, "target": "MOD", "mod_revision": revision, "result": "EQUAL"}
            ],
            "success": [{"request_put": {"key": full, "value": _b64(value)}}],
            "failure": [{"request_range": {"key": full}}],
        }
        answer = self._post("/v3/kv/txn", body, 200).json()
        succeeded = bool(answer.get("succeeded"))
        sometimes(succeeded and revision > 0, "a compare-and-swap took")
        sometimes(not succeeded, "a compare-and-swap was refused")
        kvs = [] if succeeded else answer["responses"][0]["response_range"].get("kvs", [])
        current = _view(kvs[0]) if kvs else None
        return {"revision": _revision(answer), "succeeded": succeeded, "current": current}

    @compare_and_swap.model
    def compare_and_swap(
        space: Keyspace, out: Any, key: str, revision: int, value: str
    ) -> Keyspace | None:
        # An unknown revision is a write's own, newer than any the client compares with.
        takes = space.mod_revision(key) == revision
        if out is UNKNOWN:
            return space.put(key, value, None) if takes else None
        check(
            "cas_matches_model",
            expected="succeeded" if takes else "failed",
            actual="succeeded" if out["succeeded"] else "failed",
            key=key,
            mod_revision=revision,
        )
        space = _grows(space, out["revision"], wrote=out["succeeded"])
        if out["succeeded"]:
            return space.put(key, value, out["revision"])
        return _reads(space, key, out["current"], step="compare_and_swap failed")

    @command(key=KEYS, idempotent=True)
    def read(self, key: str) -> dict[str, Any]:
        """Read the key now (a linearizable read)."""
        answer = self._post("/v3/kv/range", {"key": _b64(self.prefix + key)}, 200).json()
        kvs = answer.get("kvs", [])
        return {"revision": _revision(answer), "kv": _view(kvs[0]) if kvs else None}

    @read.model
    def read(space: Keyspace, out: Any, key: str) -> Keyspace | None:
        if out is UNKNOWN:
            return None
        return _reads(_grows(space, out["revision"], wrote=False), key, out["kv"])

    @command(key=KEYS, at=AT, idempotent=True)
    def read_old(self, key: str, at: int) -> dict[str, Any]:
        """Read the key at an earlier revision: the value it had then, or etcd's refusal
        when that revision is compacted."""
        response = self._post("/v3/kv/range", {"key": _b64(self.prefix + key), "revision": at})
        if COMPACTED in response.text:
            reachable("a read was refused as compacted")
            return {"refused": "compacted"}
        answer = expect_status(response, 200).json()
        kvs = answer.get("kvs", [])
        return {"revision": _revision(answer), "value": _text(kvs[0]["value"]) if kvs else None}

    @read_old.model
    def read_old(space: Keyspace, out: Any, key: str, at: int) -> Keyspace | None:
        if out is UNKNOWN:
            return None
        if at < space.compacted:
            actual = out.get("refused", out.get("value"))
            check("compacted_revision_refused", expected="compacted", actual=actual, key=key, at=at)
            return None
        if "refused" in out:  # by another client of the cluster, or wrongly: listing asks
            return attrs.evolve(space, doubt=max(space.doubt, at))
        values = space.values_at(key, at)
        check(
            "old_revisions_readable",
            holds=out["value"] in values,
            expected=values[0] if len(values) == 1 else {"one of": values},
            actual=out["value"],
            key=key,
            at=at,
        )
        return _grows(space, out["revision"], wrote=False)

    @command(at=AT, idempotent=True)
    def compact(self, at: int) -> bool:
        """Compact the cluster's history up to ``at`` (reads below it must fail from now
        on); answers whether etcd refused, as it must when it already compacted that far."""
        response = self._post("/v3/kv/compaction", {"revision": at})
        refused = COMPACTED in response.text
        if not refused:
            expect_status(response, 200)
        sometimes(refused, "a compaction was refused")
        return refused

    @compact.model
    def compact(space: Keyspace, refused: Any, at: int) -> Keyspace:
        # Refused also when a lost attempt, or another client of the cluster, did it.
        if refused is not UNKNOWN:
            check(
                "compacted_revision_refused",
                holds=refused or at > space.compacted,
                expected=f"refused (compacted up to {space.compacted})",
                actual="compacted",
                at=at,
            )
        return space.compact(at)

    @observation
    def listing(self) -> dict[str, Any]:
        """Every key under the example's prefix, in one range. After a read refused as
        compacted that the example's compactions do not explain, a compaction just above
        it asks etcd whether that history is gone: etcd refuses it only if so."""
        end = self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)
        body = {"key": _b64(self.prefix), "range_end": _b64(end)}
        answer = self._post("/v3/kv/range", body, 200).json()
        keys = {_text(kv["key"])[len(self.prefix) :]: _view(kv) for kv in answer.get("kvs", [])}
        seen = {"revision": _revision(answer), "count": _int(answer.get("count")), "keys": keys}
        doubt = max(space.doubt for space in self.possible)
        if doubt:  # (observations get no faults: this request is no draw of the example)
            probe = self._post("/v3/kv/compaction", {"revision": doubt + 1}, 200, 400)
            seen["probe"] = {"at": doubt + 1, "gone": COMPACTED in probe.text}
        return seen

    @listing.model
    def listing(space: Keyspace, seen: dict[str, Any]) -> Keyspace:
        listed: dict[str, View] = seen["keys"]
        check("keys_match_model", expected=len(listed), actual=seen["count"], field="count")
        check(
            "keys_match_model",
            holds=set(listed) == set(space.entries)
            and all(space.agrees(key, view) for key, view in listed.items()),
            expected={key: space.view(key) for key in sorted(space.entries)},
            actual=dict(sorted(listed.items())),
        )
        space = _grows(space, seen["revision"], wrote=False)
        if "probe" in seen:  # etcd compacted up to it, now if not before
            at = seen["probe"]["at"]
            check(
                "old_revisions_readable",
                holds=seen["probe"]["gone"] or at > space.doubt + 1,
                expected="readable (etcd had not compacted past it)",
                actual="refused as compacted",
                at=space.doubt,
            )
            space = attrs.evolve(space.compact(at), doubt=0)
        for key, view in listed.items():
            space = space.learn(key, view)
        return space


if __name__ == "__main__":
    main(Etcd)
