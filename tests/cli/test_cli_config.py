"""A bad JOBYARD_* value stops every command with exit status 2 and one line naming it."""

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cli.credentials import write_credentials

INVOCATIONS = [
    ["up"],
    ["api"],
    ["scheduler"],
    ["worker"],
    ["submit", "--", "true"],
    ["status", "j1"],
    ["logs", "j1"],
    ["cancel", "j1"],
    ["retry", "j1"],
    ["jobs"],
    ["workers"],
]

BAD_VALUES = {
    "JOBYARD_HEARTBEAT_S": "soon",
    "JOBYARD_BIND": "no-port",
    "JOBYARD_EXECUTOR": "kubernetes",
    "JOBYARD_API_URL": "not a url",
}


def assert_config_error(result: Result, variable: str) -> None:
    assert result.exit_code == 2, result.output
    assert variable in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""


@pytest.mark.parametrize("args", INVOCATIONS, ids=lambda args: args[0])
@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_bad_variable_exits_2_naming_it(
    jobyard: Callable[..., Result], args: list[str], variable: str
) -> None:
    result = jobyard(*args, env={variable: BAD_VALUES[variable]})
    assert_config_error(result, variable)


def test_bad_value_in_the_credentials_file_is_named(
    jobyard: Callable[..., Result], clean_environment: Path
) -> None:
    (clean_environment / ".jobyard").mkdir()
    write_credentials({"JOBYARD_API_URL": "nowhere"}, clean_environment / ".jobyard/credentials")
    assert_config_error(jobyard("jobs"), "JOBYARD_API_URL")


def test_up_starts_nothing_on_a_bad_value(
    jobyard: Callable[..., Result], clean_environment: Path
) -> None:
    jobyard("up", env={"JOBYARD_REDIS_URL": "http://wrong"})
    assert not (clean_environment / ".jobyard").exists()


def test_bad_bind_option_is_a_usage_error(jobyard: Callable[..., Result]) -> None:
    result = jobyard("up", "--bind", "localhost")
    assert result.exit_code == 2
    assert "HOST:PORT" in result.stderr
