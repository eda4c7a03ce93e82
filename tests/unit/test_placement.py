"""Placement as pure functions: best fit, spread, backfill past a job that fits nowhere,
and pending reasons a user can act on."""

from scheduler.placement import place
from shared.resources import Resources
from shared.store.scheduling import QueuedJob, WorkerView


def worker(
    wid: str, cpu_m: int, mem: int, slots: int = 8, used: Resources | None = None
) -> WorkerView:
    return WorkerView(wid, Resources(cpu_m, mem), used or Resources(0, 0), slots, 0)


def job(jid: str, cpu_m: int, mem: int) -> QueuedJob:
    return QueuedJob(jid, Resources(cpu_m, mem), 0, None)


def test_binpack_picks_the_tightest_fit_and_spread_the_emptiest() -> None:
    workers = [worker("big", 8000, 8192), worker("small", 1000, 1024)]
    assert place([job("j", 1000, 512)], workers, "binpack").assignments == [("j", "small")]
    assert place([job("j", 1000, 512)], workers, "spread").assignments == [("j", "big")]


def test_capacity_is_consumed_within_a_pass() -> None:
    workers = [worker("w1", 2000, 2048)]
    result = place([job(f"j{n}", 1000, 256) for n in range(3)], workers)
    assert result.assignments == [("j0", "w1"), ("j1", "w1")]
    assert "waiting for capacity" in result.pending["j2"]


def test_job_slots_count() -> None:
    result = place([job("a", 10, 10), job("b", 10, 10)], [worker("w1", 8000, 8192, slots=1)])
    assert result.assignments == [("a", "w1")]
    assert "b" in result.pending


def test_a_job_too_big_for_every_worker_does_not_block_smaller_ones() -> None:
    workers = [worker("w1", 4000, 8192)]
    result = place([job("huge", 16000, 1024), job("small", 1000, 512)], workers)
    assert result.assignments == [("small", "w1")]
    assert result.pending["huge"] == (
        "no live worker can ever hold it: largest worker has 4 CPU, 8192 MB; "
        "job needs 16 CPU, 1024 MB"
    )


def test_ties_break_stably_by_worker_id() -> None:
    workers = [worker("b", 2000, 2048), worker("a", 2000, 2048)]
    assert place([job("j", 500, 128)], workers).assignments == [("j", "a")]


def test_no_worker_at_all_is_said_plainly() -> None:
    assert "no live worker" in place([job("j", 1, 1)], []).pending["j"]
