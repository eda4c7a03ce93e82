"""Every job transition through the store's Lua scripts, legal and illegal.

The same tests run on fakeredis here and on a real redis-server in tests/integration.
"""

import pytest

from shared.states import TRANSITIONS, JobState
from shared.store import Store
from shared.store.errors import InvalidState, NotFound, StaleAttempt
from shared.store.workers import WorkerLost
from tests.store_support import (
    WORKER_TIMEOUT_S,
    ManualClock,
    assign,
    check_invariants,
    commit,
    register,
    submit,
)


def running_job(store: Store, job_id: str = "j1", worker_id: str = "w1") -> str:
    submit(store, job_id)
    if not store.redis.exists(store.keys.worker(worker_id)):
        register(store, worker_id)
    assert assign(store, job_id, worker_id) == [1]
    store.jobs.start(job_id, worker_id, 1)
    return job_id


def test_submit_creates_a_queued_job_with_its_first_event(store: Store) -> None:
    submit(store, "j1")
    job = store.jobs.get("j1")
    assert (job["state"], job["version"], job["attempt"]) == ("QUEUED", 1, 0)
    assert job["created_at"] == job["queued_at"]
    assert store.jobs.counts()["QUEUED"] == 1
    assert store.jobs.events("j1") == [
        {
            "at": job["created_at"],
            "from": None,
            "to": "QUEUED",
            "reason": None,
            "attempt": 0,
            "worker_id": None,
            "version": 1,
        }
    ]
    check_invariants(store)


def test_idempotency_key_returns_the_first_job(store: Store) -> None:
    spec = {"image": "i", "command": ["true"]}
    from shared.resources import Resources

    first = store.jobs.submit("a", "alice", spec, Resources(100, 10), 0, "key-1")
    again = store.jobs.submit("b", "alice", spec, Resources(100, 10), 0, "key-1")
    other_owner = store.jobs.submit("c", "bob", spec, Resources(100, 10), 0, "key-1")
    assert first == ("a", True)
    assert again == ("a", False)
    assert other_owner == ("c", True)
    assert store.jobs.counts()["QUEUED"] == 2


def test_assignment_reserves_capacity_and_fills_the_inbox(store: Store) -> None:
    submit(store, "j1", cpu_m=1500, memory_mb=512)
    register(store, "w1")
    assert assign(store, "j1", "w1") == [1]
    job = store.jobs.get("j1")
    assert (job["state"], job["attempt"], job["worker_id"]) == ("ASSIGNED", 1, "w1")
    assert store.workers.get("w1")["reserved"] == {
        "cpu": 1.5,
        "memory_mb": 512,
        "gpus": 0,
        "jobs": 1,
    }
    assert store.workers.pop_assigned("w1", 0.1) == ["j1"]
    check_invariants(store)


def test_assignment_rechecks_capacity_state_and_liveness(store: Store, clock: ManualClock) -> None:
    register(store, "w1", cpu_m=1000, memory_mb=1024, slots=2)
    for job_id in ("a", "b", "c"):
        submit(store, job_id, cpu_m=600, memory_mb=100)
    result = commit(store, [("a", "w1"), ("a", "w1"), ("b", "w1")])
    assert result == [1, "job not queued", "cpu taken"]
    register(store, "w2", cpu_m=4000, memory_mb=50)
    assert assign(store, "b", "w2") == ["memory taken"]
    register(store, "w3", cpu_m=4000, memory_mb=4000, slots=1)
    assert assign(store, "b", "w3") == [1]
    assert assign(store, "c", "w3") == ["no free slot"]
    clock.advance(WORKER_TIMEOUT_S + 1)
    assert assign(store, "c", "w1") == ["worker silent"]
    assert assign(store, "c", "missing") == ["worker not alive"]
    check_invariants(store)


def test_start_is_fenced_by_worker_and_attempt_and_idempotent(store: Store) -> None:
    submit(store, "j1")
    register(store, "w1")
    register(store, "w2")
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w1", 0)  # still QUEUED: nobody may start it
    assign(store, "j1", "w1")
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w2", 1)
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w1", 2)
    with pytest.raises(NotFound):
        store.jobs.start("nope", "w1", 1)
    first = store.jobs.start("j1", "w1", 1)
    again = store.jobs.start("j1", "w1", 1)
    assert first.state == again.state == "RUNNING"
    assert again.version == first.version
    assert [e["to"] for e in store.jobs.events("j1")] == ["QUEUED", "ASSIGNED", "RUNNING"]


