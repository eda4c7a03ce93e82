"""Starts api, scheduler and worker agents as real processes, the way an operator would;
and removes, by label, whatever containers their agents left behind."""

import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Set
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import NotFound

from cli.redis_server import RedisServer
from shared.client import ApiClient, ApiError
from shared.states import TERMINAL_STATES
from tests.docker.conftest import IMAGE
from tests.helpers import free_port, wait_until
from worker_agent.executors.docker import LABEL_WORKER

JOBYARD = str(Path(sys.executable).parent / "jobyard")
ADMIN_TOKEN = "e2e-admin-token"
JOIN_TOKEN = "e2e-join-token"
TERMINAL = frozenset(state.value for state in TERMINAL_STATES)
# What every e2e cluster runs unless its spec says otherwise: jobs in Docker, on agents of
# 2 CPU and 2 GB.
CLUSTER_DEFAULTS = {
    "JOBYARD_EXECUTOR": "docker",
    "JOBYARD_DEFAULT_IMAGE": IMAGE,
    "JOBYARD_WORKER_CPU": "2",
    "JOBYARD_WORKER_MEMORY_MB": "2048",
}


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster's shape: settings for every process (over CLUSTER_DEFAULTS), one mapping
    of extra settings per agent, and how many schedulers (one leads, the others stand by)."""

    env: Mapping[str, str] = field(default_factory=dict)
    agents: tuple[Mapping[str, str], ...] = ({},)
    schedulers: int = 1


@dataclass
class Cluster:
    redis_url: str
    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # How each process was started (argv and extra environment), so restart() can repeat it.
    commands: dict[str, tuple[tuple[str, ...], dict[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "JOBYARD_REDIS_URL": self.redis_url,
            "JOBYARD_BIND": f"127.0.0.1:{port}",
            "JOBYARD_API_URL": self.api_url,
            "JOBYARD_API_PROCESSES": "1",
            "JOBYARD_ADMIN_TOKEN": ADMIN_TOKEN,
            "JOBYARD_WORKER_JOIN_TOKEN": JOIN_TOKEN,
            "JOBYARD_HEARTBEAT_S": "1",
            **self.env_overrides,
        }
        self.client = ApiClient(self.api_url, ADMIN_TOKEN)

    def start(self, name: str, *args: str, **env: str) -> None:
        self.commands[name] = (args, env)
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the child
        self.processes[name] = subprocess.Popen(
            [JOBYARD, *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )

    def start_all(self, workers: int = 1, **worker_env: str) -> None:
        """The api, a scheduler and `workers` agents alike; returns once all registered."""
        self.start_control_plane()
        for _ in range(workers):
            self.start_worker(**worker_env)
        self.wait_workers()

    def start_control_plane(self, schedulers: int = 1) -> None:
        """The api and `schedulers` schedulers (scheduler, scheduler1, ...); returns once
        the api is ready."""
        self.start("api", "api")
        for n in range(schedulers):
            self.start(f"scheduler{n or ''}", "scheduler")
        self.wait_ready()

    def start_worker(self, **env: str) -> str:
        """Start one more agent, workerN with its own state directory agentN; its name."""
        n = sum(name.startswith("worker") for name in self.commands)
        name = f"worker{n}"
        self.start(name, "worker", JOBYARD_AGENT_STATE_DIR=str(self.workdir / f"agent{n}"), **env)
        return name

    def wait_workers(self) -> None:
        """Wait until as many workers are registered as agents were started."""
        agents = sum(name.startswith("worker") for name in self.commands)

        def registered() -> bool:
            self.check_alive()
            return len(self.client.workers()["workers"]) >= agents

        wait_until(registered, 20, 0.1, lambda: "workers did not register:\n" + self.logs())

    def wait_ready(self, timeout_s: float = 20) -> None:
        def ready() -> bool:
            self.check_alive()
            try:
                self.client.request("GET", "/readyz")
            except ApiError:
                return False
            return True

        wait_until(ready, timeout_s, 0.1, lambda: "api never became ready:\n" + self.logs())

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def wait_for_state(self, job_id: str, states: Set[str], timeout_s: float = 60) -> dict:
        last: dict[str, dict] = {}

        def reached() -> dict | None:
            job: dict = self.client.job(job_id)
            last["job"] = job
            if job["state"] in states:
                return job
            self.check_alive()
            return None

        def stuck() -> str:
            job = last.get("job", {})
            return f"job stuck in {job.get('state')}: {job}\n{self.logs()}"

        return wait_until(reached, timeout_s, 0.1, stuck)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        self.client.close()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # Crashes

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal a process (kill -9 by default) and wait for it to end; check_alive then
        ignores it until restart(name)."""
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start a killed process again as before; its log goes on in the same file."""
        args, env = self.commands[name]
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        log.write(b"--- restarted\n")
        log.flush()
        self.processes[name] = subprocess.Popen(
            [JOBYARD, *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )  # fmt: skip

    def worker_process(self, worker_id: str) -> str:
        """The name of the agent process that registered as `worker_id` (agents keep the ids
        they had in their state directories)."""
        for name, ids in self.held_worker_ids().items():
            if worker_id in ids:
                return name
        raise AssertionError(f"no agent registered as {worker_id}")

    def worker_ids(self) -> set[str]:
        """Every worker id its agents have had, but those whose leftovers an agent has
        already removed (and then forgotten)."""
        return {worker_id for ids in self.held_worker_ids().values() for worker_id in ids}

    def held_worker_ids(self) -> dict[str, list[str]]:
        """Each agent process's name and the worker ids in its state directory."""
        held = {}
        for name, (_, env) in self.commands.items():
            if "JOBYARD_AGENT_STATE_DIR" in env:
                ids = Path(env["JOBYARD_AGENT_STATE_DIR"]) / "worker_ids"
                held[name] = ids.read_text().split() if ids.exists() else []
        return held


