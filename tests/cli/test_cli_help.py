"""`jobyard --help` lists every command, and stays cheap: services are imported only when run."""

import ast
import subprocess
import sys
from collections.abc import Callable

import click
from click.testing import Result

from cli.main import main

COMMANDS = {
    "up", "api", "scheduler", "worker",
    "submit", "status", "logs", "cancel", "retry", "delete", "jobs", "workers", "tokens",
    "completion",
}  # fmt: skip

LAZY_MODULES = (
    "api.app", "scheduler.loop", "worker_agent.agent", "gunicorn", "docker", "requests", "yaml",
    "marshmallow",
)  # fmt: skip


# Besides those: the other commands' modules (jobyard up's, the services') and requests,
# whose import alone once took a third of `jobyard submit --follow -- true`.
CLIENT_UNUSED = (*LAZY_MODULES, "cli.up", "cli.services", "cli.tokens", "cli.processes", "psutil")


def listed_commands(help_text: str) -> set[str]:
    section = help_text.split("Commands:")[1]
    return {line.split()[0] for line in section.splitlines() if line.strip()}


def test_help_lists_every_command(jobyard: Callable[..., Result]) -> None:
    result = jobyard("--help")
    assert result.exit_code == 0, result.output
    assert listed_commands(result.output) == COMMANDS
    assert set(main.list_commands(click.Context(main))) == COMMANDS


def test_every_command_has_help(jobyard: Callable[..., Result]) -> None:
    for command in sorted(COMMANDS):
        result = jobyard(command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert f"Usage: main {command}" in result.output


def loaded_by(args: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported once `jobyard ARGS` has run."""
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {modules!r} if m in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED " in run.stdout, run.stdout + run.stderr
    listed: list[str] = ast.literal_eval(run.stdout.split("LOADED ", 1)[1].strip())
    return listed


def test_help_imports_no_service() -> None:
    assert loaded_by(["--help"], LAZY_MODULES) == []


def test_a_client_command_imports_only_what_it_runs() -> None:
    assert loaded_by(["status", "--help"], CLIENT_UNUSED) == []


def test_console_script_runs() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"], capture_output=True, text=True, check=True
    )
    assert "0.1.0" in run.stdout
