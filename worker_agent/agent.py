"""The agent loop: register, heartbeat, long-poll for assignments, run each attempt in its
own thread (start, execute with streamed output, report the result), drain on SIGTERM.

It rides out an unreachable or failing control plane: every call is retried with backoff,
output is buffered (on disk past a limit) and results are kept in the state directory until
the API has answered, even across a restart of the agent."""

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared import clock
from shared.client import ApiClient, ApiError
from shared.config import Config
from shared.resources import DEFAULT_JOB_RESOURCES
from worker_agent.backoff import Backoff
from worker_agent.executors import Executor, ExecutorUnavailable, make_executor
from worker_agent.executors.base import ExecResult, JobRun, OutputSink, error_result
from worker_agent.host import detect_capacity, host_metrics
from worker_agent.logfmt import log_event
from worker_agent.output import NOT_OURS, OutputStreamer, is_transient
from worker_agent.results import PendingResult, ResultOutbox
from worker_agent.spool import MIB, clear_spools
from worker_agent.state import AgentState, StateDirInUse

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 60.0
POLL_WAIT_S = 20.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
# Granularity of waits that must notice a stop request (set by a signal handler).
STOP_POLL_S = 0.1
# Answers meaning our worker identity is gone: register anew.
IDENTITY_LOST = frozenset({401, 410})


class RegistrationRefused(RuntimeError):
    """The API refused to register this worker (bad join token, invalid capacity)."""


class Outcome(Enum):
    DONE = "done"  # the API took it
    REFUSED = "refused"  # the API answered no (409: the attempt is not ours any more)
    ABANDONED = "abandoned"  # we stopped asking: the attempt went stale or the agent stops


@dataclass
class _Attempt:
    job: Mapping[str, Any]
    key: tuple[str, int]
    cancel: threading.Event = field(default_factory=threading.Event)
    stale: bool = False  # no longer this worker's: kill it and report nothing


