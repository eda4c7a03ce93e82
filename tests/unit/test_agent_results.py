"""Results survive the control plane and the agent: written to the state directory before
the first delivery attempt, removed once the API answered, and delivered (or dropped when
stale) by the next start of an agent that died holding them. Heartbeats ride out an outage
and retry sooner than their period."""

# The agent loop's fixtures are imported and then named as test parameters, as pytest wants.
# ruff: noqa: F811

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shared.client import ApiError, ApiUnreachable
from shared.config import Config
from tests.helpers import wait_until
from tests.unit.test_agent_loop import (  # noqa: F401 - fixtures
    JOIN_TOKEN,
    FakeApi,
    FakeExecutor,
    Running,
    assignment,
    config,
    start_agent,
)
from worker_agent.results import PendingResult, ResultOutbox
from worker_agent.state import AgentState


def results_dir(config: Config) -> Path:
    return AgentState(config.agent_state_dir).results_dir


def kept(config: Config) -> list[PendingResult]:
    return ResultOutbox(results_dir(config)).pending()


class RecordingApi(FakeApi):
    """Notes, at each result call, which results the agent had kept on disk."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.kept_at_call: list[list[tuple[str, int]]] = []

    def result(self, job_id: str, attempt: int, body: Mapping[str, Any]) -> Any:
        self.kept_at_call.append([(r.job_id, r.attempt) for r in kept(self.config)])
        return super().result(job_id, attempt, body)


def test_the_result_is_kept_on_disk_from_before_the_first_try_until_delivered(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = RecordingApi(config)
    api.errors["result"] = [ApiUnreachable("connection refused")] * 1000
    executor = FakeExecutor()
    executor.release.set()
    start_agent(config, api, executor)

    api.assign(assignment("j1"))
    wait_until(lambda: len(api.calls_of("result")) >= 3)
    [pending] = kept(config)
    assert (pending.job_id, pending.attempt, pending.worker_id, pending.token) == (
        "j1",
        1,
        "w-1",
        "tok-1",
    )
    assert pending.body["exit_code"] == 0
    assert (results_dir(config) / pending.file_name).stat().st_mode & 0o077 == 0

    api.errors["result"].clear()  # the API is back
    wait_until(lambda: ("j1", 1) in api.results)
    wait_until(lambda: kept(config) == [])
    assert api.kept_at_call[0] == [("j1", 1)]


def test_a_refused_result_is_not_kept(config: Config, start_agent: Callable[..., Running]) -> None:
    api = FakeApi()
    api.errors["result"] = [ApiError(409, "stale_attempt", "requeued meanwhile")]
    executor = FakeExecutor()
    executor.release.set()
    running = start_agent(config, api, executor)

    api.assign(assignment("j1"))
    wait_until(lambda: api.calls_of("result"))
    wait_until(lambda: not running.agent.running())

    assert kept(config) == []


def leftover(config: Config, job_id: str, worker_id: str = "w-old") -> PendingResult:
    pending = PendingResult(
        job_id,
        2,
        worker_id,
        f"token-of-{worker_id}",
        {"exit_code": 0, "reason": None, "error": None, "metrics": {"duration_s": 1.0}},
    )
    ResultOutbox(results_dir(config)).put(pending)
    return pending


def test_a_restarted_agent_delivers_what_its_earlier_run_left_with_that_workers_token(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    leftover(config, "j-old")
    api = FakeApi()
    api.errors["result"] = [ApiUnreachable("still down"), ApiError(503, "unavailable", "redis")]

    start_agent(config, api)

    wait_until(lambda: ("j-old", 2) in api.results)
    wait_until(lambda: "register" in api.names())
    calls = [(name, token) for name, token, _ in api.calls]
    assert calls[:4] == [
        ("result", "token-of-w-old"),
        ("result", "token-of-w-old"),
        ("result", "token-of-w-old"),
        ("register", JOIN_TOKEN),
    ]
    assert kept(config) == []


def test_a_late_leftover_refused_as_stale_is_dropped_and_the_agent_goes_on(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    leftover(config, "j-requeued", "w-a")
    leftover(config, "j-deleted", "w-b")
    api = FakeApi()
    api.errors["result"] = [
        ApiError(409, "stale_attempt", "requeued when w-a was lost"),
        ApiError(404, "not_found", "no job j-deleted"),
    ]
    executor = FakeExecutor()
    executor.release.set()

    start_agent(config, api, executor)
    api.assign(assignment("j-new"))

    wait_until(lambda: ("j-new", 1) in api.results)
    assert kept(config) == []
    assert [token for token, _ in api.calls_of("result")] == [
        "token-of-w-a",
        "token-of-w-b",
        "tok-1",
    ]


def test_a_stop_while_leftovers_wait_for_the_api_keeps_them(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    pending = leftover(config, "j-old")
    api = FakeApi()
    api.errors["result"] = [ApiUnreachable("down")] * 10_000

    running = start_agent(config, api)
    wait_until(lambda: len(api.calls_of("result")) >= 2)
    running.stop()

    assert running.error is None
    assert kept(config) == [pending]
    assert "register" not in api.names()


class SlowHeartbeatApi(FakeApi):
    def register(self, body: Mapping[str, Any]) -> Any:
        return {**super().register(body), "heartbeat_s": 30.0}


def test_failed_heartbeats_are_retried_with_backoff_well_before_the_period(
    config: Config, start_agent: Callable[..., Running]
) -> None:
    api = SlowHeartbeatApi()
    api.errors["heartbeat"] = [
        ApiUnreachable("connection refused"),
        ApiError(503, "unavailable", "redis down"),
        ApiError(502, "bad_gateway", "proxy"),
    ]

    running = start_agent(config, api)

    # With a 30 s period, a fourth heartbeat within 10 s can only come from the retries.
    wait_until(lambda: len(api.calls_of("heartbeat")) >= 4, timeout=10)
    running.stop()
    assert running.error is None
    assert len(api.calls_of("heartbeat")) == 4  # then back to the period
