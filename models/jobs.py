"""Jobs: every job enqueued is enqueued once, and finishes exactly once, under its lease.

Run it as a workload (against $APP_URL, or the embedded sample service when unset)::

    python3 models/jobs.py
    propworkload run models/jobs.py --url http://127.0.0.1:8000

The reference model is a frozen ``Queue``: its jobs (each known by its idempotency key),
oldest first, and the queue's test clock. Each transition returns a new queue. Rules
enqueue jobs, lease the oldest available one, ack or nack it with any lease handed out so
far (current, expired or superseded) and move the clock so that leases expire;
``service_matches_model`` compares the service's listing with the queue after every step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import httpx
from hypothesis import strategies as st

from propworkload import (
    UNKNOWN,
    Bundle,
    Model,
    Possible,
    invariant,
    main,
    operation,
    rule,
    sometimes,
)

#: The token of a lease whose answer never came: no client holds it.
UNKNOWN_TOKEN = "?"
#: The leases a worker may ack or nack, by the handle the lease rule gave them (l0 is the
#: example's first lease that got a job): any lease handed out so far, current, expired
#: or superseded. Not drawn from the Bundle: a rule drawing from an empty Bundle is not
#: valid yet, and rules that come and go make Hypothesis shrink worse. A handle not
#: handed out yet does nothing.
HANDLES = st.integers(min_value=0, max_value=3).map(lambda i: f"l{i}")
#: What a worker does with its lease: ack (the job is done) or nack (try it again).
ACK, NACK = "ack", "nack"


@attrs.frozen
class Job:
    """A job as the model expects it."""

    key: str
    payload: str
    #: None while the job is only known from a request whose answer never came.
    id: str | None = None
    #: As stored: queued, leased or done (a lease that expired is still "leased" here).
    status: str = "queued"
    attempts: int = 0
    completions: int = 0
    #: The current lease's token and expiry, while leased.
    lease: str | None = None
    expires_at: int = 0
    #: The lease whose ack finished the job, and the leases that nacked it: the service
    #: answers each of those calls again as it did the first time.
    finished_by: str | None = None
    nacked_by: frozenset[str] = frozenset()

    def available(self, now: int) -> bool:
        """Whether a lease may take the job now: queued, or its lease has expired."""
        return self.status == "queued" or (self.status == "leased" and now >= self.expires_at)

    def view(self, now: int) -> dict[str, Any]:
        """What the service should show for this job at time ``now``."""
        status = "queued" if self.available(now) else self.status
        return {
            "id": self.id,
            "key": self.key,
            "payload": self.payload,
            "status": status,
            "attempts": self.attempts,
            "completions": self.completions,
            "lease_expires_at": self.expires_at if status == "leased" else None,
        }

    def answer(self, token: str, outcome: str, now: int) -> str:
        """The service's answer to an ack or nack of this job under lease ``token``:
        "ok", or the error code of its 409."""
        if (outcome == ACK and self.finished_by == token) or (
            outcome == NACK and token in self.nacked_by
        ):
            return "ok"  # the same call again
        if self.status == "done":
            return "already_done"
        if self.status != "leased" or self.lease != token or now >= self.expires_at:
            return "lease_lost"
        return "ok"


def _same(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Whether a view the service shows is the model's (an unknown id matches any)."""
    if expected["id"] is None:
        return {**expected, "id": actual.get("id")} == actual
    return expected == actual


