"""`jobyard api` under gunicorn with gevent workers: many long-polls and SSE streams stay open.

The Flask app is built in each worker (not in the master), after gevent has patched the
standard library there, so no socket is created before the patching.
"""

import select
from typing import Any

from gevent import monkey
from gunicorn.app.base import BaseApplication
from gunicorn.workers.ggevent import GeventWorker

from shared.config import Config


class ApiWorker(GeventWorker):
    """gunicorn's gevent worker, with the real select.poll put back after the patching.

    redis-py checks every pooled connection with poll(timeout=0) before each command, which
    never blocks; gevent's stand-in for poll starts and stops event-loop watchers for it,
    about 7% of the API's CPU on the dispatch path. Nothing in the API polls with a timeout:
    code that does must not run here (it would stall every request of the process).
    """

    def patch(self) -> None:
        super().patch()
        select.poll = monkey.get_original("select", "poll")  # type: ignore[misc]


def gunicorn_options(config: Config) -> dict[str, Any]:
    return {
        "bind": [config.bind],
        "workers": config.api_processes,
        "worker_class": ApiWorker,
        "worker_connections": 1000,
        "timeout": 60,
        "graceful_timeout": 10,
        "proc_name": "jobyard-api",
        "errorlog": "-",
        # gunicorn 27+ opens a control socket at one fixed path per user: several APIs on
        # one host (tests, `jobyard up` beside a deployment) would fight over it.
        "control_socket_disable": True,
    }


class ApiApplication(BaseApplication):
    def __init__(self, config: Config) -> None:
        self.jobyard_config = config
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.jobyard_config).items():
            if key in self.cfg.settings:  # older gunicorn lacks some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        from api.app import create_app

        return create_app(self.jobyard_config)