class Agent:
    def __init__(
        self,
        config: Config,
        client: ApiClient | None = None,
        executor: Executor | None = None,
        *,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
        poll_wait_s: float = POLL_WAIT_S,
    ) -> None:
        self.config = config
        # One client whose token changes: the join token to register, then the worker's own.
        self.client = client or ApiClient(config.api_url, config.worker_join_token)
        self._join_token = self.client.token or config.worker_join_token
        self.executor = executor or make_executor(config)
        self.state = AgentState(config.agent_state_dir)
        self.outbox = ResultOutbox(self.state.results_dir)
        self.drain_timeout_s = drain_timeout_s
        self.poll_wait_s = poll_wait_s
        self.worker_id = ""
        self.heartbeat_s = config.heartbeat_s
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.max_parallel_jobs)
        self._register_lock = threading.Lock()
        self._generation = 0  # bumped by every registration
        self._stop_requested = False
        self._force_stop = False
        self._finished = threading.Event()

    # Lifecycle

    def stop(self) -> None:
        """Ask the agent to drain and exit; a second call cancels the running jobs at once.

        Only sets flags, so it is safe in a signal handler (an Event could deadlock there).
        """
        self._force_stop = self._stop_requested
        self._stop_requested = True

    def run(self) -> None:
        """Register, then serve until stop() is called; returns once drained."""
        self.state.lock()
        try:
            clear_spools(self.state.spool_dir)
            if not self._deliver_leftovers() or not self._register():
                return
            self._spawn(self._heartbeat_loop, "heartbeat")
            self._spawn(self._poll_loop, "poll")
            while not self._stop_requested:
                time.sleep(STOP_POLL_S)
            self._drain()
        finally:
            self._finished.set()
            self.state.unlock()

    def running(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._attempts)

    def _drain(self) -> None:
        self._log("draining", running=len(self.running()), timeout_s=self.drain_timeout_s)
        self._best_effort(self.client.drain, "drain")
        if not self._wait_idle(self.drain_timeout_s):
            self._log("drain_timeout", logging.WARNING, cancelling=len(self.running()))
            self._cancel_all(stale=False)
            self._wait_idle(self.config.kill_grace_s + 15.0, forced=True)
        self._best_effort(self.client.deregister, "deregister")
        self._log("stopped")

    def _wait_idle(self, timeout_s: float, forced: bool = False) -> bool:
        """Wait for every attempt to end; False on timeout or (unless forced) a second stop."""
        deadline = clock.monotonic() + timeout_s
        while self.running():
            if clock.monotonic() >= deadline or (self._force_stop and not forced):
                return False
            time.sleep(STOP_POLL_S)
        return True

    def _wait_stop(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is requested."""
        deadline = clock.monotonic() + seconds
        while not self._stop_requested:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(STOP_POLL_S, remaining))
        return True

    # Registration

    def _register(self) -> bool:
        """Remove what earlier ids left running, then join; False if stopped meanwhile."""
        self._remove_orphans()
        body = self._registration()
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while True:
            try:
                answer = self.client.register(body)
                break
            except ApiError as exc:
                if not is_transient(exc):
                    raise RegistrationRefused(f"the API refused to register: {exc}") from exc
                delay = backoff.next()
                self._log("register_failed", logging.WARNING, error=exc, retry_s=delay)
            if self._wait_stop(delay):
                return False
        self._adopt(answer)
        return True

    def _registration(self) -> dict[str, Any]:
        return {
            "hostname": socket.gethostname(),
            "capacity": detect_capacity(self.config),
            "max_parallel_jobs": self.config.max_parallel_jobs,
            "labels": dict(self.config.worker_labels),
            "executor": self.config.executor,
        }

    def _adopt(self, answer: Mapping[str, Any]) -> None:
        self.worker_id = str(answer["worker_id"])
        self.client.token = str(answer["token"])
        self.heartbeat_s = float(answer.get("heartbeat_s") or self.config.heartbeat_s)
        self.state.remember(self.worker_id)
        self._generation += 1
        self._log("registered", heartbeat_s=self.heartbeat_s, executor=self.config.executor)

    def _remove_orphans(self) -> None:
        earlier = self.state.worker_ids()
        if not earlier:
            return
        try:
            removed = self.executor.remove_orphans(earlier)
        except Exception as exc:
            # Kept in the file: the next start tries again.
            self._log("orphans_failed", logging.WARNING, error=repr(exc))
            return
        self.state.forget(earlier)
        self._log("orphans_removed", removed=removed, earlier_ids=",".join(earlier))

    def _reregister(self, generation: int) -> None:
        """Our worker was declared lost: kill everything, then join as a new worker."""
        with self._register_lock:
            if generation != self._generation:
                return  # another thread has already done it
            self._log("worker_lost", logging.WARNING, killing=len(self.running()))
            self._cancel_all(stale=True)
            # The old jobs must be gone before the new worker offers their capacity again.
            self._wait_idle(self.config.kill_grace_s + 15.0, forced=True)
            self.client.token = self._join_token
            try:
                self._register()
            except RegistrationRefused as exc:
                self._log("register_refused", logging.ERROR, error=exc)
                self.stop()

    # Heartbeats

    def _heartbeat_loop(self) -> None:
        # It goes on while draining: a silent worker would be declared lost mid-drain.
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self._finished.is_set():
            if self._heartbeat_once():
                backoff.reset()
                delay = self.heartbeat_s
            else:
                # Sooner than the period: once the API is back, the first heartbeat should
                # land before the control plane's worker timeout runs out.
                delay = min(backoff.next(), self.heartbeat_s)
            self._finished.wait(delay)

    def _heartbeat_once(self) -> bool:
        """One heartbeat and what its answer asks; False if it did not get through."""
        generation = self._generation
        running = [{"id": a.key[0], "attempt": a.key[1]} for a in self._snapshot() if not a.stale]
        try:
            answer = self.client.heartbeat(self.worker_id, host_metrics(), running)
        except ApiError as exc:
            if exc.status in IDENTITY_LOST:
                self._reregister(generation)
                return True
            self._log("heartbeat_failed", logging.WARNING, error=exc)
            return False
        except Exception as exc:
            self._log("heartbeat_failed", logging.ERROR, error=repr(exc))
            return False
        answer = answer if isinstance(answer, dict) else {}
        for job_id in answer.get("cancel") or []:
            self._cancel_job(str(job_id), stale=False)
        for job_id in answer.get("stop") or []:
            self._cancel_job(str(job_id), stale=True)
        return True

    def _cancel_job(self, job_id: str, stale: bool) -> None:
        for attempt in self._snapshot():
            if attempt.key[0] == job_id and not attempt.cancel.is_set():
                attempt.stale = attempt.stale or stale
                attempt.cancel.set()
                self._log(
                    "cancel_requested",
                    job=job_id,
                    attempt=attempt.key[1],
                    via="heartbeat",
                    stale=stale,
                )

    def _cancel_all(self, stale: bool) -> None:
        for attempt in self._snapshot():
            attempt.stale = attempt.stale or stale
            attempt.cancel.set()

    def _snapshot(self) -> list[_Attempt]:
        with self._lock:
            return list(self._attempts.values())

    # Assignments

    def _poll_loop(self) -> None:
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self._stop_requested:
            generation = self._generation
            try:
                jobs = self.client.assignments(self.worker_id, wait_s=self.poll_wait_s)
            except ApiError as exc:
                if exc.status in IDENTITY_LOST:
                    self._reregister(generation)
                    continue
                delay = backoff.next()
                self._log("poll_failed", logging.WARNING, error=exc, retry_s=delay)
            except Exception as exc:
                delay = backoff.next()
                self._log("poll_failed", logging.ERROR, error=repr(exc), retry_s=delay)
            else:
                backoff.reset()
                for job in jobs:
                    self._accept(job)
                continue
            if self._wait_stop(delay):
                return

    def _accept(self, job: Mapping[str, Any]) -> None:
        try:
            key = (str(job["id"]), int(job["attempt"]))
        except (KeyError, TypeError, ValueError):
            self._log("assignment_malformed", logging.ERROR, assignment=repr(job)[:200])
            return
        if self._stop_requested:
            # Left ASSIGNED: the control plane requeues it as stale, without spending a retry.
            self._log(
                "assignment_ignored",
                logging.WARNING,
                job=key[0],
                attempt=key[1],
                why="shutting_down",
            )
            return
        with self._lock:
            if key in self._attempts:
                return  # a repeat of one we already have
            attempt = self._attempts[key] = _Attempt(job, key)
        self._spawn(self._run_attempt, f"job-{key[0]}-{key[1]}", attempt)

    # One attempt

    def _run_attempt(self, attempt: _Attempt) -> None:
        try:
            with self._slots:
                self._execute(attempt)
        except Exception as exc:
            job_id, number = attempt.key
            self._log("attempt_crashed", logging.ERROR, job=job_id, attempt=number, error=repr(exc))
        finally:
            with self._lock:
                self._attempts.pop(attempt.key, None)

    def _execute(self, attempt: _Attempt) -> None:
        job_id, number = attempt.key
        if not self._start(attempt):
            return
        streamer = OutputStreamer(
            self.client,
            job_id,
            number,
            attempt.cancel,
            worker_id=self.worker_id,
            spool_dir=self.state.spool_dir / f"{job_id.encode().hex()}.{number}",
            max_spool_bytes=self.config.agent_spool_mb * MIB,
        )
        try:
            result = self._run_executor(attempt, streamer.sink)
            # Kept before anything is sent: from here on, a crash of the agent or an outage
            # of the API cannot lose it.
            pending = PendingResult(
                job_id, number, self.worker_id, self.client.token, result.to_wire()
            )
            self._keep(pending)
        finally:
            # The output goes first: the API refuses output for an attempt that has ended.
            complete = streamer.close()
        if attempt.stale or streamer.stale:
            self.outbox.remove(pending)
            self._log(
                "attempt_dropped",
                logging.WARNING,
                job=job_id,
                attempt=number,
                why="stale",
                reason=result.reason,
            )
            return
        if not complete:
            self._log("output_incomplete", logging.WARNING, job=job_id, attempt=number)
        self._report(attempt, pending)

    def _keep(self, pending: PendingResult) -> None:
        try:
            self.outbox.put(pending)
        except OSError as exc:
            # Still delivered from memory; only a crash of the agent could lose it now.
            self._log(
                "result_not_kept",
                logging.ERROR,
                job=pending.job_id,
                attempt=pending.attempt,
                error=exc,
            )

    def _start(self, attempt: _Attempt) -> bool:
        job_id, number = attempt.key
        outcome = self._call_until_done(
            "start",
            lambda: self.client.start(job_id, number),
            lambda delay: attempt.stale or self._finished.wait(delay) or attempt.stale,
            job=job_id,
            attempt=number,
        )
        if outcome is Outcome.DONE:
            self._log(
                "job_started",
                job=job_id,
                attempt=number,
                image=attempt.job.get("image"),
                executor=self.config.executor,
            )
        return outcome is Outcome.DONE

    def _run_executor(self, attempt: _Attempt, sink: OutputSink) -> ExecResult:
        started = clock.monotonic()
        try:
            run = job_run(attempt.job, self.worker_id, self.config)
        except (KeyError, TypeError, ValueError) as exc:
            return error_result(f"malformed assignment: {exc!r}", started)
        try:
            return self.executor.run(run, sink, attempt.cancel)
        except Exception as exc:
            return error_result(f"the {self.config.executor} executor failed: {exc!r}", started)

    def _report(self, attempt: _Attempt, pending: PendingResult) -> None:
        outcome = self._deliver_result(
            pending, lambda delay: attempt.stale or self._finished.wait(delay) or attempt.stale
        )
        if outcome is Outcome.DONE:
            body = pending.body
            self._log(
                "job_finished",
                job=pending.job_id,
                attempt=pending.attempt,
                exit_code=body["exit_code"],
                reason=body["reason"],
                error=body["error"],
                duration_s=body["metrics"].get("duration_s"),
            )
        elif attempt.stale:
            self.outbox.remove(pending)  # the control plane took the attempt back

    def _deliver_result(self, pending: PendingResult, give_up: Callable[[float], bool]) -> Outcome:
        """Post the result until the API answers; its file goes once the API has taken or
        refused it, and stays (for the next start) if we give up first."""
        outcome = self._call_until_done(
            "result",
            lambda: self.client.result(pending.job_id, pending.attempt, pending.body),
            give_up,
            job=pending.job_id,
            attempt=pending.attempt,
        )
        if outcome is not Outcome.ABANDONED:
            self.outbox.remove(pending)
        return outcome

    def _deliver_leftovers(self) -> bool:
        """Results an earlier run of this agent could not deliver, each sent with the token
        of the worker that ran it; a late one is refused (409) and dropped. False if a stop
        came first (they stay for the next start)."""
        for pending in self.outbox.pending():
            self.client.token = pending.token
            try:
                outcome = self._deliver_result(pending, self._wait_stop)
            finally:
                self.client.token = self._join_token
            if outcome is Outcome.ABANDONED:
                return False
            self._log(
                "leftover_result",
                job=pending.job_id,
                attempt=pending.attempt,
                of_worker=pending.worker_id,
                outcome=outcome.value,
            )
        return True

    def _call_until_done(
        self,
        what: str,
        call: Callable[[], Any],
        give_up: Callable[[float], bool],
        **fields: Any,
    ) -> Outcome:
        """Call until the API answers, backing off while it is unreachable or failing.

        `give_up(delay)` waits up to `delay` seconds before the next try and says whether to
        stop trying (the attempt went stale, the agent stops)."""
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while True:
            try:
                call()
                return Outcome.DONE
            except ApiError as exc:
                if not is_transient(exc):
                    stale = exc.status in NOT_OURS
                    self._log(
                        f"{what}_refused",
                        logging.WARNING if stale else logging.ERROR,
                        status=exc.status,
                        error=exc,
                        **fields,
                    )
                    return Outcome.REFUSED
                delay = backoff.next()
                self._log(f"{what}_failed", logging.WARNING, error=exc, retry_s=delay, **fields)
            if give_up(delay):
                return Outcome.ABANDONED

    # Helpers

    def _best_effort(self, call: Callable[[str], Any], what: str) -> None:
        try:
            call(self.worker_id)
        except ApiError as exc:
            self._log(f"{what}_failed", logging.WARNING, error=exc)

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        threading.Thread(target=target, args=args, name=name, daemon=True).start()

    def _log(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(log, event, level, worker=self.worker_id, **fields)


def job_run(job: Mapping[str, Any], worker_id: str, config: Config) -> JobRun:
    """The executor's view of an assignment from the API."""
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


def run_agent(config: Config) -> None:
    """What `jobyard worker` runs: serve until SIGTERM or SIGINT, then drain and return.
    A start-up failure (no daemon, state dir in use, refused registration, no capacity
    left) exits with a one-line message instead of a traceback."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent = Agent(config)
        for sig in handlers:
            signal.signal(sig, lambda signum, frame: agent.stop())
        agent.run()
    except (RegistrationRefused, StateDirInUse, ExecutorUnavailable, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
