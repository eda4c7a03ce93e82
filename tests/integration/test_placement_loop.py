"""The placement loop on a real redis-server: each batch commits in a second thread while
the next is placed, and what Redis refuses corrects the placer within the same pass."""

from collections.abc import Callable

import pytest

import scheduler.loop
import shared.store.snapshot
from scheduler.loop import schedule_once
from shared.config import Config
from shared.pool import WorkerView
from shared.store import Store
from shared.store.commits import CommitPipeline
from tests.helpers import wait_until
from tests.store_support import LEASE_TOKEN, ManualClock, check_invariants, register, submit

CONFIG = Config.from_env({}, worker_timeout_s=30.0)


def after_read(store: Store, monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]) -> None:
    """Run `act` once the pass has read its snapshot (the workers come last), before
    anything is committed."""
    read = store.scheduling.live_workers

    def reading_then_acting(worker_timeout_s: float) -> list[WorkerView]:
        workers = read(worker_timeout_s)
        act()
        return workers

    monkeypatch.setattr(store.scheduling, "live_workers", reading_then_acting)


def states(store: Store, *job_ids: str) -> list[tuple[str, str | None]]:
    return [(job["state"], job.get("worker_id")) for job in store.jobs.get_many(job_ids)]


def test_a_window_of_many_batches_commits_in_queue_order(store: Store) -> None:
    count = 3 * scheduler.loop.COMMIT_BATCH + 7
    for n in range(count):
        submit(store, f"j{n:04d}", cpu_m=10, memory_mb=1, priority=n % 3)
    register(store, "w1", cpu_m=10 * count, memory_mb=count, slots=count)
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == count
    check_invariants(store)
    # The worker's inbox holds them in the order they were committed: priority, then FIFO.
    inbox = store.redis.lrange(store.keys.worker_inbox("w1"), 0, -1)
    expected = sorted((f"j{n:04d}" for n in range(count)), key=lambda j: (-(int(j[1:]) % 3), j))
    assert inbox == expected


def test_a_job_gone_before_its_commit_gives_its_capacity_to_a_later_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler.loop, "COMMIT_BATCH", 1)
    for job_id in ("j1", "j2", "j3", "j4"):
        submit(store, job_id)
    register(store, "w1", slots=2)
    after_read(store, monkeypatch, lambda: store.jobs.cancel("j1"))
    # j1 and j2 fill both slots; Redis refuses j1, and its slot goes to j3 in the same pass.
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 2
    assert states(store, "j1", "j2", "j3", "j4") == [
        ("CANCELLED", None),
        ("ASSIGNED", "w1"),
        ("ASSIGNED", "w1"),
        ("QUEUED", None),
    ]
    assert "waiting for capacity" in store.jobs.get("j4")["pending_reason"]
    check_invariants(store)


def test_a_worker_redis_refuses_gets_nothing_more_in_the_pass(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler.loop, "COMMIT_BATCH", 1)
    for job_id in ("j1", "j2", "j3"):
        submit(store, job_id, cpu_m=500, memory_mb=512)
    register(store, "tight", cpu_m=1500, memory_mb=1536)  # best fit: chosen first
    register(store, "roomy", cpu_m=8000, memory_mb=8192)
    after_read(store, monkeypatch, lambda: store.workers.drain("tight"))
    # j1 and j2 were placed on "tight" before its refusal came back; j3 goes elsewhere.
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 1
    assert states(store, "j1", "j2", "j3") == [
        ("QUEUED", None),
        ("QUEUED", None),
        ("ASSIGNED", "roomy"),
    ]
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 2
    assert states(store, "j1", "j2") == [("ASSIGNED", "roomy"), ("ASSIGNED", "roomy")]
    check_invariants(store)


