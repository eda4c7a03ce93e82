"""What the soak checks once every job should have ended, read from Redis and the Docker
daemon directly (not through the api under test): each check that fails becomes one line
of Figures.violations; the figures themselves are counted from the jobs' events."""

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import docker

from shared.states import ACTIVE_STATES, TERMINAL_STATES, JobState
from shared.store import Store
from tests.e2e.soak.chaos import Kill
from tests.e2e.soak.plan import SoakPlan
from tests.e2e.soak.submitter import expected_outcome
from tests.store_support import check_store_invariants
from worker_agent.executors.docker import LABEL_WORKER

SAMPLES = 5  # job ids quoted per violation
CONTAINERS_TIMEOUT_S = 30.0
# The reaper declares a worker lost within a second of its timeout, after a heartbeat that
# may be a second old: the requeue follows the kill by at most the timeout plus this.
REQUEUE_SLACK_S = 2.0


@dataclass
class Figures:
    jobs: int = 0  # acknowledged (201) submissions
    refused_submissions: int = 0  # failed submit calls, retried with the same key
    ends: dict[str, int] = field(default_factory=dict)  # COMPLETED, FAILED exit_code, ...
    kills: dict[str, int] = field(default_factory=dict)
    requeues: dict[str, int] = field(default_factory=dict)  # by reason
    lost_workers: int = 0  # workers the reaper declared lost
    lost_but_not_killed: int = 0  # of those, workers whose agent was not killed
    agent_kills_without_jobs: int = 0  # their worker held nothing: no requeue to time
    kill_to_requeue_s: dict[str, float] = field(default_factory=dict)
    outages_s: dict[str, float] = field(default_factory=dict)  # control plane: kill to serving
    containers_left: int = 0  # of this run's workers, running or stopped
    containers_left_running: int = 0
    duration_s: float = 0.0
    violations: list[str] = field(default_factory=list)


def measure(
    store: Store,
    ids: dict[int, str],
    kills: list[Kill],
    plan: SoakPlan,
    figures: Figures,
) -> None:
    """Fill `figures` from the end state and record every violated invariant."""
    events = _histories(store, list(ids.values()))
    _check_jobs(store, ids, events, plan.max_requeues, figures)
    _count_requeues(store, events, kills, plan.worker_timeout_s, figures)
    _check_store(store, figures)
    _check_containers(store, figures)


