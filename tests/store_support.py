"""Helpers to build store states through the store's own interface."""

import json
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from shared.config import Config
from shared.feed import BY_NAME, Subject
from shared.resources import Resources
from shared.states import ACTIVE_STATES, TERMINAL_STATES, TRANSITIONS, JobState
from shared.store import Store

WORKER_TIMEOUT_S = 30.0


@dataclass
class ManualClock:
    t: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def submit(store: Store, job_id: str, cpu_m: int = 500, memory_mb: int = 64, **kw: object) -> str:
    spec = {
        "image": "img",
        "command": ["true"],
        "priority": kw.get("priority", 0),
        "max_retries": kw.get("max_retries", 0),
        "timeout_s": kw.get("timeout_s"),
        "queue_timeout_s": kw.get("queue_timeout_s"),
        "network": bool(kw.get("network", False)),
    }
    store.jobs.submit(
        job_id,
        str(kw.get("owner", "alice")),
        spec,
        Resources(cpu_m, memory_mb, 0),
        int(kw.get("priority", 0)),  # type: ignore[call-overload]
        kw.get("idempotency_key"),  # type: ignore[arg-type]
    )
    return job_id


def register(
    store: Store,
    worker_id: str,
    cpu_m: int = 2000,
    memory_mb: int = 1024,
    slots: int = 4,
    allows_network: bool = False,
) -> str:
    store.workers.register(
        worker_id,
        f"hash-{worker_id}",
        hostname=worker_id,
        capacity=Resources(cpu_m, memory_mb, 0),
        slots=slots,
        labels={},
        executor="docker",
        allows_network=allows_network,
        max_workers=Config.from_env({}).max_workers,
    )
    return worker_id


LEASE_TOKEN = "test-scheduler"


def assign(store: Store, job_id: str, worker_id: str) -> list[int | str]:
    return commit(store, [(job_id, worker_id)])


def commit(store: Store, placements: list[tuple[str, str]]) -> list[int | str]:
    """Commit placements as the one scheduler holding the lease."""
    assert store.scheduling.hold_lease(LEASE_TOKEN, 60)
    return store.scheduling.commit(placements, WORKER_TIMEOUT_S, LEASE_TOKEN)


def check_invariants(store: Store) -> None:
    """Every job in exactly one state index; counters equal index sizes; every QUEUED job
    either in the queue or waiting out a retry backoff (then with its retry_at), never both;
    exactly the terminal jobs in the finished set, scored by finished_at; the reaper's
    clocks as check_clocks says; each worker's reservation equals the requests of its
    ASSIGNED and RUNNING jobs."""
    r, keys = store.redis, store.keys
    counts = store.jobs.counts()
    seen: dict[str, str] = {}
    for state in JobState:
        members = r.zrange(keys.state(state), 0, -1)
        assert counts[state.value] == len(members), state
        for job_id in members:
            assert job_id not in seen, f"{job_id} in {seen.get(job_id)} and {state}"
            seen[job_id] = state.value
            assert r.hget(keys.job(job_id), "state") == state.value
    check_owner_counts(store, seen)
    queue = set(r.zrange(keys.queue, 0, -1))
    queued = set(r.zrange(keys.state(JobState.QUEUED), 0, -1))
    waiting = dict(r.zrange(keys.retries, 0, -1, withscores=True))
    assert not queue & set(waiting), queue & set(waiting)
    assert queue | set(waiting) == queued
    for job_id, retry_at in waiting.items():
        assert abs(float(r.hget(keys.job(job_id), "retry_at") or 0) - retry_at) < 1e-3, job_id
    for job_id in queue:
        assert not r.hexists(keys.job(job_id), "retry_at"), job_id
    check_clocks(store)
    finished = dict(r.zrange(keys.finished, 0, -1, withscores=True))
    assert set(finished) == {j for j, state in seen.items() if state in TERMINAL_STATES}
    for job_id, at in finished.items():
        assert abs(float(r.hget(keys.job(job_id), "finished_at")) - at) < 1e-3, job_id
    for worker in store.workers.all():
        jobs = [store.jobs.get(j) for j in worker["running_jobs"]]
        assert all(j["state"] in ("ASSIGNED", "RUNNING") for j in jobs)
        assert all(j["worker_id"] == worker["id"] for j in jobs)
        reserved = worker["reserved"]
        assert reserved["jobs"] == len(jobs)
        assert round(reserved["cpu"] * 1000) == sum(
            round(j["resources"]["cpu"] * 1000) for j in jobs
        )
        assert reserved["memory_mb"] == sum(j["resources"]["memory_mb"] for j in jobs)
        assert reserved["jobs"] <= worker["max_parallel_jobs"]
        assert reserved["cpu"] <= worker["capacity"]["cpu"]


