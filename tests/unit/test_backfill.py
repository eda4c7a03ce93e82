"""EASY backfill: a starving job reserves the worker that frees soonest; only jobs that end
before it can start may use that worker meanwhile."""

import math

from scheduler.backfill import Reservation, reserve, start_time, starving
from scheduler.loop import schedule_once
from scheduler.placement import place
from shared.config import Config
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources
from shared.store import Store
from tests.store_support import ManualClock, register, submit

NOW = 1000.0


def worker(wid: str, cpu_m: int, used_cpu_m: int = 0, slots: int = 8) -> WorkerView:
    used = 1 if used_cpu_m else 0
    return WorkerView(wid, Resources(cpu_m, 4096), Resources(used_cpu_m, 0), slots, used)


def job(jid: str, cpu_m: int, queued_at: float = NOW, timeout_s: float | None = None) -> QueuedJob:
    return QueuedJob(jid, Resources(cpu_m, 64), 0, None, {}, queued_at, timeout_s)


def test_start_time_follows_the_ends_of_running_jobs() -> None:
    busy = worker("w", 4000, used_cpu_m=4000)
    ends = [(NOW + 50, Resources(1000, 0)), (NOW + 20, Resources(3000, 0))]
    assert start_time(Resources(2000, 64), busy, ends, NOW) == NOW + 20
    assert start_time(Resources(4000, 64), busy, ends, NOW) == NOW + 50
    assert start_time(Resources(100, 64), worker("idle", 4000), [], NOW) == NOW
    assert start_time(Resources(4000, 64), busy, [(math.inf, Resources(4000, 0))], NOW) == math.inf


def test_only_a_job_that_waited_too_long_for_capacity_starves() -> None:
    workers = [worker("w", 4000, used_cpu_m=3000)]
    fresh, old_small, old_big = job("f", 4000), job("s", 500, NOW - 600), job("b", 4000, NOW - 600)
    never = job("never", 9000, NOW - 600)
    waiting = place([fresh, old_small, never, old_big], workers).waiting_for_capacity
    assert waiting == [fresh, old_big]  # old_small was placed; never fits nowhere, ever
    assert starving(waiting, NOW, 300) == old_big
    assert starving([fresh], NOW, 300) is None


def test_the_reserved_worker_only_takes_jobs_that_end_in_time() -> None:
    workers = [worker("a", 4000, used_cpu_m=3000), worker("b", 4000, used_cpu_m=3500)]
    ends = {"a": [(NOW + 60, Resources(3000, 0))], "b": [(math.inf, Resources(3500, 0))]}
    big = job("big", 4000, NOW - 600)
    reservation = reserve(big, workers, ends, NOW)
    assert reservation == Reservation("big", "a", NOW + 60)
    untimed, short, long_ = (
        job("untimed", 500),
        job("short", 500, timeout_s=30),
        job("long", 500, timeout_s=90),
    )
    result = place([big, untimed, short, long_], workers, "binpack", reservation, NOW)
    assert dict(result.assignments) == {"untimed": "b", "short": "a"}
    assert result.pending == {
        "big": "waiting for capacity: needs 4 CPU, 64 MB; every worker big enough is busy",
        # NOW + 60 s, 1970-01-01 00:17:40 UTC: "a" has room for it, but not in time.
        "long": "worker a is reserved for job big until about 00:17:40 UTC: only a job whose "
        "timeout_s ends by then may use it meanwhile",
    }


def test_a_job_kept_off_a_reserved_worker_that_is_busy_anyway_waits_for_capacity() -> None:
    """The reservation is the reason only when it is all that keeps the job off the worker."""
    workers = [worker("a", 4000, used_cpu_m=3800), worker("b", 4000, used_cpu_m=3500)]
    reservation = Reservation("big", "a", NOW + 60)
    result = place([job("long", 1000, timeout_s=90)], workers, "binpack", reservation, NOW)
    assert result.pending["long"] == (
        "waiting for capacity: needs 1 CPU, 64 MB; every worker big enough is busy"
    )


def test_a_reservation_with_no_known_end_or_a_day_away_says_so() -> None:
    workers = [worker("a", 4000, used_cpu_m=1000)]
    untimed = job("untimed", 500)
    forever = place([untimed], workers, "binpack", Reservation("big", "a", math.inf), NOW)
    assert forever.pending["untimed"] == (
        "worker a is reserved for job big until it starts (the jobs on it have no timeout_s): "
        "only a job with a timeout_s may use it meanwhile"
    )
    later = place([untimed], workers, "binpack", Reservation("big", "a", NOW + 2 * 86400), NOW)
    assert later.pending["untimed"].startswith(
        "worker a is reserved for job big until about 1970-01-03 00:16:40 UTC:"
    )


def test_the_loop_holds_a_worker_for_a_starving_job(store: Store, clock: ManualClock) -> None:
    config = Config.from_env({}, starvation_s=60.0)
    register(store, "w1", cpu_m=2000, memory_mb=1024)
    submit(store, "small-running", cpu_m=1000, timeout_s=300)
    schedule_once(store, config)
    store.jobs.start("small-running", "w1", 1)  # at 22:13:20 UTC: it ends by 22:18:20
    submit(store, "big", cpu_m=2000)
    clock.advance(120)
    store.workers.heartbeat("w1", {}, [])
    submit(store, "small-untimed", cpu_m=500)
    assert schedule_once(store, config) == 0  # w1 is held for "big"
    assert store.jobs.get("small-untimed")["pending_reason"] == (
        "worker w1 is reserved for job big until about 22:18:20 UTC: only a job whose "
        "timeout_s ends by then may use it meanwhile"
    )
    store.jobs.finish("small-running", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert schedule_once(store, config) == 1
    assert store.jobs.get("big")["state"] == "ASSIGNED"
