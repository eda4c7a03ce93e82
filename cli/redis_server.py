"""A redis-server child process: the embedded store of `jobyard up`, and the tests' real Redis.

`jobyard up` runs it with AOF on and `appendfsync always`, so an acknowledged submission
survives a crash of Redis itself (DESIGN §4); the tests run it without persistence.
"""

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cli.ports import free_port, port_is_free
from cli.processes import spawn, stop_process

DEFAULT_PORT = 6379


class RedisStartError(RuntimeError):
    pass


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    durable: bool = True
    process: "subprocess.Popen[bytes] | None" = field(default=None, repr=False)

    @classmethod
    def on_free_port(cls, data_dir: Path, durable: bool = True) -> "RedisServer":
        """Port 6379 when it is free, else any free port."""
        port = DEFAULT_PORT if port_is_free("127.0.0.1", DEFAULT_PORT) else free_port()
        return cls(data_dir, port, durable)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def argv(self, binary: str) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not self.durable:
            persistence = ["--appendonly", "no"]
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            # Bound to loopback only, so protected mode has nothing to protect.
            "--protected-mode", "no",
            "--dir", str(self.data_dir),
            "--save", "",
            *persistence,
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip

    def start(self, timeout_s: float = 10.0) -> None:
        """Start redis-server and return once it answers PING."""
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> "subprocess.Popen[bytes]":
        binary = redis_server_path()
        if binary is None:
            raise RedisStartError(
                "redis-server is not installed (apt-get install redis-server), "
                "or set JOBYARD_REDIS_URL to a running Redis"
            )
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.process = spawn(self.argv(binary))
        return self.process

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.url, timeout_s=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                message = f"redis-server on port {self.port} did not start{self._log_tail()}"
                raise RedisStartError(message)
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return ": " + " / ".join(line.strip() for line in lines) if lines else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
