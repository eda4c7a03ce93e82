"""The reaper's clocks on a real redis-server: assignment times and run deadlines live in
sorted sets kept by the scripts, so a reaper pass costs the same however many jobs run, and
jobs from a version that kept no clocks are entered when a scheduler takes the lease."""

import threading

from scheduler.loop import run_scheduler
from scheduler.reaper import index_clocks, reap_once
from shared.config import Config
from shared.store import Store
from tests.helpers import wait_until
from tests.store_support import ManualClock, assign, check_clocks, check_invariants, register
from tests.store_support import submit as submit_job

CONFIG = Config.from_env({}, assign_timeout_s=60.0, deadline_grace_s=5.0)


def running(store: Store, count: int, timeout_s: int | None = 600) -> list[str]:
    """`count` jobs RUNNING on one roomy worker (registered on the first call)."""
    if not store.redis.exists(store.keys.worker("w1")):
        register(store, "w1", cpu_m=10**7, memory_mb=10**7, slots=10**6)
    first = store.redis.zcard(store.keys.jobs)
    job_ids = [f"j{first + n}" for n in range(count)]
    for job_id in job_ids:
        submit_job(store, job_id, cpu_m=1, memory_mb=1, timeout_s=timeout_s)
        assert assign(store, job_id, "w1") == [1]
        store.jobs.start(job_id, "w1", 1)
    return job_ids


def commands_per_pass(store: Store) -> int:
    """Commands Redis ran for one reaper pass (those run by scripts included)."""
    store.redis.config_resetstat()
    reap_once(store, CONFIG)
    stats = store.redis.info("commandstats")
    return sum(int(s["calls"]) for name, s in stats.items() if name != "cmdstat_info")


def test_a_reaper_pass_costs_the_same_for_ten_running_jobs_as_for_three_hundred(
    store: Store,
) -> None:
    running(store, 10)
    few = commands_per_pass(store)
    running(store, 290)
    assert commands_per_pass(store) == few
    check_clocks(store)


def test_only_the_overdue_are_read_and_moved(store: Store, clock: ManualClock) -> None:
    early = running(store, 3, timeout_s=10)
    running(store, 3, timeout_s=1000)
    untimed = running(store, 2, timeout_s=None)
    submit_job(store, "waiting")
    assert assign(store, "waiting", "w1") == [1]
    clock.advance(61)  # past the assignment timeout, and the short runs' deadline plus grace
    store.workers.heartbeat("w1", {}, [])
    assert [j for j, _, _ in store.scheduling.stale_assignments(CONFIG.assign_timeout_s)] == [
        "waiting"
    ]
    assert [j for j, _, _ in store.scheduling.overdue_runs(CONFIG.deadline_grace_s)] == early
    reap_once(store, CONFIG)
    assert store.jobs.get("waiting")["state"] == "QUEUED"
    assert {store.jobs.get(j)["state"] for j in early} == {"FAILED"}
    assert {store.jobs.get(j)["state"] for j in untimed} == {"RUNNING"}
    assert store.redis.zcard(store.keys.run_deadlines) == 3
    check_invariants(store)


def test_jobs_from_before_the_clocks_are_entered_and_reaped(
    store: Store, clock: ManualClock
) -> None:
    """An upgrade finds ASSIGNED and RUNNING jobs that no clock holds: the scheduler taking
    the lease enters them, by the times their records say."""
    timed = running(store, 2, timeout_s=10)
    untimed = running(store, 1, timeout_s=None)
    submit_job(store, "assigned")
    assert assign(store, "assigned", "w1") == [1]
    store.redis.delete(store.keys.assigned_at, store.keys.run_deadlines)  # as before upgrade
    clock.advance(100)
    index_clocks(store)
    check_clocks(store)
    assert store.scheduling.index_clocks() == 0  # once is enough
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, CONFIG)
    assert {store.jobs.get(j)["state"] for j in timed} == {"FAILED"}
    assert store.jobs.get(untimed[0])["state"] == "RUNNING"
    assert store.jobs.get("assigned")["reason"] == "stale"
    check_invariants(store)


def test_the_scheduler_enters_them_when_it_takes_the_lease(store: Store) -> None:
    (job_id,) = running(store, 1, timeout_s=10)
    # As after an upgrade; and the lease the test's placements took has passed.
    store.redis.delete(store.keys.run_deadlines, store.keys.scheduler_lease)
    stop = threading.Event()
    loop = threading.Thread(target=run_scheduler, args=(CONFIG, stop, store), daemon=True)
    loop.start()
    try:
        wait_until(lambda: store.redis.zscore(store.keys.run_deadlines, job_id) is not None)
    finally:
        stop.set()
        loop.join(10)
    check_clocks(store)
