"""Client commands about jobs: submit, status, cancel, retry, delete and the jobs table."""

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.context import api_command, client_config, fail, make_client
from cli.follow import follow_job
from cli.render import age, command_line, job_text, outcome, table
from cli.watch import WATCH_OPTION, watch
from shared.batches import ARRAY_INDEX_ENV, ARRAY_LABEL, MAX_BATCH, array_jobs, new_array_id
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.states import TERMINAL_STATES, JobState

if TYPE_CHECKING:
    from cli.job_file import JobFile
    from shared.client import ApiClient

T = TypeVar("T")

PACED_FOR_S = 60.0  # how long a command waits out the API's rate limit before it fails

# Only shown: what the API gives a job for a resource it is not sent.
DEFAULTS = DEFAULT_JOB_RESOURCES.to_wire()


def parse_pairs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """('A=1', 'B=x=y') -> {'A': '1', 'B': 'x=y'}"""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def submission(
    base: dict[str, Any],
    command: tuple[str, ...],
    cpu: float | None,
    memory: int | None,
    optional: dict[str, Any],
) -> dict[str, Any]:
    """The POST /api/v1/jobs body: a job file's fields (`base`), with the flags given over
    them (env and labels merged key by key); what neither gives is not sent, so the
    server's defaults apply."""
    body = dict(base)
    if command:
        body["command"] = list(command)
    asked = {k: v for k, v in {"cpu": cpu, "memory_mb": memory}.items() if v is not None}
    resources = {**(base.get("resources") or {}), **asked}
    if resources:
        body["resources"] = resources
    for key, value in optional.items():
        if isinstance(value, dict):
            merged = {**(base.get(key) or {}), **value}
            if merged:
                body[key] = merged
        elif value is not None:
            body[key] = value
    return body


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--cpu", type=click.FloatRange(min=0, min_open=True),
              help=f"CPU cores the job needs [default: {DEFAULTS['cpu']:g}].")
@click.option("--memory", type=click.IntRange(min=1),
              help=f"Memory limit in MB [default: {DEFAULTS['memory_mb']}].")
@click.option("--image", help="Container image [default: the server's JOBYARD_DEFAULT_IMAGE].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds before it is killed.")
@click.option("--priority", type=int, help="Higher runs first.")
@click.option("--name", help="A name to recognise the job by.")
@click.option("--env", "env", multiple=True, callback=parse_pairs, metavar="K=V",
              help="Environment variable for the job (repeatable).")
@click.option("--label", "labels", multiple=True, callback=parse_pairs, metavar="K=V",
              help="Label (repeatable).")
@click.option("-f", "--follow", is_flag=True,
              help="Stream the output and exit with the job's exit code, like `docker run`.")
@click.option("--array", "array_size", type=click.IntRange(1, MAX_BATCH), metavar="N",
              help=f"Submit N copies in one request, each with {ARRAY_INDEX_ENV} (0 to N-1) "
              f"and the array's id (label {ARRAY_LABEL}=ID); prints the id.")
