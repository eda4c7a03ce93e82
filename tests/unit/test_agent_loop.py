"""The agent loop against a fake control plane: registration and orphans, the job lifecycle
(start, output, result), cancel and stop from heartbeats, a lost worker, network errors,
the parallelism cap and draining on stop."""

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared.client import ApiError, ApiUnreachable
from shared.config import Config
from tests.helpers import wait_until
from tests.unit.test_agent_output import fast_backoff
from worker_agent.agent import Agent, RegistrationRefused
from worker_agent.attempt import job_run
from worker_agent.executors.base import ExecResult, JobRun, OutputSink
from worker_agent.host import detect_capacity, host_metrics
from worker_agent.state import AgentState, StateDirInUse

JOIN_TOKEN = "join-secret"


def assignment(job_id: str, attempt: int = 1, **overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": job_id,
        "attempt": attempt,
        "image": "jobyard/busybox:latest",
        "command": ["sh", "-c", "echo hi"],
        "env": {},
        "resources": {"cpu": 0.5, "memory_mb": 256, "gpus": 0},
        "timeout_s": None,
        "network": False,
        "name": None,
        "labels": {},
    }
    job.update(overrides)
    return job


class FakeApi:
    """Stands in for ApiClient: answers like the API and records every call with its token.
    `errors[name]` lists exceptions to raise, in order, before answering normally."""

    def __init__(self) -> None:
        self.token = JOIN_TOKEN
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.errors: dict[str, list[ApiError]] = {}
        self.heartbeat_answers: list[dict[str, Any]] = []
        self.outputs: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
        self.results: dict[tuple[str, int], dict[str, Any]] = {}
        self._jobs: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._registrations = 0

    def assign(self, *jobs: dict[str, Any]) -> None:
        with self._cond:
            self._jobs.extend(jobs)
            self._cond.notify_all()

    def names(self) -> list[str]:
        with self._cond:
            return [name for name, _, _ in self.calls]

    def calls_of(self, name: str) -> list[tuple[str, tuple[Any, ...]]]:
        with self._cond:
            return [(token, args) for called, token, args in self.calls if called == name]

    def _enter(self, name: str, *args: Any) -> None:
        with self._cond:
            self.calls.append((name, self.token, args))
            pending = self.errors.get(name)
            if pending:
                raise pending.pop(0)

    def register(self, body: Mapping[str, Any]) -> Any:
        self._enter("register", dict(body))
        self._registrations += 1
        n = self._registrations
        return {"worker_id": f"w-{n}", "token": f"tok-{n}", "heartbeat_s": 0.05}

    def heartbeat(
        self, worker_id: str, metrics: Mapping[str, Any], running: Iterable[Mapping[str, Any]]
    ) -> Any:
        self._enter("heartbeat", worker_id, dict(metrics), list(running))
        with self._cond:
            if self.heartbeat_answers:
                return self.heartbeat_answers.pop(0)
        return {"cancel": [], "stop": []}

    def assignments(self, worker_id: str, wait_s: float) -> list[dict[str, Any]]:
        self._enter("assignments", worker_id)
        with self._cond:
            self._cond.wait_for(lambda: bool(self._jobs), timeout=min(wait_s, 0.05))
            jobs, self._jobs = self._jobs, []
        return jobs

    def start(self, job_id: str, attempt: int) -> Any:
        self._enter("start", job_id, attempt)
        return {"state": "RUNNING", "version": 3}

    def post_output(self, job_id: str, attempt: int, chunks: list[Mapping[str, Any]]) -> Any:
        self._enter("post_output", job_id, attempt)
        with self._cond:
            self.outputs.setdefault((job_id, attempt), []).extend(chunks)
        return {"cancel": False}

    def result(self, job_id: str, attempt: int, body: Mapping[str, Any]) -> Any:
        self._enter("result", job_id, attempt)
        with self._cond:
            self.results[(job_id, attempt)] = dict(body)
        return {"state": "COMPLETED", "version": 4}

    def updates(self, worker_id: str, items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each item answered as its per-job call is (and recorded as one), as the API does."""
        self._enter("updates", worker_id, len(items))
        answers = []
        for item in items:
            key = {"id": item["id"], "attempt": item["attempt"]}
            try:
                if item.get("start"):
                    answer = self.start(item["id"], item["attempt"])
                else:
                    answer = self.result(item["id"], item["attempt"], item["result"])
            except ApiError as exc:
                refusal = {"status": exc.status, "code": exc.code, "error": exc.message}
                answers.append({**key, **refusal})
                continue
            answers.append({**key, "status": 200, **answer})
        return answers

    def drain(self, worker_id: str) -> Any:
        self._enter("drain", worker_id)

    def deregister(self, worker_id: str) -> Any:
        self._enter("deregister", worker_id)

    def stdout(self, job_id: str, attempt: int = 1) -> str:
        with self._cond:
            chunks = self.outputs.get((job_id, attempt), [])
            return "".join(c["data"] for c in chunks if c["stream"] == "stdout")


class FakeExecutor:
    """Runs nothing: each job writes one line, then waits for `release` or its cancel."""

    def __init__(self) -> None:
        self.runs: list[JobRun] = []
        self.orphan_calls: list[list[str]] = []
        self.release = threading.Event()
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def run(self, job: JobRun, sink: OutputSink, cancel: threading.Event) -> ExecResult:
        with self._lock:
            self.runs.append(job)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            sink("stdout", f"running {job.job_id}\n".encode(), time.time())
            while not self.release.is_set():
                if cancel.wait(0.01):
                    return ExecResult(137, "cancelled", None, {"duration_s": 0.1})
            return ExecResult(0, None, None, {"duration_s": 0.1})
        finally:
            with self._lock:
                self.active -= 1

    def remove_orphans(self, worker_ids: Iterable[str]) -> int:
        self.orphan_calls.append(list(worker_ids))
        return 0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.from_env(
        {},
        agent_state_dir=str(tmp_path / "agent"),
        executor="process",
        worker_join_token=JOIN_TOKEN,
        max_parallel_jobs=2,
        worker_labels={"zone": "a"},
        worker_cpu=2.0,
        worker_memory_mb=2048,
        kill_grace_s=1.0,
    )


class Running:
    """An agent serving in a thread; stopped and joined by the fixture."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.agent.run()
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout: float = 10.0) -> None:
        self.agent.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop"