def _histories(store: Store, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    pipe = store.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.lrange(store.keys.job_events(job_id), 0, -1)
    return {
        job_id: [json.loads(event) for event in history]
        for job_id, history in zip(job_ids, pipe.execute(), strict=True)
    }


def _violation(figures: Figures, what: str, job_ids: list[str]) -> None:
    if job_ids:
        figures.violations.append(f"{len(job_ids)} {what}: {', '.join(job_ids[:SAMPLES])}")


def _check_jobs(
    store: Store,
    ids: dict[int, str],
    events: dict[str, list[dict[str, Any]]],
    max_requeues: int,
    figures: Figures,
) -> None:
    """Every job terminal, by one terminal transition, as its command says, with its output."""
    jobs = dict(zip(ids, store.jobs.get_many(list(ids.values())), strict=True))
    figures.ends = dict(Counter(_end(job) for job in jobs.values()))
    terminal = {state.value for state in TERMINAL_STATES}
    _violation(
        figures,
        "jobs not terminal",
        [f"{j['id']} ({j['state']})" for j in jobs.values() if j["state"] not in terminal],
    )
    _violation(
        figures,
        "jobs without exactly one terminal transition",
        [job_id for job_id, history in events.items() if _terminal_count(history) != 1],
    )
    _violation(
        figures,
        "jobs that did not end as their command says",
        [
            f"{j['id']} ({j['state']} {j['reason']} {j['exit_code']})"
            for n, j in jobs.items()
            if j["state"] in terminal and not _as_expected(n, j, events[j["id"]], max_requeues)
        ],
    )
    _violation(
        figures,
        "jobs whose last attempt's output is not their number",
        [
            j["id"]
            for n, j in jobs.items()
            if j["state"] in terminal and not _output_ok(store, n, j)
        ],
    )
    stored = store.redis.zcard(store.keys.jobs)
    if stored != len(set(ids.values())):
        figures.violations.append(f"{stored} jobs stored for {len(ids)} acknowledged")


def _end(job: dict[str, Any]) -> str:
    """COMPLETED, or the state with its reason: FAILED exit_code, FAILED lost, ..."""
    return job["state"] if job["state"] == "COMPLETED" else f"{job['state']} {job['reason']}"


def _as_expected(n: int, job: dict[str, Any], history: list[dict[str, Any]], limit: int) -> bool:
    """Ended as its command says, or failed by losing its worker once more than the
    requeue limit allows (DESIGN §2: a job that kills its host cannot loop forever)."""
    if (job["state"], job["exit_code"]) == expected_outcome(n):
        return True
    requeues = sum(1 for event in history if event["from"] and event["to"] == "QUEUED")
    return job["state"] == "FAILED" and job["reason"] in ("lost", "stale") and requeues == limit


def _terminal_count(history: list[dict[str, Any]]) -> int:
    return sum(1 for event in history if JobState(event["to"]) in TERMINAL_STATES)


def _output_ok(store: Store, n: int, job: dict[str, Any]) -> bool:
    if job["reason"] not in (None, "exit_code"):
        return True  # it never ran to its end: nothing to expect
    entries = store.redis.xrange(store.keys.job_output(job["id"]))
    last = str(job["attempt"])
    text = "".join(f["data"] for _, f in entries if f.get("attempt") == last)
    return text == f"{n}\n"


def _count_requeues(
    store: Store,
    events: dict[str, list[dict[str, Any]]],
    kills: list[Kill],
    worker_timeout_s: float,
    figures: Figures,
) -> None:
    """Requeues by reason, and for each agent kill the time until its jobs were requeued
    (the reaper's decision: the `lost` event's time)."""
    requeues: Counter[str] = Counter()
    lost_at: dict[str, list[float]] = {}
    for history in events.values():
        for event in history:
            if event["from"] in {s.value for s in ACTIVE_STATES} and event["to"] == "QUEUED":
                requeues[event["reason"]] += 1
            if event["reason"] == "lost" and event["from"] in {s.value for s in ACTIVE_STATES}:
                lost_at.setdefault(event["worker_id"], []).append(event["at"])
    figures.requeues = dict(requeues)
    figures.kills = dict(Counter(kill.target for kill in kills))
    figures.outages_s = {k.target: round(k.down_s, 2) for k in kills if k.target != "agent"}

    agent_kills = [kill for kill in kills if kill.target == "agent"]
    delays = [max(lost_at[k.worker_id]) - k.at for k in agent_kills if k.worker_id in lost_at]
    figures.agent_kills_without_jobs = sum(1 for k in agent_kills if k.worker_id not in lost_at)
    bound = worker_timeout_s + REQUEUE_SLACK_S
    figures.kill_to_requeue_s = {
        "timed_kills": len(delays),
        "p50": round(statistics.median(delays), 2) if delays else 0.0,
        "max": round(max(delays), 2) if delays else 0.0,
        "bound": bound,
    }
    if delays and max(delays) > bound:
        figures.violations.append(f"a requeue came {max(delays):.2f} s after its kill (> {bound})")
    if agent_kills and not delays:
        figures.violations.append("no agent kill was followed by a requeue of its jobs")

    lost = _lost_workers(store)
    killed = {kill.worker_id for kill in agent_kills}
    figures.lost_workers = len(lost)
    figures.lost_but_not_killed = len(lost - killed)


def _lost_workers(store: Store) -> set[str]:
    """Workers declared lost, from the global event stream."""
    lost = set()
    for _, fields in store.redis.xrange(store.keys.events, "-", "+"):
        if fields["kind"] == "worker" and json.loads(fields["data"]).get("status") == "lost":
            lost.add(fields["id"])
    return lost


def _check_store(store: Store, figures: Figures) -> None:
    """No reservation left, counters equal index sizes, and the store's own invariants."""
    for worker in store.workers.all():
        if any(value > 0 for value in worker["reserved"].values()):
            figures.violations.append(f"worker {worker['id']} still reserves {worker['reserved']}")
    counts = store.jobs.counts()
    for state in JobState:
        size = store.redis.zcard(store.keys.state(state))
        if counts[state.value] != size:
            figures.violations.append(f"counter {state} is {counts[state.value]}, index {size}")
    try:
        check_store_invariants(store)
    except AssertionError as exc:
        figures.violations.append(f"store invariant: {exc}"[:500])


def _check_containers(store: Store, figures: Figures) -> None:
    """No container of this run's workers left, running or stopped: each attempt removes
    its own, and a restarted agent those its earlier ids left. (The daemon is shared: other
    containers are none of the soak's business.)"""
    ours = set(store.redis.zrange(store.keys.workers, 0, -1))
    client = docker.from_env()
    try:
        deadline = time.monotonic() + CONTAINERS_TIMEOUT_S
        while True:
            # The low-level list: no inspect per container, which races with removals.
            listed = client.api.containers(all=True, filters={"label": LABEL_WORKER})
            left = [c for c in listed if c["Labels"].get(LABEL_WORKER) in ours]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # a wait on the listing above, up to CONTAINERS_TIMEOUT_S
    finally:
        client.close()
    running = [c for c in left if c["State"] == "running"]
    figures.containers_left = len(left)
    figures.containers_left_running = len(running)
    if left:
        names = [f"{c['Names'][0]} ({c['State']})" for c in left[:SAMPLES]]
        figures.violations.append(f"{len(left)} containers left, {len(running)} running: {names}")