@click.option("-F", "--file", "job_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A job file (YAML or JSON) with the submission's fields; flags override it.")
@click.option("--json", "as_json", is_flag=True, help="Print the submitted job as JSON.")
@click.argument("command", nargs=-1)
@api_command
def submit(
    cpu: float | None,
    memory: int | None,
    image: str | None,
    timeout: float | None,
    priority: int | None,
    name: str | None,
    env: dict[str, str],
    labels: dict[str, str],
    follow: bool,
    array_size: int | None,
    job_file: Path | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Submit a job running COMMAND (put `--` before it), or the job in a job file; prints
    the job id."""
    if follow and as_json:
        raise click.UsageError("--follow prints the job's output: it does not go with --json")
    if follow and array_size:
        raise click.UsageError("--follow follows one job: it does not go with --array")
    optional = {"image": image, "timeout_s": timeout, "priority": priority, "name": name,
                "env": env, "labels": labels}
    read = _job_file(job_file)
    body = submission(read.fields if read else {}, command, cpu, memory, optional)
    if "command" not in body:
        raise click.UsageError("give the job's COMMAND after --, or a job file with `command`")
    client = make_client()
    if array_size:
        _submit_array(client, body, array_size, read, as_json)
        return
    job = _submitted(client, body, read)
    if as_json:
        print_json(job)
        return
    if not follow:
        click.echo(job["id"])
        return
    click.echo(f"job {job['id']} submitted", err=True)
    raise SystemExit(follow_job(client, job["id"]))


def _job_file(path: Path | None) -> "JobFile | None":
    if path is None:
        return None
    from cli.job_file import JobFileError, read

    try:
        return read(path, client_config().max_request_bytes)
    except JobFileError as exc:
        fail(str(exc), 2)


def _submit_array(
    client: "ApiClient", body: dict[str, Any], size: int, read: "JobFile | None", as_json: bool
) -> None:
    array_id = new_array_id()
    jobs = _submitted(client, array_jobs(body, size, array_id), read)["jobs"]
    if as_json:
        print_json(jobs)
        return
    click.echo(array_id)
    click.echo(
        f"{len(jobs)} jobs submitted: jobyard jobs --label {ARRAY_LABEL}={array_id}", err=True
    )


def _submitted(
    client: "ApiClient", body: dict[str, Any] | list[dict[str, Any]], read: "JobFile | None"
) -> Any:
    """The job the API stored (for a list of bodies, the batch's answer); a refusal of a job
    file's field names the file's line."""
    from shared.client import ApiError

    try:
        if isinstance(body, list):
            # The key makes a resubmission of the same array return its jobs, not a second set.
            return client.submit_batch(body, idempotency_key=body[0]["labels"][ARRAY_LABEL])
        return client.submit(body)
    except ApiError as exc:
        details = exc.details.get("json") if isinstance(exc.details, dict) else None
        if read is None or exc.status != 422 or not isinstance(details, dict):
            raise
        if isinstance(body, list):
            # Every job of an array is the same file's: the first refused one speaks for all.
            by_index = details.get("jobs")
            details = next(iter(by_index.values())) if isinstance(by_index, dict) else details
        fail(f"{exc.message}\n{read.problems(details)}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.argument("job_id")
@api_command
def status(as_json: bool, job_id: str) -> None:
    """Show one job: state, reason, timestamps, resources."""
    job = make_client().job(job_id)
    if as_json:
        print_json(job)
    else:
        click.echo(job_text(job))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.option("--array", "array_id", metavar="ID",
              help="Cancel every job of this array not finished yet (instead of JOB_ID).")
@click.argument("job_id", required=False)
@api_command
def cancel(as_json: bool, array_id: str | None, job_id: str | None) -> None:
    """Cancel a job; a running one is stopped by its worker within seconds."""
    if array_id is not None:
        if job_id is not None:
            raise click.UsageError("give a JOB_ID or --array ID, not both")
        _cancel_array(array_id, as_json)
        return
    if job_id is None:
        raise click.UsageError("give a JOB_ID, or --array ID")
    job = make_client().cancel(job_id) or {}
    if as_json:
        print_json(job)
        return
    state = job.get("state")
    if state and state != JobState.CANCELLED:
        click.echo(f"{job_id}: cancel requested ({state})")
    else:
        click.echo(f"{job_id}: cancelled")


def _cancel_array(array_id: str, as_json: bool) -> None:
    from shared.client import ApiError

    client = make_client()
    cancelled: list[Any] = []
    for job in _array_members(client, array_id):
        if job["state"] in TERMINAL_STATES:
            continue
        try:
            cancelled.append(_paced(partial(client.cancel, job["id"])))
        except ApiError as exc:
            if exc.status not in (404, 409):  # it ended, or went, since the list was read
                raise
    if as_json:
        print_json(cancelled)
        return
    click.echo(f"array {array_id}: cancel asked of {len(cancelled)} jobs")


def _paced(call: Callable[[], T]) -> T:
    """The call, tried again after a transient error (the rate limit that cancelling a
    thousand jobs one by one meets) at the server's Retry-After, for up to a minute."""
    import time

    from shared.retry import retry as retry_transient

    give_up_at = time.monotonic() + PACED_FOR_S

    def wait(delay_s: float) -> bool:
        if time.monotonic() + delay_s > give_up_at:
            return True
        time.sleep(delay_s)
        return False

    return retry_transient(call, wait)


def _array_members(client: "ApiClient", array_id: str) -> list[dict[str, Any]]:
    """Every job carrying the array's label, through all the list's pages."""
    filters: dict[str, Any] = {"label": f"{ARRAY_LABEL}={array_id}", "limit": 500}
    members: list[dict[str, Any]] = []
    while True:
        page = client.jobs(**filters)
        members += page["jobs"]
        if not page.get("next_cursor"):
            return members
        filters["cursor"] = page["next_cursor"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.argument("job_id")
@api_command
def retry(as_json: bool, job_id: str) -> None:
    """Queue a FAILED or CANCELLED job again, as a new attempt."""
    job = make_client().request("POST", f"/api/v1/jobs/{job_id}/retry") or {}
    if as_json:
        print_json(job)
        return
    click.echo(f"{job_id}: {job.get('state', 'QUEUED')} (attempt {job.get('attempt', '?')})")


@click.command()
@click.argument("job_id")
@api_command
def delete(job_id: str) -> None:
    """Delete a finished job with its output and history."""
    make_client().delete_job(job_id)
    click.echo(f"{job_id}: deleted")


def job_row(job: dict[str, Any]) -> list[str]:
    exit_code = job.get("exit_code")
    return [
        str(job.get("id", "")),
        str(job.get("name") or "-"),
        outcome({**job, "exit_code": None}),
        "-" if exit_code is None else str(exit_code),
        str(job.get("worker_id") or "-"),
        age(job.get("created_at")),
        command_line(job.get("command"))[:50],
    ]


def counts_line(counts: dict[str, Any]) -> str:
    """'QUEUED 3  RUNNING 1' (states with a count of zero are left out)."""
    found = {state: counts.get(state.value, counts.get(state.value.lower())) for state in JobState}
    return "  ".join(f"{state} {count}" for state, count in found.items() if count)


@click.command("jobs")
@click.option("--state", type=click.Choice([s.value for s in JobState], case_sensitive=False),
              help="Only jobs in this state.")
@click.option("--label", help="Only jobs with this label (KEY=VALUE).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--cursor", help="Continue after the last page (printed under the table).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@WATCH_OPTION
@api_command
def jobs_command(
    state: str | None,
    label: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    watch_s: float | None,
) -> None:
    """List jobs, newest first."""
    filters: dict[str, Any] = {"limit": limit}
    if state:
        filters["state"] = state.upper()
    if label:
        filters["label"] = label
    if cursor:
        filters["cursor"] = cursor
    client = make_client()
    if watch_s is not None:
        watch(lambda: jobs_text(client.jobs(**filters)), watch_s, "jobyard jobs")
        return
    body = client.jobs(**filters)
    if as_json:
        print_json(body)
        return
    click.echo(jobs_text(body))


def jobs_text(body: dict[str, Any]) -> str:
    headers = ["ID", "NAME", "STATE", "EXIT", "WORKER", "CREATED", "COMMAND"]
    lines = [table(headers, [job_row(job) for job in body.get("jobs", [])])]
    if body.get("counts"):
        lines.append("\n" + counts_line(body["counts"]))
    if body.get("next_cursor"):
        lines.append(f"more: jobyard jobs --cursor {body['next_cursor']}")
    return "\n".join(lines)