@pytest.mark.parametrize(
    ("exit_code", "reason", "state", "stored_reason"),
    [
        (0, None, "COMPLETED", None),
        (3, None, "FAILED", "exit_code"),
        (137, "oom", "FAILED", "oom"),
        (None, "error", "FAILED", "error"),
        (143, "timeout", "FAILED", "timeout"),
        (143, "cancelled", "CANCELLED", "cancelled"),
    ],
)
def test_result_decides_the_end_state_and_releases_the_worker(
    store: Store, exit_code: int | None, reason: str | None, state: str, stored_reason: str | None
) -> None:
    running_job(store)
    outcome = store.jobs.finish(
        "j1",
        "w1",
        1,
        exit_code=exit_code,
        reason=reason,
        error="boom" if reason else None,
        metrics={"duration_s": 1.5},
    )
    job = store.jobs.get("j1")
    assert outcome.state == job["state"] == state
    assert (job["reason"], job["exit_code"]) == (stored_reason, exit_code)
    assert job["metrics"] == {"duration_s": 1.5}
    assert job["finished_at"] is not None
    assert store.workers.get("w1")["reserved"] == {"cpu": 0.0, "memory_mb": 0, "gpus": 0, "jobs": 0}
    check_invariants(store)


def test_result_from_assigned_when_the_container_never_started(store: Store) -> None:
    submit(store, "j1")
    register(store, "w1")
    assign(store, "j1", "w1")
    store.jobs.finish("j1", "w1", 1, exit_code=None, reason="error", error="no image", metrics={})
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["error"]) == ("FAILED", "error", "no image")
    check_invariants(store)


def test_duplicate_and_stale_results_change_nothing(store: Store) -> None:
    running_job(store)
    first = store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    again = store.jobs.finish("j1", "w1", 1, exit_code=9, reason=None, error=None, metrics={})
    assert again.version == first.version
    assert store.jobs.get("j1")["exit_code"] == 0
    with pytest.raises(StaleAttempt):
        store.jobs.finish("j1", "w1", 2, exit_code=0, reason=None, error=None, metrics={})
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w1", 1)  # terminal stays terminal
    assert assign(store, "j1", "w1") == ["job not queued"]
    assert store.workers.get("w1")["reserved"]["jobs"] == 0
    check_invariants(store)


def test_cancel_queued_ends_at_once(store: Store) -> None:
    submit(store, "j1")
    assert store.jobs.cancel("j1").state == "CANCELLED"
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"]) == ("CANCELLED", "cancelled")
    assert store.redis.zcard(store.keys.queue) == 0
    with pytest.raises(InvalidState):
        store.jobs.cancel("j1")
    with pytest.raises(NotFound):
        store.jobs.cancel("nope")
    check_invariants(store)


def test_cancel_running_is_passed_to_the_agent(store: Store) -> None:
    running_job(store)
    assert store.jobs.cancel("j1").state == "RUNNING"
    assert store.jobs.get("j1")["cancel_requested"] is True
    chunk = {"seq": 1, "stream": "stdout", "at": 1.0, "data": "x"}
    assert store.jobs.append_output("j1", "w1", 1, [chunk], 1000) is True
    cancel, stop = store.workers.heartbeat("w1", {}, [("j1", 1)])
    assert (cancel, stop) == (["j1"], [])
    store.jobs.finish("j1", "w1", 1, exit_code=143, reason="cancelled", error=None, metrics={})
    assert store.jobs.get("j1")["state"] == "CANCELLED"
    check_invariants(store)


def test_heartbeat_names_jobs_that_are_no_longer_the_workers(store: Store) -> None:
    running_job(store)
    cancel, stop = store.workers.heartbeat("w1", {"load1": 0.1}, [("j1", 1), ("j1", 7), ("x", 1)])
    assert cancel == []
    assert stop == ["j1", "x"]  # attempt 7 is not current; x is not its job
    with pytest.raises(NotFound):
        store.workers.heartbeat("nope", {}, [])


