"""Every job transition through the store's Lua scripts, legal and illegal.

The same tests run on fakeredis here and on a real redis-server in tests/integration.
"""

import pytest

from scheduler import reaper
from scheduler.reaper import purge_finished, reap_once
from shared.config import Config
from shared.states import TRANSITIONS, JobState
from shared.store import Store
from shared.store.errors import InvalidState, NotFound, StaleAttempt
from shared.store.jobs import Backoff
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
            "actor": "alice",  # the submitter
        }
    ]
    check_invariants(store)


def test_idempotency_key_returns_the_first_job(store: Store) -> None:
    spec = {"image": "i", "command": ["true"]}
    from shared.resources import Resources

    first = store.jobs.submit("a", "alice", spec, Resources(100, 10), 0, "key-1")
    again = store.jobs.submit("b", "alice", spec, Resources(100, 10), 0, "key-1")
    other_owner = store.jobs.submit("c", "bob", spec, Resources(100, 10), 0, "key-1")
    assert [(job["id"], created) for job, created in (first, again, other_owner)] == [
        ("a", True),
        ("a", False),
        ("c", True),
    ]
    assert first[0] == again[0] == store.jobs.get("a")
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
    assert [job["id"] for job in store.workers.pop_assigned("w1", 0.1)] == ["j1"]
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


def test_the_long_poll_returns_every_waiting_job_still_assigned_to_the_worker(
    store: Store,
) -> None:
    register(store, "w1")
    register(store, "w2")
    for job_id in ("a", "b", "c"):
        submit(store, job_id, cpu_m=100)
    commit(store, [("a", "w1"), ("b", "w1"), ("c", "w1")])
    # b's assignment went stale and b was placed on w2 before w1 polled.
    assert store.scheduling.reap("b", "w1", 1, "stale", max_requeues=3) == "QUEUED"
    assign(store, "b", "w2")
    jobs = store.workers.pop_assigned("w1", 0)
    assert [(job["id"], job["worker_id"], job["state"]) for job in jobs] == [
        ("a", "w1", "ASSIGNED"),
        ("c", "w1", "ASSIGNED"),
    ]
    assert jobs[0] == store.jobs.get("a")
    assert store.workers.pop_assigned("w1", 0) == []
    assert [job["id"] for job in store.workers.pop_assigned("w2", 0)] == ["b"]
    check_invariants(store)


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


# Automatic retries (DESIGN §2)

BACKOFF = Backoff(base_s=2.0, max_s=5.0)


def fail(store: Store, job_id: str, worker_id: str, attempt: int, **result: object) -> str:
    """The agent reports the attempt ended (by default: exit code 3)."""
    outcome = store.jobs.finish(
        job_id,
        worker_id,
        attempt,
        exit_code=result.get("exit_code", 3),  # type: ignore[arg-type]
        reason=result.get("reason"),  # type: ignore[arg-type]
        error=None,
        metrics={},
        backoff=BACKOFF,
    )
    return outcome.state


def run_again(store: Store, job_id: str, worker_id: str, attempt: int) -> None:
    assert assign(store, job_id, worker_id) == [1]
    store.jobs.start(job_id, worker_id, attempt)