def check_owner_counts(store: Store, states: dict[str, str]) -> None:
    """The per-owner counts are the state indexes intersected with each owner's jobs, and
    name no owner in a state where they have none (a field at 0 is removed)."""
    r, keys = store.redis, store.keys
    pipe = r.pipeline(transaction=False)
    for job_id in states:
        pipe.hget(keys.job(job_id), "owner")
    expected: Counter[str] = Counter(
        f"{owner}\t{state}" for owner, state in zip(pipe.execute(), states.values(), strict=True)
    )
    stored = {field: int(n) for field, n in r.hgetall(keys.owner_counts).items()}
    assert stored == dict(expected), (stored, dict(expected))
    for field in expected:
        owner, _ = field.split("\t")
        assert store.jobs.counts(owner) == {
            state.value: expected[f"{owner}\t{state.value}"] for state in JobState
        }


def check_clocks(store: Store) -> None:
    """The reaper's clocks hold exactly the ASSIGNED jobs, scored by assigned_at, and
    exactly the RUNNING jobs that have a timeout_s, scored by started_at plus timeout_s."""
    r, keys = store.redis, store.keys
    assigned = dict(r.zrange(keys.assigned_at, 0, -1, withscores=True))
    assert set(assigned) == set(r.zrange(keys.state(JobState.ASSIGNED), 0, -1))
    for job_id, at in assigned.items():
        assert abs(float(r.hget(keys.job(job_id), "assigned_at")) - at) < 1e-3, job_id
    deadlines = dict(r.zrange(keys.run_deadlines, 0, -1, withscores=True))
    expected = {}
    for job_id in r.zrange(keys.state(JobState.RUNNING), 0, -1):
        started, timeout = r.hmget(keys.job(job_id), "started_at", "timeout_s")
        if timeout:
            expected[job_id] = float(started) + float(timeout)
    assert set(deadlines) == set(expected), set(deadlines) ^ set(expected)
    for job_id, deadline in deadlines.items():
        assert abs(expected[job_id] - deadline) < 1e-3, job_id


def check_store_invariants(store: Store) -> None:
    """check_invariants, and: every job is in exactly one state index; queue deadlines only
    for QUEUED jobs; no reservation passes its worker's capacity; every ASSIGNED or RUNNING
    job is held by exactly one worker (its own, alive or draining) and no other job by any;
    every job's history is gap-free, allowed by TRANSITIONS, counts its attempts, ends where
    the job is, and is what the global event stream says about it."""
    check_invariants(store)
    r, keys = store.redis, store.keys
    pipe = r.pipeline(transaction=False)
    for state in JobState:
        pipe.zrange(keys.state(state), 0, -1)
    pipe.zrange(keys.jobs, 0, -1)
    pipe.zrange(keys.queue_deadlines, 0, -1)
    *members, job_ids, deadlines = pipe.execute()
    indexed = {
        job_id: state for state, ids in zip(JobState, members, strict=True) for job_id in ids
    }
    assert set(indexed) == set(job_ids), "jobs index and state indexes disagree"
    for key in r.scan_iter(match=keys.owner_jobs("*"), count=1000):
        assert set(r.zrange(key, 0, -1)) <= set(job_ids), f"{key} names jobs that are gone"
    # Only jobs in the queue have a queue deadline (one waiting to retry gets it on entering).
    assert set(deadlines) <= set(r.zrange(keys.queue, 0, -1))

    check_worker_records(store)
    statuses = {}
    for worker in store.workers.all():
        reserved, capacity = worker["reserved"], worker["capacity"]
        assert reserved["memory_mb"] <= capacity["memory_mb"], worker["id"]
        assert reserved["gpus"] <= capacity["gpus"], worker["id"]
        assert min(reserved["cpu"], reserved["memory_mb"], reserved["gpus"], reserved["jobs"]) >= 0
        statuses[worker["id"]] = worker["status"]

    pipe = r.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(keys.job(job_id), "state", "version", "attempt", "worker_id")
        pipe.lrange(keys.job_events(job_id), 0, -1)
    replies = pipe.execute()
    jobs = dict(zip(job_ids, replies[::2], strict=True))
    histories = {
        job_id: [json.loads(e) for e in events]
        for job_id, events in zip(job_ids, replies[1::2], strict=True)
    }

    # Who holds what: every worker_jobs set there is, of listed workers or not.
    held_sets = list(r.scan_iter(match=keys.worker_jobs("*"), count=1000))
    pipe = r.pipeline(transaction=False)
    for key in held_sets:
        pipe.smembers(key)
    holders: Counter[str] = Counter()
    for key, held in zip(held_sets, pipe.execute(), strict=True):
        for job_id in held:
            state, _, _, worker_id = jobs[job_id]
            assert state in ACTIVE_STATES, f"{key} holds {job_id}, which is {state}"
            assert key == keys.worker_jobs(worker_id), f"{key} holds {worker_id}'s {job_id}"
            holders[job_id] += 1
    for job_id, (state, _, _, worker_id) in jobs.items():
        if state in ACTIVE_STATES:
            assert holders[job_id] == 1, f"{job_id} is {state}, held {holders[job_id]} times"
            status = statuses.get(worker_id, "gone")
            assert status in ("alive", "draining"), f"{job_id} is {state} on a {status} worker"

    for job_id, (state, version, attempt, _) in jobs.items():
        check_history(job_id, histories[job_id], state, int(version), int(attempt))

    # The dashboard's feed carries the same history, in the same order (while untrimmed), and
    # every other change that bumped a job's version: its last event has the job's version.
    # A deleted job's events end with its deletion, and nothing of it is left.
    feed: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in job_ids}
    for _, fields in r.xrange(keys.events, "-", "+"):
        if BY_NAME[fields["kind"]].subject == Subject.JOB:
            feed.setdefault(fields["id"], []).append(
                {"kind": fields["kind"], **json.loads(fields["data"])}
            )
    deleted = {job_id: feed.pop(job_id) for job_id in set(feed) - set(job_ids)}
    for job_id, events in feed.items():
        versions = [e["version"] for e in events]
        assert versions == sorted(set(versions)), f"{job_id}: feed versions {versions}"
        assert versions[-1] == int(jobs[job_id][1]), f"{job_id}: a change missing from the feed"
        transitions = [e for e in events if e.pop("kind") == "job"]
        assert transitions == histories[job_id], f"the feed disagrees with {job_id}'s history"
    for job_id, events in deleted.items():
        last = events[-1]
        assert last["kind"] == "job_deleted", f"{job_id} is gone without a deletion event"
        assert last["state"] in TERMINAL_STATES, (job_id, last)
        assert last["version"] == events[-2]["version"] + 1, job_id
        assert not r.exists(keys.job(job_id), keys.job_events(job_id), keys.job_output(job_id))


