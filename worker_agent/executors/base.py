"""What every executor shares: the attempt to run, its result, the output sink and the
Executor protocol, plus the watch loop that turns cancel and timeout into a stop reason."""

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import clock
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.states import Reason

# sink(stream_name, data, at): `at` is the epoch time the chunk was read. It may block.
OutputSink = Callable[[str, bytes, float], None]

# How often the watch loop looks at cancel and the deadline; well under the 2 s promise.
WATCH_INTERVAL_S = 0.05

# The result schema caps `error` at 8192 characters; daemon messages can be longer.
MAX_ERROR_CHARS = 4000

MIB = 1024 * 1024
# After the job ends, how long its last output may take to be read before it is cut off.
OUTPUT_DRAIN_S = 10.0


@dataclass(frozen=True)
class JobRun:
    job_id: str
    attempt: int
    worker_id: str
    image: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cpu: float = DEFAULT_JOB_RESOURCES.cpu_m / 1000
    memory_mb: int = DEFAULT_JOB_RESOURCES.memory_mb
    timeout_s: float | None = None
    network: bool = False
    # The GPUs the agent gave this attempt, by index; none for a job that asks for none.
    gpus: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    reason: str | None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The body of the result call."""
        return {
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error,
            "metrics": dict(self.metrics),
        }


class Executor(Protocol):
    def run(self, job: JobRun, sink: OutputSink, cancel: threading.Event) -> ExecResult:
        """Run one attempt to its end; stop it when `cancel` is set or timeout_s passes."""
        ...

    def remove_orphans(self, worker_ids: Iterable[str]) -> int:
        """Kill and remove what earlier agents with these ids left running; returns a count."""
        ...


def metrics(
    started: float, cpu_s: float | None = None, peak_memory_mb: float | None = None
) -> dict[str, Any]:
    """The metrics of a result; `started` is a clock.monotonic() reading."""
    return {
        "duration_s": round(clock.monotonic() - started, 3),
        "cpu_s": None if cpu_s is None else round(cpu_s, 3),
        "peak_memory_mb": None if peak_memory_mb is None else round(peak_memory_mb, 1),
    }


def error_result(message: str, started: float) -> ExecResult:
    """The executor could not run the job at all (missing image, bad command)."""
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    return ExecResult(None, Reason.ERROR.value, message, metrics(started))


def cancelled_before_start(started: float) -> ExecResult:
    return ExecResult(None, Reason.CANCELLED.value, None, metrics(started))


def deadline_of(job: JobRun, started: float) -> float | None:
    """The monotonic time at which the attempt times out, if it has a timeout."""
    return None if job.timeout_s is None else started + job.timeout_s


def watch(
    exited: Callable[[float], bool], cancel: threading.Event, deadline: float | None
) -> str | None:
    """Wait until the job exits (None) or must be stopped ("cancelled" or "timeout").

    `exited(wait_s)` waits up to wait_s for the job's end and says whether it has ended.
    """
    while not exited(WATCH_INTERVAL_S):
        if cancel.is_set():
            return Reason.CANCELLED.value
        if deadline is not None and clock.monotonic() >= deadline:
            return Reason.TIMEOUT.value
    return None
