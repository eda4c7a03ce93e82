"""Placement as pure functions: best fit, spread, backfill past a job that fits nowhere,
and pending reasons a user can act on."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scheduler.index
from scheduler.backfill import Reservation
from scheduler.feasible import CHECKS, NotReserved, first_refusal, nearest_refusal
from scheduler.index import CapacityIndex
from scheduler.placement import place
from scheduler.rank import scorer
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources


def worker(
    wid: str, cpu_m: int, mem: int, slots: int = 8, used: Resources | None = None
) -> WorkerView:
    return WorkerView(wid, Resources(cpu_m, mem), used or Resources(0, 0), slots, 0)


def job(jid: str, cpu_m: int, mem: int, cpu_only: bool = False) -> QueuedJob:
    return QueuedJob(jid, Resources(cpu_m, mem), 0, None, cpu_only=cpu_only)


def test_binpack_picks_the_tightest_fit_and_spread_the_emptiest() -> None:
    workers = [worker("big", 8000, 8192), worker("small", 1000, 1024)]
    assert place([job("j", 1000, 1024)], workers, "binpack").assignments == [("j", "small")]
    assert place([job("j", 1000, 1024)], workers, "spread").assignments == [("j", "big")]


def test_binpack_puts_a_small_job_on_the_small_idle_worker() -> None:
    """DESIGN §3, the first case: the big worker's hole stays whole for a big job."""
    workers = [worker("small", 1000, 1024), worker("big", 4000, 8192)]
    assert place([job("j", 1000, 512)], workers, "binpack").assignments == [("j", "small")]


def test_cpu_only_jobs_each_go_to_the_fitting_worker_with_the_least_free_cpu() -> None:
    """DESIGN §3, the second case: the classic one-dimensional best fit."""
    workers = [worker("eight", 8000, 8192), worker("two", 2000, 8192), worker("four", 4000, 8192)]
    jobs = [job("three", 3000, 0), job("one", 1000, 0), job("two", 2000, 0), job("half", 500, 0)]
    assert place(jobs, workers, "binpack").assignments == [
        ("three", "four"),  # 1 CPU left there
        ("one", "four"),  # the one CPU it left
        ("two", "two"),
        ("half", "eight"),  # the only worker with CPU left
    ]


@pytest.mark.parametrize("memory_mb", [1024, 2048, 4096, 8192, 65536])
def test_jobs_that_name_no_memory_go_by_cpu_alone_whatever_the_workers_memory(
    memory_mb: int,
) -> None:
    """DESIGN §3's second case as a user meets it: `jobyard submit --cpu 3` names no memory,
    so the job carries the default 256 MB. Scored in two dimensions, the 8 CPU worker (whose
    memory is scarcer per core) would look more "in step" when the workers' memory is small;
    a job that asked only for cores goes by cores."""
    workers = [
        worker("eight", 8000, memory_mb),
        worker("two", 2000, memory_mb),
        worker("four", 4000, memory_mb),
    ]
    jobs = [
        job("three", 3000, 256, cpu_only=True),
        job("one", 1000, 256, cpu_only=True),
        job("two", 2000, 256, cpu_only=True),
    ]
    assert place(jobs, workers, "binpack").assignments == [
        ("three", "four"),
        ("one", "four"),
        ("two", "two"),
    ]


def test_a_job_that_names_its_memory_keeps_cpu_and_memory_in_step() -> None:
    """The same 3 CPU job with its 256 MB asked for is scored in two dimensions: on 2 GB
    workers the 8 CPU one, whose memory per core is closest to what the job leaves, wins."""
    workers = [worker("eight", 8000, 2048), worker("two", 2000, 2048), worker("four", 4000, 2048)]
    assert place([job("three", 3000, 256)], workers, "binpack").assignments == [("three", "eight")]