@attrs.frozen
class Queue:
    """The reference model: one queue's jobs, oldest first, and its test clock."""

    #: Oldest first. A tuple, not a dict by key: two queues with the same jobs in another
    #: order are different states (they lease in another order).
    jobs: tuple[Job, ...] = ()
    now: int = 0

    def get(self, key: str) -> Job | None:
        return next((job for job in self.jobs if job.key == key), None)

    def completions(self, key: str) -> int:
        job = self.get(key)
        return 0 if job is None else job.completions

    def _with(self, job: Job) -> Queue:
        """The queue with ``job`` in place of the job of its key, or added last."""
        jobs = tuple(job if j.key == job.key else j for j in self.jobs)
        if self.get(job.key) is None:
            jobs += (job,)
        return attrs.evolve(self, jobs=jobs)

    def enqueue(self, key: str, payload: str, job_id: str | None) -> Queue:
        """The queue once ``key`` is enqueued; enqueueing a key again changes nothing but
        may teach the job's id."""
        existing = self.get(key)
        if existing is None:
            return self._with(Job(key=key, payload=payload, id=job_id))
        if existing.id is not None or job_id is None:
            return self
        return self._with(attrs.evolve(existing, id=job_id))

    def oldest_available(self) -> Job | None:
        return next((job for job in self.jobs if job.available(self.now)), None)

    def offer(self, seconds: int) -> dict[str, Any] | None:
        """What a lease for ``seconds`` answers: the oldest available job, leased (as
        its view and the lease's expiry), or None (204)."""
        job = self.oldest_available()
        if job is None:
            return None
        leased = self.lease(job.key, UNKNOWN_TOKEN, seconds, job.id).get(job.key)
        assert leased is not None
        return {"job": leased.view(self.now), "expires_at": self.now + seconds}

    def offer_fits(self, seconds: int, observed: dict[str, Any] | None) -> bool:
        offer = self.offer(seconds)
        if offer is None or observed is None:
            return offer is observed
        return offer["expires_at"] == observed["expires_at"] and _same(
            offer["job"], observed["job"]
        )

    def lease(self, key: str, token: str, seconds: int, job_id: str | None) -> Queue:
        """The queue once job ``key`` is leased under ``token`` (a lease replaces the
        job's earlier, expired one)."""
        job = self.get(key)
        if job is None:
            return self
        return self._with(
            attrs.evolve(
                job,
                id=job.id or job_id,
                status="leased",
                lease=token,
                expires_at=self.now + seconds,
            )
        )

    def lease_oldest(self, token: str, seconds: int) -> Queue:
        """The queue once a lease whose answer never came has landed."""
        job = self.oldest_available()
        return self if job is None else self.lease(job.key, token, seconds, None)

    def answer(self, key: str, token: str, outcome: str) -> str:
        job = self.get(key)
        return "no_such_job" if job is None else job.answer(token, outcome, self.now)

    def finish(self, key: str, token: str, outcome: str) -> Queue:
        """The queue after an ack or nack of job ``key`` under ``token``, if the service
        takes it; the same call again changes nothing."""
        job = self.get(key)
        if job is None or job.answer(token, outcome, self.now) != "ok":
            return self
        if outcome == ACK:
            if job.finished_by == token:
                return self
            return self._with(
                attrs.evolve(
                    job,
                    status="done",
                    completions=job.completions + 1,
                    lease=None,
                    finished_by=token,
                )
            )
        if token in job.nacked_by:
            return self
        return self._with(
            attrs.evolve(
                job,
                status="queued",
                attempts=job.attempts + 1,
                lease=None,
                nacked_by=job.nacked_by | {token},
            )
        )

    def set_clock(self, time: int) -> Queue:
        """The queue once its clock was set to ``time`` (never backwards)."""
        return attrs.evolve(self, now=max(self.now, time))

    def views(self) -> list[dict[str, Any]]:
        return [job.view(self.now) for job in self.jobs]

    def agrees_with(self, listed: dict[str, dict[str, Any]]) -> Queue | None:
        """This queue, with the ids it lacked taken from the service's listing of its jobs
        (by key, oldest first), in the listing's order (a job whose enqueue landed late
        comes late); None if the listing contradicts it."""
        if set(listed) != {job.key for job in self.jobs}:
            return None
        jobs = []
        for key, shown in listed.items():
            job = self.get(key)
            if job is None or not _same(job.view(self.now), shown):
                return None
            jobs.append(attrs.evolve(job, id=shown["id"]))
        return attrs.evolve(self, jobs=tuple(jobs))


