"""One attempt of a job on this worker, from start to result: tell the API it started, give
it its GPUs, run it in the executor (which enforces its timeout and cancel) with its output
streamed, keep its result on disk, then report it, unless the attempt went stale meanwhile
(then it is killed and nothing is reported)."""

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared import clock
from shared.client import STALE_ATTEMPT, ApiClient, ApiError
from shared.config import Config
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.retry import Backoff, GaveUp, retry
from worker_agent.executors import Executor
from worker_agent.executors.base import (
    ExecResult,
    JobRun,
    OutputSink,
    cancelled_before_start,
    error_result,
)
from worker_agent.gpus import GpuPool, NotEnoughGpus
from worker_agent.logfmt import log_event
from worker_agent.output import OutputStreamer
from worker_agent.results import Outcome, PendingResult, ResultOutbox
from worker_agent.spool import MIB
from worker_agent.updates import Reporter

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    job: Mapping[str, Any]
    key: tuple[str, int]
    worker_id: str  # the worker it was assigned to: a re-registration makes it stale
    cancel: threading.Event = field(default_factory=threading.Event)
    stale: bool = False  # no longer this worker's: kill it and report nothing


class AttemptRunner:
    """What every attempt of this agent runs with; `run` takes one attempt to its end.
    `stopped` is set when the agent stops for good: then retries of the API give up."""

    def __init__(
        self,
        client: ApiClient,
        executor: Executor,
        config: Config,
        outbox: ResultOutbox,
        spool_dir: Path,
        stopped: threading.Event,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self.client = client
        self.executor = executor
        self.config = config
        self.outbox = outbox
        self.spool_dir = spool_dir
        self.stopped = stopped
        self.backoff = backoff
        self.gpus = GpuPool(config.worker_gpus)
        # Starts and results of attempts running side by side go to the API together.
        self.reporter = Reporter(client)

    def run(self, attempt: Attempt) -> None:
        job_id, number = attempt.key
        if not self._start(attempt):
            return
        streamer = OutputStreamer(
            self.client,
            job_id,
            number,
            attempt.cancel,
            worker_id=attempt.worker_id,
            spool_dir=self.spool_dir / f"{job_id.encode().hex()}.{number}",
            max_spool_bytes=self.config.agent_spool_mb * MIB,
            backoff=self.backoff,
        )
        try:
            result = self._execute(attempt, streamer.sink)
            # Kept before anything is sent: from here on, a crash of the agent or an outage
            # of the API cannot lose it.
            pending = PendingResult(
                job_id, number, attempt.worker_id, self.client.token, result.to_wire()
            )
            self._keep(pending)
        finally:
            # The output goes first: the API refuses output for an attempt that has ended.
            complete = streamer.close()
        if attempt.stale or streamer.stale:
            self.outbox.remove(pending)
            self._log(
                attempt, "attempt_dropped", logging.WARNING, why="stale", reason=result.reason
            )
            return
        if not complete:
            self._log(attempt, "output_incomplete", logging.WARNING)
        self._report(attempt, pending)

    def _start(self, attempt: Attempt) -> bool:
        job_id, number = attempt.key
        try:
            retry(
                lambda: self.reporter.start(attempt.worker_id, job_id, number),
                self._wait(attempt),
                backoff=self.backoff(),
                on_retry=lambda exc, delay: self._log(
                    attempt, "start_failed", logging.WARNING, error=exc, retry_s=delay
                ),
            )
        except GaveUp:
            return False
        except ApiError as exc:
            level = logging.WARNING if exc.status in STALE_ATTEMPT else logging.ERROR
            self._log(attempt, "start_refused", level, status=exc.status, error=exc)
            return False
        image = attempt.job.get("image")
        self._log(attempt, "job_started", image=image, executor=self.config.executor)
        return True

    def _execute(self, attempt: Attempt, sink: OutputSink) -> ExecResult:
        """The executor's result, with the attempt's GPUs held while it runs."""
        started = clock.monotonic()
        try:
            run = job_run(attempt.job, attempt.worker_id, self.config)
            wanted = gpus_asked(attempt.job)
        except (KeyError, TypeError, ValueError) as exc:
            return error_result(f"malformed assignment: {exc!r}", started)
        try:
            with self.gpus.held(wanted, attempt.cancel) as gpus:
                if gpus is None:
                    return cancelled_before_start(started)
                return self._run_executor(replace(run, gpus=gpus), sink, attempt.cancel, started)
        except NotEnoughGpus as exc:
            return error_result(str(exc), started)

    def _run_executor(
        self, run: JobRun, sink: OutputSink, cancel: threading.Event, started: float
    ) -> ExecResult:
        try:
            return self.executor.run(run, sink, cancel)
        except Exception as exc:
            return error_result(f"the {self.config.executor} executor failed: {exc!r}", started)

    def _keep(self, pending: PendingResult) -> None:
        try:
            self.outbox.put(pending)
        except OSError as exc:
            # Still delivered from memory; only a crash of the agent could lose it now.
            log_event(
                log,
                "result_not_kept",
                logging.ERROR,
                job=pending.job_id,
                attempt=pending.attempt,
                worker=pending.worker_id,
                error=exc,
            )

    def _report(self, attempt: Attempt, pending: PendingResult) -> None:
        outcome = self.outbox.deliver(self.reporter, pending, self._wait(attempt), self.backoff())
        if outcome is Outcome.DONE:
            body = pending.body
            self._log(
                attempt,
                "job_finished",
                exit_code=body["exit_code"],
                reason=body["reason"],
                error=body["error"],
                duration_s=body["metrics"].get("duration_s"),
            )
        elif attempt.stale:
            self.outbox.remove(pending)  # the control plane took the attempt back

    def _wait(self, attempt: Attempt) -> Callable[[float], bool]:
        """A wait for retry(): it gives up once the attempt is stale or the agent stops."""
        return lambda delay: attempt.stale or self.stopped.wait(delay) or attempt.stale

    def _log(self, attempt: Attempt, event: str, level: int = logging.INFO, **fields: Any) -> None:
        job_id, number = attempt.key
        log_event(log, event, level, job=job_id, attempt=number, worker=attempt.worker_id, **fields)


def job_run(job: Mapping[str, Any], worker_id: str, config: Config) -> JobRun:
    """The executor's view of an assignment from the API (its GPUs are picked apart)."""
    # The API always sends every resource; an older one might not: the same defaults, then.
    resources = {**DEFAULT_JOB_RESOURCES.to_wire(), **(job.get("resources") or {})}
    timeout = job.get("timeout_s")
    return JobRun(
        job_id=str(job["id"]),
        attempt=int(job["attempt"]),
        worker_id=worker_id,
        image=str(job.get("image") or config.default_image),
        command=[str(arg) for arg in job["command"]],
        env={str(key): str(value) for key, value in (job.get("env") or {}).items()},
        cpu=float(resources["cpu"]),
        memory_mb=int(resources["memory_mb"]),
        timeout_s=None if timeout is None else float(timeout),
        network=bool(job.get("network", False)),
    )


def gpus_asked(job: Mapping[str, Any]) -> int:
    count = int((job.get("resources") or {}).get("gpus") or 0)
    if count < 0:
        raise ValueError(f"gpus={count}")
    return count
