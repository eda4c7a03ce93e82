"""The placement loop: woken by submissions, results and registrations (and a 1 s tick),
it places queued jobs and commits each batch atomically, sending each batch to Redis while
it places the next. It keeps no state of its own between passes.

Only the holder of the scheduler lease places or reaps; another `jobyard scheduler` waits
as a hot standby and takes over within LEASE_TTL_S of the holder's death. Every commit
re-checks the lease, so a paused former holder cannot place anything.
"""

import logging
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import redis

from scheduler.backfill import reserve, starving
from scheduler.placement import Placer
from scheduler.reaper import index_clocks, reap_once, recount_owners
from shared.config import Config
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources
from shared.store import Store, connect
from shared.store.lease import NotLeader

log = logging.getLogger("jobyard.scheduler")

TICK_S = 1.0
LEASE_TTL_S = 5.0
QUEUE_WINDOW = 10000
COMMIT_BATCH = 500
# How assign.lua says a placement was skipped because its job had left the queue.
JOB_GONE = ("job not queued", "job waiting to retry")


def schedule_once(store: Store, config: Config, lease_token: str = "solo") -> int:
    """One pass over the head of the queue; commits only while holding the lease (taking it
    if free). Returns how many jobs were assigned."""
    jobs = store.scheduling.queued_jobs(QUEUE_WINDOW)
    if not jobs:
        return 0
    workers = store.scheduling.live_workers(config.worker_timeout_s)
    now = store.scheduling.clock()
    placer, batches = _plan(store, config, jobs, workers, now)
    requests = {job.id: job.request for job in jobs}
    assigned = _commit_while_placing(store, config, lease_token, placer, batches, requests)
    placement = placer.result
    changed = {
        job.id: placement.pending[job.id]
        for job in jobs
        if job.id in placement.pending and job.pending_reason != placement.pending[job.id]
    }
    store.scheduling.set_pending_reasons(changed)
    if assigned:
        log.info("event=placed assigned=%d waiting=%d", assigned, len(placement.pending))
    return assigned


Batch = list[tuple[str, str]]


def _plan(
    store: Store, config: Config, jobs: list[QueuedJob], workers: list[WorkerView], now: float
) -> tuple[Placer, Iterator[Batch]]:
    """The placer for this pass and its batches of assignments, placed lazily. Only when a
    job in the window has waited past JOBYARD_STARVATION_S can one be starving; then a full
    placement first tells which jobs wait for capacity, and the first starving one reserves
    the worker that frees soonest for it."""
    placer = Placer(workers, config.placement, None, now)
    if all(job.queued_at > now - config.starvation_s for job in jobs):
        return placer, _placing(placer, jobs)
    for job in jobs:
        placer.place(job)
    head = starving(placer.result.waiting_for_capacity, now, config.starvation_s)
    if head is None:  # placed already: only the commits remain
        return placer, _chunks(placer.result.assignments)
    ends = store.scheduling.expected_ends([w.id for w in workers])
    placer = Placer(workers, config.placement, reserve(head, workers, ends, now), now)
    return placer, _placing(placer, jobs)


def _placing(placer: Placer, jobs: list[QueuedJob]) -> Iterator[Batch]:
    """Place the jobs one by one, handing over each COMMIT_BATCH assignments as made."""
    batch: Batch = []
    for job in jobs:
        worker_id = placer.place(job)
        if worker_id is not None:
            batch.append((job.id, worker_id))
            if len(batch) == COMMIT_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _chunks(assignments: Batch) -> Iterator[Batch]:
    for start in range(0, len(assignments), COMMIT_BATCH):
        yield assignments[start : start + COMMIT_BATCH]


def _commit_while_placing(
    store: Store,
    config: Config,
    lease_token: str,
    placer: Placer,
    batches: Iterator[Batch],
    requests: dict[str, Resources],
) -> int:
    """Commit each batch while the next one is placed: Redis runs the commit script on its
    own core while Python places. Each batch is sent before the reply to the one before is
    read, so Redis goes from one batch to the next without waiting for Python, and each
    reply corrects the placer before the batch after next is placed."""
    assigned = 0
    in_flight: Batch | None = None
    pipeline = store.scheduling.commit_pipeline(config.worker_timeout_s, lease_token, LEASE_TTL_S)
    with pipeline as commits:
        for batch in batches:
            commits.send(batch)
            committed = _settle(placer, requests, in_flight, commits.receive()) if in_flight else 0
            in_flight = batch
            if committed is None:
                break  # another scheduler leads now: it will place the rest
            assigned += committed
        if in_flight is not None:
            assigned += _settle(placer, requests, in_flight, commits.receive()) or 0
    return assigned


def _settle(
    placer: Placer,
    requests: dict[str, Resources],
    batch: Batch,
    outcomes: list[int | str] | None,
) -> int | None:
    """How many of the batch Redis assigned (None when the lease was lost). A placement it
    skipped returns its capacity if the job had left the queue; any other refusal means
    Redis sees that worker otherwise than we do, so it gets nothing more in this pass."""
    if outcomes is None:
        return None
    for (job_id, worker_id), outcome in zip(batch, outcomes, strict=True):
        if outcome in JOB_GONE:
            placer.give_back(requests[job_id], worker_id)
        elif outcome != 1:
            placer.drop(worker_id)
    return sum(1 for outcome in outcomes if outcome == 1)


def run_scheduler(
    config: Config, stop: threading.Event | None = None, store: Store | None = None
) -> None:
    """Place and reap until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or _stop_on_signals()
    store = store or Store(connect(config.redis_url), config.redis_prefix)
    token = secrets.token_hex(8)
    leading: bool | None = None  # unknown until the first try, so the first state is logged
    next_reap = 0.0
    # Since when Redis has answered without a break: while it was away, no heartbeat could
    # be recorded, and every worker would look silent once it is back.
    hearing_since: float | None = None
    log.info("event=scheduler_started policy=%s token=%s", config.placement, token)
    while not stop.is_set():
        try:
            holds = store.scheduling.hold_lease(token, LEASE_TTL_S)
            if hearing_since is None:
                hearing_since = store.scheduling.clock()
            if holds != leading:
                if holds:
                    index_clocks(store)
                    recount_owners(store)
                leading = holds
                log.info("event=%s token=%s", "leading" if holds else "standby", token)
            if not leading:
                stop.wait(TICK_S)
                continue
            if time.monotonic() >= next_reap:  # clocks need seconds, not every wake-up
                reap_once(store, config, hearing_since)
                store.history.sample()  # at most one entry a minute, whoever calls
                next_reap = time.monotonic() + TICK_S
            if schedule_once(store, config, token) == 0:
                store.scheduling.wait_for_work(TICK_S)
        except NotLeader:
            leading = False
            log.warning("event=lease_lost token=%s", token)
        except redis.RedisError as exc:
            log.warning("event=redis_unavailable error=%r", str(exc))
            hearing_since = None
            stop.wait(TICK_S)
    log.info("event=scheduler_stopped token=%s", token)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
