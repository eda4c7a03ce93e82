"""The scheduler's loop pieces on the store: the leader lease, queue timeouts and lost
workers, under a controlled clock."""

import threading

import fakeredis
import pytest

from scheduler.loop import run_scheduler, schedule_once
from scheduler.reaper import reap_once
from shared.config import Config
from shared.resources import Resources
from shared.store import Store
from shared.store.errors import StaleAttempt
from shared.store.lease import NotLeader
from tests.helpers import wait_until
from tests.store_support import ManualClock, check_invariants, register, submit

CONFIG = Config.from_env({}, worker_timeout_s=30.0, max_requeues=1)


def test_only_the_lease_holder_places(store: Store) -> None:
    submit(store, "j1")
    register(store, "w1")
    assert store.scheduling.hold_lease("first", 60)
    assert not store.scheduling.hold_lease("second", 60)
    assert schedule_once(store, CONFIG, "second") == 0
    with pytest.raises(NotLeader):
        store.scheduling.commit([("j1", "w1")], 30.0, "second")
    assert store.jobs.get("j1")["state"] == "QUEUED"
    assert schedule_once(store, CONFIG, "first") == 1
    check_invariants(store)


def test_a_standby_takes_over_when_the_lease_lapses(store: Store) -> None:
    assert store.scheduling.hold_lease("first", 0.2)
    assert not store.scheduling.hold_lease("second", 5)
    # The lease's TTL runs in Redis, on real time: the standby gets it once it lapses.
    wait_until(lambda: store.scheduling.hold_lease("second", 5), timeout=5)
    assert not store.scheduling.hold_lease("first", 5)


def test_a_job_past_its_queue_timeout_fails_as_unschedulable(
    store: Store, clock: ManualClock
) -> None:
    spec = {"image": "i", "command": ["true"], "queue_timeout_s": 10}
    store.jobs.submit("late", "alice", spec, Resources(99000, 64), 0)
    store.jobs.submit(
        "no-timeout", "alice", {"image": "i", "command": ["true"]}, Resources(99000, 64), 0
    )
    reap_once(store, CONFIG)
    assert store.jobs.get("late")["state"] == "QUEUED"
    clock.advance(11)
    reap_once(store, CONFIG)
    job = store.jobs.get("late")
    assert (job["state"], job["reason"]) == ("FAILED", "unschedulable")
    assert store.jobs.get("no-timeout")["state"] == "QUEUED"
    assert store.redis.zcard(store.keys.queue_deadlines) == 0
    check_invariants(store)


def test_a_placed_job_no_longer_times_out_in_the_queue(store: Store, clock: ManualClock) -> None:
    spec = {"image": "i", "command": ["true"], "queue_timeout_s": 10}
    store.jobs.submit("j", "alice", spec, Resources(100, 64), 0)
    register(store, "w1")
    assert schedule_once(store, CONFIG) == 1
    clock.advance(11)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, CONFIG)
    assert store.jobs.get("j")["state"] == "ASSIGNED"


def test_silent_workers_are_declared_lost_and_their_jobs_requeued(
    store: Store, clock: ManualClock
) -> None:
    submit(store, "j1")
    register(store, "w1")
    register(store, "w2")
    schedule_once(store, CONFIG)
    holder = store.jobs.get("j1")["worker_id"]
    other = "w2" if holder == "w1" else "w1"
    clock.advance(20)
    store.workers.heartbeat(other, {}, [])
    clock.advance(15)  # holder silent for 35 s, the other for 15 s
    reap_once(store, CONFIG)
    assert store.workers.get(holder)["status"] == "lost"
    assert store.workers.get(other)["status"] == "alive"
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"]) == ("QUEUED", "lost")
    assert schedule_once(store, CONFIG) == 1
    assert store.jobs.get("j1")["worker_id"] == other
    check_invariants(store)