def test_output_is_stored_once_in_order_and_capped(store: Store) -> None:
    running_job(store)
    chunks = [
        {"seq": n, "stream": "stdout" if n % 2 else "stderr", "at": float(n), "data": "abcd"}
        for n in range(1, 4)
    ]
    store.jobs.append_output("j1", "w1", 1, chunks, 10)
    store.jobs.append_output("j1", "w1", 1, chunks, 10)  # a retried post
    store.jobs.append_output(
        "j1", "w1", 1, [{"seq": 4, "stream": "stdout", "at": 4.0, "data": "z"}], 10
    )
    stored = store.jobs.read_output("j1", 0, 100)
    assert [c["data"] for c in stored[:2]] == ["abcd", "abcd"]
    assert [c["stream"] for c in stored[:2]] == ["stdout", "stderr"]
    assert stored[2]["stream"] == "marker" and "truncated" in stored[2]["data"]
    assert len(stored) == 3
    job = store.jobs.get("j1")
    assert job["output_truncated"] is True and job["output_bytes"] == 8
    assert store.jobs.read_output("j1", 2, 100) == stored[2:]
    with pytest.raises(StaleAttempt):
        store.jobs.append_output("j1", "w1", 2, chunks, 10)


def test_pending_reason_is_only_written_on_queued_jobs(store: Store) -> None:
    submit(store, "q")
    running_job(store, "r")
    store.scheduling.set_pending_reasons({"q": "waiting", "r": "waiting"})
    assert store.jobs.get("q")["pending_reason"] == "waiting"
    assert store.jobs.get("r")["pending_reason"] is None


