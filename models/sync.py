"""Sync: a client pulling the change feed page by page ends with every record exactly once.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/sync.py
    propworkload run models/sync.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]

The reference model is a frozen ``Store``: the live records and the store's revision (each
write or delete takes the next one, as the record's new version). Commands write (by name,
or a new record the service names), delete and read records, and a sync client pulls the
change feed, one page at a time, into its replica: each client starts from scratch (no
cursor, an empty replica), and once a sync is complete it keeps pulling from its cursor, as
a client that stays in sync does. No change may come to it twice (``delivered_once``), and
whenever a page says there is no more, its replica must equal the records
(``sync_complete``). The observations compare the full listing (``records_match_model``)
and a fresh client's sync of the whole feed with the model after every step, and at the
end of every parallel program.

The cursor and the replica are the client's, not the service's: they live on the client
(each client of a parallel program syncs on its own), and a pull returns what the model
function needs to judge it, the version of each record the client had before the page and
its replica once complete. Every write sends an Idempotency-Key and is retried.
"""

from __future__ import annotations

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
    sometimes,
)

#: The records clients write, read and delete, by the names they give them.
IDS = st.sampled_from(("a", "b"))
#: What a write writes: one of those, or (None) a new record the service names; one command
#: for both, so that a failure found with creates shrinks to writes of "a".
WRITTEN = st.sampled_from(("a", "b", None))
VALUES = st.sampled_from(("x", "y"))


@attrs.frozen
class Record:
    """A live record as the model expects it."""

    value: str
    version: int


@attrs.frozen
class Store:
    """The reference model: the store's live records by id, and its revision. A record
    created by a request whose answer never came is named ``?VERSION`` until a listing
    or a replica shows its id."""

    records: dict[str, Record] = attrs.field(factory=dict)
    revision: int = 0

    def version_of(self, record_id: str | None) -> int | None:
        return self.records[record_id].version if record_id in self.records else None

    def view(self, record_id: str) -> dict[str, Any] | None:
        """What reading the record should answer: the record, or None (404)."""
        return next((r for r in self.listing() if r["id"] == record_id), None)

    def listing(self) -> list[dict[str, Any]]:
        """The live records by id, as the listing (and a complete replica) shows them."""
        return [
            {"id": rid, "value": r.value, "version": r.version}
            for rid, r in sorted(self.records.items())
        ]

    def put(self, record_id: str, value: str) -> Store:
        """The store after writing ``value`` to the record (creating it if need be)."""
        revision = self.revision + 1
        return Store({**self.records, record_id: Record(value, revision)}, revision)

    def delete(self, record_id: str) -> Store:
        """The store after deleting the record (nothing happens if it does not exist)."""
        if record_id not in self.records:
            return self
        records = {rid: r for rid, r in self.records.items() if rid != record_id}
        return Store(records, self.revision + 1)

    def named(self, seen: list[dict[str, Any]]) -> Store:
        """This store, with the ids of records created unseen taken from ``seen`` (a
        listing or replica): the record there at the same version, whose id is new."""
        ids = {r["version"]: r["id"] for r in seen if r["id"] not in self.records}
        records = {
            ids.get(r.version, rid) if rid.startswith("?") else rid: r
            for rid, r in self.records.items()
        }
        return attrs.evolve(self, records=records)


@attrs.define
class Replica:
    """A sync client's own state: its cursor, and the latest change (or tombstone) of
    each record it was given."""

    cursor: str | None = None
    changes: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def pull(self, http: httpx.Client, url: str, limit: int) -> dict[str, Any]:
        """Pull the page after the cursor into the replica: the changes, each with the
        version the client had before (``had``), and the live records once the page
        says there is no more (None before)."""
        cursor = {} if self.cursor is None else {"cursor": self.cursor}
        params: dict[str, Any] = {"limit": limit, **cursor}
        page = expect_status(http.get(url, params=params), 200).json()
        changes = []
        for change in page["data"]:
            had = self.changes.get(change["id"], {}).get("version")
            changes.append({**change, "had": had})
            self.changes[change["id"]] = change
        self.cursor = page["next_cursor"]
        live = [c for _, c in sorted(self.changes.items()) if not c["deleted"]]
        replica = [{k: c[k] for k in ("id", "value", "version")} for c in live]
        return {"changes": changes, "replica": None if page["has_more"] else replica}


def synced(store: Store, pulled: dict[str, Any]) -> Store | None:
    """Check a page a client pulled: no change it had already, and, once the sync is
    complete, its replica holds exactly the live records."""
    if pulled is UNKNOWN:
        return None
    for change in pulled["changes"]:
        had = change["had"]
        check(
            "delivered_once",
            holds=had is None or change["version"] > had,
            expected=f"a version after {had}",
            actual=change,
            record=change["id"],
        )
    replica = pulled["replica"]
    if replica is None:
        return None
    learned = store.named(replica)
    check("sync_complete", expected=learned.listing(), actual=replica)
    return learned


