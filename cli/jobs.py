"""Client commands about jobs: submit, status, cancel, retry and the jobs table."""

import json
from typing import Any

import click

from cli.context import api_command, make_client
from cli.follow import follow_job
from cli.render import age, command_line, job_text, outcome, table
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.states import JobState

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
    command: tuple[str, ...],
    cpu: float | None,
    memory: int | None,
    optional: dict[str, Any],
) -> dict[str, Any]:
    """The POST /api/v1/jobs body; options left out are not sent, so server defaults apply."""
    body: dict[str, Any] = {"command": list(command)}
    asked = {"cpu": cpu, "memory_mb": memory}
    resources = {key: value for key, value in asked.items() if value is not None}
    if resources:
        body["resources"] = resources
    body.update({key: value for key, value in optional.items() if value not in (None, {})})
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
@click.argument("command", nargs=-1, required=True)
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
    command: tuple[str, ...],
) -> None:
    """Submit a job running COMMAND (put `--` before it); prints the job id."""
    optional = {"image": image, "timeout_s": timeout, "priority": priority, "name": name,
                "env": env, "labels": labels}
    client = make_client()
    job = client.submit(submission(command, cpu, memory, optional))
    if not follow:
        click.echo(job["id"])
        return
    click.echo(f"job {job['id']} submitted", err=True)
    raise SystemExit(follow_job(client, job["id"]))


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
@click.argument("job_id")
@api_command
def cancel(job_id: str) -> None:
    """Cancel a job; a running one is stopped by its worker within seconds."""
    job = make_client().cancel(job_id) or {}
    state = job.get("state")
    if state and state != JobState.CANCELLED:
        click.echo(f"{job_id}: cancel requested ({state})")
    else:
        click.echo(f"{job_id}: cancelled")


@click.command()
@click.argument("job_id")
@api_command
def retry(job_id: str) -> None:
    """Queue a FAILED or CANCELLED job again, as a new attempt."""
    job = make_client().request("POST", f"/api/v1/jobs/{job_id}/retry") or {}
    click.echo(f"{job_id}: {job.get('state', 'QUEUED')} (attempt {job.get('attempt', '?')})")


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
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--cursor", help="Continue after the last page (printed under the table).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@api_command
def jobs_command(state: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    filters: dict[str, Any] = {"limit": limit}
    if state:
        filters["state"] = state.upper()
    if cursor:
        filters["cursor"] = cursor
    body = make_client().jobs(**filters)
    if as_json:
        print_json(body)
        return
    headers = ["ID", "NAME", "STATE", "EXIT", "WORKER", "CREATED", "COMMAND"]
    click.echo(table(headers, [job_row(job) for job in body.get("jobs", [])]))
    if body.get("counts"):
        click.echo("\n" + counts_line(body["counts"]))
    if body.get("next_cursor"):
        click.echo(f"more: jobyard jobs --cursor {body['next_cursor']}")
