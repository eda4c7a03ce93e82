"""Property-based tests of the store on a real redis-server: random sequences of every job
and worker transition (automatic retries with their backoff, the reaper's clocks, deletion
and retention included), checked against a model and the store's invariants after each
step; and two schedulers placing concurrently, which must never assign a job twice.
"""

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from scheduler.loop import schedule_once
from shared.config import Config
from shared.resources import Resources
from shared.states import ACTIVE_STATES, RETRYABLE_REASONS, TERMINAL_STATES, JobState
from shared.store import Store, connect
from shared.store.errors import InvalidState, NotFound, NotYourAttempt, StaleAttempt
from shared.store.jobs import Backoff
from shared.store.workers import WorkerLost
from tests.store_support import (
    LEASE_TOKEN,
    WORKER_TIMEOUT_S,
    ManualClock,
    check_store_invariants,
    commit,
    register,
    submit,
)

PREFIX = "prop:"
MAX_REQUEUES = 2  # the concurrent test's; the machine draws 0..2 so that both ends happen
PICK = st.integers(0, 2**16)  # an index into whatever the rule chooses from
# A plain exit (no reason) is the common case; exit code 0 makes COMPLETED.
EXIT_CODES = st.sampled_from([0, 0, 1, 137, None])
REASONS = st.sampled_from([None, None, None, "oom", "timeout", "error", "cancelled"])
# Small requests too, so that job slots run out before CPU and memory do.
JOBS = st.tuples(
    st.integers(1, 200) | st.integers(1, 4000),  # cpu_m
    st.integers(1, 128) | st.integers(1, 4096),  # memory_mb
    st.integers(-3, 3),  # priority
    st.sampled_from(["alice", "bob"]),  # owner
    st.sampled_from([0, 1, 2, 3]),  # max_retries
    st.sampled_from([None, None, 30]),  # timeout_s: a run with one has a deadline to keep
)
JobArgs = tuple[int, int, int, str, int, int | None]
# Delays of 5, 10, 20, 20 ... seconds: time_passes reaches them in one to four steps.
BACKOFF = Backoff(base_s=5.0, max_s=20.0)
# Roomy workers too, so that a worker fills its job slots before its CPU and memory.
WORKERS = st.tuples(
    st.integers(1, 8000) | st.integers(4000, 8000),  # cpu_m
    st.integers(1, 8192) | st.integers(4096, 8192),  # memory_mb
    st.integers(1, 4),  # slots
)
NO_SUCH_JOB, NO_SUCH_WORKER = "no-such-job", "no-such-worker"

QUEUED, ASSIGNED, RUNNING = JobState.QUEUED, JobState.ASSIGNED, JobState.RUNNING
COMPLETED, FAILED, CANCELLED = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED


def config() -> Config:
    return Config.from_env({}, worker_timeout_s=WORKER_TIMEOUT_S, placement="binpack")


# How to read each type of key as plain values. Not DUMP: a large hash is a hash table whose
# serialized order moves with Redis's incremental rehashing, which even reads advance, so
# equal contents could dump differently.
READERS: dict[bytes, Callable[[Any, bytes], Any]] = {
    b"string": lambda pipe, key: pipe.get(key),
    b"hash": lambda pipe, key: pipe.hgetall(key),
    b"list": lambda pipe, key: pipe.lrange(key, 0, -1),
    b"set": lambda pipe, key: pipe.smembers(key),
    b"zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    b"stream": lambda pipe, key: pipe.xrange(key),
}


def snapshot(raw: "redis.Redis[bytes]") -> dict[bytes, Any]:
    """Every key of ours with its contents: equal snapshots mean the call changed nothing."""
    keys = sorted(raw.scan_iter(match=f"{PREFIX}*", count=1000))
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = pipe.execute()
    for key, kind in zip(keys, types, strict=True):
        READERS[kind](pipe, key)
    return dict(zip(keys, zip(types, pipe.execute(), strict=True), strict=True))


def end_of(exit_code: int | None, reason: str | None) -> tuple[JobState, str | None]:
    """The state and reason a result ends an attempt in (DESIGN §2)."""
    if reason == "cancelled":
        return CANCELLED, reason
    if reason:
        return FAILED, reason
    if exit_code == 0:
        return COMPLETED, None
    return FAILED, "exit_code"


@dataclass
class JobModel:
    request: Resources
    max_retries: int = 0
    timeout_s: int | None = None
    state: JobState = QUEUED
    version: int = 1
    attempt: int = 0
    worker: str | None = None
    requeues: int = 0
    user_retries: int = 0  # explicit retries: the only way out of a terminal state
    retries: int = 0  # automatic retries spent
    retry_at: float | None = None  # while QUEUED, waiting out a retry backoff
    ended_by_agent: bool = False  # the current attempt ended by its agent's result
    finished_at: float | None = None
    cancel_requested: bool = False
    since: float = 0.0  # when it was assigned, or started, for the reaper's clocks

    def end(self, state: JobState, now: float) -> None:
        """A transition to `state` (its version bump included) decided by the control plane."""
        self.state, self.version = state, self.version + 1
        self.finished_at = now if state in TERMINAL_STATES else None

    def retry_later(self, now: float) -> bool:
        """After a failure of its own: wait out the backoff if a retry is left."""
        if self.retries >= self.max_retries or self.cancel_requested:
            return False
        self.retry_at = now + min(BACKOFF.base_s * 2**self.retries, BACKOFF.max_s)
        self.retries += 1
        return True


