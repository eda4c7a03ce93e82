"""The three long-running processes, each configured only by JOBYARD_* variables:
`jobyard api`, `jobyard scheduler` and `jobyard worker`."""

import click

from shared import logs
from shared.config import Config


@click.command()
def api() -> None:
    """Run the HTTP API (gunicorn, gevent workers) on JOBYARD_BIND."""
    config = Config.from_env()
    from cli.gunicorn_app import ApiApplication

    ApiApplication(config).run()


@click.command()
def scheduler() -> None:
    """Run the placement loop and the reaper (one is active at a time)."""
    config = Config.from_env()
    from scheduler.loop import run_scheduler

    logs.configure(config.log_format)
    run_scheduler(config)


@click.command()
def worker() -> None:
    """Run a worker agent that registers with JOBYARD_API_URL and runs jobs."""
    config = Config.from_env()
    from worker_agent.agent import run_agent

    logs.configure(config.log_format)
    run_agent(config)
