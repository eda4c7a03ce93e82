"""Helpers to build store states through the store's own interface."""

from dataclasses import dataclass

from shared.resources import Resources
from shared.states import JobState
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
    spec = {"image": "img", "command": ["true"], "priority": kw.get("priority", 0)}
    store.jobs.submit(
        job_id,
        str(kw.get("owner", "alice")),
        spec,
        Resources(cpu_m, memory_mb, 0),
        int(kw.get("priority", 0)),  # type: ignore[call-overload]
    )
    return job_id


def register(
    store: Store, worker_id: str, cpu_m: int = 2000, memory_mb: int = 1024, slots: int = 4
) -> str:
    store.workers.register(
        worker_id,
        f"hash-{worker_id}",
        hostname=worker_id,
        capacity=Resources(cpu_m, memory_mb, 0),
        slots=slots,
        labels={},
        executor="docker",
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
    """Every job in exactly one state index; counters equal index sizes; each worker's
    reservation equals the requests of its ASSIGNED and RUNNING jobs."""
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
    assert set(r.zrange(keys.queue, 0, -1)) == set(r.zrange(keys.state(JobState.QUEUED), 0, -1))
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
