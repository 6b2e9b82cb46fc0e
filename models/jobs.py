"""Jobs: every job is enqueued once and finishes exactly once, under a lease that holds.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/jobs.py
    propworkload run models/jobs.py --url http://127.0.0.1:8000 [--faults all] [--concurrency 3]

Each command (enqueue, lease, ack, nack, move the queue's test clock) is described once: its
real call, and a model function that checks the answer against the reference ``Queue`` (jobs
oldest first, clock, leases handed out) and returns the next queue; ``listing`` compares the
jobs and the clock. Plain runs, ``--faults`` and ``--concurrency`` derive from it. Checks:

- ``enqueued_once``: an enqueue answers the one job of its key; a key is listed once;
- ``unique_ids``: no two jobs share an id;
- ``lease_matches_model``: a lease gets the oldest job queued or whose lease expired, if any;
- ``lease_honoured``: an ack or nack is taken exactly when its lease still holds the job
  (or it is the same call again), and otherwise refused for the right reason;
- ``finished_once``: a taken ack answers, and the listing shows, one completion;
- ``jobs_listed``: the listing and the clock are the model's.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import attrs
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

#: An enqueue takes the first key no job has: four jobs at most, so that leases, acks and
#: nacks meet on them (and clients at once enqueue the same key). Each key comes with its
#: payload; k0 and k1 share theirs, and their ids must still differ.
PAYLOADS = {"k0": "email", "k1": "email", "k2": "resize", "k3": "report"}
KEY = from_state(lambda queue: sorted(PAYLOADS.keys() - set(queue.keys))[0])
#: The lease an ack or nack names, by the handle it got (l0, l1, ...): the latest one, or
#: the first (by then often expired or superseded).
HANDLES = from_state(lambda queue: list(queue.leases)[-1]) | st.just("l0")
SECONDS = st.integers(min_value=1, max_value=3)
UNKNOWN_TOKEN = "?"  # the token of a lease whose answer never came: no client holds it
ACK, NACK = "ack", "nack"


@attrs.frozen
class Job:
    key: str
    payload: str
    id: str | None = None  # None while known only from an enqueue whose answer was lost
    #: As stored (an expired lease is still "leased"), with the current lease's token.
    status: str = "queued"
    attempts: int = 0
    completions: int = 0
    lease: str | None = None
    expires_at: int = 0
    #: (token, ack or nack) of the calls taken: the service answers each again as before.
    finished: frozenset[tuple[str, str]] = frozenset()

    def view(self, now: int) -> dict[str, Any]:
        """What the service shows of the job at time ``now``."""
        held = self.status == "leased" and now < self.expires_at
        status = "queued" if self.status == "leased" and not held else self.status
        return {
            **{"key": self.key, "id": self.id, "payload": self.payload, "status": status},
            **{"attempts": self.attempts, "completions": self.completions},
            "lease_expires_at": self.expires_at if held else None,
        }

    def answer(self, token: str, outcome: str, now: int) -> str:
        """The answer to an ack or nack under lease ``token``: "ok" or the 409's code."""
        if (token, outcome) in self.finished:
            return "ok"  # the same call again
        if self.status == "done":
            return "already_done"
        held = self.status == "leased" and self.lease == token and now < self.expires_at
        return "ok" if held else "lease_lost"

    def finish(self, token: str, outcome: str, now: int) -> Job:
        """The job after an ack or nack under lease ``token`` (the same call again, or one
        refused, changes nothing)."""
        if (token, outcome) in self.finished or self.answer(token, outcome, now) != "ok":
            return self
        done = outcome == ACK
        counts = {"attempts": self.attempts + (not done), "completions": self.completions + done}
        taken = self.finished | {(token, outcome)}
        status = "done" if done else "queued"
        return attrs.evolve(self, status=status, lease=None, finished=taken, **counts)


