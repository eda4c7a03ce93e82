"""Jobs in Redis: submit, read, list, cancel, retry, delete, and the worker's
start/output/result calls.

Every state change goes through one Lua script (lua/*.lua); reads are plain commands.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.resources import Resources
from shared.states import JobState
from shared.store.errors import (
    InvalidState,
    NotFound,
    NotYourAttempt,
    StaleAttempt,
    StoreError,
)
from shared.store.records import chunk_from_entry, job_from_hash
from shared.store.scripts import StorePart

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_LIST_SCAN = 5000


@dataclass(frozen=True)
class Transition:
    state: str
    version: int


@dataclass(frozen=True)
class Backoff:
    """The wait before automatic retry n: base_s * 2**(n-1) seconds, at most max_s
    (JOBYARD_RETRY_BACKOFF_S and JOBYARD_RETRY_BACKOFF_MAX_S, whose defaults these are)."""

    base_s: float = 1.0
    max_s: float = 300.0

    def args(self) -> list[float]:
        return [self.base_s, self.max_s]


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class Submission:
    """One job to store: its spec (the fields of JobSubmitSchema a job keeps), what it asks
    for, and its idempotency key. `cpu_only`: the submission named no memory (see
    scheduler/rank.scorer)."""

    job_id: str
    spec: dict[str, Any]
    resources: Resources
    priority: int
    idempotency_key: str | None = None
    cpu_only: bool = False

    def args(self) -> list[Any]:
        """submit.lua's values for this job, in its order."""
        spec = self.spec
        return [
            self.job_id,
            json.dumps(spec),
            self.resources.cpu_m,
            self.resources.memory_mb,
            self.resources.gpus,
            self.priority,
            self.idempotency_key or "",
            json.dumps(spec.get("constraints") or {}),
            spec.get("queue_timeout_s") or "",
            spec.get("timeout_s") or "",
            spec.get("max_retries") or 0,
            "1" if self.cpu_only else "0",
            "1" if spec.get("network") else "0",
        ]


@dataclass(frozen=True)
class Update:
    """One item of a worker's batch of updates: its attempt started (no `result`), or ended
    (`result`: the fields of a result report)."""

    job_id: str
    attempt: int
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class UpdateOutcome:
    """What became of one update: the transition, or why it was refused (as the per-job
    call would raise it); `cancel` tells the worker the user asked to cancel the job."""

    transition: Transition | None
    refused: StoreError | None
    cancel: bool


