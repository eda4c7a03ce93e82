"""A simulated worker for the dispatch benchmark: registered through the API with the join
token, it long-polls for assignments, records when each job arrives, then calls start and
result for it (in other threads, as a real agent runs jobs concurrently) so its capacity
frees; a heartbeat thread keeps it alive."""

import http.client
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from bench.lean_client import LeanClient, LeanError
from shared.client import ApiClient

FAILURES = (LeanError, OSError, http.client.HTTPException)

SENTINEL = "bench-stop"  # the job name that ends the long-poll loop
LONG_POLL_S = 20.0
FINISHERS = 4
CAPACITY = {"cpu": 64, "memory_mb": 262144}
SLOTS = 1024


class SimulatedWorker:
    def __init__(self, api_url: str, join_token: str) -> None:
        answer = ApiClient(api_url, join_token).register(
            {
                "hostname": "bench-worker",
                "capacity": CAPACITY,
                "max_parallel_jobs": SLOTS,
                "executor": "process",
            }
        )
        self.api_url = api_url
        self.id: str = answer["worker_id"]
        self.token: str = answer["token"]
        self.heartbeat_s = float(answer["heartbeat_s"])
        self.received: dict[str, float] = {}  # job name -> when the long-poll returned it
        self.errors: list[str] = []
        self._todo: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, name="poll", daemon=True),
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
        ] + [threading.Thread(target=self._finish, daemon=True) for _ in range(FINISHERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_for(self, names: Iterable[str], timeout_s: float) -> None:
        """Until every named job has arrived and every job received has been finished (so
        the next run starts on an idle system), or the timeout."""
        wanted = set(names)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (
            wanted <= self.received.keys() and self._todo.unfinished_tasks == 0
        ):
            time.sleep(0.05)

    def stop(self, admin: LeanClient) -> None:
        """Send the sentinel job so the long-poll returns, then let every thread finish."""
        try:
            job = {
                "command": ["true"],
                "name": SENTINEL,
                "resources": {"cpu": 0.1, "memory_mb": 64},
            }
            admin.call("POST", "/api/v1/jobs", job)
        except FAILURES as exc:
            self.errors.append(f"sentinel: {exc}")
        self._threads[0].join(timeout=LONG_POLL_S + 5)
        self._stopping.set()
        for _ in range(FINISHERS):
            self._todo.put(None)
        for thread in self._threads[1:]:
            thread.join(timeout=15)

    def _client(self) -> LeanClient:
        return LeanClient(self.api_url, self.token, timeout_s=LONG_POLL_S + 10)

    def _poll(self) -> None:
        client = self._client()
        path = f"/api/v1/workers/{self.id}/assignments?wait={LONG_POLL_S:g}"
        while True:
            try:
                answer = client.call("GET", path)
            except FAILURES as exc:
                self.errors.append(f"assignments: {exc}")
                time.sleep(0.1)
                continue
            arrived = time.perf_counter()
            jobs = answer["jobs"] if answer else []
            for job in jobs:
                self.received[job["name"]] = arrived
                self._todo.put(job)
            if any(job["name"] == SENTINEL for job in jobs):
                return

    def _finish(self) -> None:
        client = self._client()
        while (job := self._todo.get()) is not None:
            attempt = f"/api/v1/jobs/{job['id']}/attempts/{job['attempt']}"
            try:
                client.call("POST", f"{attempt}/start", {})
                client.call("POST", f"{attempt}/result", {"exit_code": 0})
            except FAILURES as exc:
                self.errors.append(f"start/result {job['id']}: {exc}")
            finally:
                self._todo.task_done()

    def _heartbeat(self) -> None:
        client = self._client()
        while not self._stopping.wait(self.heartbeat_s):
            try:
                client.call("POST", f"/api/v1/workers/{self.id}/heartbeat", {"running": []})
            except FAILURES as exc:
                self.errors.append(f"heartbeat: {exc}")