@attrs.frozen
class Queue:
    """The reference model: one queue's jobs, its clock and the leases clients hold."""

    jobs: tuple[Job, ...] = ()  # oldest first: in another order, they lease in another
    now: int = 0
    #: The leases that got a job, by handle (oldest first): job key and id, lease token.
    leases: dict[str, tuple[str, str, str]] = attrs.field(factory=dict)

    @property
    def keys(self) -> list[str]:
        return [job.key for job in self.jobs]

    def get(self, key: str) -> Job | None:
        return next((job for job in self.jobs if job.key == key), None)

    def put(self, job: Job) -> Queue:
        """The queue with ``job`` in place of the job of its key, or added last."""
        jobs = tuple(job if j.key == job.key else j for j in self.jobs)
        return attrs.evolve(self, jobs=jobs if job.key in self.keys else (*jobs, job))

    def available(self) -> Job | None:
        """The job a lease takes now: the oldest queued, or whose lease expired."""
        return next((j for j in self.jobs if j.view(self.now)["status"] == "queued"), None)

    def lease(self, job: Job, token: str, seconds: int, handle: str | None = None) -> Queue:
        """The queue once ``job`` is leased under ``token`` (replacing an expired lease),
        kept by its ``handle`` when a client holds it."""
        leased = attrs.evolve(job, status="leased", lease=token, expires_at=self.now + seconds)
        held = {handle: (job.key, job.id, token)} if handle else {}
        return attrs.evolve(self.put(leased), leases={**self.leases, **held})

    @property
    def next_expiry(self) -> int:
        """Seconds until the next lease expires (one when no lease is held)."""
        held = [j.expires_at for j in self.jobs if j.view(self.now)["lease_expires_at"]]
        return min(held, default=self.now + 1) - self.now


def ack_or_nack(queue: Queue, out: dict[str, Any], lease: str, outcome: str) -> Queue:
    """The model function of ack and nack: the answer the lease's standing calls for, and
    one completion for a taken ack."""
    if lease not in queue.leases:  # in an order of a parallel history lacking the lease
        check("lease_honoured", expected="a lease handed out", actual=lease)
        return queue
    key, _, token = queue.leases[lease]
    job = queue.get(key)
    assert job is not None  # a lease handed out names a job of the queue
    done = job.finish(token, outcome, queue.now)
    if out is not UNKNOWN:
        answer = job.answer(token, outcome, queue.now)
        check("lease_honoured", expected=answer, actual=out["answer"], job=key, lease=lease)
        if outcome == ACK and out["answer"] == "ok":
            check("finished_once", expected=done.completions, actual=out["completions"], job=key)
    return queue.put(done)


