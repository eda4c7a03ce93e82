"""Job output on the terminal: `jobyard logs [-f]` and `jobyard submit --follow`.

Following polls GET /api/v1/jobs/{id}/output every 0.2 s, writes stdout chunks to stdout and
stderr chunks to stderr, and when the job ends returns its exit code, as `docker run` does.
"""

import functools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.context import api_command, make_client
from cli.render import outcome
from shared.states import TERMINAL_STATES

if TYPE_CHECKING:
    from shared.client import ApiClient

POLL_S = 0.2
JOB_CHECK_EVERY = 5  # idle polls between looks at the job, in case `complete` never comes
RECONNECT_S = 30.0  # how long a follower waits for an API that went away (a restart)

T = TypeVar("T")


def print_chunks(chunks: list[Mapping[str, Any]]) -> None:
    for chunk in chunks:
        click.echo(chunk.get("data", ""), nl=False, err=chunk.get("stream") == "stderr")


def print_available(client: "ApiClient", job_id: str, offset: int = 0) -> int:
    """Print every chunk stored now; returns the next offset."""
    while True:
        body = client.output(job_id, offset)
        print_chunks(body["chunks"])
        offset = body.get("next_offset", offset)
        if body.get("complete") or not body["chunks"]:
            return offset


def retrying(call: Callable[[], T]) -> T:
    """Call, retrying for a while when the API is unreachable."""
    from shared.client import ApiUnreachable

    deadline = time.monotonic() + RECONNECT_S
    while True:
        try:
            return call()
        except ApiUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def is_finished(client: "ApiClient", job_id: str) -> bool:
    return retrying(lambda: client.job(job_id)).get("state") in TERMINAL_STATES


def follow_output(client: "ApiClient", job_id: str) -> None:
    """Print output as it arrives until the job has ended and all of it is printed."""
    offset, idle_polls = 0, 0
    while True:
        body = retrying(functools.partial(client.output, job_id, offset))
        print_chunks(body["chunks"])
        offset = body.get("next_offset", offset)
        if body.get("complete"):
            return
        idle_polls = 0 if body["chunks"] else idle_polls + 1
        if idle_polls and idle_polls % JOB_CHECK_EVERY == 0 and is_finished(client, job_id):
            print_available(client, job_id, offset)
            return
        if not body["chunks"]:
            time.sleep(POLL_S)


def exit_status(job: Mapping[str, Any]) -> int:
    """The job's exit code for our own exit; 1 when it ended without one (state on stderr)."""
    if job.get("state") == "COMPLETED":
        return 0
    code = job.get("exit_code")
    if code is None or job.get("reason") != "exit_code":
        error = f": {job['error']}" if job.get("error") else ""
        click.echo(f"job {job.get('id')} {outcome(job)}{error}", err=True)
    if code is None:
        return 1
    code = int(code)
    if code < 0:  # killed by signal N, reported as -N: exit 128+N as a shell would
        code = 128 - code
    return code % 256 or 1


def follow_job(client: "ApiClient", job_id: str) -> int:
    """Stream the job's output, then return the exit status `jobyard` should end with."""
    try:
        follow_output(client, job_id)
    except KeyboardInterrupt:
        hint = f"job {job_id} keeps running (jobyard cancel {job_id})"
        click.echo(f"\nstopped following; {hint}", err=True)
        return 130
    return exit_status(retrying(lambda: client.job(job_id)))


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Stream until the job ends; exit with its code.")
@click.argument("job_id")
@api_command
def logs(follow: bool, job_id: str) -> None:
    """Print a job's output (stdout to stdout, stderr to stderr)."""
    client = make_client()
    if follow:
        raise SystemExit(follow_job(client, job_id))
    print_available(client, job_id)
