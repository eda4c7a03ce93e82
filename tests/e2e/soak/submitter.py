"""The soak's load: short busybox jobs submitted over HTTP at a steady pace. A submission
that fails (the api or Redis is down) is retried under the same Idempotency-Key until it is
acknowledged, so a job the api stored but could not answer for is never stored twice."""

import threading
import time
from typing import Any

from shared.client import ApiClient, ApiError

# Every FAILING_EVERY-th job exits 3, so the soak also sees FAILED jobs with a code.
FAILING_EVERY = 20
FAILING_CODE = 3
RETRY_S = 0.2


def job_spec(n: int) -> dict[str, Any]:
    """Job n prints its number, sleeps a few hundredths of a second and exits 0 (or 3)."""
    code = FAILING_CODE if n % FAILING_EVERY == FAILING_EVERY - 1 else 0
    return {
        "name": f"soak-{n}",
        "command": ["sh", "-c", f"echo {n}; sleep 0.0{n % 10}; exit {code}"],
        "resources": {"cpu": 0.25, "memory_mb": 32},
    }


def expected_outcome(n: int) -> tuple[str, int]:
    """The state and exit code job n must end with, whatever was killed meanwhile."""
    if n % FAILING_EVERY == FAILING_EVERY - 1:
        return "FAILED", FAILING_CODE
    return "COMPLETED", 0


class Submitter:
    """Submits jobs 0..count-1 at `rate` per second in a thread of its own."""

    def __init__(self, api_url: str, token: str, count: int, rate: float) -> None:
        self.client = ApiClient(api_url, token)
        self.count = count
        self.rate = rate
        self.ids: dict[int, str] = {}  # job number -> id, once acknowledged
        self.refused = 0  # submissions that failed and were retried
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-submitter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Give up on what is not submitted yet (the run is failing anyway)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        for n in range(self.count):
            if self._stop.wait(max(0.0, started + n / self.rate - time.monotonic())):
                return
            job_id = self._submit(n)
            if job_id is None:
                return
            self.ids[n] = job_id

    def _submit(self, n: int) -> str | None:
        while not self._stop.is_set():
            try:
                job: dict[str, Any] = self.client.submit(job_spec(n), idempotency_key=f"soak-{n}")
                return str(job["id"])
            except ApiError:
                self.refused += 1
                self._stop.wait(RETRY_S)
        return None