def test_binpack_does_not_strand_memory_behind_a_full_cpu() -> None:
    """Within the two cases, CPU and memory kept in step: on "cpu-tight" the job would leave
    3 GB that no job can use without CPU."""
    workers = [worker("cpu-tight", 1000, 4096), worker("even", 4000, 4096)]
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


def test_a_waiting_job_is_told_the_refusal_of_the_worker_that_got_furthest() -> None:
    """Labels, then ever-fits, then room now: "eu" has the label but is too small, so the
    job hears about its size, not about the labels "big" lacks."""
    workers = [labelled("big", 8000, 8192), labelled("eu", 1000, 1024, zone="eu")]
    wants_eu = QueuedJob("j", Resources(2000, 128), 0, None, {"zone": "eu"})
    assert place([wants_eu], workers).pending["j"] == (
        "no live worker can ever hold it: largest worker has 1 CPU, 1024 MB; "
        "job needs 2 CPU, 128 MB"
    )


def test_a_network_job_goes_only_to_a_worker_that_allows_networks() -> None:
    closed = WorkerView("closed", Resources(8000, 8192), Resources(0, 0), 8, 0)
    open_ = WorkerView("open", Resources(1000, 1024), Resources(0, 0), 8, 0, allows_network=True)
    networked = QueuedJob("n", Resources(500, 128), 0, None, network=True)
    plain = QueuedJob("p", Resources(500, 128), 0, None)

    assert place([networked, plain], [closed, open_]).assignments == [
        ("n", "open"),
        ("p", "closed"),
    ]
    waiting = place([networked, plain], [closed])
    assert waiting.assignments == [("p", "closed")]
    assert waiting.pending["n"] == (
        "needs a worker that allows network (JOBYARD_ALLOW_NETWORK); no live worker does"
    )
    assert waiting.waiting_for_capacity == []  # no worker frees up into allowing one


def test_a_network_job_that_waits_does_not_hold_back_a_plain_one_of_its_shape() -> None:
    """A network job's miss says nothing about workers that allow none."""
    closed = WorkerView("closed", Resources(1000, 1024), Resources(0, 0), 8, 0)
    networked = QueuedJob("n", Resources(500, 128), 0, None, network=True)
    plain = QueuedJob("p", Resources(500, 128), 0, None)
    assert place([networked, plain], [closed]).assignments == [("p", "closed")]


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


def partly_used(wid: str, cpu_m: int, mem: int, used_cpu_m: int, used_mem: int) -> WorkerView:
    return worker(wid, cpu_m, mem, used=Resources(min(used_cpu_m, cpu_m), min(used_mem, mem)))


pools = st.lists(
    st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(0, 8), st.integers(0, 8)),
    min_size=1,
    max_size=40,
).map(
    lambda rows: [
        partly_used(f"w{n:02d}", 1000 * cpu, 1024 * mem, 1000 * used_cpu, 1024 * used_mem)
        for n, (cpu, mem, used_cpu, used_mem) in enumerate(rows)
    ]
)  # whole CPUs and GiB, so that ties happen
requests = st.builds(Resources, st.integers(1, 8000), st.integers(0, 8192))


def brute_force(request: Resources, workers: list[WorkerView], policy: str) -> str | None:
    """The exhaustive scorer: every worker with room scored, the best (then the lower id)."""
    score = scorer(policy, request)
    fitting = [
        (score(*left(w, request), w.capacity.cpu_m, w.capacity.memory_mb), w.id)
        for w in workers
        if request.fits_in(w.free) and w.free_slots > 0
    ]
    return min(fitting)[1] if fitting else None


def left(w: WorkerView, request: Resources) -> tuple[int, int]:
    after = w.free - request
    return after.cpu_m, after.memory_mb


