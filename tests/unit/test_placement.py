"""Placement as pure functions: best fit, spread, backfill past a job that fits nowhere,
and pending reasons a user can act on."""

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.placement import place
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources


def worker(
    wid: str, cpu_m: int, mem: int, slots: int = 8, used: Resources | None = None
) -> WorkerView:
    return WorkerView(wid, Resources(cpu_m, mem), used or Resources(0, 0), slots, 0)


def job(jid: str, cpu_m: int, mem: int) -> QueuedJob:
    return QueuedJob(jid, Resources(cpu_m, mem), 0, None)


def test_binpack_picks_the_tightest_fit_and_spread_the_emptiest() -> None:
    workers = [worker("big", 8000, 8192), worker("small", 1000, 1024)]
    assert place([job("j", 1000, 1024)], workers, "binpack").assignments == [("j", "small")]
    assert place([job("j", 1000, 1024)], workers, "spread").assignments == [("j", "big")]


def test_binpack_does_not_strand_memory_behind_a_full_cpu() -> None:
    workers = [worker("cpu-tight", 1000, 4096), worker("even", 4000, 4096)]
    # On "cpu-tight" the job would leave 3 GB that no job can use without CPU.
    assert place([job("j", 1000, 1024)], workers, "binpack").assignments == [("j", "even")]


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


def labelled(wid: str, cpu_m: int, mem: int, **labels: str) -> WorkerView:
    return WorkerView(wid, Resources(cpu_m, mem), Resources(0, 0), 8, 0, labels)


def test_constraints_pick_only_labelled_workers() -> None:
    workers = [labelled("plain", 1000, 1024), labelled("eu", 8000, 8192, zone="eu")]
    wants_eu = QueuedJob("j", Resources(500, 128), 0, None, {"zone": "eu"})
    wants_us = QueuedJob("k", Resources(500, 128), 0, None, {"zone": "us"})
    result = place([wants_eu, wants_us], workers)
    assert result.assignments == [("j", "eu")]
    assert result.pending["k"] == "no live worker has the labels zone=us"


sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4096))


@settings(max_examples=200, deadline=None)
@given(
    worker_sizes=st.lists(st.tuples(sizes, st.integers(1, 4)), max_size=12),
    job_sizes=st.lists(sizes, max_size=40),
    policy=st.sampled_from(["binpack", "spread"]),
)
def test_placement_never_overcommits_and_never_leaves_a_job_that_fits(
    worker_sizes: list, job_sizes: list, policy: str
) -> None:
    workers = [
        WorkerView(f"w{n}", Resources(cpu, mem), Resources(0, 0), slots, 0)
        for n, ((cpu, mem), slots) in enumerate(worker_sizes)
    ]
    jobs = [job(f"j{n}", cpu, mem) for n, (cpu, mem) in enumerate(job_sizes)]
    result = place(jobs, workers, policy)
    used = {w.id: (Resources(0, 0), 0) for w in workers}
    requests = {j.id: j.request for j in jobs}
    for job_id, worker_id in result.assignments:
        total, count = used[worker_id]
        used[worker_id] = (total + requests[job_id], count + 1)
    for w in workers:
        total, count = used[w.id]
        assert total.fits_in(w.capacity) and count <= w.slots
    placed = {job_id for job_id, _ in result.assignments}
    assert placed.isdisjoint(result.pending) and placed | set(result.pending) == set(requests)
    for job_id in result.pending:  # nothing left waiting that fits somewhere right now
        for w in workers:
            total, count = used[w.id]
            assert count == w.slots or not requests[job_id].fits_in(w.capacity - total)