class Jobs(Model):
    """A work queue: idempotent enqueue, leases expiring on a test clock, ack and nack."""

    sample = "jobs"
    tenant_prefix = "q_"
    model_state = Queue

    @command(key=KEY, idempotent=True)
    def enqueue(self, key: str) -> dict[str, Any]:
        job, headers = {"payload": PAYLOADS[key]}, {"Idempotency-Key": key}
        response = self.http.post(f"/queues/{self.tenant}/jobs", json=job, headers=headers)
        body = expect_status(response, 200, 201).json()
        created = response.status_code == 201
        return {"created": created, "id": body["id"], "payload": body["payload"]}

    @enqueue.model
    def enqueue(queue: Queue, out: dict[str, Any], key: str) -> Queue:
        job = queue.get(key) or Job(key, PAYLOADS[key])
        if out is UNKNOWN:
            return queue.put(job)
        # A key seen before answers with its job; a new key may too (not created now),
        # when an attempt whose answer was lost made it.
        created = out["created"] and key not in queue.keys
        expected = {"created": created, "id": job.id or out["id"], "payload": job.payload}
        check("enqueued_once", expected=expected, actual=out, key=key)
        return queue.put(attrs.evolve(job, id=out["id"]))

    @command(seconds=SECONDS, idempotent=True)
    def lease(self, seconds: int) -> dict[str, Any] | None:
        """Lease the oldest available job; one that got a job gets a handle (l0, l1, ...),
        unique among the clients of a program, for acks and nacks to name it by."""
        # A 204 leaves no trace of the key: a copy delivered unseen after another client's
        # enqueue may still lease, so ask again (the lease a copy made answers).
        url, headers = f"/queues/{self.tenant}/leases", {"Idempotency-Key": self.operation_key}
        for _ in range(3):
            response = self.http.post(url, json={"seconds": seconds}, headers=headers)
            if expect_status(response, 200, 204).status_code == 200:
                break
        if sometimes(response.status_code == 204, "no job to lease"):
            return None
        body = response.json()
        job, known = body["job"], self.state.get(body["job"]["idempotency_key"])
        sometimes(known and known.status == "leased", "an expired lease's job leased again")
        handle = f"l{next(self.shared.setdefault('handles', itertools.count()))}"
        out = {"handle": handle, "lease": body["lease"], "until": body["expires_at"]}
        return {**out, "key": job["idempotency_key"], "id": job["id"]}

    @lease.model
    def lease(queue: Queue, out: dict[str, Any] | None, seconds: int) -> Queue:
        job = queue.available()
        if out is UNKNOWN:  # a job may have been leased, under a token nobody knows
            return queue if job is None else queue.lease(job, UNKNOWN_TOKEN, seconds)
        # The job, not its view: a retry is answered with the lease it repeats, and the job
        # as it is now (its lease may have expired since).
        got = out and {"key": out["key"], "id": out["id"], "until": out["until"]}
        known = job and (job.id or (out and out["id"]))
        offer = job and {"key": job.key, "id": known, "until": queue.now + seconds}
        check("lease_matches_model", expected=offer, actual=got)
        if job is None or out is None:
            return queue
        return queue.lease(attrs.evolve(job, id=out["id"]), out["lease"], seconds, out["handle"])

    def _finish(self, handle: str, outcome: str) -> dict[str, Any]:
        """Ack or nack under the lease of ``handle`` (answered again as the first time)."""
        _, job_id, token = self.state.leases[handle]
        response = self.http.post(f"/jobs/{job_id}/{outcome}", json={"lease": token})
        body = expect_status(response, 200, 409).json()
        again = response.headers.get("idempotent-replayed") == "true"
        sometimes(outcome == ACK and again, "an ack answered again")
        if response.status_code == 409:
            return {"answer": body["error"]}
        return {"answer": "ok", "completions": body["completions"]}

    @command(lease=HANDLES, requires=lambda queue, lease: lease in queue.leases, idempotent=True)
    def ack(self, lease: str) -> dict[str, Any]:
        """Ack the job under this lease (which may have expired or been superseded)."""
        return self._finish(lease, ACK)

    ack.model(lambda queue, out, lease: ack_or_nack(queue, out, lease, ACK))

    @command(lease=HANDLES, requires=lambda queue, lease: lease in queue.leases, idempotent=True)
    def nack(self, lease: str) -> dict[str, Any]:
        """Hand the job back under this lease, for another attempt."""
        return self._finish(lease, NACK)

    nack.model(lambda queue, out, lease: ack_or_nack(queue, out, lease, NACK))

    # By a few seconds, or exactly until the next lease expires. Relative, so not idempotent:
    # once sent, it counts as landed (once, or twice) or not until the clock tells.
    @command(by=SECONDS | from_state(lambda queue: queue.next_expiry))
    def advance(self, by: int) -> int:
        response = self.http.post(f"/queues/{self.tenant}/clock", json={"advance": by})
        return int(expect_status(response, 200).json()["now"])

    @advance.model
    def advance(queue: Queue, now: int, by: int) -> Queue:
        return attrs.evolve(queue, now=queue.now + by)

    def _read(self, what: str) -> Any:
        return expect_status(self.http.get(f"/queues/{self.tenant}/{what}"), 200).json()

    @observation
    def listing(self) -> dict[str, Any]:
        """The jobs and the clock at one moment: a clock move whose answer was lost may land
        between two reads, so the jobs are read again until the clock stays put."""
        while True:
            now, jobs = self._read("clock")["now"], self._read("jobs")["data"]
            if self._read("clock")["now"] == now:
                break
        fields = ("id", "payload", "status", "attempts", "completions", "lease_expires_at")
        shown = [{"key": job["idempotency_key"], **{f: job[f] for f in fields}} for job in jobs]
        return {"now": now, "jobs": shown}

    @listing.model
    def listing(queue: Queue, seen: dict[str, Any]) -> Queue:
        jobs = seen["jobs"]
        per_key = Counter(job["key"] for job in jobs)
        check("enqueued_once", expected=dict.fromkeys(queue.keys, 1), actual=dict(per_key))
        shared = sorted(i for i, n in Counter(job["id"] for job in jobs).items() if n > 1)
        check("unique_ids", expected=[], actual=shared)
        twice = sorted(job["key"] for job in jobs if job["completions"] > 1)
        check("finished_once", expected=[], actual=twice)
        # The listing teaches the ids of jobs whose enqueue's answer was lost.
        ids = {job["key"]: job["id"] for job in jobs}
        learned = tuple(attrs.evolve(j, id=j.id or ids.get(j.key)) for j in queue.jobs)
        queue = attrs.evolve(queue, jobs=learned)
        expected = {"now": queue.now, "jobs": [job.view(queue.now) for job in queue.jobs]}
        check("jobs_listed", expected=expected, actual=seen)
        return queue


if __name__ == "__main__":
    main(Jobs)
