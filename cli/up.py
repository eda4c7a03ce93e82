"""`jobyard up`: the embedded default on one machine.

Starts redis-server (AOF on, data in ./.jobyard/redis) unless JOBYARD_REDIS_URL is set, then
`jobyard api`, `jobyard scheduler` and `jobyard worker` as child processes; writes the API URL
and tokens to ./.jobyard/credentials; prints where to reach it; stops everything on Ctrl-C.
"""

import fcntl
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import quote

import click

from cli.credentials import CREDENTIALS_FILE, STATE_DIR, read_credentials, write_credentials
from cli.ports import port_is_free, split_bind, url_for_bind
from cli.processes import Child, Supervisor
from cli.redis_server import RedisServer, RedisStartError, redis_answers
from shared.config import Config, ConfigError

SERVICES = ("api", "scheduler", "worker")
HEALTH_TIMEOUT_S = 60.0


class UpError(Exception):
    """jobyard up cannot go on; the message says why."""


class Shutdown(Exception):
    """SIGINT or SIGTERM asked jobyard up to stop."""


class ChildDied(Exception):
    def __init__(self, child: Child) -> None:
        code = child.returncode or 0
        how = f"exited with status {code}"
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        super().__init__(f"{child.name} {how}")
        self.child = child


@dataclass(frozen=True)
class Plan:
    bind: str
    api_url: str
    admin_token: str
    join_token: str
    executor: str
    state_dir: Path