def test_no_worker_is_lost_until_heartbeats_could_arrive_for_the_whole_timeout(
    store: Store, clock: ManualClock
) -> None:
    """Regression (chaos soak): right after a Redis outage every worker looked silent, since
    no heartbeat could be recorded meanwhile, and was declared lost at once."""
    register(store, "w1")
    clock.advance(35)  # silent for 35 s, but Redis came back only 10 s ago
    reap_once(store, CONFIG, hearing_since=clock() - 10)
    assert store.workers.get("w1")["status"] == "alive"
    clock.advance(20)  # still silent, and Redis has been back for 30 s
    reap_once(store, CONFIG, hearing_since=clock() - 30)
    assert store.workers.get("w1")["status"] == "lost"


def test_the_loop_declares_no_worker_lost_for_its_own_redis_outage(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The same through run_scheduler: Redis away for longer than the worker timeout, then
    back; the reap that follows (it fails a job past its queue timeout) spares the worker,
    and only a silence that outlasts the timeout after Redis is back loses it."""
    server = fakeredis.FakeServer()
    store = Store(fakeredis.FakeRedis(server=server, decode_responses=True), "t:", clock)
    register(store, "w1")
    spec = {"image": "img", "command": ["true"], "queue_timeout_s": 10}
    store.jobs.submit("big", "alice", spec, Resources(100_000, 64, 0), 0)  # fits nowhere
    stop = threading.Event()
    loop = threading.Thread(target=run_scheduler, args=(CONFIG, stop, store), daemon=True)
    loop.start()
    try:
        wait_until(lambda: store.redis.get(store.keys.scheduler_lease), message="never led")
        server.connected = False
        wait_until(lambda: "event=redis_unavailable" in caplog.text, message="never noticed")
        clock.advance(35)
        server.connected = True
        wait_until(lambda: store.jobs.get("big")["state"] == "FAILED", message="never reaped")
        assert store.workers.get("w1")["status"] == "alive"
        clock.advance(31)
        wait_until(lambda: store.workers.get("w1")["status"] == "lost", message="never lost")
    finally:
        stop.set()
        loop.join(10)


def test_priority_orders_dispatch_and_fifo_holds_within_a_priority(store: Store) -> None:
    register(store, "w1", cpu_m=1000, memory_mb=1024, slots=1)
    submit(store, "early-low", priority=0)
    submit(store, "late-high", priority=5)
    submit(store, "later-high", priority=5)
    order = []
    for _ in range(3):
        assert schedule_once(store, CONFIG) == 1
        (job_id,) = store.redis.smembers(store.keys.worker_jobs("w1"))
        order.append(job_id)
        store.jobs.start(job_id, "w1", 1)
        store.jobs.finish(job_id, "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert order == ["late-high", "later-high", "early-low"]


def test_an_assignment_never_started_is_requeued_as_stale(store: Store, clock: ManualClock) -> None:
    config = Config.from_env({}, assign_timeout_s=60.0, max_requeues=1)
    submit(store, "j1")
    register(store, "w1")
    schedule_once(store, config)
    clock.advance(30)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)
    assert store.jobs.get("j1")["state"] == "ASSIGNED"
    clock.advance(31)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"]) == ("QUEUED", "stale")
    assert store.workers.get("w1")["reserved"]["jobs"] == 0
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w1", 1)  # the late agent is told to drop it
    schedule_once(store, config)
    clock.advance(61)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)  # second time: past max_requeues
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["attempt"]) == ("FAILED", "stale", 2)
    check_invariants(store)


def test_a_run_past_its_deadline_fails_even_if_its_agent_is_silent(
    store: Store, clock: ManualClock
) -> None:
    config = Config.from_env({}, deadline_grace_s=5.0)
    spec = {"image": "i", "command": ["sleep", "1000"], "timeout_s": 10}
    store.jobs.submit("timed", "alice", spec, Resources(100, 64), 0)
    submit(store, "untimed")
    register(store, "w1")
    schedule_once(store, config)
    store.jobs.start("timed", "w1", 1)
    store.jobs.start("untimed", "w1", 1)
    clock.advance(14)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)
    assert store.jobs.get("timed")["state"] == "RUNNING"
    clock.advance(2)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)
    job = store.jobs.get("timed")
    assert (job["state"], job["reason"]) == ("FAILED", "timeout")
    assert store.jobs.get("untimed")["state"] == "RUNNING"
    with pytest.raises(StaleAttempt):
        store.jobs.append_output("timed", "w1", 1, [], 1000)
    check_invariants(store)