@settings(max_examples=300, deadline=None)
@given(workers=pools, request=requests, policy=st.sampled_from(["binpack", "spread"]))
def test_the_index_picks_what_the_exhaustive_scorer_picks(
    workers: list[WorkerView], request: Resources, policy: str
) -> None:
    """With no more workers than CANDIDATES, the walk sees every one that fits; beyond that
    it sees the CANDIDATES fitting workers left tightest in CPU (or emptiest, for spread)."""
    assert len(workers) <= scheduler.index.CANDIDATES
    index = CapacityIndex(workers)
    picked = index.best(request, {}, scorer(policy, request), policy != "spread")
    assert picked == brute_force(request, workers, policy)


@settings(max_examples=300, deadline=None)
@given(workers=pools, cpu_m=st.integers(1, 8000))
def test_a_cpu_only_job_gets_the_least_free_cpu_whatever_the_walks_bound(
    workers: list[WorkerView], cpu_m: int
) -> None:
    request = Resources(cpu_m, 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scheduler.index, "CANDIDATES", 2)
        picked = CapacityIndex(workers).best(request, {}, scorer("binpack", request), True)
    fitting = [w for w in workers if request.fits_in(w.free)]
    if not fitting:
        assert picked is None
    else:
        chosen = next(w for w in workers if w.id == picked)
        assert chosen.free.cpu_m == min(w.free.cpu_m for w in fitting)


def test_the_walk_finds_the_small_worker_among_many_big_ones() -> None:
    """DESIGN §3's first case with more big workers than the walk's CANDIDATES."""
    big = [worker(f"big{n:03d}", 4000, 8192) for n in range(3 * scheduler.index.CANDIDATES)]
    workers = [*big, worker("small", 1000, 1024)]
    assert place([job("j", 1000, 512)], workers).assignments == [("j", "small")]


gpu_workers = st.lists(
    st.builds(
        WorkerView,
        id=st.sampled_from(["a", "b", "c", "d"]),
        capacity=st.builds(
            Resources, st.integers(1, 4000), st.integers(1, 4096), st.integers(0, 2)
        ),
        reserved=st.builds(
            Resources, st.integers(0, 4000), st.integers(0, 4096), st.integers(0, 2)
        ),
        slots=st.integers(0, 2),
        used_slots=st.integers(0, 2),
        labels=st.dictionaries(st.sampled_from(["zone"]), st.sampled_from(["eu", "us"])),
        allows_network=st.booleans(),
    ),
    max_size=4,
    unique_by=lambda w: w.id,
).map(lambda ws: [w for w in ws if w.reserved.fits_in(w.capacity) and w.used_slots <= w.slots])
timed_jobs = st.builds(
    QueuedJob,
    id=st.just("j"),
    request=st.builds(Resources, st.integers(1, 4000), st.integers(0, 4096), st.integers(0, 2)),
    priority=st.just(0),
    pending_reason=st.none(),
    constraints=st.dictionaries(st.sampled_from(["zone"]), st.sampled_from(["eu", "us"])),
    timeout_s=st.none() | st.sampled_from([30.0, 90.0]),
    network=st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(
    workers=gpu_workers,
    job_=timed_jobs,
    reserved=st.none() | st.sampled_from(["a", "b"]),
    policy=st.sampled_from(["binpack", "spread"]),
)
def test_the_index_and_the_checks_agree_and_the_reason_is_the_check_that_refused(
    workers: list[WorkerView], job_: QueuedJob, reserved: str | None, policy: str
) -> None:
    reservation = None if reserved is None else Reservation("other", reserved, 1060.0)
    checks = CHECKS if reservation is None else (*CHECKS, NotReserved(reservation, 1000.0))
    result = place([job_], workers, policy, reservation, 1000.0)
    if result.assignments:
        ((_, chosen),) = result.assignments
        assert first_refusal(job_, next(w for w in workers if w.id == chosen), checks) is None
    else:
        assert all(first_refusal(job_, w, checks) is not None for w in workers)
        refusal = nearest_refusal(job_, workers, checks)
        expected = refusal[1] if refusal else "no live worker: start one with `jobyard worker`"
        assert result.pending["j"] == expected