def remove_leftover_containers(client: docker.DockerClient, worker_ids: Set[str]) -> list[str]:
    """Force-remove every container, running or not, labelled with one of these worker ids
    (no other: those of other runs and other tests stay); the names of those removed."""
    removed = []
    for worker_id in sorted(worker_ids):
        for container in labelled(client, worker_id):
            with suppress(NotFound):  # gone meanwhile
                client.api.remove_container(container["Id"], force=True)
                removed.append(container["Names"][0])
    return removed


def labelled(client: docker.DockerClient, worker_id: str) -> list[dict[str, Any]]:
    """The containers, running or not, that carry this worker id, as the daemon lists them
    (the low-level list: no inspect per container, which would race with their removal)."""
    found = client.api.containers(all=True, filters={"label": f"{LABEL_WORKER}={worker_id}"})
    return [c for c in found if c["Labels"].get(LABEL_WORKER) == worker_id]


def running_containers(client: docker.DockerClient, worker_ids: Set[str]) -> list[dict[str, Any]]:
    """Those of these workers' containers that still run (the agent removes each once its
    job has ended)."""
    return [c for w in sorted(worker_ids) for c in labelled(client, w) if c["State"] == "running"]


# make_cluster(redis_url, spec), the factory fixture of tests/e2e/conftest.py.
MakeCluster = Callable[[str, ClusterSpec], Cluster]


@contextmanager
def running_cluster(
    spec: ClusterSpec, redis_url: str, workdir: Path, docker_client: docker.DockerClient
) -> Iterator[Cluster]:
    """A started cluster of this shape; afterwards its processes are stopped and any container
    its agents left is removed, and the teardown fails if one could not be."""
    cluster = Cluster(redis_url, workdir, {**CLUSTER_DEFAULTS, **spec.env})
    try:
        cluster.start_control_plane(spec.schedulers)
        for env in spec.agents:
            cluster.start_worker(**env)
        cluster.wait_workers()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            clear_leftovers(docker_client, cluster.worker_ids())


def clear_leftovers(client: docker.DockerClient, worker_ids: Set[str]) -> None:
    """Remove what these workers' agents left; AssertionError if anything stays."""
    removed = remove_leftover_containers(client, worker_ids)
    if removed:
        # An agent stopped mid-job (killed, or past its drain): not the test's failure.
        warnings.warn(f"removed containers left by {sorted(worker_ids)}: {removed}", stacklevel=2)
    left = {worker_id: labelled(client, worker_id) for worker_id in worker_ids}
    assert not any(left.values()), f"containers left behind: {left}"


@dataclass
class DurableRedis:
    """A redis-server of a test's own with AOF on and appendfsync always, as `jobyard up`
    runs it, that the test can kill -9 and start again on the same data and port."""

    data_dir: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.server = RedisServer(self.data_dir, self.port, durable=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def kill(self) -> None:
        process = self.server.process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        self.server.stop()