def test_a_pass_stops_committing_once_another_scheduler_holds_the_lease(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler.loop, "COMMIT_BATCH", 1)
    for job_id in ("j1", "j2", "j3", "j4", "j5"):
        submit(store, job_id)
    register(store, "w1")
    send = CommitPipeline.send
    batches: list[object] = []

    def send_after_losing_the_lease(
        self: CommitPipeline, placements: list[tuple[str, str]]
    ) -> None:
        if batches:  # once the first batch is in, another scheduler takes over
            wait_until(lambda: store.jobs.get("j1")["state"] == "ASSIGNED")
            store.redis.set(store.keys.scheduler_lease, "another")
        batches.append(placements)
        send(self, placements)

    monkeypatch.setattr(CommitPipeline, "send", send_after_losing_the_lease)
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 1
    assert states(store, "j1", "j2", "j3", "j4", "j5") == [("ASSIGNED", "w1")] + 4 * [
        ("QUEUED", None)
    ]
    # Placing stops at the first refusal read back: by then one more batch was on its way.
    assert len(batches) == 3
    check_invariants(store)


def test_the_snapshot_reads_every_hash_across_script_calls(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared.store.snapshot, "SNAPSHOT_CHUNK", 2)
    for n in range(5):
        submit(store, f"j{n}", cpu_m=100 + n, memory_mb=10 + n, priority=n % 2, timeout_s=60)
    for n in range(3):
        register(store, f"w{n}", cpu_m=1000 * (n + 1))
    jobs = store.scheduling.queued_jobs(10)
    assert [(j.id, j.request.cpu_m, j.request.memory_mb, j.priority) for j in jobs] == [
        ("j1", 101, 11, 1),
        ("j3", 103, 13, 1),
        ("j0", 100, 10, 0),
        ("j2", 102, 12, 0),
        ("j4", 104, 14, 0),
    ]
    assert all(j.timeout_s == 60 and j.pending_reason is None for j in jobs)
    workers = store.scheduling.live_workers(CONFIG.worker_timeout_s)
    assert [(w.id, w.capacity.cpu_m) for w in workers] == [("w0", 1000), ("w1", 2000), ("w2", 3000)]


@pytest.mark.redis
def test_a_job_held_off_a_reserved_worker_is_told_for_whom_and_until_when(
    store: Store, clock: ManualClock
) -> None:
    config = Config.from_env({}, worker_timeout_s=30.0, starvation_s=60.0)
    register(store, "w1", cpu_m=2000, memory_mb=1024)
    submit(store, "running", cpu_m=1000, timeout_s=300)
    schedule_once(store, config, LEASE_TOKEN)
    store.jobs.start("running", "w1", 1)  # at 22:13:20 UTC, so it ends by 22:18:20
    submit(store, "big", cpu_m=2000)
    clock.advance(120)
    store.workers.heartbeat("w1", {}, [])
    submit(store, "untimed", cpu_m=500)
    submit(store, "short", cpu_m=500, timeout_s=60)
    assert schedule_once(store, config, LEASE_TOKEN) == 1
    assert states(store, "big", "untimed", "short") == [
        ("QUEUED", None),
        ("QUEUED", None),
        ("ASSIGNED", "w1"),
    ]
    reasons = [job["pending_reason"] for job in store.jobs.get_many(["big", "untimed"])]
    assert reasons == [
        "waiting for capacity: needs 2 CPU, 64 MB; every worker big enough is busy",
        "worker w1 is reserved for job big until about 22:18:20 UTC: only a job whose "
        "timeout_s ends by then may use it meanwhile",
    ]


def test_a_network_job_waits_for_a_worker_that_allows_networks(store: Store) -> None:
    submit(store, "net", network=True)
    submit(store, "plain")
    register(store, "closed", cpu_m=8000, memory_mb=8192)  # room enough, but no network
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 1
    assert states(store, "net", "plain") == [("QUEUED", None), ("ASSIGNED", "closed")]
    assert store.jobs.get("net")["pending_reason"] == (
        "needs a worker that allows network (JOBYARD_ALLOW_NETWORK); no live worker does"
    )

    register(store, "open", allows_network=True)
    assert schedule_once(store, CONFIG, LEASE_TOKEN) == 1
    assert states(store, "net") == [("ASSIGNED", "open")]
    assert [w["allows_network"] for w in store.workers.all()] == [False, True]
    check_invariants(store)