@dataclass
class WorkerModel:
    hostname: str
    capacity: Resources
    slots: int
    last_seen: float
    status: str = "alive"  # alive, draining, lost, or gone once deregistered or forgotten
    lost_at: float | None = None  # first declared lost: its retention runs from then


class StoreMachine(RuleBasedStateMachine):
    redis_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.client = connect(self.redis_url)
        self.raw: redis.Redis[bytes] = redis.Redis.from_url(self.redis_url)
        self.client.flushdb()
        self.store = Store(self.client, PREFIX, self.clock)
        self.config = config()
        self.jobs: dict[str, JobModel] = {}
        self.deleted: list[str] = []
        self.submitted = 0
        self.workers: dict[str, WorkerModel] = {}
        self.seen: dict[str, tuple[int, int]] = {}  # job id -> (version, attempt) last checked

    def teardown(self) -> None:
        self.client.close()
        self.raw.close()

    # Choosing from the model

    def _jobs_in(self, *states: JobState) -> list[str]:
        return sorted(j for j, m in self.jobs.items() if m.state in states)

    def _waiting(self) -> list[str]:
        return sorted(j for j, m in self.jobs.items() if m.retry_at is not None)

    def _gone(self) -> list[str]:
        """Ids no job has any more: never submitted, or deleted."""
        return [NO_SUCH_JOB, *self.deleted[-2:]]

    def _workers_in(self, *statuses: str) -> list[str]:
        return sorted(w for w, m in self.workers.items() if m.status in statuses)

    @staticmethod
    def _choose(ids: list[str], pick: int) -> str:
        return ids[pick % len(ids)]

    def _held_by(self, worker_id: str) -> list[str]:
        return sorted(
            j for j, m in self.jobs.items() if m.state in ACTIVE_STATES and m.worker == worker_id
        )

    def _reserved(self, worker_id: str) -> tuple[Resources, int]:
        held = self._held_by(worker_id)
        total = Resources(0, 0, 0)
        for job_id in held:
            total = total + self.jobs[job_id].request
        return total, len(held)

    def _is_live(self, worker: WorkerModel) -> bool:
        return worker.status == "alive" and worker.last_seen >= self.clock() - WORKER_TIMEOUT_S

    def _assigned(self, job_id: str, worker_id: str) -> None:
        job = self.jobs[job_id]
        job.state, job.worker, job.cancel_requested = ASSIGNED, worker_id, False
        job.ended_by_agent = False
        job.attempt += 1
        job.version += 1
        job.since = self.clock()

    # Jobs and workers come and go

    @initialize(workers=st.lists(WORKERS, min_size=1, max_size=3), jobs=st.lists(JOBS, max_size=6))
    def some_workers_and_jobs(
        self, workers: list[tuple[int, int, int]], jobs: list[JobArgs]
    ) -> None:
        """Start from a small cluster, so that most steps have something to act on."""
        for worker in workers:
            self.register_worker(*worker)
        for job in jobs:
            self.submit(*job)

    @rule(job=JOBS)
    def submit_job(self, job: JobArgs) -> None:
        self.submit(*job)

    def submit(
        self,
        cpu_m: int,
        memory_mb: int,
        priority: int,
        owner: str,
        max_retries: int,
        timeout_s: int | None,
    ) -> None:
        job_id = f"j{self.submitted}"
        self.submitted += 1
        submit(
            self.store,
            job_id,
            cpu_m,
            memory_mb,
            priority=priority,
            owner=owner,
            max_retries=max_retries,
            timeout_s=timeout_s,
        )
        self.jobs[job_id] = JobModel(Resources(cpu_m, memory_mb, 0), max_retries, timeout_s)

    @rule(worker=WORKERS)
    def register_new_worker(self, worker: tuple[int, int, int]) -> None:
        self.register_worker(*worker)

    def register_worker(self, cpu_m: int, memory_mb: int, slots: int) -> None:
        self._register(f"host{len(self.workers)}", Resources(cpu_m, memory_mb, 0), slots)

    def _register(self, hostname: str, capacity: Resources, slots: int) -> None:
        worker_id = f"w{len(self.workers)}"
        self.store.workers.register(
            worker_id,
            f"hash-{worker_id}",
            hostname=hostname,
            capacity=capacity,
            slots=slots,
            labels={},
            executor="process",
            max_workers=1000,  # more than a sequence registers: test_workers covers the cap
        )
        self.workers[worker_id] = WorkerModel(hostname, capacity, slots, self.clock())

    @precondition(lambda self: self._workers_in("lost"))
    @rule(pick=PICK)
    def reregister_lost_host(self, pick: int) -> None:
        """A lost worker's host comes back: it joins as a new worker with a new id."""
        old = self.workers[self._choose(self._workers_in("lost"), pick)]
        self._register(old.hostname, old.capacity, old.slots)

    @rule(seconds=st.integers(1, 40))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(pick=PICK, everyone=st.booleans())
    def heartbeat(self, pick: int, everyone: bool) -> None:
        """One worker's heartbeat, or every worker's (the usual case: time passes for all)."""
        worker_ids = (
            sorted(self.workers) if everyone else [self._choose(sorted(self.workers), pick)]
        )
        for worker_id in worker_ids:
            self._heartbeat(worker_id)

    def _heartbeat(self, worker_id: str) -> None:
        worker = self.workers[worker_id]
        held = self._held_by(worker_id)
        # It reports its own jobs, and one attempt that is not current, which it must stop.
        reported = [(j, self.jobs[j].attempt) for j in held] + [("ghost", 1)]
        if worker.status == "gone":
            with pytest.raises(NotFound):
                self.store.workers.heartbeat(worker_id, {}, reported)
            return
        if worker.status == "lost":
            with pytest.raises(WorkerLost):
                self.store.workers.heartbeat(worker_id, {}, reported)
            return
        cancel, stop = self.store.workers.heartbeat(worker_id, {"load1": 0.5}, reported)
        assert cancel == [j for j in held if self.jobs[j].cancel_requested]
        assert stop == ["ghost"]
        worker.last_seen = self.clock()

    # Placement

    @rule()
    def schedule(self) -> None:
        queued = self._jobs_in(QUEUED)
        before_pass = [self.client.hget(self.store.keys.job(j), "pending_reason") for j in queued]
        assigned = schedule_once(self.store, self.config, LEASE_TOKEN)
        pipe = self.client.pipeline(transaction=False)
        for job_id in queued:
            pipe.hmget(self.store.keys.job(job_id), "state", "worker_id", "pending_reason")
        placed = 0
        replies = zip(queued, before_pass, pipe.execute(), strict=True)
        for job_id, before, (state, worker_id, pending_reason) in replies:
            if self.jobs[job_id].retry_at is not None:
                assert state == QUEUED, f"{job_id} was placed while waiting to retry"
                continue
            if state == QUEUED:
                # DESIGN §2: a job that waits says why.
                assert pending_reason, f"{job_id} is still queued with no pending reason"
                self.jobs[job_id].version += pending_reason != before  # a new reason, a version
                continue
            assert state == ASSIGNED, f"schedule_once moved {job_id} to {state}"
            worker = self.workers[worker_id]
            assert self._is_live(worker), f"{job_id} placed on {worker_id}, which is {worker}"
            self._assigned(job_id, worker_id)
            placed += 1
        assert assigned == placed

    @precondition(lambda self: self.jobs)
    @rule(pairs=st.lists(st.tuples(PICK, PICK), min_size=1, max_size=5))
    def commit_placements(self, pairs: list[tuple[int, int]]) -> None:
        """Arbitrary placements, valid or not: the commit must make exactly the valid ones.
        Queued jobs and alive workers are drawn more often, so that some are valid."""
        job_ids = [*self._jobs_in(QUEUED) * 3, *sorted(self.jobs), NO_SUCH_JOB]
        worker_ids = [
            *self._workers_in("alive") * 3,
            *self._workers_in("draining", "lost") * 2,
            *sorted(self.workers),
            NO_SUCH_WORKER,
        ]
        self._commit([(self._choose(job_ids, j), self._choose(worker_ids, w)) for j, w in pairs])

    @precondition(lambda self: self._jobs_in(QUEUED) and self.workers)
    @rule(pick=PICK, count=st.integers(2, 6))
    def fill_one_worker(self, pick: int, count: int) -> None:
        """The smallest queued jobs, all onto one worker: until its slots, CPU or memory run
        out (a draining, lost or gone worker takes none)."""
        worker_id = self._choose([*self._workers_in("alive") * 2, *sorted(self.workers)], pick)
        by_size = sorted(self._jobs_in(QUEUED), key=lambda j: (self.jobs[j].request.cpu_m, j))
        self._commit([(job_id, worker_id) for job_id in by_size[:count]])

    def _commit(self, placements: list[tuple[str, str]]) -> None:
        expected: list[int | str] = []
        reserved = {w: self._reserved(w) for w in self.workers}
        taken: set[str] = set()
        for job_id, worker_id in placements:
            job, worker = self.jobs.get(job_id), self.workers.get(worker_id)
            if job is None or job.state != QUEUED or job_id in taken:
                expected.append("job not queued")
                continue
            if job.retry_at is not None:
                expected.append("job waiting to retry")
                continue
            if worker is None or worker.status != "alive":
                expected.append("worker not alive")
                continue
            if not self._is_live(worker):
                expected.append("worker silent")
                continue
            (used, slots_used), cap = reserved[worker_id], worker.capacity
            if used.cpu_m + job.request.cpu_m > cap.cpu_m:
                expected.append("cpu taken")
            elif used.memory_mb + job.request.memory_mb > cap.memory_mb:
                expected.append("memory taken")
            elif slots_used + 1 > worker.slots:
                expected.append("no free slot")
            else:
                expected.append(1)
                taken.add(job_id)
                reserved[worker_id] = (used + job.request, slots_used + 1)
        assert commit(self.store, placements) == expected
        for (job_id, worker_id), outcome in zip(placements, expected, strict=True):
            if outcome == 1:
                self._assigned(job_id, worker_id)

    # What an agent says about its jobs

    @precondition(lambda self: self._jobs_in(ASSIGNED))
    @rule(pick=PICK)
    def start(self, pick: int) -> None:
        self._start(self._choose(self._jobs_in(ASSIGNED), pick))

    def _start(self, job_id: str) -> None:
        job = self.jobs[job_id]
        assert job.worker is not None
        outcome = self.store.jobs.start(job_id, job.worker, job.attempt)
        assert (outcome.state, outcome.version) == (RUNNING, job.version + 1)
        job.state, job.version = RUNNING, job.version + 1
        job.since = self.clock()
        before = snapshot(self.raw)
        again = self.store.jobs.start(job_id, job.worker, job.attempt)  # a retried request
        assert (again.state, again.version) == (RUNNING, job.version)
        assert snapshot(self.raw) == before

    @precondition(lambda self: self.jobs)
    @rule(
        pick=PICK,
        call=st.sampled_from(["start", "finish"]),
        how=st.sampled_from(["newer attempt", "older attempt", "other worker", "not active"]),
    )
    def stale_call(self, pick: int, call: str, how: str) -> None:
        """A call naming an attempt that is not current, or not this worker's, or about a
        job that is no longer active: StaleAttempt, and nothing changes. An attempt the
        worker never held (another worker's, one not made yet) is NotYourAttempt (403); one
        it held and lost, plain StaleAttempt (409)."""
        job_id = self._choose(sorted(self.jobs), pick)
        job = self.jobs[job_id]
        worker_id, attempt = job.worker or "w-never", job.attempt
        # None: either (an older attempt may have been this worker's or another's).
        never_held: bool | None = True
        if how == "older attempt" and attempt > 0:
            attempt -= 1
            never_held = None
        elif how == "other worker":
            worker_id = f"{worker_id}-other"
        elif how == "not active" and job.state not in ACTIVE_STATES and job.worker:
            # Its worker and attempt are still recorded (lost, requeued, failed, cancelled):
            # the worker that lost the job must still be refused. The worker whose result
            # ended the attempt repeating it is a duplicate instead (duplicate_finish).
            never_held = False
            if call == "finish" and job.ended_by_agent:
                attempt += 1
                never_held = None  # stale if the job still names this worker, else 403
        else:
            attempt += 1
            # A later attempt of a job the worker holds now is its own business (409); of a
            # job it never held, not (403); of one it held once, as the job still says.
            if job.state in ACTIVE_STATES:
                never_held = False
            elif job.worker:
                never_held = None
        before = snapshot(self.raw)
        with pytest.raises(StaleAttempt) as refused:
            if call == "start":
                self.store.jobs.start(job_id, worker_id, attempt)
            else:
                self.store.jobs.finish(
                    job_id, worker_id, attempt, exit_code=0, reason=None, error=None, metrics={}
                )
        assert snapshot(self.raw) == before
        if never_held is not None:
            assert isinstance(refused.value, NotYourAttempt) == never_held, (how, refused.value)

    @precondition(lambda self: self._jobs_in(ASSIGNED, RUNNING))
    @rule(pick=PICK, exit_code=EXIT_CODES, reason=REASONS)
    def finish(self, pick: int, exit_code: int | None, reason: str | None) -> None:
        job_id = self._choose(self._jobs_in(ASSIGNED, RUNNING), pick)
        self._finish(job_id, exit_code, reason)

    def _finish(self, job_id: str, exit_code: int | None, reason: str | None) -> None:
        job = self.jobs[job_id]
        assert job.worker is not None
        state, stored_reason = end_of(exit_code, reason)
        # An exit reported while ASSIGNED (the start call was lost) records the skipped start.
        ran = state == COMPLETED or stored_reason in ("exit_code", "oom", "timeout")
        steps = 2 if job.state == ASSIGNED and ran else 1
        if state == FAILED and stored_reason in RETRYABLE_REASONS and job.retry_later(self.clock()):
            state = QUEUED
        worker_before = self.store.workers.get(job.worker)["reserved"]
        outcome = self.store.jobs.finish(
            job_id,
            job.worker,
            job.attempt,
            exit_code=exit_code,
            reason=reason,
            error="boom" if reason == "error" else None,
            metrics={"duration_s": 1.0},
            backoff=BACKOFF,
        )
        assert (outcome.state, outcome.version) == (state, job.version + steps)
        stored = self.store.jobs.get(job_id)
        assert (stored["reason"], stored["exit_code"]) == (stored_reason, exit_code)
        assert (stored["retries"], stored["retry_at"]) == (job.retries, job.retry_at)
        worker_after = self.store.workers.get(job.worker)["reserved"]
        assert worker_after["jobs"] == worker_before["jobs"] - 1
        assert worker_after["memory_mb"] == worker_before["memory_mb"] - job.request.memory_mb
        job.version += steps - 1
        job.end(state, self.clock())
        job.ended_by_agent = True

    @precondition(
        lambda self: self._retryable_in_queue() and any(map(self._is_live, self.workers.values()))
    )
    @rule(
        pick=PICK,
        worker_pick=PICK,
        reason=st.sampled_from([None, "oom", "timeout", "error", "deadline"]),
    )
    def run_and_fail(self, pick: int, worker_pick: int, reason: str | None) -> None:
        """A job that may retry is placed, starts and fails by itself (its agent says so, or
        the reaper finds it past its deadline): the path to a backoff, taken often enough to
        reach promotion and the end of the retries."""
        job_id = self._choose(self._retryable_in_queue(), pick)
        live = [w for w, m in sorted(self.workers.items()) if self._is_live(m)]
        self._commit([(job_id, self._choose(live, worker_pick))])
        if self.jobs[job_id].state != ASSIGNED:  # it did not fit
            return
        self._start(job_id)
        if reason == "deadline":
            self._reap(job_id, MAX_REQUEUES)
        else:
            self._finish(job_id, 137 if reason else 1, reason)

    def _retryable_in_queue(self) -> list[str]:
        return [
            j
            for j in self._jobs_in(QUEUED)
            if self.jobs[j].retry_at is None and self.jobs[j].max_retries > 0
        ]

    @precondition(lambda self: self._jobs_in(ASSIGNED, RUNNING))
    @rule(pick=PICK, exit_code=EXIT_CODES, reason=REASONS, other_exit_code=EXIT_CODES)
    def duplicate_finish(
        self, pick: int, exit_code: int | None, reason: str | None, other_exit_code: int | None
    ) -> None:
        """The agent posts its result again (or a different one): the first one stands."""
        job_id = self._choose(self._jobs_in(ASSIGNED, RUNNING), pick)
        self._finish(job_id, exit_code, reason)
        job = self.jobs[job_id]
        assert job.worker is not None
        before = snapshot(self.raw)
        for code, why in ((exit_code, reason), (other_exit_code, None)):
            again = self.store.jobs.finish(
                job_id,
                job.worker,
                job.attempt,
                exit_code=code,
                reason=why,
                error=None,
                metrics={},
                backoff=BACKOFF,
            )
            assert (again.state, again.version) == (job.state, job.version)
        assert snapshot(self.raw) == before

    # What a user does

    @rule(pick=PICK)
    def cancel(self, pick: int) -> None:
        job_id = self._choose(
            [
                *self._jobs_in(ASSIGNED, RUNNING),
                *self._waiting(),
                *sorted(self.jobs),
                *self._gone(),
            ],
            pick,
        )
        if job_id not in self.jobs:
            with pytest.raises(NotFound):
                self.store.jobs.cancel(job_id)
            return
        job = self.jobs[job_id]
        if job.state in TERMINAL_STATES:
            before = snapshot(self.raw)
            with pytest.raises(InvalidState):
                self.store.jobs.cancel(job_id)
            assert snapshot(self.raw) == before
            return
        outcome = self.store.jobs.cancel(job_id)
        if job.state == QUEUED:
            assert (outcome.state, outcome.version) == (CANCELLED, job.version + 1)
            job.end(CANCELLED, self.clock())
            job.retry_at = None
        else:
            # The agent is told to stop it; the job only ends when the agent says so. Asking
            # is a change GET shows, once: a new version the first time.
            job.version += 0 if job.cancel_requested else 1
            assert (outcome.state, outcome.version) == (job.state, job.version)
            job.cancel_requested = True

    @rule(pick=PICK)
    def retry(self, pick: int) -> None:
        job_id = self._choose(
            [*self._jobs_in(*TERMINAL_STATES) * 3, *sorted(self.jobs), *self._gone()], pick
        )
        if job_id not in self.jobs:  # unknown, or deleted
            with pytest.raises(NotFound):
                self.store.jobs.retry(job_id)
            return
        job = self.jobs[job_id]
        if job.state not in (FAILED, CANCELLED):
            before = snapshot(self.raw)
            with pytest.raises(InvalidState):
                self.store.jobs.retry(job_id)
            assert snapshot(self.raw) == before
            return
        outcome = self.store.jobs.retry(job_id)
        assert (outcome.state, outcome.version) == (QUEUED, job.version + 1)
        job.end(QUEUED, self.clock())
        job.worker, job.cancel_requested, job.ended_by_agent = None, False, False
        job.user_retries += 1
        job.retries = 0  # a fresh set of automatic retries

    @rule(pick=PICK)
    def delete(self, pick: int) -> None:
        job_id = self._choose(
            [*self._jobs_in(*TERMINAL_STATES) * 3, *sorted(self.jobs), *self._gone()], pick
        )
        if job_id not in self.jobs:
            with pytest.raises(NotFound):
                self.store.jobs.delete(job_id)
            return
        if self.jobs[job_id].state not in TERMINAL_STATES:
            before = snapshot(self.raw)
            with pytest.raises(InvalidState):
                self.store.jobs.delete(job_id)
            assert snapshot(self.raw) == before
            return
        self.store.jobs.delete(job_id)
        self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        del self.jobs[job_id]
        self.deleted.append(job_id)

    # The reaper's clocks

    @precondition(lambda self: self._waiting())
    @rule()
    def promote_retries(self) -> None:
        """Jobs whose backoff has passed enter the queue; the others keep waiting."""
        now = self.clock()
        due = [
            j for j, m in sorted(self.jobs.items()) if m.retry_at is not None and m.retry_at <= now
        ]
        assert sorted(self.store.scheduling.promote_retries()) == due
        for job_id in due:
            self.jobs[job_id].retry_at = None
            self.jobs[job_id].version += 1  # GET shows it: retry_at and pending_reason change

    @precondition(lambda self: self._jobs_in(ASSIGNED, RUNNING))
    @rule(pick=PICK, max_requeues=st.integers(0, MAX_REQUEUES))
    def reap_overdue(self, pick: int, max_requeues: int) -> None:
        """The reaper finds an assignment stale or a run past its deadline (the clocks are
        tested in test_scheduler; here, what the step does): stale requeues without
        spending a retry; timeout fails the run, which waits to retry if it may. A job that
        moved on meanwhile is left alone."""
        job_id = self._choose([*self._jobs_in(ASSIGNED, RUNNING) * 3, *sorted(self.jobs)], pick)
        self._reap(job_id, max_requeues)

    def _reap(self, job_id: str, max_requeues: int) -> None:
        job = self.jobs[job_id]
        kind = "stale" if job.state == ASSIGNED else "timeout"
        args = (job_id, job.worker or "w-never", job.attempt, kind, max_requeues, BACKOFF)
        if job.state not in ACTIVE_STATES:
            before = snapshot(self.raw)
            assert self.store.scheduling.reap(*args) == ""
            assert snapshot(self.raw) == before
            return
        if job.cancel_requested:
            job.end(CANCELLED, self.clock())
        elif kind == "stale" and job.requeues < max_requeues:
            job.end(QUEUED, self.clock())
            job.requeues += 1
        elif kind == "timeout" and job.retry_later(self.clock()):
            job.end(QUEUED, self.clock())
        else:
            job.end(FAILED, self.clock())
        assert self.store.scheduling.reap(*args) == job.state.value

    @rule(assign_timeout=st.integers(0, 60), grace=st.integers(0, 30))
    def clocks_say_what_is_overdue(self, assign_timeout: int, grace: int) -> None:
        """The reaper's range queries find exactly the assignments older than the timeout
        and the runs past their timeout_s by more than the grace, oldest first."""
        now = self.clock()
        stale = [
            (m.since, j)
            for j, m in self.jobs.items()
            if m.state == ASSIGNED and m.since + assign_timeout < now
        ]
        late = [
            (m.since + m.timeout_s, j)
            for j, m in self.jobs.items()
            if m.state == RUNNING and m.timeout_s and m.since + m.timeout_s + grace < now
        ]
        scheduling = self.store.scheduling
        for found, expected in (
            (scheduling.stale_assignments(assign_timeout), stale),
            (scheduling.overdue_runs(grace), late),
        ):
            assert [job_id for job_id, _, _ in found] == [j for _, j in sorted(expected)]
            for job_id, worker_id, attempt in found:
                assert (worker_id, attempt) == (self.jobs[job_id].worker, self.jobs[job_id].attempt)

    @precondition(lambda self: self._jobs_in(*TERMINAL_STATES))
    @rule(retention=st.integers(0, 120), limit=st.integers(1, 4))
    def purge_finished(self, retention: int, limit: int) -> None:
        """Retention deletes the jobs that finished longest ago, `limit` at a time."""
        cutoff = self.clock() - retention
        due = sorted(
            (m.finished_at, j)
            for j, m in self.jobs.items()
            if m.finished_at is not None and m.finished_at <= cutoff
        )[:limit]
        assert self.store.jobs.purge_finished(retention, limit) == len(due)
        for _, job_id in due:
            self._forget(job_id)

    # What happens to workers

    @precondition(lambda self: self.workers)
    @rule(pick=PICK, max_requeues=st.integers(0, MAX_REQUEUES))
    def lose_worker(self, pick: int, max_requeues: int) -> None:
        holding = [w for w in self._workers_in("alive", "draining") if self._held_by(w)]
        worker_id = self._choose([*holding * 3, *sorted(self.workers)], pick)
        worker = self.workers[worker_id]
        if worker.status == "gone":
            with pytest.raises(NotFound):
                self.store.workers.mark_lost(worker_id, max_requeues=max_requeues)
            return
        expected: dict[str, str] = {}
        for job_id in self._held_by(worker_id):
            job = self.jobs[job_id]
            if job.cancel_requested:  # a cancelled job must not run again
                job.end(CANCELLED, self.clock())
            elif job.requeues < max_requeues:
                job.end(QUEUED, self.clock())
                job.requeues += 1
            else:
                job.end(FAILED, self.clock())
            expected[job_id] = job.state.value
        assert self.store.workers.mark_lost(worker_id, max_requeues=max_requeues) == expected
        worker.status = "lost"
        if worker.lost_at is None:  # declared again, its retention is not put off
            worker.lost_at = self.clock()

    @precondition(lambda self: self._workers_in("lost"))
    @rule(retention=st.sampled_from([0, 5, 60]), limit=st.integers(1, 3))
    def forget_lost_workers(self, retention: int, limit: int) -> None:
        """Worker retention removes the workers lost longest ago, `limit` at a time, with
        their tokens and keys (check_store_invariants finds no trace of them)."""
        cutoff = self.clock() - retention
        due = sorted(
            (w.lost_at, worker_id)
            for worker_id, w in self.workers.items()
            if w.status == "lost" and w.lost_at is not None and w.lost_at <= cutoff
        )[:limit]
        assert self.store.workers.forget_lost(retention, limit) == [w for _, w in due]
        for _, worker_id in due:
            self.workers[worker_id].status = "gone"

    @precondition(lambda self: self.workers)
    @rule(pick=PICK)
    def drain(self, pick: int) -> None:
        worker_id = self._choose(sorted(self.workers), pick)
        worker = self.workers[worker_id]
        if worker.status == "gone":
            with pytest.raises(NotFound):
                self.store.workers.drain(worker_id)
            return
        if worker.status == "alive":
            worker.status = "draining"
        assert self.store.workers.drain(worker_id) == worker.status

    @precondition(lambda self: self.workers)
    @rule(pick=PICK)
    def deregister(self, pick: int) -> None:
        holding = [w for w in self._workers_in("alive", "draining") if self._held_by(w)]
        worker_id = self._choose([*holding * 2, *sorted(self.workers)], pick)
        worker = self.workers[worker_id]
        if worker.status == "gone":
            with pytest.raises(NotFound):
                self.store.workers.deregister(worker_id)
            return
        if self._held_by(worker_id):
            before = snapshot(self.raw)
            with pytest.raises(InvalidState):
                self.store.workers.deregister(worker_id)
            assert snapshot(self.raw) == before
            return
        self.store.workers.deregister(worker_id)
        worker.status = "gone"

    # Checked after every step

    @invariant()
    def store_invariants_hold(self) -> None:
        check_store_invariants(self.store)

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        r, keys = self.client, self.store.keys
        assert self.store.jobs.counts() == {
            state.value: sum(1 for m in self.jobs.values() if m.state == state)
            for state in JobState
        }
        pipe = r.pipeline(transaction=False)
        for job_id in sorted(self.jobs):
            pipe.hmget(
                keys.job(job_id),
                "state", "version", "attempt", "worker_id", "cancel_requested", "requeues",
                "retries", "retry_at", "finished_at",
            )  # fmt: skip
            pipe.lrange(keys.job_events(job_id), 0, -1)
        replies = pipe.execute()
        for job_id, fields, events in zip(
            sorted(self.jobs), replies[::2], replies[1::2], strict=True
        ):
            job = self.jobs[job_id]
            (
                state, version, attempt, worker_id, cancel_requested, requeues,
                retries, retry_at, finished_at,
            ) = fields  # fmt: skip
            assert (state, int(version), int(attempt)) == (job.state, job.version, job.attempt)
            # The last worker stays named (a lost one is still fenced out) until a retry.
            assert worker_id == job.worker
            # Lost-worker requeues count toward the limit; a user's retry does not reset it.
            assert int(requeues or 0) == job.requeues
            # Automatic retries are spent by failures of the job itself, and a user's retry
            # gives them all back.
            assert int(retries) == job.retries
            assert (float(retry_at) if retry_at else None) == job.retry_at
            assert (float(finished_at) if finished_at else None) == job.finished_at
            if job.state in ACTIVE_STATES or job.state == QUEUED:
                assert (cancel_requested == "1") == job.cancel_requested
            # Versions and attempts only grow.
            last_version, last_attempt = self.seen.get(job_id, (0, 0))
            assert int(version) >= last_version and int(attempt) >= last_attempt
            self.seen[job_id] = (int(version), int(attempt))
            # Terminal stays terminal, except through an explicit retry.
            left_terminal = sum(1 for e in map(json.loads, events) if e["from"] in TERMINAL_STATES)
            assert left_terminal == job.user_retries, f"{job_id} left a terminal state unasked"
        for job_id in self.deleted:
            assert not r.exists(keys.job(job_id), keys.job_events(job_id)), job_id
        pipe = r.pipeline(transaction=False)
        for worker_id in sorted(self.workers):
            pipe.hgetall(keys.worker(worker_id))
            pipe.exists(keys.worker_jobs(worker_id))
        replies = pipe.execute()
        for worker_id, h, holds in zip(
            sorted(self.workers), replies[::2], replies[1::2], strict=True
        ):
            worker = self.workers[worker_id]
            if worker.status == "gone":
                assert not h and not holds, f"{worker_id} was deregistered but is still there"
                continue
            assert (h["status"], h["hostname"]) == (worker.status, worker.hostname)
            used, slots_used = self._reserved(worker_id)
            assert (int(h["res_cpu_m"]), int(h["res_memory_mb"]), int(h["res_slots"])) == (
                used.cpu_m,
                used.memory_mb,
                slots_used,
            )
            assert used.fits_in(worker.capacity) and slots_used <= worker.slots


