"""The `jobyard` command group: every subcommand, and one place that turns a bad JOBYARD_*
value into a one-line message and exit status 2."""

import importlib
from typing import Any

import click

from shared.config import ConfigError

# Each command's module, imported only when that command runs (or help lists them all):
# `jobyard status` need not load what `jobyard up` does.
COMMANDS = {
    "up": "cli.up:up",
    "api": "cli.services:api",
    "scheduler": "cli.services:scheduler",
    "worker": "cli.services:worker",
    "submit": "cli.jobs:submit",
    "status": "cli.jobs:status",
    "logs": "cli.follow:logs",
    "cancel": "cli.jobs:cancel",
    "retry": "cli.jobs:retry",
    "delete": "cli.jobs:delete",
    "jobs": "cli.jobs:jobs_command",
    "workers": "cli.workers:workers",
    "tokens": "cli.tokens:tokens",
    "completion": "cli.completion:completion",
}


class JobyardGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, _, name = where.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command), where
        return command

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


if __name__ == "__main__":
    main(prog_name="jobyard")