def check_worker_records(store: Store) -> None:
    """Every worker record is listed in the workers index and the index names no other;
    exactly the lost ones wait out their retention in lost_workers; every worker token
    belongs to a worker whose record is there, and no per-worker key outlives its record."""
    r, keys = store.redis, store.keys
    listed = set(r.zrange(keys.workers, 0, -1))
    records = {
        key.removeprefix(keys.worker(""))
        for key in r.scan_iter(match=keys.worker("*"), count=1000)
        if r.type(key) == "hash"
    }
    assert records == listed, records ^ listed
    pipe = r.pipeline(transaction=False)
    for worker_id in sorted(listed):
        pipe.hget(keys.worker(worker_id), "status")
    lost = {w for w, status in zip(sorted(listed), pipe.execute(), strict=True) if status == "lost"}
    assert set(r.zrange(keys.lost_workers, 0, -1)) == lost
    for raw in r.hvals(keys.tokens):
        record = json.loads(raw)
        if record.get("role") == "worker":
            assert record["worker_id"] in listed, f"the token of {record['worker_id']} outlived it"
    for key in r.scan_iter(match=keys.worker("*:*"), count=1000):
        worker_id = key.removeprefix(keys.worker("")).rsplit(":", 1)[0]
        assert worker_id in listed, f"{key} outlived its worker"


def check_history(
    job_id: str, events: list[dict[str, Any]], state: str, version: int, attempt: int
) -> None:
    """A job's events: versions rising from 1 (changes that are not transitions, such as a
    cancel asked for, take versions between); a first event into QUEUED; each next one leaves
    the state the previous one entered, by a transition the table allows; the attempt goes up
    by one exactly at each assignment; the last one is the job as it is now."""
    assert events, f"{job_id} has no history"
    first = events[0]
    assert (first["from"], first["to"], first["attempt"]) == (None, "QUEUED", 0), job_id
    versions = [e["version"] for e in events]
    assert versions[0] == 1 and versions == sorted(set(versions)), (job_id, versions)
    for before, after in pairwise(events):
        assert after["from"] == before["to"], f"{job_id}: unrecorded change {before} -> {after}"
        assert JobState(after["to"]) in TRANSITIONS[JobState(after["from"])], (job_id, after)
        step = 1 if after["to"] == JobState.ASSIGNED else 0
        assert after["attempt"] == before["attempt"] + step, (job_id, before, after)
    last = events[-1]
    assert (last["to"], last["attempt"]) == (state, attempt) and last["version"] <= version, job_id
