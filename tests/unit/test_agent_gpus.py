"""GPUs on a worker: the pool hands out indices, never one to two attempts at once, and
takes them back however an attempt ends; the agent gives each job exactly its own."""

# The agent loop's fixtures are imported and then named as test parameters, as pytest wants.
# ruff: noqa: F811

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest

from shared.config import Config
from tests.helpers import wait_until
from tests.unit.test_agent_loop import (  # noqa: F401 - fixtures
    FakeApi,
    FakeExecutor,
    Running,
    assignment,
    config,
    start_agent,
)
from worker_agent.executors.base import ExecResult, JobRun, OutputSink
from worker_agent.gpus import GpuPool, NotEnoughGpus


def test_the_pool_hands_out_the_lowest_free_indices_each_once() -> None:
    pool = GpuPool(4)
    never = threading.Event()

    first = pool.take(2, never)
    second = pool.take(1, never)

    assert (first, second) == (("0", "1"), ("2",))
    assert pool.free() == ("3",)
    assert first is not None
    pool.give_back(first)
    assert pool.take(3, never) == ("0", "1", "3")
    assert pool.free() == ()


def test_a_job_without_gpus_takes_none() -> None:
    pool = GpuPool(0)
    assert pool.take(0, threading.Event()) == ()


def test_asking_more_than_the_worker_has_is_refused_at_once() -> None:
    with pytest.raises(NotEnoughGpus, match="asks for 3 GPUs; this worker has 2"):
        GpuPool(2).take(3, threading.Event())


def test_giving_back_what_is_not_held_is_a_bug_caught() -> None:
    pool = GpuPool(2)
    with pytest.raises(ValueError, match="not all held"):
        pool.give_back(("0",))


def test_a_take_waits_for_devices_another_attempt_still_holds() -> None:
    pool = GpuPool(2)
    held = pool.take(2, threading.Event())
    got: list[tuple[str, ...] | None] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(1, threading.Event())))
    waiter.start()

    waiter.join(timeout=0.3)
    assert waiter.is_alive(), "took a device that was held"
    assert held is not None
    pool.give_back(held)
    waiter.join(timeout=5)

    assert got == [("0",)]


def test_a_cancelled_attempt_stops_waiting_and_takes_nothing() -> None:
    pool = GpuPool(1)
    pool.take(1, threading.Event())
    cancel = threading.Event()
    got: list[tuple[str, ...] | None] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(1, cancel)))
    waiter.start()

    cancel.set()
    waiter.join(timeout=5)

    assert got == [None]
    assert pool.free() == ()


def test_held_gives_the_devices_back_when_the_block_fails() -> None:
    pool = GpuPool(2)
    with pytest.raises(RuntimeError), pool.held(2, threading.Event()) as gpus:
        assert gpus == ("0", "1")
        raise RuntimeError("the executor blew up")
    assert pool.free() == ("0", "1")


class GpuExecutor(FakeExecutor):
    """FakeExecutor that notes which GPUs each running job holds, and any index held twice;
    a job whose id starts with "boom" makes it raise."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, tuple[str, ...]] = {}
        self.overlaps: list[tuple[str, ...]] = []

    def run(self, job: JobRun, sink: OutputSink, cancel: threading.Event) -> ExecResult:
        with self._lock:
            in_use = {index for gpus in self.held.values() for index in gpus}
            if in_use & set(job.gpus):
                self.overlaps.append(job.gpus)
            self.held[job.job_id] = job.gpus
        try:
            if job.job_id.startswith("boom"):
                raise RuntimeError("the executor blew up")
            return super().run(job, sink, cancel)
        finally:
            with self._lock:
                del self.held[job.job_id]

    def gpus_of(self, job_id: str) -> tuple[str, ...]:
        with self._lock:
            return next(run.gpus for run in self.runs if run.job_id == job_id)


def gpu_job(job_id: str, gpus: int) -> dict[str, Any]:
    return assignment(job_id, resources={"cpu": 0.5, "memory_mb": 256, "gpus": gpus})


@pytest.fixture
def gpu_config(config: Config) -> Config:
    return dataclasses.replace(config, worker_gpus=3, max_parallel_jobs=3)


def test_two_gpu_jobs_running_at_once_get_disjoint_devices_freed_when_they_end(
    gpu_config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = GpuExecutor()
    start_agent(gpu_config, api, executor)

    api.assign(gpu_job("two", 2), gpu_job("one", 1), assignment("cpu"))
    wait_until(lambda: executor.active == 3)

    two, one = executor.gpus_of("two"), executor.gpus_of("one")
    assert (len(two), len(one)) == (2, 1)
    assert set(two) | set(one) == {"0", "1", "2"}
    assert executor.gpus_of("cpu") == ()
    executor.release.set()
    wait_until(lambda: len(api.results) == 3)

    api.assign(gpu_job("all", 3))  # only possible if every device came back
    wait_until(lambda: ("all", 1) in api.results)
    assert executor.gpus_of("all") == ("0", "1", "2")
    assert executor.overlaps == []


@pytest.mark.parametrize("ending", ["cancelled", "stopped as stale", "executor crash"])
def test_devices_come_back_however_the_attempt_ends(
    ending: str, gpu_config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = GpuExecutor()
    running = start_agent(gpu_config, api, executor)
    first = "boom" if ending == "executor crash" else "first"

    api.assign(gpu_job(first, 3))
    if ending != "executor crash":
        wait_until(lambda: executor.active == 1)
        verdict = {"cancel": [first], "stop": []}
        if ending == "stopped as stale":
            verdict = {"cancel": [], "stop": [first]}
        api.heartbeat_answers.append(verdict)
    wait_until(lambda: not running.agent.running())
    executor.release.set()
    api.assign(gpu_job("next", 3))

    wait_until(lambda: ("next", 1) in api.results)
    assert executor.gpus_of("next") == ("0", "1", "2")
    assert running.agent.runner.gpus.free() == ("0", "1", "2")


def test_a_job_asking_more_gpus_than_the_worker_has_fails_with_an_error(
    gpu_config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = GpuExecutor()
    start_agent(gpu_config, api, executor)

    api.assign(gpu_job("big", 4))

    wait_until(lambda: ("big", 1) in api.results)
    result = api.results[("big", 1)]
    assert (result["reason"], result["exit_code"]) == ("error", None)
    assert result["error"] == "the job asks for 4 GPUs; this worker has 3"
    assert executor.runs == []


def test_a_negative_gpu_count_is_a_malformed_assignment(
    gpu_config: Config, start_agent: Callable[..., Running]
) -> None:
    api = FakeApi()
    executor = GpuExecutor()
    start_agent(gpu_config, api, executor)

    api.assign(gpu_job("odd", -1))

    wait_until(lambda: ("odd", 1) in api.results)
    result = api.results[("odd", 1)]
    assert result["reason"] == "error"
    assert result["error"].startswith("malformed assignment")
    assert executor.runs == []
