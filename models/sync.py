"""Sync: a client pulling the change feed page by page ends with every record exactly once.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/sync.py
    propworkload run models/sync.py --url http://127.0.0.1:8000

The reference model is a frozen ``Store``: the live records and the store's revision (each
write or delete takes the next one, as the record's new version). Rules write (by name, or
a new record the service names), delete and read records, and between them a sync client
pulls the change feed, one page at a time, into its replica: each example starts it from
scratch (no cursor, an empty replica), and once a sync is complete it keeps pulling from
its cursor, as a client that stays in sync does. Whenever a page says there is no more,
the replica must equal the model's records (``sync_complete``), and no change may come
twice (``delivered_once``). ``service_matches_model`` compares the full listing with the
model after every step.

Shaped for shrinking: every example starts with a write (the other rules wait for one),
and one ``write`` rule covers PUT, conditional PUT and POST, so that a failure shrinks to
the few steps that show it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import Model, Possible, invariant, main, precondition, rule, sometimes

#: The records the rules write, read and delete, by the names clients give them.
IDS = st.sampled_from(("a", "b"))
#: What a write writes: one of those, or (None) a new record the service names.
WRITTEN = st.sampled_from(("a", "b", None))
#: What a write is based on: nothing (unconditional), the record's current version, or an
#: older one (a client that missed the last write).
BASED_ON = st.sampled_from((None, "current", "stale"))


@attrs.frozen
class Record:
    """A live record as the model expects it."""

    value: str
    version: int


@attrs.frozen
class Store:
    """The reference model: the store's live records by id, and its revision."""

    records: dict[str, Record] = attrs.field(factory=dict)
    revision: int = 0
    #: Idempotency key of each create that landed -> the record's id; "?KEY" while the
    #: id is unknown (the create's answer never came).
    created: dict[str, str] = attrs.field(factory=dict)

    def view(self, record_id: str) -> dict[str, Any] | None:
        """What reading the record should answer: the record, or None (404)."""
        record = self.records.get(record_id)
        if record is None:
            return None
        return {"id": record_id, "value": record.value, "version": record.version}

    def listing(self) -> list[dict[str, Any]]:
        """What the full listing should show: the live records by id."""
        return [
            {"id": rid, "value": r.value, "version": r.version}
            for rid, r in sorted(self.records.items())
        ]

    def version_of(self, record_id: str) -> int | None:
        record = self.records.get(record_id)
        return None if record is None else record.version

    def put(self, record_id: str, value: str) -> Store:
        """The store after writing ``value`` to the record (creating it if need be)."""
        revision = self.revision + 1
        records = {**self.records, record_id: Record(value, revision)}
        return attrs.evolve(self, records=records, revision=revision)

    def accepts(self, record_id: str, version: int) -> bool:
        """Whether a write based on ``version`` applies: only to the live record's current
        version (any other would overwrite a write its sender never saw)."""
        return self.version_of(record_id) == version

    def put_if(self, record_id: str, value: str, version: int) -> Store:
        return self.put(record_id, value) if self.accepts(record_id, version) else self

    def delete(self, record_id: str) -> Store:
        """The store after deleting the record (nothing happens if it does not exist)."""
        if record_id not in self.records:
            return self
        records = {rid: r for rid, r in self.records.items() if rid != record_id}
        return attrs.evolve(self, records=records, revision=self.revision + 1)

    def create(self, key: str, record_id: str | None, value: str) -> Store:
        """The store once the create with ``key`` landed; a key that landed before
        changes nothing."""
        if key in self.created:
            return self
        rid = record_id or f"?{key}"
        revision = self.revision + 1
        return Store(
            records={**self.records, rid: Record(value, revision)},
            revision=revision,
            created={**self.created, key: rid},
        )

    def agrees_with(self, listed: list[dict[str, Any]]) -> Store | None:
        """This store, with the ids of created records it did not know taken from the
        service's listing (the one listed record with the same version); None if the
        listing contradicts it."""
        unknown = [rid for rid in self.records if rid.startswith("?")]
        store = self
        if unknown:
            by_version = {item["version"]: item["id"] for item in listed}
            renamed = {}
            for rid in unknown:
                listed_id = by_version.get(self.records[rid].version)
                if listed_id is None or listed_id in self.records:
                    return None
                renamed[rid] = listed_id
            store = Store(
                records={renamed.get(rid, rid): r for rid, r in self.records.items()},
                revision=self.revision,
                created={k: renamed.get(rid, rid) for k, rid in self.created.items()},
            )
        return store if store.listing() == listed else None


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """The response, if its status is one the API documents for this call."""
    if response.status_code not in statuses:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url.path} returned {response.status_code}, "
            f"expected {' or '.join(map(str, statuses))}: {response.text[:200]}"
        )
    return response


def _verdict(accepted: bool) -> str:
    return "accepted" if accepted else "refused"


