"""The reaper: the clocks that move jobs nobody else will move. Queued jobs past their
queue timeout fail as unschedulable; workers silent past JOBYARD_WORKER_TIMEOUT_S are
declared lost and their jobs requeued (or failed past JOBYARD_MAX_REQUEUES); assignments
not started within JOBYARD_ASSIGN_TIMEOUT_S are requeued as stale; runs past their
timeout_s plus JOBYARD_DEADLINE_GRACE_S fail as timed out even if their agent is silent."""

import logging

from shared.config import Config
from shared.states import JobState
from shared.store import Store

log = logging.getLogger("jobyard.reaper")


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
    for job_id, worker_id, attempt in scheduling.overdue(
        JobState.ASSIGNED, "assigned_at", config.assign_timeout_s
    ):
        state = scheduling.reap(job_id, worker_id, attempt, "stale", config.max_requeues)
        log.warning("event=stale_assignment job=%s attempt=%d state=%s", job_id, attempt, state)
    for job_id, worker_id, attempt in scheduling.overdue(
        JobState.RUNNING, "started_at", None, config.deadline_grace_s
    ):
        state = scheduling.reap(job_id, worker_id, attempt, "timeout", config.max_requeues)
        log.warning("event=deadline job=%s attempt=%d state=%s", job_id, attempt, state)


def _describe(moved: dict[str, str]) -> str:
    return ",".join(f"{job_id}:{state}" for job_id, state in sorted(moved.items())) or "-"