class JobStore(StorePart):
    def submit(
        self,
        job_id: str,
        owner: str,
        spec: dict[str, Any],
        resources: Resources,
        priority: int,
        idempotency_key: str | None = None,
        cpu_only: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store a QUEUED job. Returns (the job, created); with an idempotency key already
        used by this owner, the first job and False."""
        submission = Submission(job_id, spec, resources, priority, idempotency_key, cpu_only)
        return self.submit_many(owner, [submission])[0]

    def submit_many(
        self, owner: str, submissions: Sequence[Submission]
    ) -> list[tuple[dict[str, Any], bool]]:
        """Store QUEUED jobs of one owner in one atomic step. Returns (the job, created) for
        each, in order; a submission whose idempotency key this owner used already gives
        the first job and False."""
        keys = self.keys.common() + [self.keys.jobs, self.keys.owner_jobs(owner), self.keys.seq]
        args: list[Any] = [self.clock(), owner, IDEMPOTENCY_TTL_S]
        for submission in submissions:
            keys += [
                self.keys.job(submission.job_id),
                self.keys.job_events(submission.job_id),
                self.keys.idempotency(owner, submission.idempotency_key or ""),
            ]
            args += submission.args()
        answers = self.scripts.run("submit", keys, args)
        earlier = self.get_many([answer[1] for answer in answers if not answer[0]])
        found = {job["id"]: job for job in earlier}
        results: list[tuple[dict[str, Any], bool]] = []
        for created, job_id, *stored in answers:
            if created:
                flat = stored[0]
                results.append((job_from_hash(dict(zip(flat[::2], flat[1::2], strict=True))), True))
            elif job_id in found:
                results.append((found[job_id], False))
            else:
                # The first job went between the script and this read (deleted): the key
                # named it, so say so rather than store a second one.
                raise NotFound(f"no job {job_id}")
        return results

    def get(self, job_id: str) -> dict[str, Any]:
        h = self.redis.hgetall(self.keys.job(job_id))
        if not h:
            raise NotFound(f"no job {job_id}")
        return job_from_hash(h)

    def get_many(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The jobs that still exist, in the order asked."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        return [job_from_hash(h) for h in pipe.execute() if h]

    def owners(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The owner of each job that still exists, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "owner")
        return {j: owner for j, owner in zip(job_ids, pipe.execute(), strict=True) if owner}

    def query(
        self,
        *,
        owner: str | None,
        state: str | None = None,
        worker: str | None = None,
        label: tuple[str, str] | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first. `owner` None means every owner (admins). The cursor is the arrival
        number to continue below; returns (jobs, next cursor or None at the end)."""
        if state:
            index = self.keys.state(JobState(state))
        elif owner is not None:
            index = self.keys.owner_jobs(owner)
        else:
            index = self.keys.jobs
        top = f"({cursor}" if cursor is not None else "+inf"
        found: list[dict[str, Any]] = []
        scanned = 0
        while scanned < MAX_LIST_SCAN:
            page = self.redis.zrevrangebyscore(
                index, top, "-inf", start=0, num=limit, withscores=True
            )
            if not page:
                return found, None
            scanned += len(page)
            jobs = {job["id"]: job for job in self.get_many([job_id for job_id, _ in page])}
            for job_id, score in page:
                job = jobs.get(job_id)
                if job and _matches(job, owner, worker, label):
                    found.append(job)
                    if len(found) == limit:
                        return found, int(score)
            top = f"({int(page[-1][1])}"
        # Scanned enough for one request: hand back a cursor to go on from.
        return found, int(top[1:])

    def counts(self, owner: str | None = None) -> dict[str, int]:
        """Jobs per state: every owner's (None), or one owner's."""
        if owner is None:
            pipe = self.redis.pipeline(transaction=False)
            for state in JobState:
                pipe.zcard(self.keys.state(state))
            return {state.value: n for state, n in zip(JobState, pipe.execute(), strict=True)}
        fields = [f"{owner}\t{state.value}" for state in JobState]
        values = self.redis.hmget(self.keys.owner_counts, fields)
        return {state.value: int(v or 0) for state, v in zip(JobState, values, strict=True)}

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(self.keys.job_events(job_id), 0, -1)]

    def cancel(self, job_id: str, actor: str | None = None) -> Transition:
        """QUEUED ends CANCELLED now; ASSIGNED/RUNNING is flagged for its agent to stop.
        `actor`, the name of who asked, goes on the job's event and the feed's."""
        return self._user_action("cancel", job_id, actor, "it cannot be cancelled")

    def retry(self, job_id: str, actor: str | None = None) -> Transition:
        """FAILED or CANCELLED goes back to QUEUED; its next assignment is a new attempt."""
        return self._user_action(
            "retry", job_id, actor, "only FAILED or CANCELLED jobs can be retried"
        )

    def delete(self, job_id: str, actor: str | None = None) -> None:
        """Delete a terminal job with its output and history."""
        (status,) = self._delete([job_id], cutoff=None, actor=actor)
        if status == "not_found":
            raise NotFound(f"no job {job_id}")
        if status != "deleted":
            raise InvalidState(
                f"job {job_id} is {status}: only finished jobs can be deleted", status
            )

    def purge_finished(self, older_than_s: float, limit: int) -> int:
        """Delete up to `limit` jobs that finished more than older_than_s ago (retention).
        Returns how many went."""
        cutoff = self.clock() - older_than_s
        due = self.redis.zrangebyscore(self.keys.finished, "-inf", cutoff, start=0, num=limit)
        return sum(1 for status in self._delete(due, cutoff) if status == "deleted")

    def _delete(
        self, job_ids: Sequence[str], cutoff: float | None, actor: str | None = None
    ) -> list[str]:
        if not job_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self.keys.job(job_id), "owner", "idem")
        keys = self.keys.common() + [self.keys.jobs]
        args: list[Any] = [self.clock(), "" if cutoff is None else cutoff, actor or ""]
        for job_id, (owner, idem) in zip(job_ids, pipe.execute(), strict=True):
            # Owner and key never change once stored; the script checks they still match.
            owner, idem = owner or "", idem or ""
            keys += [
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.job_output(job_id),
                self.keys.owner_jobs(owner),
                self.keys.idempotency(owner, idem),
            ]
            args += [job_id, owner, idem]
        return list(self.scripts.run("delete", keys, args))

    def _user_action(
        self, script: str, job_id: str, actor: str | None, refusal: str
    ) -> Transition:
        status, state, version = self.scripts.run(
            script,
            self.keys.common() + [self.keys.job(job_id), self.keys.job_events(job_id)],
            [self.clock(), job_id, actor or ""],
        )
        if status == "not_found":
            raise NotFound(f"no job {job_id}")
        if status == "conflict":
            raise InvalidState(f"job {job_id} is {state}: {refusal}", state)
        return Transition(state, version)

    def start(self, job_id: str, worker_id: str, attempt: int) -> Transition:
        reply = self.scripts.run(
            "start",
            self.keys.common() + [self.keys.job(job_id), self.keys.job_events(job_id)],
            [self.clock(), job_id, worker_id, attempt],
        )
        return _worker_call_outcome(job_id, attempt, reply)

    def finish(
        self,
        job_id: str,
        worker_id: str,
        attempt: int,
        *,
        exit_code: int | None,
        reason: str | None,
        error: str | None,
        metrics: dict[str, Any],
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> Transition:
        """The attempt ended: COMPLETED, FAILED or CANCELLED, or QUEUED again after `backoff`
        when the job failed by itself and has an automatic retry left."""
        keys = self.keys.common() + [
            self.keys.job(job_id),
            self.keys.job_events(job_id),
            self.keys.worker(worker_id),
            self.keys.worker_jobs(worker_id),
        ]
        args = [
            self.clock(),
            job_id,
            worker_id,
            attempt,
            *_result_args(exit_code, reason, error, metrics),
            *backoff.args(),
        ]
        return _worker_call_outcome(job_id, attempt, self.scripts.run("result", keys, args))

    def update_many(
        self, worker_id: str, updates: Sequence[Update], backoff: Backoff = DEFAULT_BACKOFF
    ) -> list[UpdateOutcome]:
        """Starts and results of this worker's attempts in one atomic call, each fenced on
        its own (start and finish, item by item): one refused does not refuse the rest."""
        keys = self.keys.common() + [self.keys.worker(worker_id), self.keys.worker_jobs(worker_id)]
        args: list[Any] = [self.clock(), worker_id, *backoff.args()]
        for update in updates:
            keys += [self.keys.job(update.job_id), self.keys.job_events(update.job_id)]
            if update.result is None:
                args += ["start", update.job_id, update.attempt, "", "", "", ""]
            else:
                args += ["result", update.job_id, update.attempt, *_result_args(**update.result)]
        outcomes = []
        for update, (*reply, cancel) in zip(
            updates, self.scripts.run("updates", keys, args), strict=True
        ):
            try:
                outcome = _worker_call_outcome(update.job_id, update.attempt, reply)
            except StoreError as exc:
                outcomes.append(UpdateOutcome(None, exc, cancel == 1))
            else:
                outcomes.append(UpdateOutcome(outcome, None, cancel == 1))
        return outcomes

    def append_output(
        self,
        job_id: str,
        worker_id: str,
        attempt: int,
        chunks: list[dict[str, Any]],
        max_bytes: int,
    ) -> bool:
        """Store new chunks (a seq already seen is ignored). Returns whether the user asked
        to cancel the job, so the agent learns it with its next post."""
        status, _stored, cancel = self.scripts.run(
            "output",
            self.keys.common()
            + [self.keys.job(job_id), self.keys.job_output(job_id), self.keys.job_events(job_id)],
            [
                worker_id,
                attempt,
                max_bytes,
                json.dumps(sorted(chunks, key=lambda c: c["seq"])),
                self.clock(),
                job_id,
            ],
        )
        if status == "not_found":
            raise NotFound(f"no job {job_id}")
        if status == "forbidden":
            raise _not_yours(job_id, attempt)
        if status == "stale":
            raise StaleAttempt(f"attempt {attempt} of job {job_id} is not current")
        return cancel == 1

    def read_output(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Chunks numbered above `offset`, oldest first."""
        entries = self.redis.xrange(
            self.keys.job_output(job_id), f"{offset + 1}-0", "+", count=limit
        )
        return [chunk_from_entry(entry_id, fields) for entry_id, fields in entries]


def _matches(
    job: dict[str, Any], owner: str | None, worker: str | None, label: tuple[str, str] | None
) -> bool:
    if owner is not None and job["owner"] != owner:
        return False
    if worker is not None and job["worker_id"] != worker:
        return False
    return label is None or job.get("labels", {}).get(label[0]) == label[1]


def _result_args(
    exit_code: int | None, reason: str | None, error: str | None, metrics: dict[str, Any]
) -> list[Any]:
    """A result's values for result.lua and updates.lua: exit_code, reason, error ('' for
    none) and the metrics as JSON."""
    return [
        "" if exit_code is None else exit_code,
        reason or "",
        error or "",
        json.dumps(metrics),
    ]


def _worker_call_outcome(job_id: str, attempt: int, reply: list[Any]) -> Transition:
    status, state, version = reply
    if status == "not_found":
        raise NotFound(f"no job {job_id}")
    if status == "forbidden":
        raise _not_yours(job_id, attempt)
    if status == "stale":
        # The state only when the script tells it: not while another worker holds the job.
        known = f" (job is {state})" if state else ""
        raise StaleAttempt(f"attempt {attempt} of job {job_id} is not current{known}")
    return Transition(state, version)


def _not_yours(job_id: str, attempt: int) -> NotYourAttempt:
    # Names only what the worker sent: not the job's state, nor who holds it.
    return NotYourAttempt(f"attempt {attempt} of job {job_id} is not this worker's")
