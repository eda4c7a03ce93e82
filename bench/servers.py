"""Throwaway servers for the benchmarks, all on 127.0.0.1 and all stopped on exit: a
redis-server (optionally started from a saved snapshot) and `jobyard` processes."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from cli.ports import free_port
from cli.redis_server import RedisServer
from shared.client import ApiClient, ApiError

JOBYARD = str(Path(sys.executable).parent / "jobyard")
SNAPSHOT = "dump.rdb"  # redis-server's default file name, read at start when AOF is off


@dataclass(frozen=True)
class ControlPlane:
    """Where a benchmark's `jobyard` processes listen, their fresh tokens, and the
    environment that tells them all of it."""

    api_url: str
    admin: str
    join: str
    env: dict[str, str]


def control_plane(redis_url: str) -> ControlPlane:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    admin, join = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        "JOBYARD_REDIS_URL": redis_url,
        "JOBYARD_BIND": f"127.0.0.1:{port}",
        "JOBYARD_API_URL": api_url,
        "JOBYARD_ADMIN_TOKEN": admin,
        "JOBYARD_WORKER_JOIN_TOKEN": join,
        # A benchmark is one client going as fast as it can: the per-token limits that keep
        # tenants apart would measure themselves instead of the path.
        "JOBYARD_RATE_LIMIT": "1000000/second",
        "JOBYARD_WORKER_RATE_LIMIT": "1000000/second",
    }
    return ControlPlane(api_url, admin, join, env)


@contextmanager
def redis_server(
    data_dir: Path, snapshot: Path | None = None, durable: bool = False
) -> Iterator[RedisServer]:
    """A redis-server on a free loopback port; with `snapshot`, it starts with that data."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        shutil.copyfile(snapshot, data_dir / SNAPSHOT)
    server = RedisServer(data_dir, free_port(), durable=durable)
    server.start(timeout_s=60)
    try:
        yield server
    finally:
        server.stop()


class JobyardProcess:
    """One `jobyard <command>` child in its own process group, its output in a log file."""

    def __init__(self, command: str, env: Mapping[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [JOBYARD, command],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"jobyard {self.command} exited with {self.process.returncode}: {self.log_tail()}"
            )

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL to the whole group (gunicorn's workers too) after grace_s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_ready(client: ApiClient, process: JobyardProcess, timeout_s: float = 30.0) -> None:
    """Until GET /readyz answers, or fail with the API's log."""
    deadline = time.monotonic() + timeout_s
    while True:
        process.check_alive()
        try:
            client.request("GET", "/readyz")
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API never became ready: {process.log_tail()}") from None
            time.sleep(0.1)


def family(pid: int) -> list[psutil.Process]:
    """A process and all its children (gunicorn's workers), or none if it is gone."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and all its children so far (0 if gone)."""
    return _summed(pid, lambda p: sum(p.cpu_times()[:2]))  # user and system


def rss_bytes(pid: int) -> float:
    """Resident memory of a process and all its children now (0 if gone)."""
    return _summed(pid, lambda p: float(p.memory_info().rss))


def _summed(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """`measure` summed over the family; a member that ended since it was listed counts 0."""
    total = 0.0
    for member in family(pid):
        try:
            total += measure(member)
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass(frozen=True)
class Cluster:
    api_url: str
    admin: str
    join: str
    pids: dict[str, int]  # process name -> pid, for CPU accounting


@contextmanager
def cluster(redis: RedisServer, workdir: Path) -> Iterator[Cluster]:
    """`jobyard api` and `jobyard scheduler` on loopback, stopped on exit."""
    plane = control_plane(redis.url)
    api_url, admin, join, env = plane.api_url, plane.admin, plane.join, plane.env
    api = JobyardProcess("api", env, workdir / "api.log")
    scheduler = JobyardProcess("scheduler", env, workdir / "scheduler.log")
    assert redis.process is not None
    pids = {
        "api": api.process.pid,
        "scheduler": scheduler.process.pid,
        "redis": redis.process.pid,
    }
    try:
        wait_ready(ApiClient(api_url, admin), api)
        yield Cluster(api_url, admin, join, pids)
        api.check_alive()
        scheduler.check_alive()
    finally:
        scheduler.stop()
        api.stop()
