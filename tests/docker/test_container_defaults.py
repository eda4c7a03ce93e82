"""What a job sees from inside a real container (the real daemon, the jobyard/busybox
image): the "restricted" defaults, and each relaxation the operator may set."""

import threading
from collections.abc import Callable

import docker
from docker.models.containers import Container

from shared.config import Config
from tests.docker.test_docker_executor import make_job
from tests.helpers import Captured
from worker_agent.executors.base import ExecResult
from worker_agent.executors.docker import DockerExecutor

# Each probe prints one `name=value` line; `touch` reports success as 0.
PROBE = (
    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \\t' | tr : =; "
    'echo "uid=$(id -u)"; '
    'touch /x 2>/dev/null; echo "root_write=$?"; '
    'touch /tmp/y; echo "tmp_write=$?"; '
    'echo "nets=$(ls /sys/class/net | sort | tr "\\n" ,)"'
)


def probe(
    docker_client: docker.DockerClient, worker_id: str, network: bool = False, **config: object
) -> dict[str, str]:
    executor = DockerExecutor(Config.from_env({}, **config), client=docker_client)
    sink = Captured()
    job = make_job(worker_id, ["sh", "-c", PROBE], network=network)
    result: ExecResult = executor.run(job, sink, threading.Event())
    assert result.exit_code == 0, (result, sink.text("stderr"))
    return dict(line.split("=", 1) for line in sink.text("stdout").splitlines())


def test_a_job_runs_unprivileged_on_a_read_only_root_without_a_network(
    docker_client: docker.DockerClient, worker_id: str
) -> None:
    seen = probe(docker_client, worker_id)

    assert seen["CapEff"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"  # Docker's default profile, filtering
    assert seen["uid"] == "65534"
    assert seen["root_write"] != "0"
    assert seen["tmp_write"] == "0"
    assert seen["nets"] == "lo,"


def test_the_operator_may_relax_the_user_and_the_read_only_root(
    docker_client: docker.DockerClient, worker_id: str
) -> None:
    seen = probe(docker_client, worker_id, container_user="0:0", readonly_rootfs=False)

    assert seen["uid"] == "0"
    assert seen["root_write"] == "0"
    assert seen["tmp_write"] == "0"
    # What stays whatever the operator sets: no capabilities, no new privileges, seccomp.
    assert seen["CapEff"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"


def test_a_network_job_on_an_agent_that_allows_networks_gets_one(
    docker_client: docker.DockerClient, worker_id: str
) -> None:
    seen = probe(docker_client, worker_id, network=True, allow_network=True)

    assert seen["nets"] != "lo,"
    assert "lo" in seen["nets"].split(",")
    assert seen["uid"] == "65534"


def test_a_network_job_on_an_agent_that_allows_none_fails_without_a_container(
    docker_client: docker.DockerClient,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    executor = DockerExecutor(Config.from_env({}, allow_network=False), client=docker_client)

    result = executor.run(
        make_job(worker_id, ["true"], network=True), Captured(), threading.Event()
    )

    assert result.reason == "error"
    assert "JOBYARD_ALLOW_NETWORK" in (result.error or "")
    assert containers_of(worker_id) == []


def test_an_image_outside_the_agents_patterns_fails_without_a_container(
    docker_client: docker.DockerClient,
    worker_id: str,
    containers_of: Callable[[str], list[Container]],
) -> None:
    executor = DockerExecutor(
        Config.from_env({}, allowed_images=("registry.local/*",)), client=docker_client
    )

    result = executor.run(make_job(worker_id, ["true"]), Captured(), threading.Event())

    assert result.reason == "error"
    assert "not allowed on this worker" in (result.error or "")
    assert containers_of(worker_id) == []