@pytest.fixture
def start_agent() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(config: Config, api: FakeApi, executor: Any = None, **options: Any) -> Running:
        options.setdefault("poll_wait_s", 0.05)
        options.setdefault("backoff", fast_backoff)
        agent = Agent(config, api, executor or FakeExecutor(), **options)  # type: ignore[arg-type]
        started.append(Running(agent))
        return started[-1]

    yield start
    for running in started:
        running.agent.stop()
        running.agent.stop()  # a second stop cancels whatever still runs
        running.thread.join(10)


def test_registers_runs_a_job_streams_it_and_reports_the_result(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    from worker_agent.executors.process import ProcessExecutor

    api = FakeApi()
    running = start_agent(config, api, ProcessExecutor(config))
    script = "echo hi; echo oops >&2; exit 4"
    api.assign(assignment("j1", command=["sh", "-c", script]))

    wait_until(lambda: ("j1", 1) in api.results)
    running.stop()

    [(token, (body,))] = api.calls_of("register")
    assert token == JOIN_TOKEN
    assert body["capacity"] == {"cpu": 2.0, "memory_mb": 2048, "gpus": 0}
    assert (body["max_parallel_jobs"], body["labels"], body["executor"]) == (
        2,
        {"zone": "a"},
        "process",
    )
    assert body["hostname"]
    assert {token for name, token, _ in api.calls if name != "register"} == {"tok-1"}
    names = api.names()
    assert names.index("start") < names.index("post_output") < names.index("result")
    assert api.stdout("j1") == "hi\n"
    result = api.results[("j1", 1)]
    assert (result["exit_code"], result["reason"], result["error"]) == (4, None, None)
    assert set(result["metrics"]) == {"duration_s", "cpu_s", "peak_memory_mb"}
    # Draining, the agent goes on heartbeating (so that it is not declared lost) until it
    # deregisters; only a long-poll begun before the stop may come after (refused by then).
    ending = [name for name in names[names.index("drain") :] if name != "assignments"]
    assert ending[0] == "drain" and ending[-1] == "deregister"
    assert set(ending[1:-1]) <= {"heartbeat"}, ending
    assert AgentState(config.agent_state_dir).worker_ids() == ["w-1"]


def test_heartbeats_report_metrics_and_the_running_jobs(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    running = start_agent(config, api)
    api.assign(assignment("j1", attempt=3))

    def reported() -> bool:
        return any(args[2] == [{"id": "j1", "attempt": 3}] for _, args in api.calls_of("heartbeat"))

    wait_until(reported)
    running.agent.executor.release.set()  # type: ignore[attr-defined]
    _, (worker_id, metrics, _) = api.calls_of("heartbeat")[0]
    assert worker_id == "w-1"
    assert {"cpu_percent", "memory_used_mb", "memory_total_mb", "load1"} <= set(metrics)


def test_earlier_worker_ids_are_cleaned_up_before_registering(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    state = AgentState(config.agent_state_dir)
    state.remember("w-old-1")
    state.remember("w-old-2")
    api = FakeApi()
    executor = FakeExecutor()

    running = start_agent(config, api, executor)
    wait_until(lambda: "register" in api.names())
    running.stop()

    assert executor.orphan_calls == [["w-old-1", "w-old-2"]]
    assert state.worker_ids() == ["w-1"]


def test_a_start_conflict_drops_the_job(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["start"] = [ApiError(409, "stale_attempt", "not current")]
    executor = FakeExecutor()
    running = start_agent(config, api, executor)

    api.assign(assignment("j1"))
    wait_until(lambda: api.calls_of("start"))
    wait_until(lambda: not running.agent.running())

    assert executor.runs == []
    assert "post_output" not in api.names() and "result" not in api.names()


def test_a_repeated_assignment_runs_once(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    start_agent(config, api, executor)

    api.assign(assignment("j1"), assignment("j1"))
    wait_until(lambda: executor.runs)
    api.assign(assignment("j1"))
    wait_until(lambda: len(api.calls_of("assignments")) > 5)
    executor.release.set()
    wait_until(lambda: ("j1", 1) in api.results)

    assert len(executor.runs) == 1
    assert len(api.calls_of("start")) == 1


def test_heartbeat_cancel_stops_the_job_and_reports_it_cancelled(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    start_agent(config, api, executor)
    api.assign(assignment("j1"))
    wait_until(lambda: executor.active == 1)

    api.heartbeat_answers.append({"cancel": ["j1"], "stop": []})

    wait_until(lambda: ("j1", 1) in api.results)
    assert api.results[("j1", 1)]["reason"] == "cancelled"


def test_heartbeat_stop_kills_the_job_without_reporting_it(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    running = start_agent(config, api, executor)
    api.assign(assignment("j1"))
    wait_until(lambda: executor.active == 1)

    api.heartbeat_answers.append({"cancel": [], "stop": ["j1"]})

    wait_until(lambda: not running.agent.running())
    assert "result" not in api.names()


def test_a_lost_worker_kills_everything_and_registers_anew(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    running = start_agent(config, api, executor)
    api.assign(assignment("j1"))
    wait_until(lambda: executor.active == 1)

    api.errors["heartbeat"] = [ApiError(410, "worker_lost", "declared lost")]

    wait_until(lambda: len(api.calls_of("register")) == 2)
    wait_until(lambda: running.agent.worker_id == "w-2")
    assert executor.active == 0
    assert "result" not in api.names()
    assert api.calls_of("register")[1][0] == JOIN_TOKEN
    assert executor.orphan_calls == [["w-1"]]
    assert AgentState(config.agent_state_dir).worker_ids() == ["w-2"]

    api.assign(assignment("j2"))  # the new worker serves as before
    executor.release.set()
    wait_until(lambda: ("j2", 1) in api.results)
    assert api.calls_of("result")[0][0] == "tok-2"


def _alive(thread_name: str) -> bool:
    return any(thread.name == thread_name for thread in threading.enumerate())


class DeregisteringApi(FakeApi):
    """Holds a long-poll begun while draining until the worker is gone, then answers as the
    API does for a worker it no longer knows."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = threading.Event()
        self.deregistered = threading.Event()

    def drain(self, worker_id: str) -> Any:
        self.draining.set()
        return super().drain(worker_id)

    def deregister(self, worker_id: str) -> Any:
        result = super().deregister(worker_id)
        self.deregistered.set()
        return result

    def assignments(self, worker_id: str, wait_s: float) -> list[dict[str, Any]]:
        if not self.draining.is_set():
            return super().assignments(worker_id, wait_s)
        self._enter("assignments", worker_id)
        self.deregistered.wait(5)
        raise ApiError(401, "unauthorized", "unknown worker token")


def test_a_poll_refused_after_deregistering_does_not_register_again(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = DeregisteringApi()
    running = start_agent(config, api)
    wait_until(lambda: "heartbeat" in api.names())
    api.draining.set()  # the poll now in flight outlives the worker
    wait_until(lambda: api.names().count("assignments") >= 2)

    running.stop()
    # The refused poll is answered once the worker is gone: wait for the poll loop to end
    # (or, as it did, to register a new worker).
    wait_until(lambda: api.names().count("register") > 1 or not _alive("poll"))

    names = api.names()
    assert names.count("register") == 1
    assert names.index("drain") < names.index("deregister")
    assert not any(name != "assignments" for name in names[names.index("deregister") + 1 :])


def draining_with_a_job(
    config: Config, start_agent: Callable[..., Running]
) -> tuple[FakeApi, FakeExecutor, Running]:
    """An agent asked to stop while job j1 runs (held by the executor), once it has told
    the API it drains."""
    api = FakeApi()
    executor = FakeExecutor()
    running = start_agent(config, api, executor)
    api.assign(assignment("j1"))
    wait_until(lambda: executor.active == 1)
    running.agent.stop()
    wait_until(lambda: "drain" in api.names())
    return api, executor, running


def test_a_worker_lost_while_draining_kills_its_jobs_and_does_not_join_again(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api, executor, running = draining_with_a_job(config, start_agent)

    api.errors["heartbeat"] = [ApiError(410, "worker_lost", "declared lost")]

    wait_until(lambda: executor.active == 0)  # requeued elsewhere by now: it must not go on
    running.stop()
    assert api.names().count("register") == 1
    assert "result" not in api.names()


def test_poll_errors_back_off_and_never_stop_the_agent(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["assignments"] = [
        ApiUnreachable("connection refused"),
        ApiError(503, "unavailable", "redis down"),
        ApiUnreachable("connection reset"),
    ]
    executor = FakeExecutor()
    executor.release.set()
    running = start_agent(config, api, executor)

    api.assign(assignment("j1"))

    wait_until(lambda: ("j1", 1) in api.results)
    assert running.thread.is_alive() and running.error is None


def test_a_refused_poll_pauses_then_polls_again(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["assignments"] = [ApiError(400, "bad_request", "a bug of ours")] * 2
    executor = FakeExecutor()
    executor.release.set()
    running = start_agent(config, api, executor)

    api.assign(assignment("j1"))

    wait_until(lambda: ("j1", 1) in api.results)
    assert len(api.calls_of("register")) == 1  # a refusal is not a lost identity
    assert running.thread.is_alive() and running.error is None


def test_the_result_is_retried_until_delivered(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["result"] = [ApiUnreachable("down"), ApiError(502, "bad_gateway", "proxy")]
    executor = FakeExecutor()
    executor.release.set()
    start_agent(config, api, executor)

    api.assign(assignment("j1"))

    wait_until(lambda: ("j1", 1) in api.results)
    assert len(api.calls_of("result")) == 3


def test_a_stale_result_is_dropped_without_retrying(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["result"] = [ApiError(409, "stale_attempt", "not current")]
    executor = FakeExecutor()
    executor.release.set()
    running = start_agent(config, api, executor)

    api.assign(assignment("j1"))

    wait_until(lambda: api.calls_of("result"))
    wait_until(lambda: not running.agent.running())
    assert len(api.calls_of("result")) == 1


def test_never_more_than_max_parallel_jobs_at_once(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    start_agent(config, api, executor)

    api.assign(*(assignment(f"j{n}") for n in range(5)))
    wait_until(lambda: executor.active == 2)
    time.sleep(0.1)  # room for a third to start, were the cap not enforced
    assert executor.active == 2
    executor.release.set()

    wait_until(lambda: len(api.results) == 5)
    assert executor.most_active == 2


def test_stop_drains_running_jobs_before_exiting(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api, executor, running = draining_with_a_job(config, start_agent)
    polls = len(api.calls_of("assignments"))
    assert running.thread.is_alive()
    executor.release.set()
    running.thread.join(5)

    assert not running.thread.is_alive()
    assert api.results[("j1", 1)]["reason"] is None
    assert len(api.calls_of("assignments")) <= polls + 1
    assert api.names()[-1] == "deregister"


def test_the_drain_timeout_cancels_what_still_runs(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = FakeExecutor()
    running = start_agent(config, api, executor, drain_timeout_s=0.3)
    api.assign(assignment("j1"))
    wait_until(lambda: executor.active == 1)

    running.stop()

    assert api.results[("j1", 1)]["reason"] == "cancelled"


def test_a_refused_join_token_fails_the_agent(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["register"] = [ApiError(401, "unauthorized", "bad token")]

    running = start_agent(config, api)
    running.thread.join(5)

    assert isinstance(running.error, RegistrationRefused)


def test_registration_is_retried_while_the_api_is_unreachable(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    api.errors["register"] = [ApiUnreachable("refused")] * 3

    running = start_agent(config, api)

    wait_until(lambda: running.agent.worker_id == "w-1")


def test_two_agents_cannot_share_a_state_directory(tmp_path: Path) -> None:
    first = AgentState(tmp_path)
    first.lock()
    try:
        with pytest.raises(StateDirInUse):
            AgentState(tmp_path).lock()
    finally:
        first.unlock()
    AgentState(tmp_path).lock()


def test_job_run_reads_an_assignment(config: Config) -> None:
    job = assignment("j9", attempt=2, env={"A": "1"}, timeout_s=30, network=True, image=None)

    run = job_run(job, "w-1", config)

    assert run == JobRun(
        job_id="j9",
        attempt=2,
        worker_id="w-1",
        image=config.default_image,
        command=["sh", "-c", "echo hi"],
        env={"A": "1"},
        cpu=0.5,
        memory_mb=256,
        timeout_s=30.0,
        network=True,
    )


def test_capacity_is_the_host_minus_the_reserve_unless_overridden() -> None:
    import psutil

    detected = detect_capacity(Config.from_env({}, reserve_cpu=0.5, reserve_memory_mb=100))
    overridden = detect_capacity(
        Config.from_env({}, worker_cpu=3.5, worker_memory_mb=1000, worker_gpus=1)
    )

    assert detected["cpu"] == (psutil.cpu_count() or 1) - 0.5
    assert detected["memory_mb"] == psutil.virtual_memory().total // 2**20 - 100
    assert overridden == {"cpu": 3.5, "memory_mb": 1000, "gpus": 1}
    with pytest.raises(ValueError, match="JOBYARD_RESERVE_CPU"):
        detect_capacity(Config.from_env({}, reserve_cpu=10_000.0))
    assert set(host_metrics()) == {"cpu_percent", "memory_used_mb", "memory_total_mb", "load1"}