class Sync(Model):
    """Records written, created and deleted while a client syncs them through the change
    feed, one page at a time, into a replica.

    Every write carries an Idempotency-Key and goes through ``self.retry``; when no attempt
    is answered, the write is pending in ``Possible`` (``maybe``) and later observations
    (the listing, a read, a completed sync) decide whether it landed. Reads and pulls are
    retried as they are: they change nothing.
    """

    sample = "sync"
    tenant_prefix = "st_"

    def __init__(self) -> None:
        super().__init__()
        self.stores = Possible(Store())
        self.sent = 0
        # The sync client: its cursor (None: from the start), its replica of the records,
        # and the latest version of each record (or tombstone) it was given.
        self.cursor: str | None = None
        self.replica: dict[str, dict[str, Any]] = {}
        self.delivered: dict[str, int] = {}

    # -- writers -------------------------------------------------------------------

    def _key(self) -> str:
        self.sent += 1
        return f"w{self.sent}"

    def _record_url(self, record_id: str) -> str:
        return f"/stores/{self.tenant}/records/{record_id}"

    def _written(
        self, record_id: str, actual: dict[str, Any], after: Callable[[Store], Store]
    ) -> None:
        """Check the record a write answered: the value written, at the next version."""

        def answer(store: Store) -> dict[str, Any] | None:
            return after(store).view(record_id)

        self.check(
            "read_your_writes",
            holds=actual in self.stores.values(answer),
            expected=self.stores.expected(answer),
            actual=actual,
            store=self.tenant,
            record=record_id,
        )
        self.stores = self.stores.where(lambda store: answer(store) == actual)

    @rule(record_id=WRITTEN, based_on=BASED_ON)
    def write(self, record_id: str | None, based_on: str | None) -> None:
        """Write the record (``PUT``, creating it if need be), or, for ``record_id=None``,
        create a new one that the service names (``POST``). Each write sends a value of
        its own (``v1``, ``v2``, ...), so that a stale copy shows which write it missed.

        With ``based_on``, the write carries the version the client last saw, and applies
        only if the record still has it: the current one, or (``stale``) an older one, as a
        client that missed the last write would send. A client that saw no version (the
        record does not exist, or its version is unsure) writes unconditionally.
        """
        key = self._key()
        value = f"v{self.sent}"
        if record_id is None:
            self._create(key, value)
            return
        version: int | None = None
        versions = self.stores.values(lambda store: store.version_of(record_id))
        if based_on is not None and len(versions) == 1 and versions[0] is not None:
            version = versions[0] - 1 if based_on == "stale" else versions[0]
            if version < 1:  # there was no older version
                version = None
        self._put(key, record_id, value, version)

    def _put(self, key: str, record_id: str, value: str, version: int | None) -> None:
        """PUT the record; with ``version``, only if that is still its version."""
        body: dict[str, Any] = {"value": value}
        if version is not None:
            body["version"] = version
        url = self._record_url(record_id)
        response = self.retry(
            lambda: self.http.put(url, json=body, headers={"Idempotency-Key": key})
        )

        def after(store: Store) -> Store:
            if version is None:
                return store.put(record_id, value)
            return store.put_if(record_id, value, version)

        if response is None:  # every attempt failed: it may or may not have been written
            self.stores = self.stores.maybe(after, key=key)
            return
        accepted = _expect(response, 200, 201, 409).status_code != 409
        if not accepted and (version is None or response.json()["error"] != "version_conflict"):
            raise AssertionError(f"the write was refused: {response.text[:200]}")
        if version is not None:
            self._conditional(record_id, version, accepted)
        if accepted:
            self._written(record_id, response.json(), after)
        self.stores = self.stores.then(after, key=key)

    def _conditional(self, record_id: str, version: int, accepted: bool) -> None:
        """Check whether a write based on ``version`` was taken or refused."""

        def verdict(store: Store) -> str:
            return "accepted" if store.accepts(record_id, version) else "refused"

        sometimes(not accepted, "a write based on a stale version was refused")
        # A write based on a version the record no longer has would overwrite a write its
        # sender never saw: it must be refused, and one based on the current version taken.
        self.check(
            "no_lost_writes",
            holds=_verdict(accepted) in self.stores.values(verdict),
            expected=self.stores.expected(verdict),
            actual=_verdict(accepted),
            store=self.tenant,
            record=record_id,
            version=version,
        )
        self.stores = self.stores.where(lambda store: verdict(store) == _verdict(accepted))

    def _create(self, key: str, value: str) -> None:
        response = self.retry(
            lambda: self.http.post(
                f"/stores/{self.tenant}/records",
                json={"value": value},
                headers={"Idempotency-Key": key},
            )
        )
        if response is None:
            self.stores = self.stores.maybe(lambda store: store.create(key, None, value), key=key)
            return
        # 201 created; 200 when an earlier attempt (whose answer was lost) created it. Its
        # version is checked by the listing right after.
        created = _expect(response, 200, 201).json()
        self.check(
            "read_your_writes",
            expected=value,
            actual=created["value"],
            store=self.tenant,
            record=created["id"],
        )
        record_id = created["id"]
        self.stores = self.stores.then(lambda store: store.create(key, record_id, value), key=key)

    @precondition(lambda self: self.sent > 0)
    @rule(record_id=IDS)
    def delete(self, record_id: str) -> None:
        """Delete the record: 204, or 404 if it does not exist."""
        key = self._key()
        response = self.retry(
            lambda: self.http.delete(self._record_url(record_id), headers={"Idempotency-Key": key})
        )

        def after(store: Store) -> Store:
            return store.delete(record_id)

        if response is None:
            self.stores = self.stores.maybe(after, key=key)
            return
        answer = "deleted" if _expect(response, 204, 404).status_code == 204 else "no_such_record"

        def expected(store: Store) -> str:
            return "deleted" if record_id in store.records else "no_such_record"

        self.check(
            "records_match_model",
            holds=answer in self.stores.values(expected),
            expected=self.stores.expected(expected),
            actual=answer,
            store=self.tenant,
            record=record_id,
        )
        self.stores = self.stores.where(lambda store: expected(store) == answer).then(
            after, key=key
        )

    # -- readers -------------------------------------------------------------------

    @precondition(lambda self: self.sent > 0)
    @rule(record_id=IDS)
    def read(self, record_id: str) -> None:
        """Read the record: what was last written to it, or 404 once it is deleted."""
        response = self.retry(lambda: self.http.get(self._record_url(record_id)))
        if response is None:
            return  # a read changes nothing; there is just nothing to compare
        found = _expect(response, 200, 404).status_code == 200
        actual = response.json() if found else None

        def expected(store: Store) -> dict[str, Any] | None:
            return store.view(record_id)

        self.check(
            "read_your_writes",
            holds=actual in self.stores.values(expected),
            expected=self.stores.expected(expected) or "404 no_such_record",
            actual=actual or "404 no_such_record",
            store=self.tenant,
            record=record_id,
        )
        self.stores = self.stores.where(lambda store: expected(store) == actual)

    @precondition(lambda self: self.sent > 0)
    @rule(limit=st.integers(min_value=2, max_value=3))
    def pull_page(self, limit: int) -> None:
        """The client pulls the next page of changes after its cursor into its replica
        (once something was written: there is nothing to sync before)."""
        params: dict[str, Any] = {"limit": limit}
        if self.cursor is not None:
            params["cursor"] = self.cursor
        response = self.retry(
            lambda: self.http.get(f"/stores/{self.tenant}/changes", params=params)
        )
        if response is None:
            return
        page = _expect(response, 200).json()
        in_page: set[str] = set()
        for change in page["data"]:
            record_id, version = change["id"], change["version"]
            earlier = self.delivered.get(record_id)
            # Each change once: a record comes again only with a newer version.
            self.check(
                "delivered_once",
                holds=record_id not in in_page and (earlier is None or version > earlier),
                expected="once per page" if record_id in in_page else f"version>{earlier}",
                actual=change,
                store=self.tenant,
                cursor=self.cursor,
            )
            sometimes(earlier is not None, "a record changed during a sync came again")
            in_page.add(record_id)
            self.delivered[record_id] = version
            if change["deleted"]:
                sometimes(record_id in self.replica, "a tombstone removed a replicated record")
                self.replica.pop(record_id, None)
            else:
                self.replica[record_id] = {
                    "id": record_id,
                    "value": change["value"],
                    "version": version,
                }
        self.cursor = page["next_cursor"]
        sometimes(page["has_more"], "a sync took more than one page")
        if page["has_more"]:
            return
        # The sync is complete: the replica holds every live record exactly once, with its
        # latest value, and none of the deleted ones.
        actual = [self.replica[rid] for rid in sorted(self.replica)]
        self.check(
            "sync_complete",
            holds=actual in self.stores.values(Store.listing),
            expected=self.stores.expected(Store.listing),
            actual=actual,
            store=self.tenant,
            cursor=self.cursor,
        )
        self.stores = self.stores.where(lambda store: store.listing() == actual)

    @invariant()
    def service_matches_model(self) -> None:
        listed = _expect(self.http.get(f"/stores/{self.tenant}/records"), 200).json()["data"]
        # The listing shows which writes of unknown outcome have landed so far, and the
        # ids of created records whose answer was lost.
        self.stores = self.stores.refine(lambda store: store.agrees_with(listed))
        self.check(
            "records_match_model",
            holds=listed in self.stores.values(Store.listing),
            expected=self.stores.expected(Store.listing),
            actual=listed,
            store=self.tenant,
        )


if __name__ == "__main__":
    main(Sync)
