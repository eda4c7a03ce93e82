"""`jobyard api` under gunicorn with gevent workers: many long-polls and SSE streams stay open.

The Flask app is built in each worker (not in the master), after gevent has patched the
standard library there, so no socket is created before the patching.

The workers keep their own metrics (api/metrics.py) in prometheus-client's multiprocess
files: the master points PROMETHEUS_MULTIPROC_DIR at an empty directory before the first
fork, tells prometheus-client when a worker has exited, and removes the directory at exit.
"""

import json
import os
import select
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from gevent import monkey
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.ggevent import GeventWorker

from shared.config import Config
from shared.logs import gunicorn_logconfig

# What gunicorn reads of a request before the app sees it, each beyond answered by the
# worker itself (in the error shape, below): the request line (method, path and query)
# 414, a header line or the number of headers 431. gunicorn's defaults, written here
# because clients may rely on them (README).
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, in the API's error shape instead of an HTML page: what
    the worker answers by itself (a request it cannot parse, an over-long request line or
    header, ...) with the status and reason gunicorn chose."""
    from api.errors import HTTP_CODES, error_body  # loaded with the app by then

    code = HTTP_CODES.get(status_int, "bad_request" if status_int < 500 else "internal")
    body = json.dumps(error_body(code, mesg or reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ApiWorker(GeventWorker):
    """gunicorn's gevent worker, with the real select.poll put back after the patching.

    redis-py checks every pooled connection with poll(timeout=0) before each command, which
    never blocks; gevent's stand-in for poll starts and stops event-loop watchers for it,
    about 7% of the API's CPU on the dispatch path. Nothing in the API polls with a timeout:
    code that does must not run here (it would stall every request of the process).

    And gunicorn's own error answers in the API's error shape: its handle_error picks the
    status and logs, then writes an HTML page through util.write_error, which it looks up
    on the module at each call; this process's copy writes JSON.
    """

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()

    def patch(self) -> None:
        super().patch()
        select.poll = monkey.get_original("select", "poll")  # type: ignore[misc]


def gunicorn_options(config: Config) -> dict[str, Any]:
    options = {
        "bind": [config.bind],
        "workers": config.api_processes,
        "worker_class": ApiWorker,
        "worker_connections": 1000,
        "timeout": 60,
        "graceful_timeout": 10,
        "proc_name": "jobyard-api",
        "errorlog": "-",
        "limit_request_line": MAX_REQUEST_LINE,
        "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_field_size": MAX_HEADER_FIELD_BYTES,
        # gunicorn 27+ opens a control socket at one fixed path per user: several APIs on
        # one host (tests, `jobyard up` beside a deployment) would fight over it.
        "control_socket_disable": True,
    }
    logconfig = gunicorn_logconfig(config.log_format)
    if logconfig is not None:
        options["logconfig_dict"] = logconfig
    return options


# prometheus-client's variable (api/metrics.py reads it too). prometheus-client picks its
# storage when first imported, so neither it nor the app may be imported here before the fork.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_directory() -> tuple[Path, bool]:
    """The workers' metrics directory, emptied, and whether this process made it (then it
    removes it at exit). An operator's own PROMETHEUS_MULTIPROC_DIR is used and emptied:
    files of an earlier run would add its counts to this one's."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="jobyard-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


def worker_exited(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class ApiApplication(BaseApplication):
    def __init__(self, config: Config) -> None:
        self.jobyard_config = config
        self.metrics_dir, self.made_metrics_dir = metrics_directory()
        super().__init__()

    def on_exit(self, server: Any) -> None:
        if self.made_metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def load_config(self) -> None:
        hooks = {"child_exit": worker_exited, "on_exit": self.on_exit}
        for key, value in {**gunicorn_options(self.jobyard_config), **hooks}.items():
            if key in self.cfg.settings:  # older gunicorn lacks some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        from api.app import create_app

        return create_app(self.jobyard_config)
