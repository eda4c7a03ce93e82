"""The `jobyard workers` table: each worker's status, reserved/capacity and running jobs."""

from collections.abc import Mapping
from typing import Any

import click

from cli.context import api_command, make_client
from cli.jobs import print_json
from cli.render import number, table
from cli.watch import WATCH_OPTION, watch


def used_of(reserved: Mapping[str, Any], capacity: Mapping[str, Any], key: str) -> str:
    return f"{number(reserved.get(key, 0))}/{number(capacity.get(key))}"


def running_count(worker: Mapping[str, Any]) -> str:
    running = worker.get("running_jobs")
    count = len(running) if isinstance(running, list | tuple) else running
    slots = worker.get("max_parallel_jobs")
    return f"{count if count is not None else '-'}" + (f"/{slots}" if slots else "")


def worker_row(worker: Mapping[str, Any]) -> list[str]:
    capacity = worker.get("capacity") or {}
    reserved = worker.get("reserved") or {}
    return [
        str(worker.get("id", "")),
        str(worker.get("hostname") or "-"),
        str(worker.get("status") or "-"),
        used_of(reserved, capacity, "cpu"),
        used_of(reserved, capacity, "memory_mb"),
        running_count(worker),
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@WATCH_OPTION
@api_command
def workers(as_json: bool, watch_s: float | None) -> None:
    """List workers with their capacity and what is reserved on them."""
    client = make_client()
    if watch_s is not None:
        watch(lambda: workers_text(client.workers()), watch_s, "jobyard workers")
        return
    body = client.workers()
    if as_json:
        print_json(body)
        return
    click.echo(workers_text(body))


def workers_text(body: dict[str, Any]) -> str:
    headers = ["ID", "HOSTNAME", "STATUS", "CPU", "MEMORY MB", "JOBS"]
    return table(headers, [worker_row(worker) for worker in body.get("workers", [])])
