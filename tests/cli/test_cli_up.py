"""`jobyard up` as a real process, with stand-ins for the api, scheduler and agent modules.

The stand-ins (put first on PYTHONPATH) only report the configuration they were given, so
these tests check what `up` itself owns: Redis, credentials, environment, health wait,
supervision and shutdown. The real services are exercised by tests/e2e.
"""

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from click.testing import Result

from cli.credentials import read_credentials, write_credentials
from cli.ports import port_is_free
from tests.helpers import free_port, wait_until

STUBS = {
    "api/__init__.py": "",
    "api/app.py": """
import os
from flask import Flask

def create_app(config):
    app = Flask("stub")

    @app.get("/healthz")
    def healthz():
        return {"redis_url": config.redis_url, "admin_token": config.admin_token}

    return app
""",
    "scheduler/__init__.py": "",
    "scheduler/loop.py": """
import os, signal, time

def run_scheduler(config):
    if os.environ.get("STUB_SCHEDULER_EXIT_AFTER"):
        time.sleep(float(os.environ["STUB_SCHEDULER_EXIT_AFTER"]))  # then dies, as asked
        raise SystemExit(3)
    signal.sigwait({signal.SIGTERM})
""",
    "worker_agent/__init__.py": "",
    "worker_agent/agent.py": """
import signal

def run_agent(config):
    print("AGENT", config.executor, config.agent_state_dir, config.api_url,
          config.worker_join_token, flush=True)
    signal.sigwait({signal.SIGTERM})
""",
}


@dataclass
class Up:
    process: "subprocess.Popen[bytes]"
    work: Path
    port: int
    out: Path
    err: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> tuple[str, str]:
        return self.out.read_text(), self.err.read_text()

    def wait_healthy(self) -> dict[str, str]:
        def healthz() -> dict[str, str] | None:
            assert self.process.poll() is None, self.output()
            try:
                response = requests.get(self.url + "/healthz", timeout=1)
            except requests.RequestException:
                return None
            body: dict[str, str] = response.json()
            return body

        result = wait_until(healthz, timeout=60, interval=0.2, message="jobyard up never healthy")
        wait_until(lambda: "jobyard is up" in self.output()[0], message="no banner")
        assert isinstance(result, dict)
        return result


@pytest.fixture
def start_up(
    tmp_path: Path, clean_environment: Path, redis_server_binary: str
) -> Iterator[Callable[..., Up]]:
    """start(**env) runs `jobyard up` (redis-server is real, the rest stubs); all are
    killed afterwards."""
    stubs = tmp_path / "stubs"
    for name, text in STUBS.items():
        (stubs / name).parent.mkdir(parents=True, exist_ok=True)
        (stubs / name).write_text(text)
    started: list[Up] = []

    def start(**extra_env: str) -> Up:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}
        env.update(PYTHONPATH=str(stubs), JOBYARD_EXECUTOR="process", **extra_env)
        port = free_port()
        out, err = tmp_path / f"out{len(started)}", tmp_path / f"err{len(started)}"
        argv = [sys.executable, "-m", "cli.main", "up", "--bind", f"127.0.0.1:{port}"]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                argv,
                cwd=clean_environment,
                env=env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        started.append(Up(process, clean_environment, port, out, err))
        return started[-1]

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()


def test_up_runs_everything_and_stops_on_sigterm(start_up: Callable[..., Up]) -> None:
    up = start_up()
    health = up.wait_healthy()
    stored = read_credentials(up.work / ".jobyard" / "credentials")

    assert stat.S_IMODE((up.work / ".jobyard").stat().st_mode) == 0o700
    assert stat.S_IMODE((up.work / ".jobyard" / "credentials").stat().st_mode) == 0o600
    assert stored["JOBYARD_API_URL"] == up.url
    assert stored["JOBYARD_TOKEN"] == stored["JOBYARD_ADMIN_TOKEN"] == health["admin_token"]
    assert len(stored["JOBYARD_WORKER_JOIN_TOKEN"]) >= 32
    # The dashboard's login link (tests/integration/test_dashboard_api.py follows one).
    token = quote(stored["JOBYARD_ADMIN_TOKEN"], safe="")
    assert f"Dashboard:  {up.url}/login?token={token}\n" in up.output()[0]
    redis_port = int(health["redis_url"].rsplit(":", 1)[1].split("/")[0])
    assert not port_is_free("127.0.0.1", redis_port)

    out, _ = up.output()
    assert f"API:        {up.url}" in out
    agent_dir = up.work.resolve() / ".jobyard" / "agent"
    expected = f"AGENT process {agent_dir} {up.url} {stored['JOBYARD_WORKER_JOIN_TOKEN']}"
    wait_until(lambda: expected in up.output()[0], message=f"agent line missing: {up.output()}")

    assert_second_up_refused(up)

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=30) == 0, up.output()
    assert port_is_free("127.0.0.1", up.port)
    assert port_is_free("127.0.0.1", redis_port)


def assert_second_up_refused(first: Up) -> None:
    for port, reason in ((first.port, "already in use"), (free_port(), "another `jobyard up`")):
        second = subprocess.run(
            [sys.executable, "-m", "cli.main", "up", "--bind", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, cwd=first.work,
            env={**os.environ, "JOBYARD_EXECUTOR": "process"},
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert reason in second.stderr


def test_up_keeps_tokens_and_stops_all_when_a_child_dies(start_up: Callable[..., Up]) -> None:
    credentials = Path(".jobyard") / "credentials"
    credentials.parent.mkdir(mode=0o700)
    write_credentials(
        {"JOBYARD_ADMIN_TOKEN": "admin-1", "JOBYARD_WORKER_JOIN_TOKEN": "join-1"}, credentials
    )
    up = start_up(STUB_SCHEDULER_EXIT_AFTER="2")

    assert up.process.wait(timeout=60) == 1, up.output()
    _, err = up.output()
    assert "scheduler exited with status 3" in err
    assert port_is_free("127.0.0.1", up.port)
    stored = read_credentials(credentials)
    assert (stored["JOBYARD_TOKEN"], stored["JOBYARD_WORKER_JOIN_TOKEN"]) == ("admin-1", "join-1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PATH": "/nonexistent"}, "redis-server is not installed"),
        ({"JOBYARD_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "does not answer PING"),
    ],
)
def test_up_without_redis_says_why(
    jobyard: Callable[..., Result], env: dict[str, str], message: str
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    result = jobyard("up", "--bind", bind, env={"JOBYARD_EXECUTOR": "process", **env})
    assert result.exit_code == 1
    assert message in result.stderr
