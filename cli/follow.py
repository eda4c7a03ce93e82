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
RECONNECT_PAUSE_S = 1.0  # the first pause before reconnecting; later ones back off


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
    from shared.retry import GaveUp, retry

    follower = _Follower(client, job_id)
    try:
        return retry(follower.read_to_end, follower.pause, backoff=follower.backoff)
    except GaveUp as exc:
        raise exc.error from None


class _Follower:
    """One job's output stream, read to its end across reconnections: each resumes after
    the last chunk printed. The API may drop the stream, refuse it for now (its Redis is
    away) or end it early (it restarts); that is retried for RECONNECT_S from the last
    event received, a final answer (no such job) ends the follow at once."""

    def __init__(self, client: "ApiClient", job_id: str) -> None:
        from shared.retry import Backoff

        self.client = client
        self.job_id = job_id
        self.backoff = Backoff(first_s=RECONNECT_PAUSE_S)
        self._last_id: str | None = None
        self._deadline: float | None = None

    def read_to_end(self) -> dict[str, Any]:
        from shared.client import ApiError, stream_events

        path = f"/api/v1/jobs/{self.job_id}/output/stream"
        for event in stream_events(self.client, path, last_event_id=self._last_id):
            # Connected: a later drop gets the whole wait again.
            self._deadline = None
            self.backoff.reset()
            if event.event == "end":
                end: dict[str, Any] = json.loads(event.data)
                return end
            print_chunks([json.loads(event.data)])
            self._last_id = event.last_id
        # Status 0, as an unreachable API: worth reconnecting after.
        raise ApiError(0, "ended_early", f"the output stream of job {self.job_id} ended early")

    def pause(self, delay: float) -> bool:
        """retry()'s wait: sleep before reconnecting; True once RECONNECT_S have passed."""
        now = time.monotonic()
        self._deadline = self._deadline or now + RECONNECT_S
        if now > self._deadline:
            return True
        time.sleep(delay)
        return False


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