def test_every_recorded_transition_is_allowed_by_the_state_table(store: Store) -> None:
    running_job(store, "done")
    store.jobs.finish("done", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    running_job(store, "failed")
    store.jobs.finish("failed", "w1", 1, exit_code=1, reason=None, error=None, metrics={})
    submit(store, "cancelled")
    store.jobs.cancel("cancelled")
    for job_id in ("done", "failed", "cancelled"):
        events = store.jobs.events(job_id)
        assert [e["version"] for e in events] == list(range(1, len(events) + 1))
        for event in events[1:]:
            assert JobState(event["to"]) in TRANSITIONS[JobState(event["from"])]


def test_queue_orders_by_priority_then_arrival(store: Store) -> None:
    submit(store, "low", priority=-5)
    submit(store, "first")
    submit(store, "high", priority=10)
    submit(store, "second")
    assert [j.id for j in store.scheduling.queued_jobs(10)] == ["high", "first", "second", "low"]


def test_listing_pages_newest_first_and_hides_other_owners(store: Store) -> None:
    for n in range(5):
        submit(store, f"a{n}", owner="alice")
    submit(store, "b0", owner="bob")
    page, cursor = store.jobs.query(owner="alice", limit=3)
    assert [j["id"] for j in page] == ["a4", "a3", "a2"]
    page, cursor = store.jobs.query(owner="alice", limit=3, cursor=cursor)
    assert [j["id"] for j in page] == ["a1", "a0"]
    assert cursor is None
    everyone, _ = store.jobs.query(owner=None, limit=10)
    assert len(everyone) == 6
    queued, _ = store.jobs.query(owner="bob", state="QUEUED")
    assert [j["id"] for j in queued] == ["b0"]


def test_the_assignment_long_poll_waits_then_returns_empty(store: Store) -> None:
    import time

    register(store, "w1")
    began = time.monotonic()
    assert store.workers.pop_assigned("w1", 0.3) == []
    assert 0.25 < time.monotonic() - began < 2
    assert store.workers.pop_assigned("w1", 0) == []


def test_retry_requeues_failed_and_cancelled_jobs_as_a_new_attempt(store: Store) -> None:
    running_job(store)
    store.jobs.finish("j1", "w1", 1, exit_code=2, reason=None, error=None, metrics={})
    with pytest.raises(InvalidState):
        store.jobs.cancel("j1")  # FAILED is terminal
    assert store.jobs.retry("j1").state == "QUEUED"
    job = store.jobs.get("j1")
    assert (job["reason"], job["exit_code"], job["worker_id"], job["finished_at"]) == (None,) * 4
    with pytest.raises(InvalidState):
        store.jobs.retry("j1")  # already queued
    with pytest.raises(StaleAttempt):
        store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert assign(store, "j1", "w1") == [1]
    assert store.jobs.get("j1")["attempt"] == 2
    store.jobs.start("j1", "w1", 2)
    store.jobs.finish("j1", "w1", 2, exit_code=0, reason=None, error=None, metrics={})
    with pytest.raises(InvalidState):
        store.jobs.retry("j1")  # COMPLETED is final
    submit(store, "c")
    store.jobs.cancel("c")
    assert store.jobs.retry("c").state == "QUEUED"
    with pytest.raises(NotFound):
        store.jobs.retry("nope")
    check_invariants(store)


def test_a_draining_worker_gets_no_new_jobs_and_leaves_once_idle(store: Store) -> None:
    running_job(store)
    submit(store, "next")
    assert store.workers.drain("w1") == "draining"
    assert assign(store, "next", "w1") == ["worker not alive"]
    assert store.scheduling.live_workers(WORKER_TIMEOUT_S) == []
    with pytest.raises(InvalidState):
        store.workers.deregister("w1")  # j1 still runs there
    store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert store.redis.hexists(store.keys.tokens, "hash-w1")
    store.workers.deregister("w1")
    assert store.workers.all() == []
    assert not store.redis.hexists(store.keys.tokens, "hash-w1")
    with pytest.raises(NotFound):
        store.workers.drain("w1")
    check_invariants(store)


def test_a_lost_workers_jobs_are_requeued_then_failed_past_the_limit(store: Store) -> None:
    running_job(store, "r")
    submit(store, "a")
    assign(store, "a", "w1")
    assert store.workers.mark_lost("w1", max_requeues=1) == {"a": "QUEUED", "r": "QUEUED"}
    job = store.jobs.get("r")
    assert (job["state"], job["reason"], job["worker_id"]) == ("QUEUED", "lost", "w1")
    assert store.workers.get("w1")["status"] == "lost"
    assert store.workers.get("w1")["reserved"]["jobs"] == 0
    with pytest.raises(WorkerLost):
        store.workers.heartbeat("w1", {}, [])
    with pytest.raises(StaleAttempt):
        store.jobs.finish("r", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    check_invariants(store)
    register(store, "w2")
    assert assign(store, "r", "w2") == [1]
    assert store.jobs.get("r")["attempt"] == 2
    store.jobs.start("r", "w2", 2)
    assert store.workers.mark_lost("w2", max_requeues=1) == {"r": "FAILED"}
    job = store.jobs.get("r")
    assert (job["state"], job["reason"]) == ("FAILED", "lost")
    check_invariants(store)


def test_an_exit_reported_while_assigned_records_the_skipped_start(store: Store) -> None:
    submit(store, "j1")
    register(store, "w1")
    assign(store, "j1", "w1")
    store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    job = store.jobs.get("j1")
    assert job["state"] == "COMPLETED" and job["started_at"] is not None
    assert [e["to"] for e in store.jobs.events("j1")] == [
        "QUEUED",
        "ASSIGNED",
        "RUNNING",
        "COMPLETED",
    ]
    check_invariants(store)


def test_a_late_result_for_an_attempt_the_control_plane_ended_is_stale(store: Store) -> None:
    running_job(store)
    assert store.workers.mark_lost("w1", max_requeues=0) == {"j1": "FAILED"}
    with pytest.raises(StaleAttempt):
        store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert store.jobs.get("j1")["reason"] == "lost"


def test_a_cancelled_job_whose_worker_is_lost_ends_cancelled(store: Store) -> None:
    running_job(store)
    store.jobs.cancel("j1")
    assert store.workers.mark_lost("w1", max_requeues=3) == {"j1": "CANCELLED"}
    check_invariants(store)


def test_an_empty_output_post_only_asks_about_cancel(store: Store) -> None:
    running_job(store)
    before = store.redis.hgetall(store.keys.job("j1"))
    assert store.jobs.append_output("j1", "w1", 1, [], 1000) is False
    assert store.redis.hgetall(store.keys.job("j1")) == before
    store.jobs.cancel("j1")
    assert store.jobs.append_output("j1", "w1", 1, [], 1000) is True
