"""The reaper: the clocks that move jobs nobody else will move. Queued jobs past their
queue timeout fail as unschedulable; workers silent past JOBYARD_WORKER_TIMEOUT_S are
declared lost and their jobs requeued (or failed past JOBYARD_MAX_REQUEUES); assignments
not started within JOBYARD_ASSIGN_TIMEOUT_S are requeued as stale; runs past their
timeout_s plus JOBYARD_DEADLINE_GRACE_S fail as timed out even if their agent is silent
(or wait for an automatic retry); jobs whose retry backoff has passed re-enter the queue;
finished jobs older than JOBYARD_RETENTION_S are deleted with their output, and workers lost
longer than JOBYARD_WORKER_RETENTION_S with their tokens (so that JOBYARD_MAX_WORKERS
records are never all lost ones for long).

Every clock is a sorted set scored by time, kept by the scripts that move jobs, so a pass
is a few range queries however many jobs are queued, assigned or running."""

import logging

from shared.config import Config
from shared.store import Store
from shared.store.jobs import Backoff

log = logging.getLogger("jobyard.reaper")

# Retention deletes in batches of one script each, so Redis never blocks for long; a few
# batches per pass keep up with thousands of jobs finishing a second.
PURGE_BATCH = 200
PURGE_BATCHES_PER_PASS = 10
# Lost workers are forgotten the same way: bounded batches, each one script.
FORGET_BATCH = 200


def reap_once(store: Store, config: Config, hearing_since: float = 0.0) -> None:
    """Move what the clocks say is overdue. `hearing_since` is when Redis last came back
    for this scheduler (or it started): heartbeats could not be recorded before, so no
    worker counts as silent until the worker timeout has passed since then too."""
    for job_id in store.scheduling.expire_queued():
        log.info("event=unschedulable job=%s", job_id)
    if store.scheduling.clock() - hearing_since >= config.worker_timeout_s:
        for worker_id in store.scheduling.silent_workers(config.worker_timeout_s):
            moved = store.workers.mark_lost(worker_id, config.max_requeues)
            log.warning("event=worker_lost worker=%s jobs=%s", worker_id, _describe(moved))
    scheduling = store.scheduling
    for job_id, worker_id, attempt in scheduling.stale_assignments(config.assign_timeout_s):
        state = scheduling.reap(job_id, worker_id, attempt, "stale", config.max_requeues)
        log.warning("event=stale_assignment job=%s attempt=%d state=%s", job_id, attempt, state)
    backoff = Backoff(config.retry_backoff_s, config.retry_backoff_max_s)
    for job_id, worker_id, attempt in scheduling.overdue_runs(config.deadline_grace_s):
        state = scheduling.reap(job_id, worker_id, attempt, "timeout", config.max_requeues, backoff)
        log.warning("event=deadline job=%s attempt=%d state=%s", job_id, attempt, state)
    for job_id in scheduling.promote_retries():
        log.info("event=retry_due job=%s", job_id)
    purge_finished(store, config.retention_s)
    forget_lost_workers(store, config.worker_retention_s)


def index_clocks(store: Store) -> None:
    """For a scheduler taking the lease: enter the active jobs the clocks lack (from a
    version that kept none), so none of them can stay overdue unnoticed."""
    added = store.scheduling.index_clocks()
    if added:
        log.info("event=clocks_indexed jobs=%d", added)


def recount_owners(store: Store) -> None:
    """For a scheduler taking the lease: give the jobs of a version that kept no per-owner
    counts theirs (once per store)."""
    recounted = store.scheduling.recount_owners()
    if recounted:
        log.info("event=owner_counts_recounted owners=%d", recounted)


def purge_finished(store: Store, retention_s: float) -> int:
    """Delete jobs finished more than retention_s ago, a bounded number per pass."""
    deleted = 0
    for _ in range(PURGE_BATCHES_PER_PASS):
        count = store.jobs.purge_finished(retention_s, PURGE_BATCH)
        deleted += count
        if count < PURGE_BATCH:
            break
    if deleted:
        log.info("event=retention_purged jobs=%d", deleted)
    return deleted


def forget_lost_workers(store: Store, retention_s: float) -> int:
    """Remove workers lost more than retention_s ago, a bounded number per pass."""
    forgotten = 0
    for _ in range(PURGE_BATCHES_PER_PASS):
        gone = store.workers.forget_lost(retention_s, FORGET_BATCH)
        forgotten += len(gone)
        for worker_id in gone:
            log.info("event=worker_forgotten worker=%s", worker_id)
        if len(gone) < FORGET_BATCH:
            break
    return forgotten


def _describe(moved: dict[str, str]) -> str:
    return ",".join(f"{job_id}:{state}" for job_id, state in sorted(moved.items())) or "-"
