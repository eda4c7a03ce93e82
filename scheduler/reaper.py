"""The reaper: the clocks that move jobs nobody else will move. Queued jobs past their
queue timeout fail as unschedulable; workers silent past JOBYARD_WORKER_TIMEOUT_S are
declared lost and their jobs requeued (or failed past JOBYARD_MAX_REQUEUES)."""

import logging

from shared.config import Config
from shared.store import Store

log = logging.getLogger("jobyard.reaper")


def reap_once(store: Store, config: Config) -> None:
    for job_id in store.scheduling.expire_queued():
        log.info("event=unschedulable job=%s", job_id)
    for worker_id in store.scheduling.silent_workers(config.worker_timeout_s):
        moved = store.workers.mark_lost(worker_id, config.max_requeues)
        log.warning("event=worker_lost worker=%s jobs=%s", worker_id, _describe(moved))


def _describe(moved: dict[str, str]) -> str:
    return ",".join(f"{job_id}:{state}" for job_id, state in sorted(moved.items())) or "-"
