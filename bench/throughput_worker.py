"""`python -m bench.throughput_worker API_URL JOIN_TOKEN batch|per-job`: one simulated worker
process for the throughput benchmark. It registers, prints its id, then takes every job
the long-poll returns and reports it started and finished without running anything: with
`batch`, one POST /workers/{id}/updates for the starts of everything returned and one for
the results, as the agent does when it has several things to say; with `per-job`, a start
and a result call per job (from a few threads, as a simple client would). SIGTERM: it
drains, deregisters and exits."""

import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.lean_client import LeanClient
from bench.worker_sim import CAPACITY, SLOTS
from shared.batches import MAX_BATCH

LONG_POLL_S = 2.0
PER_JOB_THREADS = 4

Reporter = Callable[[list[dict[str, Any]]], None]


def main(api_url: str, join_token: str, mode: str) -> None:
    registered = LeanClient(api_url, join_token).call(
        "POST",
        "/api/v1/workers/register",
        {"hostname": "bench", "capacity": CAPACITY, "max_parallel_jobs": SLOTS},
    )
    worker_id, token = registered["worker_id"], registered["token"]
    print(worker_id, flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    client = LeanClient(api_url, token, timeout_s=LONG_POLL_S + 10)
    if mode == "batch":
        report = batch_reporter(client, worker_id)
    else:
        report = per_job_reporter(api_url, token)
    path = f"/api/v1/workers/{worker_id}/assignments?wait={LONG_POLL_S:g}"
    while not stopping.is_set():
        jobs = (client.call("GET", path) or {}).get("jobs", [])
        if jobs:
            report(jobs)
    client.call("POST", f"/api/v1/workers/{worker_id}/drain", {})
    client.call("DELETE", f"/api/v1/workers/{worker_id}")


def batch_reporter(client: LeanClient, worker_id: str) -> Reporter:
    path = f"/api/v1/workers/{worker_id}/updates"

    def report(jobs: list[dict[str, Any]]) -> None:
        for first in range(0, len(jobs), MAX_BATCH):
            chunk = jobs[first : first + MAX_BATCH]
            keys = [{"id": job["id"], "attempt": job["attempt"]} for job in chunk]
            client.call("POST", path, {"updates": [{**key, "start": True} for key in keys]})
            results = [{**key, "result": {"exit_code": 0}} for key in keys]
            client.call("POST", path, {"updates": results})

    return report


def per_job_reporter(api_url: str, token: str) -> Reporter:
    local = threading.local()
    pool = ThreadPoolExecutor(PER_JOB_THREADS)

    def one(job: dict[str, Any]) -> None:
        if not hasattr(local, "client"):
            local.client = LeanClient(api_url, token)
        attempt = f"/api/v1/jobs/{job['id']}/attempts/{job['attempt']}"
        local.client.call("POST", f"{attempt}/start", {})
        local.client.call("POST", f"{attempt}/result", {"exit_code": 0})

    def report(jobs: list[dict[str, Any]]) -> None:
        list(pool.map(one, jobs))

    return report


if __name__ == "__main__":
    main(*sys.argv[1:4])
