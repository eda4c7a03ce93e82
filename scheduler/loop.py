"""The placement loop: woken by submissions, results and registrations (and a 1 s tick),
it places queued jobs and commits each batch atomically. It keeps no state of its own.

Only the holder of the scheduler lease places or reaps; another `jobyard scheduler` waits
as a hot standby and takes over within LEASE_TTL_S of the holder's death. Every commit
re-checks the lease, so a paused former holder cannot place anything.
"""

import logging
import secrets
import signal
import threading
import time
from types import FrameType

import redis

from scheduler.backfill import reserve, starving
from scheduler.placement import place
from scheduler.reaper import reap_once
from shared.config import Config
from shared.store import Store, connect
from shared.store.scheduling import NotLeader

log = logging.getLogger("jobyard.scheduler")

TICK_S = 1.0
LEASE_TTL_S = 5.0
QUEUE_WINDOW = 10000
COMMIT_BATCH = 500


def schedule_once(store: Store, config: Config, lease_token: str = "solo") -> int:
    """One pass over the head of the queue; commits only while holding the lease (taking it
    if free). Returns how many jobs were assigned."""
    jobs = store.scheduling.queued_jobs(QUEUE_WINDOW)
    if not jobs:
        return 0
    workers = store.scheduling.live_workers(config.worker_timeout_s)
    now = store.scheduling.clock()
    placement = place(jobs, workers, config.placement, None, now)
    head = starving(placement.waiting_for_capacity, now, config.starvation_s)
    if head is not None:  # place again, holding the worker that frees soonest for it
        ends = store.scheduling.expected_ends([w.id for w in workers])
        placement = place(jobs, workers, config.placement, reserve(head, workers, ends, now), now)
    assigned = 0
    for start in range(0, len(placement.assignments), COMMIT_BATCH):
        batch = placement.assignments[start : start + COMMIT_BATCH]
        if not store.scheduling.hold_lease(lease_token, LEASE_TTL_S):
            break  # another scheduler leads now: it will place these
        outcomes = store.scheduling.commit(batch, config.worker_timeout_s, lease_token)
        assigned += sum(1 for outcome in outcomes if outcome == 1)
    changed = {
        job.id: placement.pending[job.id]
        for job in jobs
        if job.id in placement.pending and job.pending_reason != placement.pending[job.id]
    }
    store.scheduling.set_pending_reasons(changed)
    if assigned:
        log.info("event=placed assigned=%d waiting=%d", assigned, len(placement.pending))
    return assigned


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
                leading = holds
                log.info("event=%s token=%s", "leading" if holds else "standby", token)
            if not leading:
                stop.wait(TICK_S)
                continue
            if time.monotonic() >= next_reap:  # clocks need seconds, not every wake-up
                reap_once(store, config, hearing_since)
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
