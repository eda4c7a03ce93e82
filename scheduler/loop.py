"""The placement loop: woken by submissions, results and registrations (and a 1 s tick),
it places queued jobs and commits each batch atomically. It keeps no state of its own."""

import logging
import signal
import threading
from types import FrameType

import redis

from scheduler.placement import place
from shared.config import Config
from shared.store import Store, connect

log = logging.getLogger("jobyard.scheduler")

TICK_S = 1.0
QUEUE_WINDOW = 10000
COMMIT_BATCH = 500


def schedule_once(store: Store, config: Config) -> int:
    """One pass over the head of the queue. Returns how many jobs were assigned."""
    jobs = store.scheduling.queued_jobs(QUEUE_WINDOW)
    if not jobs:
        return 0
    workers = store.scheduling.live_workers(config.worker_timeout_s)
    placement = place(jobs, workers, config.placement)
    assigned = 0
    for start in range(0, len(placement.assignments), COMMIT_BATCH):
        batch = placement.assignments[start : start + COMMIT_BATCH]
        outcomes = store.scheduling.commit(batch, config.worker_timeout_s)
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


def run_scheduler(config: Config, stop: threading.Event | None = None) -> None:
    """Place jobs until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or _stop_on_signals()
    store = Store(connect(config.redis_url), config.redis_prefix)
    log.info("event=scheduler_started policy=%s", config.placement)
    while not stop.is_set():
        try:
            if schedule_once(store, config) == 0:
                store.scheduling.wait_for_work(TICK_S)
        except redis.RedisError as exc:
            log.warning("event=redis_unavailable error=%r", str(exc))
            stop.wait(TICK_S)
    log.info("event=scheduler_stopped")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