def _view(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "key": job["idempotency_key"],
        "payload": job["payload"],
        "status": job["status"],
        "attempts": job["attempts"],
        "completions": job["completions"],
        "lease_expires_at": job["lease_expires_at"],
    }


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """The response, if its status is one the API documents for this call."""
    if response.status_code not in statuses:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url.path} returned {response.status_code}, "
            f"expected {' or '.join(map(str, statuses))}: {response.text[:200]}"
        )
    return response


class Jobs(Model):
    """A work queue: idempotent enqueue, leases that expire on the queue's test clock, ack
    and nack.

    Every write goes through ``self.retry`` with what makes it idempotent: an
    Idempotency-Key on enqueues and leases, the lease token on acks and nacks (the
    service answers the same call again as the first time), an absolute time on clock
    moves. When no attempt is answered the outcome is unknown: the model keeps the
    operation pending (``Possible.maybe``) and every later observation considers it
    landed or not.
    """

    sample = "jobs"
    tenant_prefix = "q_"

    #: Where the lease rule puts its handles, so that a sequence shows them (l0 = ...).
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.queues = Possible(Queue())
        self.keys: list[str] = []
        self.lease_requests = 0
        #: Lease handles (l0, l1, ...): the job's key and id and the lease's token.
        self.held: dict[str, tuple[str, str, str]] = {}

    def _enqueue(self, key: str, payload: str) -> httpx.Response:
        return self.http.post(
            f"/queues/{self.tenant}/jobs",
            json={"payload": payload},
            headers={"Idempotency-Key": key},
        )

    @rule(payload=st.sampled_from(["email", "resize", "report"]))
    def enqueue(self, payload: str) -> None:
        key = f"k{len(self.keys)}"
        self.keys.append(key)
        response = self.retry(lambda: self._enqueue(key, payload))
        if response is None:  # every attempt failed: it may or may not have been enqueued
            self.queues = self.queues.maybe(lambda q: q.enqueue(key, payload, None), key=key)
            return
        # 201 created; 200 when an earlier attempt (whose answer was lost) created it.
        job_id = _expect(response, 200, 201).json()["id"]
        self.queues = self.queues.then(lambda q: q.enqueue(key, payload, job_id), key=key)

    @rule(target=leases, seconds=st.integers(min_value=1, max_value=3))
    def lease(self, seconds: int) -> str | None:
        """Lease the oldest available job for ``seconds``; a lease that got a job gets a
        handle (l0, l1, ...) for ack and nack to name it by."""
        request_key = f"lease-{self.lease_requests}"
        self.lease_requests += 1
        response = self.retry(
            lambda: self.http.post(
                f"/queues/{self.tenant}/leases",
                json={"seconds": seconds},
                headers={"Idempotency-Key": request_key},
            )
        )
        if response is None:  # a job may have been leased, under a token nobody knows
            self.queues = self.queues.maybe(
                lambda q: q.lease_oldest(UNKNOWN_TOKEN, seconds), key=request_key
            )
            return None
        _expect(response, 200, 204)
        body = response.json() if response.status_code == 200 else None
        observed = None
        if body is not None:
            observed = {"job": _view(body["job"]), "expires_at": body["expires_at"]}
        sometimes(body is None, "no job to lease")
        sometimes(
            body is not None
            and any(
                getattr(q.get(body["job"]["idempotency_key"]), "status", None) == "leased"
                for q in self.queues
            ),
            "a job whose lease expired leased again",
        )
        self.check(
            "lease_matches_model",
            holds=any(q.offer_fits(seconds, observed) for q in self.queues),
            expected=self.queues.expected(lambda q: q.offer(seconds)),
            actual=observed,
            queue=self.tenant,
        )
        self.queues = self.queues.where(lambda q: q.offer_fits(seconds, observed))
        if body is None:
            return None
        key, job_id, token = body["job"]["idempotency_key"], body["job"]["id"], body["lease"]
        self.queues = self.queues.then(
            lambda q: q.lease(key, token, seconds, job_id), key=request_key
        )
        handle = f"l{len(self.held)}"
        self.held[handle] = (key, job_id, token)
        return handle

    @rule(lease=HANDLES)
    def ack(self, lease: str) -> None:
        """Ack the job under this lease (which may have expired or been superseded)."""
        self._finish(lease, ACK)

    @rule(lease=HANDLES)
    def nack(self, lease: str) -> None:
        """Hand the job back under this lease, for another attempt."""
        self._finish(lease, NACK)

    def _finish(self, handle: str, outcome: str) -> None:
        held = self.held.get(handle)
        if held is None:
            return  # no lease of that name (yet): nothing to finish
        key, job_id, token = held
        response = self.retry(
            lambda: self.http.post(f"/jobs/{job_id}/{outcome}", json={"lease": token})
        )

        def transition(queue: Queue) -> Queue:
            return queue.finish(key, token, outcome)

        def answer(queue: Queue) -> str:
            return queue.answer(key, token, outcome)

        if response is None:
            self.queues = self.queues.maybe(transition, key=f"{outcome}:{token}")
            return
        body = _expect(response, 200, 409).json()
        actual = "ok" if response.status_code == 200 else body["error"]
        sometimes(
            outcome == ACK and response.headers.get("idempotent-replayed") == "true",
            "an ack answered again",
        )
        # The service takes an ack or nack exactly when the lease still holds the job (or
        # it is the same call again), and otherwise says why not.
        self.check(
            "lease_honoured",
            holds=actual in self.queues.values(answer),
            expected=self.queues.expected(answer),
            actual=actual,
            job=job_id,
            lease=handle,
        )
        self.queues = self.queues.where(lambda q: answer(q) == actual).then(
            transition, key=f"{outcome}:{token}"
        )
        if actual == "ok":

            def completions(queue: Queue) -> int:
                return queue.completions(key)

            self.check(
                "finished_once",
                holds=body["completions"] in self.queues.values(completions),
                expected=self.queues.expected(completions),
                actual=body["completions"],
                job=job_id,
                lease=handle,
            )

    @rule(by=st.integers(min_value=1, max_value=3))
    def advance(self, by: int) -> None:
        """Move the queue's test clock ``by`` seconds (to an absolute time, so that a
        retry moves it once)."""
        time = max(self.queues.values(lambda q: q.now)) + by
        response = self.retry(
            lambda: self.http.post(f"/queues/{self.tenant}/clock", json={"to": time})
        )
        if response is None:
            self.queues = self.queues.maybe(lambda q: q.set_clock(time), key=f"clock:{time}")
            return
        _expect(response, 200)
        self.queues = self.queues.then(lambda q: q.set_clock(time), key=f"clock:{time}")

    @invariant()
    def service_matches_model(self) -> None:
        listed = _expect(self.http.get(f"/queues/{self.tenant}/jobs"), 200).json()["data"]
        per_key = Counter(job["idempotency_key"] for job in listed)
        for key in self.keys:

            def count(queue: Queue, key: str = key) -> int:
                return int(queue.get(key) is not None)

            self.check(
                "enqueued_once",
                holds=per_key[key] in self.queues.values(count),
                expected=self.queues.expected(count),
                actual=per_key[key],
                queue=self.tenant,
                key=key,
            )
        shared = sorted(i for i, n in Counter(job["id"] for job in listed).items() if n > 1)
        self.check("unique_ids", expected=[], actual=shared, queue=self.tenant)
        for job in listed:

            def completions(queue: Queue, key: str = job["idempotency_key"]) -> int:
                return queue.completions(key)

            # A job is finished once: never more, and exactly when the model acked it.
            self.check(
                "finished_once",
                holds=job["completions"] <= 1
                and job["completions"] in self.queues.values(completions),
                expected=self.queues.expected(completions),
                actual=job["completions"],
                job=job["id"],
                key=job["idempotency_key"],
            )
        # The listing shows which pending operations have landed so far (others may still
        # land, even between this read and the next): keep the queues that agree with it.
        by_key = {job["idempotency_key"]: _view(job) for job in listed}
        self.queues = self.queues.refine(lambda q: q.agrees_with(by_key))
        actual = [_view(job) for job in listed]
        self.check(
            "jobs_listed",
            holds=any(
                len(views) == len(actual) and all(map(_same, views, actual))
                for views in self.queues.values(Queue.views)
            ),
            expected=self.queues.expected(Queue.views),
            actual=actual,
            queue=self.tenant,
        )

    # -- concurrent mode (--concurrency K) ------------------------------------------
    # Clients at once enqueue two shared keys, lease and ack, so that they race on the
    # same jobs; each operation's real call returns what it observed, and its model
    # transition (on the same Queue as the rules above) says whether that was possible.
    # Leases last 30 s and the clock stays put, so none expires.

    model_state = Queue
    final_operations = ("observe",)

    @operation(key=st.sampled_from(["k0", "k1"]))
    def put(self, key: str) -> dict[str, Any]:
        response = _expect(self._enqueue(key, f"work-{key}"), 200, 201)
        return {"status": response.status_code, "id": response.json()["id"]}

    @put.model
    def put(queue: Queue, output: Any, key: str) -> tuple[bool, Queue]:
        if output is UNKNOWN:
            return True, queue.enqueue(key, f"work-{key}", None)
        existing = queue.get(key)
        if existing is None:  # created now
            ok = output["status"] == 201
        else:  # the original job, answered again
            ok = output["status"] == 200 and existing.id in (None, output["id"])
        return ok, queue.enqueue(key, f"work-{key}", output["id"])

    @operation()
    def take(self) -> dict[str, Any]:
        response = _expect(self.http.post(f"/queues/{self.tenant}/leases", json={}), 200, 204)
        if response.status_code == 204:
            return {"status": 204}
        body = response.json()
        key, job_id = body["job"]["idempotency_key"], body["job"]["id"]
        self.shared[key] = (job_id, body["lease"])
        return {"status": 200, "key": key, "id": job_id, "lease": body["lease"]}

    @take.model
    def take(queue: Queue, output: Any) -> tuple[bool, Queue]:
        if output is UNKNOWN:
            return True, queue.lease_oldest(UNKNOWN_TOKEN, 30)
        job = queue.oldest_available()
        if output["status"] == 204:
            return job is None, queue
        ok = job is not None and job.key == output["key"] and job.id in (None, output["id"])
        return ok, queue.lease(output["key"], output["lease"], 30, output["id"])

    @operation(key=st.sampled_from(["k0", "k1"]))
    def finish(self, key: str) -> dict[str, Any]:
        """Ack job ``key`` under the lease a client got for it, if any."""
        held: tuple[str, str] | None = self.shared.get(key)
        if held is None:
            return {"status": "no lease"}
        job_id, token = held
        response = _expect(self.http.post(f"/jobs/{job_id}/ack", json={"lease": token}), 200, 409)
        answer = "ok" if response.status_code == 200 else response.json()["error"]
        return {"lease": token, "answer": answer}

    @finish.model
    def finish(queue: Queue, output: Any, key: str) -> tuple[bool, Queue]:
        job = queue.get(key)
        if output is UNKNOWN:  # it used the job's lease, which no lease replaces here
            if job is None or job.lease is None:
                return True, queue
            return True, queue.finish(key, job.lease, ACK)
        if output.get("status") == "no lease":
            return True, queue
        token = output["lease"]
        return output["answer"] == queue.answer(key, token, ACK), queue.finish(key, token, ACK)

    @operation()
    def observe(self) -> dict[str, Any]:
        listed = _expect(self.http.get(f"/queues/{self.tenant}/jobs"), 200).json()["data"]
        return {
            "jobs": [
                [j["idempotency_key"], j["status"], j["attempts"], j["completions"]] for j in listed
            ]
        }

    @observe.model
    def observe(queue: Queue, output: Any) -> tuple[bool, Queue]:
        if output is UNKNOWN:
            return True, queue
        expected = [[v["key"], v["status"], v["attempts"], v["completions"]] for v in queue.views()]
        return output == {"jobs": expected}, queue


if __name__ == "__main__":
    main(Jobs)
