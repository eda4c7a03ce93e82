"""The `jobyard` command group: every subcommand, and one place that turns a bad JOBYARD_*
value into a one-line message and exit status 2."""

from typing import Any

import click

from cli.completion import completion
from cli.follow import logs
from cli.jobs import cancel, delete, jobs_command, retry, status, submit
from cli.services import api, scheduler, worker
from cli.tokens import tokens
from cli.up import up
from cli.workers import workers
from shared.config import ConfigError


class JobyardGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: bad configuration: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=JobyardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobyard", prog_name="jobyard")
def main() -> None:
    """jobyard: a distributed job scheduler with resource-aware placement.

    `jobyard up` runs everything on this machine; the client commands then find the API and
    a token in ./.jobyard/credentials (or JOBYARD_API_URL and JOBYARD_TOKEN).
    """


COMMANDS = (
    up, api, scheduler, worker, submit, status, logs, cancel, retry, delete, jobs_command,
    workers, tokens, completion,
)
for command in COMMANDS:
    main.add_command(command)


if __name__ == "__main__":
    main(prog_name="jobyard")