def test_a_failed_job_with_retries_left_waits_out_a_doubling_backoff(
    store: Store, clock: ManualClock
) -> None:
    submit(store, "j1", max_retries=2)
    running_job_id = running_job(store, "other")  # so that the worker exists
    store.jobs.finish(running_job_id, "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    run_again(store, "j1", "w1", 1)
    assert fail(store, "j1", "w1", 1) == "QUEUED"
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["exit_code"]) == ("QUEUED", "exit_code", 3)
    assert (job["retries"], job["max_retries"], job["attempt"]) == (1, 2, 1)
    assert job["retry_at"] == clock() + 2 and job["finished_at"] is None
    assert job["pending_reason"] == "retry 1 of 2 at 2023-11-14T22:13:22+00:00 after exit_code 3"
    assert store.workers.get("w1")["reserved"]["jobs"] == 0
    check_invariants(store)

    # Not placeable, nor promoted, before its time.
    assert assign(store, "j1", "w1") == ["job waiting to retry"]
    clock.advance(1.9)
    assert store.scheduling.promote_retries() == []
    assert store.scheduling.queued_jobs(10) == []
    clock.advance(0.1)
    assert store.scheduling.promote_retries() == ["j1"]
    assert store.scheduling.promote_retries() == []
    job = store.jobs.get("j1")
    assert (job["retry_at"], job["pending_reason"], job["queued_at"]) == (None, None, clock())
    assert [j.id for j in store.scheduling.queued_jobs(10)] == ["j1"]
    check_invariants(store)

    run_again(store, "j1", "w1", 2)
    assert fail(store, "j1", "w1", 2) == "QUEUED"
    assert store.jobs.get("j1")["retry_at"] == clock() + 4  # doubled
    clock.advance(4)
    assert store.scheduling.promote_retries() == ["j1"]
    run_again(store, "j1", "w1", 3)
    assert fail(store, "j1", "w1", 3) == "FAILED"  # no retry left
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["retries"], job["attempt"]) == (
        "FAILED",
        "exit_code",
        2,
        3,
    )
    assert job["retry_at"] is None and job["finished_at"] == clock()
    events = store.jobs.events("j1")
    assert [(e["to"], e["reason"], e["attempt"]) for e in events] == [
        ("QUEUED", None, 0),
        ("ASSIGNED", None, 1),
        ("RUNNING", None, 1),
        ("QUEUED", "exit_code", 1),
        ("ASSIGNED", None, 2),
        ("RUNNING", None, 2),
        ("QUEUED", "exit_code", 2),
        ("ASSIGNED", None, 3),
        ("RUNNING", None, 3),
        ("FAILED", "exit_code", 3),
    ]
    check_invariants(store)


def test_the_backoff_stops_growing_at_its_maximum(store: Store, clock: ManualClock) -> None:
    submit(store, "j1", max_retries=4)
    register(store, "w1")
    delays = []
    for attempt in range(1, 5):
        run_again(store, "j1", "w1", attempt)
        fail(store, "j1", "w1", attempt)
        retry_at = store.jobs.get("j1")["retry_at"]
        delays.append(retry_at - clock())
        clock.t = retry_at
        assert store.scheduling.promote_retries() == ["j1"]
    assert delays == [2, 4, 5, 5]


def test_a_job_that_fails_once_then_succeeds_completes(store: Store, clock: ManualClock) -> None:
    submit(store, "j1", max_retries=3)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    assert fail(store, "j1", "w1", 1, exit_code=137, reason="oom") == "QUEUED"
    clock.advance(2)
    store.scheduling.promote_retries()
    run_again(store, "j1", "w1", 2)
    assert fail(store, "j1", "w1", 2, exit_code=0) == "COMPLETED"
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["exit_code"]) == ("COMPLETED", None, 0)
    assert (job["attempt"], job["retries"]) == (2, 1)
    check_invariants(store)


@pytest.mark.parametrize(
    ("exit_code", "reason", "state"),
    [
        (3, None, "QUEUED"),
        (137, "oom", "QUEUED"),
        (143, "timeout", "QUEUED"),
        (None, "error", "QUEUED"),
        (143, "cancelled", "CANCELLED"),
        (0, None, "COMPLETED"),
    ],
)
def test_only_failures_of_the_job_itself_spend_a_retry(
    store: Store, exit_code: int | None, reason: str | None, state: str
) -> None:
    submit(store, "j1", max_retries=1)
    register(store, "w1")
    assign(store, "j1", "w1")  # still ASSIGNED: an error may come before the start
    assert fail(store, "j1", "w1", 1, exit_code=exit_code, reason=reason) == state
    assert store.jobs.get("j1")["retries"] == (1 if state == "QUEUED" else 0)
    check_invariants(store)


def test_cancel_while_waiting_to_retry_ends_it_at_once(store: Store, clock: ManualClock) -> None:
    submit(store, "j1", max_retries=2)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    fail(store, "j1", "w1", 1)
    assert store.jobs.cancel("j1").state == "CANCELLED"
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["retry_at"]) == ("CANCELLED", "cancelled", None)
    clock.advance(60)
    assert store.scheduling.promote_retries() == []
    check_invariants(store)


def test_a_job_the_user_cancelled_is_not_retried_whatever_its_exit(store: Store) -> None:
    submit(store, "j1", max_retries=2)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    store.jobs.cancel("j1")
    assert fail(store, "j1", "w1", 1, exit_code=1) == "FAILED"
    check_invariants(store)


