"""The agent loop: register, heartbeat, long-poll for assignments, hand each attempt to a
thread of its own (worker_agent/attempt.py runs it), drain on SIGTERM.

It rides out an unreachable or failing control plane: every call is retried with backoff
(shared/retry.py), output is buffered (on disk past a limit) and results are kept in the
state directory until the API has answered, even across a restart of the agent."""

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared import clock
from shared.client import REQUEST_TIMEOUT_S, WORKER_LOST, ApiClient, ApiError
from shared.config import Config
from shared.retry import Backoff, GaveUp, retry
from worker_agent.attempt import Attempt, AttemptRunner
from worker_agent.executors import Executor, ExecutorUnavailable, make_executor
from worker_agent.host import detect_capacity, host_metrics
from worker_agent.logfmt import log_event
from worker_agent.results import Outcome, ResultOutbox
from worker_agent.spool import clear_spools
from worker_agent.state import AgentState, StateDirInUse

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 60.0
POLL_WAIT_S = 20.0
# Granularity of waits that must notice a stop request (set by a signal handler).
STOP_POLL_S = 0.1


class RegistrationRefused(RuntimeError):
    """The API refused to register this worker (bad join token, invalid capacity)."""


class Agent:
    def __init__(
        self,
        config: Config,
        client: ApiClient | None = None,
        executor: Executor | None = None,
        *,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
        poll_wait_s: float = POLL_WAIT_S,
        backoff: Callable[[], Backoff] = Backoff,
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
        self.backoff = backoff
        self.worker_id = ""
        self.heartbeat_s = config.heartbeat_s
        self._attempts: dict[tuple[str, int], Attempt] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.max_parallel_jobs)
        self._register_lock = threading.Lock()
        self._generation = 0  # bumped by every registration
        self._stop_requested = False
        self._force_stop = False
        self._finished = threading.Event()
        # Set once the drain is over, before deregistering: a heartbeat after that would
        # name a worker that is gone (and hear 410).
        self._heartbeats_end = threading.Event()
        self._heartbeats: threading.Thread | None = None
        self.runner = AttemptRunner(
            self.client,
            self.executor,
            config,
            self.outbox,
            self.state.spool_dir,
            self._finished,
            backoff,
        )

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
            self._heartbeats = self._spawn(self._heartbeat_loop, "heartbeat")
            self._spawn(self._poll_loop, "poll")
            while not self._stop_requested:
                time.sleep(STOP_POLL_S)
            self._drain()
        finally:
            self._heartbeats_end.set()
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
        self._heartbeats_end.set()
        if self._heartbeats is not None:  # one in flight ends within its request's timeout
            self._heartbeats.join(REQUEST_TIMEOUT_S + self.heartbeat_s)
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
        try:
            answer = retry(
                lambda: self.client.register(body),
                self._wait_stop,
                backoff=self.backoff(),
                on_retry=self._retrying("register"),
            )
        except GaveUp:
            return False
        except ApiError as exc:
            raise RegistrationRefused(f"the API refused to register: {exc}") from exc
        self._adopt(answer)
        return True

    def _registration(self) -> dict[str, Any]:
        return {
            "hostname": socket.gethostname(),
            "capacity": detect_capacity(self.config),
            "max_parallel_jobs": self.config.max_parallel_jobs,
            "labels": dict(self.config.worker_labels),
            "executor": self.config.executor,
            "allows_network": self.config.allow_network,
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
            if self._stop_requested:
                # Leaving: a poll or heartbeat refused while draining (or once deregistered)
                # must not bring back a worker nobody would serve.
                return
            self.client.token = self._join_token
            try:
                self._register()
            except RegistrationRefused as exc:
                self._log("register_refused", logging.ERROR, error=exc)
                self.stop()

    # Heartbeats

    def _heartbeat_loop(self) -> None:
        # It goes on while draining: a silent worker would be declared lost mid-drain.
        while not self._heartbeats_end.is_set():
            self._heartbeat_once()
            self._heartbeats_end.wait(self.heartbeat_s)

    def _heartbeat_once(self) -> None:
        """One heartbeat, retried until it gets through, then what its answer asks."""
        generation = self._generation
        try:
            answer = retry(
                self._send_heartbeat,
                # Sooner than the period: once the API is back, the first heartbeat should
                # land before the control plane's worker timeout runs out.
                lambda delay: self._heartbeats_end.wait(min(delay, self.heartbeat_s)),
                backoff=self.backoff(),
                on_retry=self._retrying("heartbeat"),
            )
        except GaveUp:
            return
        except ApiError as exc:
            if exc.status in WORKER_LOST:
                self._reregister(generation)
            else:
                self._log("heartbeat_refused", logging.ERROR, status=exc.status, error=exc)
            return
        except Exception as exc:
            self._log("heartbeat_failed", logging.ERROR, error=repr(exc))
            return
        answer = answer if isinstance(answer, dict) else {}
        for job_id in answer.get("cancel") or []:
            self._cancel_job(str(job_id), stale=False)
        for job_id in answer.get("stop") or []:
            self._cancel_job(str(job_id), stale=True)

    def _send_heartbeat(self) -> Any:
        running = [{"id": a.key[0], "attempt": a.key[1]} for a in self._snapshot() if not a.stale]
        return self.client.heartbeat(self.worker_id, host_metrics(), running)

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

    def _snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts.values())

    # Assignments

    def _poll_loop(self) -> None:
        while not self._stop_requested:
            generation = self._generation
            try:
                jobs = retry(
                    lambda: self.client.assignments(self.worker_id, wait_s=self.poll_wait_s),
                    self._wait_stop,
                    backoff=self.backoff(),
                    on_retry=self._retrying("poll"),
                )
            except GaveUp:
                return
            except ApiError as exc:
                if exc.status in WORKER_LOST:
                    self._reregister(generation)
                    continue
                self._log("poll_refused", logging.ERROR, status=exc.status, error=exc)
            except Exception as exc:
                self._log("poll_failed", logging.ERROR, error=repr(exc))
            else:
                for job in jobs:
                    self._accept(job)
                continue
            # Asked again at once, it would fail the same way: wait the longest backoff step.
            if self._wait_stop(self.backoff().max_s):
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
            attempt = self._attempts[key] = Attempt(job, key, self.worker_id)
        self._spawn(self._run_attempt, f"job-{key[0]}-{key[1]}", attempt)

    def _run_attempt(self, attempt: Attempt) -> None:
        try:
            with self._slots:
                self.runner.run(attempt)
        except Exception as exc:
            job_id, number = attempt.key
            self._log("attempt_crashed", logging.ERROR, job=job_id, attempt=number, error=repr(exc))
        finally:
            with self._lock:
                self._attempts.pop(attempt.key, None)

    def _deliver_leftovers(self) -> bool:
        """Results an earlier run of this agent could not deliver, each sent with the token
        of the worker that ran it; a late one is refused (409) and dropped. False if a stop
        came first (they stay for the next start)."""
        for pending in self.outbox.pending():
            self.client.token = pending.token
            try:
                # Alone (nothing runs yet), so through the per-job call, with that token.
                outcome = self.outbox.deliver(
                    self.runner.reporter, pending, self._wait_stop, self.backoff()
                )
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

    # Helpers

    def _retrying(self, what: str) -> Callable[[ApiError, float], None]:
        """retry()'s on_retry for a call of the loop: one warning per failed try."""

        def failed(exc: ApiError, delay: float) -> None:
            self._log(f"{what}_failed", logging.WARNING, error=exc, retry_s=delay)

        return failed

    def _best_effort(self, call: Callable[[str], Any], what: str) -> None:
        try:
            call(self.worker_id)
        except ApiError as exc:
            self._log(f"{what}_failed", logging.WARNING, error=exc)

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def _log(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(log, event, level, worker=self.worker_id, **fields)


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