def test_random_sequences_of_transitions_keep_the_store_consistent(redis_url: str) -> None:
    StoreMachine.redis_url = redis_url
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_a_cancelled_job_on_a_lost_worker_is_not_run_again(redis_url: str) -> None:
    """DESIGN §5: cancelling a RUNNING job makes it end CANCELLED. If its worker is lost
    before it reports, the job must not go back to the queue for another run."""
    client = connect(redis_url)
    client.flushdb()
    store = Store(client, PREFIX, ManualClock())
    submit(store, "j1")
    register(store, "w1")
    assert commit(store, [("j1", "w1")]) == [1]
    store.jobs.start("j1", "w1", 1)
    assert store.jobs.cancel("j1").state == RUNNING  # flagged for the agent
    store.workers.mark_lost("w1", max_requeues=MAX_REQUEUES)
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"]) == (CANCELLED, "cancelled")
    check_store_invariants(store)
    client.close()


# Two schedulers at once


@pytest.mark.parametrize(
    "tokens",
    [("shared", "shared"), ("first", "second")],
    ids=["both-hold-the-lease", "one-leader-one-standby"],
)
def test_concurrent_schedulers_never_assign_a_job_twice(
    redis_url: str, tokens: tuple[str, str]
) -> None:
    """Two schedule_once loops race on one Redis while jobs finish, fail, are retried and
    workers are lost: every assignment is a new attempt of a QUEUED job, counted once, and
    whenever both are paused between passes the store's invariants hold."""
    rng = random.Random(20240611)
    clock = ManualClock()
    client = connect(redis_url)
    client.flushdb()
    store = Store(client, PREFIX, clock)
    for n in range(6):
        register(store, f"w{n}", rng.randint(1000, 6000), rng.randint(512, 6144), rng.randint(1, 4))
    # Mostly small jobs, so that job slots are contended as well as CPU and memory.
    job_ids = [
        submit(
            store, f"j{n}", rng.randint(1, 1500), rng.randint(1, 1500), priority=rng.randint(-3, 3)
        )
        for n in range(120)
    ]
    stop = threading.Event()
    assigned = [0, 0]
    errors: list[BaseException] = []
    # Each scheduler holds its own lock for a pass; holding both pauses them between passes,
    # so the main thread can read a quiet store. The two still race each other.
    passes = [threading.Lock(), threading.Lock()]

    def scheduler(index: int) -> None:
        own = Store(connect(redis_url), PREFIX, clock)
        try:
            while not stop.is_set():
                with passes[index]:
                    assigned[index] += schedule_once(own, config(), tokens[index])
                time.sleep(0)  # let the main thread take the lock now and then
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            own.redis.close()

    threads = [threading.Thread(target=scheduler, args=(i,), daemon=True) for i in (0, 1)]
    for thread in threads:
        thread.start()
    workers = [f"w{n}" for n in range(6)]
    deadline = time.monotonic() + 30
    rounds = 0
    try:
        while not errors and time.monotonic() < deadline:
            counts = store.jobs.counts()
            if counts["COMPLETED"] + counts["FAILED"] == len(job_ids):
                break
            rounds += 1
            with passes[0], passes[1]:
                check_store_invariants(store)
            for job_id in client.zrange(store.keys.state(ASSIGNED), 0, -1):
                job = store.jobs.get(job_id)
                if job["state"] == ASSIGNED:
                    store.jobs.start(job_id, job["worker_id"], job["attempt"])
            for job_id in client.zrange(store.keys.state(RUNNING), 0, -1):
                job = store.jobs.get(job_id)
                if rng.random() < 0.5:
                    code = 0 if rng.random() < 0.8 else 1
                    store.jobs.finish(
                        job_id, job["worker_id"], job["attempt"],
                        exit_code=code, reason=None, error=None, metrics={},
                    )  # fmt: skip
            for job_id in client.zrange(store.keys.state(FAILED), 0, -1):
                if rng.random() < 0.3:
                    store.jobs.retry(job_id)
            if rounds % 15 == 0:
                # A worker dies mid-run and its host comes back under a new id.
                victim = workers.pop(rng.randrange(len(workers)))
                store.workers.mark_lost(victim, max_requeues=MAX_REQUEUES)
                workers.append(register(store, f"w{6 + rounds // 15}", 4000, 4096, 4))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not errors, errors
    counts = store.jobs.counts()
    assert counts["COMPLETED"] + counts["FAILED"] == len(job_ids), counts

    total = 0
    for job_id in job_ids:
        job = store.jobs.get(job_id)
        attempts = [e["attempt"] for e in store.jobs.events(job_id) if e["to"] == ASSIGNED]
        assert attempts == list(range(1, job["attempt"] + 1)), (job_id, attempts)
        total += len(attempts)
    assert sum(assigned) == total
    if tokens[0] != tokens[1]:
        assert min(assigned) == 0, "the standby placed jobs while the leader held the lease"
    check_store_invariants(store)
    client.close()
