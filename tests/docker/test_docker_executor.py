"""DockerExecutor against the real daemon: streams, exit codes, OOM, missing image, timeout,
cancel, the limits and GPU requests a container really gets, and orphan removal by worker
label."""

import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from shared.config import Config
from tests.helpers import Captured, wait_until
from worker_agent.executors.base import ExecResult, JobRun
from worker_agent.executors.docker import DockerExecutor, attach_output

IMAGE = "jobyard/busybox:latest"
MIB = 1024 * 1024
LABELS = ("jobyard.job", "jobyard.attempt", "jobyard.worker")


def make_job(worker_id: str, command: list[str], **overrides: Any) -> JobRun:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "attempt": 1,
        "worker_id": worker_id,
        "image": IMAGE,
        "command": command,
        "env": {},
        "cpu": 0.5,
        "memory_mb": 64,
        "timeout_s": None,
        "network": False,
    }
    fields.update(overrides)
    return JobRun(**fields)


@pytest.fixture
def executor(docker_client: docker.DockerClient) -> DockerExecutor:
    return DockerExecutor(Config.from_env({}), client=docker_client)


def run_in_thread(
    executor: DockerExecutor, job: JobRun, sink: Captured, cancel: threading.Event
) -> tuple[threading.Thread, list[ExecResult]]:
    results: list[ExecResult] = []
    thread = threading.Thread(target=lambda: results.append(executor.run(job, sink, cancel)))
    thread.start()
    return thread, results


def running_container(
    containers_of: Callable[[str], list[Container]], worker_id: str
) -> Callable[[], bool]:
    def check() -> bool:
        return any(c.status == "running" for c in containers_of(worker_id))

    return check


def test_exit_zero_captures_both_streams_separately(
    executor: DockerExecutor, worker_id: str, containers_of: Callable[[str], list[Container]]
) -> None:
    sink = Captured()
    job = make_job(
        worker_id, ["sh", "-c", "echo out-$GREETING; echo err-line >&2"], env={"GREETING": "hello"}
    )

    result = executor.run(job, sink, threading.Event())

    assert (result.exit_code, result.reason, result.error) == (0, None, None)
    assert sink.text("stdout") == "out-hello\n"
    assert sink.text("stderr") == "err-line\n"
    assert all(at > 1e9 for _, _, at in sink.pieces)  # epoch times
    assert result.metrics["duration_s"] > 0
    assert containers_of(worker_id) == []


def test_attaching_repeats_nothing_the_container_wrote_before(
    docker_client: docker.DockerClient, worker_id: str
) -> None:
    """Regression (chaos soak): the attach asked for the log replay as well, so output the
    job wrote while the replay ran was stored twice. Attached to a container that has
    already written a line, the stream carries only what comes after."""
    container = docker_client.containers.run(
        IMAGE,
        ["sh", "-c", "echo early; sleep 3; echo late"],
        labels={"jobyard.worker": worker_id},
        network_mode="none",
        detach=True,
    )
    wait_until(lambda: b"early" in container.logs(), message="the container never wrote")

    pieces = list(attach_output(container))

    assert b"".join(out or b"" for out, _ in pieces) == b"late\n"


def test_non_zero_exit_code_is_reported_as_a_normal_exit(
    executor: DockerExecutor, worker_id: str
) -> None:
    result = executor.run(
        make_job(worker_id, ["sh", "-c", "exit 3"]), Captured(), threading.Event()
    )

    assert (result.exit_code, result.reason) == (3, None)


def test_long_output_arrives_complete_and_in_order(
    executor: DockerExecutor, worker_id: str
) -> None:
    sink = Captured()

    result = executor.run(make_job(worker_id, ["seq", "1", "20000"]), sink, threading.Event())

    assert result.exit_code == 0
    assert sink.text("stdout").split() == [str(n) for n in range(1, 20001)]


