"""A follower's wait on a job's output wakes when the job ends (its ended stream), on a
real redis-server: the end of a job reaches `logs -f` at once, not at the next slice."""

import threading

from shared.store import Store
from shared.store.streams import START
from tests.store_support import submit

LONG_S = 30.0  # far longer than the joins below: a wait that returns was woken


def wait_in_thread(store: Store, job_id: str, ends_after: str) -> tuple[threading.Thread, list]:
    answer: list = []

    def wait() -> None:
        answer.append(store.streams.wait_output(job_id, 0, 50, LONG_S, ends_after))

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, answer


def test_the_end_of_a_job_wakes_its_output_wait(store: Store) -> None:
    job_id = submit(store, "j1")
    thread, answer = wait_in_thread(store, job_id, START)
    store.jobs.cancel(job_id)  # QUEUED -> CANCELLED: a final state
    thread.join(10)
    assert not thread.is_alive()
    chunks, ends_seen = answer[0]
    assert chunks == [] and ends_seen != START
    # The entry lasts a while, then goes: finished jobs keep no ended stream.
    ttl = store.redis.pttl(store.keys.job_ended(job_id))
    assert 0 < ttl <= 60_000


def test_a_wait_after_the_seen_end_is_not_woken_by_it(store: Store) -> None:
    """A job retried after it ended still has its ended entry: a follower of the new attempt
    that saw it must wait for output or the next end, not spin on the old one."""
    job_id = submit(store, "j1")
    store.jobs.cancel(job_id)
    _, seen = store.streams.wait_output(job_id, 0, 50, 0.001, START)
    assert seen != START
    store.jobs.retry(job_id)
    thread, answer = wait_in_thread(store, job_id, seen)
    thread.join(0.5)
    assert thread.is_alive()  # still waiting: the old end did not wake it
    store.jobs.cancel(job_id)  # the retried attempt ends: that wakes it
    thread.join(10)
    assert not thread.is_alive()
    assert answer[0][1] not in (START, seen)


def test_deleting_a_job_removes_its_ended_stream(store: Store) -> None:
    job_id = submit(store, "j1")
    store.jobs.cancel(job_id)
    assert store.redis.exists(store.keys.job_ended(job_id))
    store.jobs.delete(job_id)
    assert not store.redis.exists(store.keys.job_ended(job_id))