def check_bind(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        Config.from_env({"JOBYARD_BIND": value})
    except ConfigError:
        raise click.BadParameter(f"{value!r} is not HOST:PORT") from None
    return value


def prepare_state_dir(path: Path = STATE_DIR) -> Path:
    """./.jobyard, mode 700 (it holds the credentials and Redis's data)."""
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path.resolve()


@contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """One `jobyard up` per folder: two redis-servers on one append-only file would ruin it."""
    with (state_dir / "up.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpError(f"another `jobyard up` is running in {state_dir.parent}") from None
        yield


def resolve_tokens(config: Config, stored: Mapping[str, str]) -> tuple[str, str]:
    """The environment's tokens, else the ones of an earlier run, else new ones."""
    admin = config.admin_token or stored.get("JOBYARD_ADMIN_TOKEN") or secrets.token_urlsafe(32)
    join = (
        config.worker_join_token
        or stored.get("JOBYARD_WORKER_JOIN_TOKEN")
        or secrets.token_urlsafe(32)
    )
    return admin, join


def save_credentials(plan: Plan) -> None:
    write_credentials(
        {
            "JOBYARD_API_URL": plan.api_url,
            "JOBYARD_TOKEN": plan.admin_token,
            "JOBYARD_ADMIN_TOKEN": plan.admin_token,
            "JOBYARD_WORKER_JOIN_TOKEN": plan.join_token,
        },
        plan.state_dir / CREDENTIALS_FILE.name,
    )


def docker_answers(image: str) -> tuple[bool, bool]:
    """(a Docker daemon answers, it has `image`)."""
    try:
        import docker
        from docker.errors import DockerException
        from requests.exceptions import RequestException
    except ImportError:
        return False, False
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except (DockerException, RequestException):
        return False, False
    try:
        client.images.get(image)
        return True, True
    except (DockerException, RequestException):
        return True, False
    finally:
        client.close()


def choose_executor(config: Config) -> str:
    """Docker when a daemon answers, else the process executor; JOBYARD_EXECUTOR, when set, wins."""
    explicit = "JOBYARD_EXECUTOR" in os.environ
    if explicit and config.executor == "process":
        return "process"
    daemon, has_image = docker_answers(config.default_image)
    if daemon and not has_image:
        warn(f"image {config.default_image} is not in the local Docker daemon "
             "(`make image` builds jobyard/busybox:latest)")
    if daemon:
        return "docker"
    if explicit:
        warn("JOBYARD_EXECUTOR=docker but no Docker daemon answers: jobs will fail to start")
        return "docker"
    warn("no Docker daemon answers: jobs run as plain processes (rlimits, no container isolation)")
    return "process"


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def say(message: str) -> None:
    click.echo(f"jobyard up: {message}", err=True)


def start_redis(supervisor: Supervisor, state_dir: Path) -> str:
    server = RedisServer.on_free_port(state_dir / "redis")
    try:
        supervisor.adopt("redis", server.launch())
        server.wait_ready()
    except RedisStartError as exc:
        raise UpError(str(exc)) from None
    say(f"redis-server on {server.url} (data in {server.data_dir}, AOF on)")
    return server.url


def redis_url_for(config: Config, supervisor: Supervisor, state_dir: Path) -> str:
    if "JOBYARD_REDIS_URL" not in os.environ:
        return start_redis(supervisor, state_dir)
    if not redis_answers(config.redis_url, timeout_s=2.0):
        raise UpError(f"JOBYARD_REDIS_URL={config.redis_url} does not answer PING")
    return config.redis_url


def child_environment(plan: Plan, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JOBYARD_REDIS_URL=redis_url,
        JOBYARD_API_URL=plan.api_url,
        JOBYARD_BIND=plan.bind,
        JOBYARD_ADMIN_TOKEN=plan.admin_token,
        JOBYARD_WORKER_JOIN_TOKEN=plan.join_token,
        JOBYARD_AGENT_STATE_DIR=str(plan.state_dir / "agent"),
        JOBYARD_EXECUTOR=plan.executor,
        PYTHONUNBUFFERED="1",
    )
    return env


def console_script() -> Path | None:
    script = Path(sys.executable).with_name("jobyard")
    return script if script.exists() else None


def service_argv(service: str) -> list[str]:
    """The console script beside this Python when there is one, else `python -m cli.main`."""
    script = console_script()
    if script is not None:
        return [str(script), service]
    return [sys.executable, "-m", "cli.main", service]


def command_name() -> str:
    """How the user can type `jobyard` here: the bare name when it is on PATH."""
    script = console_script()
    if shutil.which("jobyard") or script is None:
        return "jobyard"
    return os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)


def wait_healthy(supervisor: Supervisor, api_url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    from shared.client import ApiClient, ApiError

    client = ApiClient(api_url, timeout_s=1.0)
    deadline = time.monotonic() + timeout_s
    while True:
        raise_if_died(supervisor)
        try:
            client.request("GET", "/healthz")
            return
        except ApiError:
            if time.monotonic() > deadline:
                message = f"the API did not answer GET {api_url}/healthz in {timeout_s:g} s"
                raise UpError(message) from None
        supervisor.idle(0.2)


def raise_if_died(supervisor: Supervisor) -> None:
    child = supervisor.first_exited()
    if child is not None:
        raise ChildDied(child)


def banner(plan: Plan) -> str:
    return f"""
jobyard is up.
  API:        {plan.api_url}   (OpenAPI: {plan.api_url}/docs)
  Dashboard:  {plan.api_url}/login?token={quote(plan.admin_token, safe="")}
              (this link logs you in as admin; the page it opens keeps no token)
  Executor:   {plan.executor}
  Credentials for the `jobyard` command and curl: {plan.state_dir / CREDENTIALS_FILE.name}

Submit a job from this folder:
  {command_name()} submit --follow -- echo hello
or with curl:
  . .jobyard/credentials
  curl -sS -X POST "$JOBYARD_API_URL/api/v1/jobs" \\
    -H "Authorization: Bearer $JOBYARD_TOKEN" -H "Content-Type: application/json" \\
    -d '{{"command": ["echo", "hello"], "resources": {{"cpu": 0.5, "memory_mb": 64}}}}'

Ctrl-C stops everything (running jobs get a few seconds; press it again to stop at once).
"""


@contextmanager
def signals_handled(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def make_plan(config: Config, bind: str, resources: ExitStack) -> Plan:
    host, port = split_bind(bind)
    if not port_is_free(host, port):
        raise UpError(f"{bind} is already in use (another `jobyard up`?); choose one with --bind")
    state_dir = prepare_state_dir()
    resources.enter_context(state_dir_lock(state_dir))
    admin, join = resolve_tokens(config, read_credentials(state_dir / CREDENTIALS_FILE.name))
    return Plan(bind, url_for_bind(bind), admin, join, choose_executor(config), state_dir)


def start_all(supervisor: Supervisor, config: Config, bind: str, resources: ExitStack) -> Plan:
    plan = make_plan(config, bind, resources)
    save_credentials(plan)
    env = child_environment(plan, redis_url_for(config, supervisor, plan.state_dir))
    for service in SERVICES:
        supervisor.start(service, service_argv(service), env)
    wait_healthy(supervisor, plan.api_url)
    return plan


def watch(supervisor: Supervisor) -> None:
    """Copy the children's output until one of them exits (then raise ChildDied)."""
    while True:
        raise_if_died(supervisor)
        supervisor.idle(0.2)


def run_up(config: Config, bind: str) -> int:
    supervisor = Supervisor()
    with signals_handled(raise_shutdown), ExitStack() as resources:
        try:
            plan = start_all(supervisor, config, bind, resources)
            click.echo(banner(plan))
            watch(supervisor)
        except Shutdown:
            status = 0
        except ChildDied as exc:
            say(str(exc))
            status = 1
        except UpError as exc:
            click.echo(f"error: {exc}", err=True)
            status = 1
        finally:
            stop_children(supervisor)
    return status


def stop_children(supervisor: Supervisor) -> None:
    """Stop everything started so far; a second Ctrl-C skips the grace periods."""
    signal.signal(signal.SIGINT, lambda *_: supervisor.hurry())
    signal.signal(signal.SIGTERM, lambda *_: supervisor.hurry())
    if supervisor.children:
        say("stopping ...")
        supervisor.stop_all()
        say("stopped")


@click.command()
@click.option("--bind", callback=check_bind, metavar="HOST:PORT",
              help="Where the API listens [default: JOBYARD_BIND, else 127.0.0.1:8080].")
def up(bind: str | None) -> None:
    """Run everything on this machine: Redis, the API, the scheduler and one worker."""
    config = Config.from_env()
    raise SystemExit(run_up(config, bind or config.bind))
