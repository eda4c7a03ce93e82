"""Starts api, scheduler and worker agents as real processes, the way an operator would."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path

from cli.redis_server import RedisServer
from shared.client import ApiClient, ApiError
from shared.states import TERMINAL_STATES

JOBYARD = str(Path(sys.executable).parent / "jobyard")
ADMIN_TOKEN = "e2e-admin-token"
JOIN_TOKEN = "e2e-join-token"
TERMINAL = frozenset(state.value for state in TERMINAL_STATES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        self.start("api", "api")
        self.start("scheduler", "scheduler")
        self.wait_ready()
        for n in range(workers):
            state_dir = str(self.workdir / f"agent{n}")
            self.start(f"worker{n}", "worker", JOBYARD_AGENT_STATE_DIR=state_dir, **worker_env)
        deadline = time.monotonic() + 20
        while len(self.client.workers()["workers"]) < workers:
            self.check_alive()
            assert time.monotonic() < deadline, "workers did not register:\n" + self.logs()
            time.sleep(0.1)

    def wait_ready(self, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                self.client.request("GET", "/readyz")
                return
            except ApiError:
                assert time.monotonic() < deadline, "api never became ready:\n" + self.logs()
                time.sleep(0.1)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def wait_for_state(self, job_id: str, states: Set[str], timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            job: dict = self.client.job(job_id)
            if job["state"] in states:
                return job
            self.check_alive()
            assert time.monotonic() < deadline, f"job stuck in {job['state']}: {job}\n{self.logs()}"
            time.sleep(0.1)

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
        """The name of the agent process that registered as `worker_id` (start_all's
        agents keep the ids they had in their state directories)."""
        for name, (_, env) in self.commands.items():
            ids = Path(env.get("JOBYARD_AGENT_STATE_DIR", "/nonexistent")) / "worker_ids"
            if ids.exists() and worker_id in ids.read_text().split():
                return name
        raise AssertionError(f"no agent registered as {worker_id}")


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