class Sync(Model):
    """Records written, created and deleted while clients sync them through the change
    feed, one page at a time, into replicas of their own."""

    sample = "sync"
    tenant_prefix = "st_"
    model_state = Store

    @property
    def replica(self) -> Replica:
        """This client's replica (made on first use: parallel clients skip __init__)."""
        replica: Replica = self.__dict__.setdefault("_replica", Replica())
        return replica

    def _record_url(self, record_id: str) -> str:
        return f"/stores/{self.tenant}/records/{record_id}"

    @command(
        record=WRITTEN,
        value=VALUES,
        # None: unconditional; else based on the current version, or an older one, as a
        # client that missed the last write would send.
        version=st.none()
        | from_state(lambda store, record: store.version_of(record))
        | from_state(lambda store, record: (store.version_of(record) or 1) - 1 or None),
        idempotent=True,
    )
    def write(self, record: str | None, value: str, version: int | None) -> Any:
        """Write the record (``PUT``, creating it if need be), or, for ``record=None``,
        create a new one the service names (``POST``; 200: an earlier attempt made it).
        With ``version``, only if that is still the record's version. Returns the record
        written, or the error code of a refusal."""
        headers = {"Idempotency-Key": self.operation_key}
        if record is None:
            url = f"/stores/{self.tenant}/records"
            response = self.http.post(url, json={"value": value}, headers=headers)
            return expect_status(response, 200, 201).json()
        body: dict[str, Any] = {"value": value}
        if version is not None:
            body["version"] = version
        response = self.http.put(self._record_url(record), json=body, headers=headers)
        answer = expect_status(response, 200, 201, 409).json()
        sometimes(response.status_code == 409, "a write based on a stale version was refused")
        return answer["error"] if response.status_code == 409 else answer

    @write.model
    def write(store: Store, out: Any, record: str | None, value: str, version: int | None) -> Store:
        if record is None:
            if out is UNKNOWN:
                return store.put(f"?{store.revision + 1}", value)
            # Its version is the listing's to check, right after.
            check("read_your_writes", expected=value, actual=out["value"], record=out["id"])
            return store.put(out["id"], value)
        # A write based on a version the record no longer has would overwrite a write its
        # sender never saw: it must be refused, and one based on the current version taken.
        applies = version is None or store.version_of(record) == version
        if out is not UNKNOWN:
            if version is not None:
                accepted = isinstance(out, dict)  # not the error code of a refusal
                check("no_lost_writes", expected=applies, actual=accepted, record=record)
            if applies:
                after = store.put(record, value).view(record)
                check("read_your_writes", expected=after, actual=out, record=record)
        return store.put(record, value) if applies else store

    # Not idempotent: a key replays only a delete that succeeded, so a copy of one that
    # found nothing (404) may delete the record a racing client writes meanwhile.
    @command(record=IDS)
    def delete(self, record: str) -> bool:
        """Delete the record: True (204), or False (404) if it does not exist."""
        headers = {"Idempotency-Key": self.operation_key}
        response = self.http.delete(self._record_url(record), headers=headers)
        return expect_status(response, 204, 404).status_code == 204

    @delete.model
    def delete(store: Store, deleted: Any, record: str) -> Store:
        if deleted is not UNKNOWN:
            check("records_match_model", expected=record in store.records, actual=deleted)
        return store.delete(record)

    @command(record=IDS, idempotent=True)
    def read(self, record: str) -> dict[str, Any] | None:
        """Read the record: what was last written to it, or None (404) once deleted."""
        response = expect_status(self.http.get(self._record_url(record)), 200, 404)
        return response.json() if response.status_code == 200 else None

    @read.model
    def read(store: Store, out: Any, record: str) -> None:
        if out is not UNKNOWN:
            check("read_your_writes", expected=store.view(record), actual=out, record=record)

    @command(
        limit=st.integers(min_value=2, max_value=3),
        requires=lambda store: store.revision > 0,  # nothing to sync before a write
        idempotent=True,
    )
    def pull(self, limit: int) -> dict[str, Any]:
        """This client pulls the next page of changes after its cursor into its replica."""
        pulled = self.replica.pull(self.http, f"/stores/{self.tenant}/changes", limit)
        sometimes(pulled["replica"] is None, "a sync took more than one page")
        again = any(c["had"] is not None for c in pulled["changes"])
        sometimes(again, "a record changed during a sync came again")
        return pulled

    @pull.model
    def pull(store: Store, pulled: Any, limit: int) -> Store | None:
        return synced(store, pulled)

    @observation
    def records(self) -> list[dict[str, Any]]:
        """The store's live records, by id."""
        listing = self.http.get(f"/stores/{self.tenant}/records")
        return list(expect_status(listing, 200).json()["data"])

    @records.model
    def records(store: Store, listing: list[dict[str, Any]]) -> Store:
        # The listing teaches the ids of records whose create was not answered.
        learned = store.named(listing)
        check("records_match_model", expected=learned.listing(), actual=listing)
        return learned

    @observation
    def resync(self) -> dict[str, Any]:
        """A fresh client syncs the whole feed (one page holds every change here)."""
        return Replica().pull(self.http, f"/stores/{self.tenant}/changes", 100)

    @resync.model
    def resync(store: Store, pulled: Any) -> Store | None:
        return synced(store, pulled)


if __name__ == "__main__":
    main(Sync)