def test_allocating_past_the_memory_limit_is_reported_as_oom(
    executor: DockerExecutor, worker_id: str
) -> None:
    job = make_job(
        worker_id, ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], memory_mb=32
    )

    result = executor.run(job, Captured(), threading.Event())

    assert result.reason == "oom"
    assert result.exit_code == 137  # SIGKILL from the kernel's OOM killer


def test_missing_image_is_an_error_naming_the_image_and_is_not_pulled(
    executor: DockerExecutor, worker_id: str, docker_client: docker.DockerClient
) -> None:
    image = "jobyard/does-not-exist:never"

    result = executor.run(make_job(worker_id, ["true"], image=image), Captured(), threading.Event())

    assert (result.exit_code, result.reason) == (None, "error")
    assert result.error is not None and image in result.error
    assert docker_client.images.list(name="jobyard/does-not-exist") == []


def test_unknown_command_is_an_error_with_the_daemons_message(
    executor: DockerExecutor, worker_id: str, containers_of: Callable[[str], list[Container]]
) -> None:
    result = executor.run(make_job(worker_id, ["no-such-command"]), Captured(), threading.Event())

    assert (result.exit_code, result.reason) == (None, "error")
    assert result.error is not None and "no-such-command" in result.error
    assert containers_of(worker_id) == []


def test_timeout_stops_the_job_and_removes_its_container(
    executor: DockerExecutor, worker_id: str, containers_of: Callable[[str], list[Container]]
) -> None:
    started = time.monotonic()

    result = executor.run(
        make_job(worker_id, ["sleep", "30"], timeout_s=1.0), Captured(), threading.Event()
    )

    assert result.reason == "timeout"
    assert time.monotonic() - started < 5
    assert containers_of(worker_id) == []