def test_a_repeated_result_of_an_attempt_waiting_to_retry_changes_nothing(store: Store) -> None:
    submit(store, "j1", max_retries=2)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    fail(store, "j1", "w1", 1)
    before = store.redis.hgetall(store.keys.job("j1"))
    again = store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    assert (again.state, again.version) == ("QUEUED", int(before["version"]))
    assert store.redis.hgetall(store.keys.job("j1")) == before
    with pytest.raises(StaleAttempt):
        store.jobs.start("j1", "w1", 1)
    with pytest.raises(StaleAttempt):
        store.jobs.append_output(
            "j1", "w1", 1, [{"seq": 9, "stream": "stdout", "at": 1.0, "data": "x"}], 99
        )


def test_a_run_past_its_deadline_retries_and_its_late_result_is_stale(
    store: Store, clock: ManualClock
) -> None:
    config = Config.from_env({}, retry_backoff_s=10.0, deadline_grace_s=1.0)
    submit(store, "j1", max_retries=1, timeout_s=5)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    clock.advance(7)
    store.workers.heartbeat("w1", {}, [("j1", 1)])
    reap_once(store, config)
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["retries"]) == ("QUEUED", "timeout", 1)
    assert job["retry_at"] == clock() + 10
    assert store.workers.get("w1")["reserved"]["jobs"] == 0
    with pytest.raises(StaleAttempt):  # the agent did not end it: its word comes too late
        store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={})
    clock.advance(10)
    store.workers.heartbeat("w1", {}, [])
    reap_once(store, config)  # promotes it
    run_again(store, "j1", "w1", 2)
    clock.advance(7)
    store.workers.heartbeat("w1", {}, [("j1", 2)])
    reap_once(store, config)
    job = store.jobs.get("j1")
    assert (job["state"], job["reason"], job["attempt"]) == ("FAILED", "timeout", 2)
    check_invariants(store)


def test_infrastructure_requeues_do_not_spend_retries(store: Store) -> None:
    submit(store, "j1", max_retries=1)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    assert store.workers.mark_lost("w1", max_requeues=3) == {"j1": "QUEUED"}
    job = store.jobs.get("j1")
    assert (job["reason"], job["retries"], job["retry_at"]) == ("lost", 0, None)
    assert [j.id for j in store.scheduling.queued_jobs(10)] == ["j1"]  # at once, no backoff
    check_invariants(store)


def test_a_user_retry_after_the_last_automatic_one_starts_afresh(
    store: Store, clock: ManualClock
) -> None:
    submit(store, "j1", max_retries=1)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    fail(store, "j1", "w1", 1)
    with pytest.raises(InvalidState):
        store.jobs.retry("j1")  # it is QUEUED already, waiting
    clock.advance(2)
    store.scheduling.promote_retries()
    run_again(store, "j1", "w1", 2)
    assert fail(store, "j1", "w1", 2) == "FAILED"
    assert store.jobs.retry("j1").state == "QUEUED"
    job = store.jobs.get("j1")
    assert (job["retries"], job["retry_at"], job["reason"]) == (0, None, None)
    run_again(store, "j1", "w1", 3)
    assert fail(store, "j1", "w1", 3) == "QUEUED"
    check_invariants(store)


def test_a_queue_timeout_runs_only_while_the_job_is_in_the_queue(
    store: Store, clock: ManualClock
) -> None:
    submit(store, "j1", max_retries=1, queue_timeout_s=10)
    register(store, "w1")
    run_again(store, "j1", "w1", 1)
    store.jobs.finish(
        "j1", "w1", 1, exit_code=1, reason=None, error=None, metrics={}, backoff=Backoff(60, 60)
    )
    clock.advance(30)
    assert store.scheduling.expire_queued() == []  # waiting out its backoff is not queueing
    clock.advance(30)
    store.scheduling.promote_retries()
    clock.advance(9)
    assert store.scheduling.expire_queued() == []
    clock.advance(2)
    assert store.scheduling.expire_queued() == ["j1"]
    assert store.jobs.get("j1")["reason"] == "unschedulable"
    check_invariants(store)


# Deletion and retention (DESIGN §4)


def finished_job(store: Store, job_id: str, exit_code: int = 0, **kw: object) -> str:
    submit(store, job_id, **kw)
    if store.redis.exists(store.keys.worker("w1")):
        store.workers.heartbeat("w1", {}, [])  # time may have passed
    else:
        register(store, "w1")
    attempt = store.jobs.get(job_id)["attempt"] + 1
    run_again(store, job_id, "w1", attempt)
    chunk = {"seq": 1, "stream": "stdout", "at": 1.0, "data": "hello\n"}
    store.jobs.append_output(job_id, "w1", attempt, [chunk], 1000)
    store.jobs.finish(
        job_id, "w1", attempt, exit_code=exit_code, reason=None, error=None, metrics={}
    )
    return job_id


