"""Job output on the terminal: `jobyard logs [-f]` and `jobyard submit --follow`.

Following reads the job's output stream (server-sent events), writes stdout chunks to
stdout and stderr chunks to stderr, reconnects after the last chunk it printed when the
connection drops, and when the job ends returns its exit code, as `docker run` does.
"""

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from cli.context import api_command, make_client
from cli.render import outcome

if TYPE_CHECKING:
    from shared.client import ApiClient

RECONNECT_S = 30.0  # how long a follower waits for an API that went away (a restart)
RECONNECT_PAUSE_S = 1.0
# Answers worth reconnecting after: the API is up but its Redis is not (yet).
TRANSIENT_STATUSES = frozenset({0, 502, 503, 504})


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


def follow_output(client: "ApiClient", job_id: str) -> dict[str, Any]:
    """Print output as it arrives until the job has ended and all of it is printed; returns
    the stream's end event ({id, state, reason, exit_code, error})."""
    from shared.client import ApiError, stream_events

    path = f"/api/v1/jobs/{job_id}/output/stream"
    last_id: str | None = None
    deadline: float | None = None
    while True:
        try:
            for event in stream_events(client, path, last_event_id=last_id):
                deadline = None  # connected: a later drop gets the whole wait again
                if event.event == "end":
                    end: dict[str, Any] = json.loads(event.data)
                    return end
                print_chunks([json.loads(event.data)])
                last_id = event.last_id
        except ApiError as exc:
            if exc.status not in TRANSIENT_STATUSES:
                raise
            failure = exc
        else:
            failure = ApiError(0, "ended_early", f"the output stream of job {job_id} ended early")
        # Dropped, refused for now, or ended early (an API restarting): resume after the
        # last chunk printed, for a while.
        now = time.monotonic()
        deadline = deadline or now + RECONNECT_S
        if now > deadline:
            raise failure
        time.sleep(RECONNECT_PAUSE_S)


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
        end = follow_output(client, job_id)
    except KeyboardInterrupt:
        hint = f"job {job_id} keeps running (jobyard cancel {job_id})"
        click.echo(f"\nstopped following; {hint}", err=True)
        return 130
    return exit_status(end)


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