def test_cancel_stops_the_job_within_two_seconds(
    executor: DockerExecutor,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    # sleep as PID 1 ignores SIGTERM: the executor must not wait the whole 5 s grace.
    cancel = threading.Event()
    thread, results = run_in_thread(
        executor, make_job(worker_id, ["sleep", "30"]), Captured(), cancel
    )
    wait_until(running_container(containers_of, worker_id), timeout=10)

    cancelled_at = time.monotonic()
    cancel.set()
    thread.join(timeout=10)

    assert time.monotonic() - cancelled_at < 2.5
    assert results[0].reason == "cancelled"
    assert containers_of(worker_id) == []


def test_cancel_sends_sigterm_first_so_the_job_can_clean_up(
    executor: DockerExecutor,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    sink = Captured()
    cancel = threading.Event()
    script = "trap 'echo cleaned up; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    thread, results = run_in_thread(
        executor, make_job(worker_id, ["sh", "-c", script]), sink, cancel
    )
    wait_until(lambda: "ready" in sink.text("stdout"), timeout=10)

    cancel.set()
    thread.join(timeout=10)

    assert (results[0].exit_code, results[0].reason) == (7, "cancelled")
    assert sink.text("stdout") == "ready\ncleaned up\n"


def test_cancel_before_start_creates_no_container(
    executor: DockerExecutor, worker_id: str, containers_of: Callable[[str], list[Container]]
) -> None:
    cancel = threading.Event()
    cancel.set()

    result = executor.run(make_job(worker_id, ["sleep", "30"]), Captured(), cancel)

    assert (result.exit_code, result.reason) == (None, "cancelled")
    assert containers_of(worker_id) == []


def test_limits_labels_and_isolation_are_applied(
    docker_client: docker.DockerClient,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    config = Config.from_env({}, pids_limit=64, container_user="65534:65534")
    executor = DockerExecutor(config, client=docker_client)
    sink = Captured()
    cancel = threading.Event()
    job = make_job(
        worker_id,
        ["sh", "-c", "id -u; sleep 30"],
        job_id="job-limits",
        attempt=2,
        cpu=0.5,
        memory_mb=48,
    )
    thread, results = run_in_thread(executor, job, sink, cancel)
    wait_until(running_container(containers_of, worker_id), timeout=10)

    container = containers_of(worker_id)[0]
    host = container.attrs["HostConfig"]
    cancel.set()
    thread.join(timeout=10)

    assert {key: container.labels.get(key) for key in LABELS} == {
        "jobyard.job": "job-limits",
        "jobyard.attempt": "2",
        "jobyard.worker": worker_id,
    }
    assert host["Memory"] == 48 * MIB
    assert host["MemorySwap"] == 48 * MIB
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=48m,mode=1777"}
    assert not host["DeviceRequests"]  # a job without GPUs asks the daemon for none
    assert container.attrs["Config"]["User"] == "65534:65534"
    assert sink.text("stdout") == "65534\n"
    assert results[0].reason == "cancelled"


def test_network_only_when_the_job_asks_and_the_operator_allows(
    docker_client: docker.DockerClient,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    executor = DockerExecutor(Config.from_env({}, allow_network=True), client=docker_client)
    cancel = threading.Event()
    job = make_job(worker_id, ["sleep", "30"], network=True)
    thread, _ = run_in_thread(executor, job, Captured(), cancel)
    wait_until(running_container(containers_of, worker_id), timeout=10)

    mode = containers_of(worker_id)[0].attrs["HostConfig"]["NetworkMode"]
    cancel.set()
    thread.join(timeout=10)

    assert mode != "none"


def test_metrics_report_cpu_time_and_peak_memory_of_a_busy_job(
    executor: DockerExecutor, worker_id: str
) -> None:
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"

    result = executor.run(make_job(worker_id, ["sh", "-c", busy]), Captured(), threading.Event())

    assert result.exit_code == 0
    assert result.metrics["cpu_s"] is not None and result.metrics["cpu_s"] > 0
    assert result.metrics["peak_memory_mb"] is not None and result.metrics["peak_memory_mb"] > 0


def test_remove_orphans_removes_only_containers_of_the_given_workers(
    docker_client: docker.DockerClient,
    executor: DockerExecutor,
    containers_of: Callable[[str], list[Container]],
) -> None:
    workers = [f"orphan-test-{n}-{time.time_ns()}" for n in range(3)]
    try:
        for worker in workers:
            docker_client.containers.run(
                IMAGE,
                ["sleep", "30"],
                detach=True,
                network_mode="none",
                labels={"jobyard.worker": worker, "jobyard.job": "j", "jobyard.attempt": "1"},
            )
        stranger = docker_client.containers.create(
            IMAGE, ["sleep", "30"], labels={"jobyard.test": workers[0]}
        )

        removed = executor.remove_orphans(workers[:2])

        assert removed == 2
        assert containers_of(workers[0]) == [] and containers_of(workers[1]) == []
        assert len(containers_of(workers[2])) == 1
        stranger.reload()  # still there
    finally:
        for worker in workers:
            for container in containers_of(worker):
                container.remove(force=True)
        for container in docker_client.containers.list(
            all=True, filters={"label": f"jobyard.test={workers[0]}"}
        ):
            container.remove(force=True)


class KeepingExecutor(DockerExecutor):
    """Leaves each container behind after its run, so that a test can inspect what it was
    created with; the worker_id fixture removes it."""

    def _remove(self, container: Container) -> int:
        return 0


def test_gpus_the_daemon_cannot_give_fail_the_job_with_its_message(
    docker_client: docker.DockerClient,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this daemon can hand out GPUs; the failure path needs one that cannot")
    executor = KeepingExecutor(Config.from_env({}), client=docker_client)
    job = make_job(worker_id, ["echo", "ran without its GPUs"], gpus=("0", "2"))
    sink = Captured()

    result = executor.run(job, sink, threading.Event())

    assert (result.exit_code, result.reason) == (None, "error")
    assert result.error is not None
    assert "could not select device driver" in result.error
    assert sink.text("stdout") == ""
    (container,) = containers_of(worker_id)
    assert container.status == "created"  # never started
    assert container.attrs["HostConfig"]["DeviceRequests"] == [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["0", "2"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