def leftovers(store: Store, job_id: str) -> list[str]:
    """Every key and index entry that still names the job."""
    r, keys = store.redis, store.keys
    found = [
        k
        for k in (keys.job(job_id), keys.job_events(job_id), keys.job_output(job_id))
        if r.exists(k)
    ]
    indexes = [keys.jobs, keys.queue, keys.retries, keys.finished, keys.owner_jobs("alice")]
    indexes += [keys.state(state) for state in JobState]
    return found + [k for k in indexes if r.zscore(k, job_id) is not None]


def test_delete_removes_a_finished_job_with_its_output_and_history(store: Store) -> None:
    finished_job(store, "done")
    finished_job(store, "kept", exit_code=1)
    counts = store.jobs.counts()
    store.jobs.delete("done")
    assert leftovers(store, "done") == []
    assert store.jobs.counts() == {**counts, "COMPLETED": counts["COMPLETED"] - 1}
    with pytest.raises(NotFound):
        store.jobs.get("done")
    with pytest.raises(NotFound):
        store.jobs.delete("done")
    with pytest.raises(NotFound):
        store.jobs.retry("done")
    assert store.jobs.query(owner="alice")[0][0]["id"] == "kept"
    assert store.jobs.read_output("kept", 0, 10)[0]["data"] == "hello\n"
    check_invariants(store)


def test_only_finished_jobs_can_be_deleted(store: Store, clock: ManualClock) -> None:
    submit(store, "queued")
    submit(store, "waiting", max_retries=1)
    register(store, "w1")
    run_again(store, "waiting", "w1", 1)
    fail(store, "waiting", "w1", 1)
    running_job(store, "running")
    for job_id, state in (("queued", "QUEUED"), ("waiting", "QUEUED"), ("running", "RUNNING")):
        before = store.redis.hgetall(store.keys.job(job_id))
        with pytest.raises(InvalidState) as refused:
            store.jobs.delete(job_id)
        assert refused.value.state == state
        assert store.redis.hgetall(store.keys.job(job_id)) == before
    check_invariants(store)


def test_deleting_a_job_frees_its_idempotency_key(store: Store) -> None:
    finished_job(store, "first", idempotency_key="k")
    submit(store, "again", idempotency_key="k")
    assert not store.redis.exists(store.keys.job("again"))  # the key still names "first"
    store.jobs.delete("first")
    submit(store, "again", idempotency_key="k")
    assert store.jobs.get("again")["state"] == "QUEUED"
    check_invariants(store)


def test_retention_deletes_jobs_finished_longer_ago_in_batches(
    store: Store, clock: ManualClock
) -> None:
    for n in range(5):
        finished_job(store, f"old{n}", exit_code=n % 2)
    store.jobs.cancel(submit(store, "old-cancelled"))
    clock.advance(100)
    finished_job(store, "recent")
    retried = finished_job(store, "retried", exit_code=1)
    clock.advance(50)
    store.jobs.retry(retried)  # no longer finished: retention must not touch it
    assert store.jobs.purge_finished(120, limit=4) == 4
    assert store.jobs.purge_finished(120, limit=4) == 2
    assert store.jobs.purge_finished(120, limit=4) == 0
    assert sorted(store.redis.zrange(store.keys.jobs, 0, -1)) == ["recent", "retried"]
    assert sum(store.jobs.counts().values()) == 2
    for n in range(5):
        assert leftovers(store, f"old{n}") == []
    clock.advance(100)
    assert purge_finished(store, 120) == 1  # "recent" now
    check_invariants(store)


def test_the_reaper_purges_a_bounded_number_of_batches_per_pass(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reaper, "PURGE_BATCH", 2)
    monkeypatch.setattr(reaper, "PURGE_BATCHES_PER_PASS", 2)
    for n in range(7):
        store.jobs.cancel(submit(store, f"j{n}"))
    clock.advance(10)
    assert purge_finished(store, 5) == 4
    assert purge_finished(store, 5) == 3
    assert purge_finished(store, 5) == 0
    check_invariants(store)
