"""What every client command shares: its configuration, its ApiClient and its error handling.

API errors print `error: <message>` and exit 1; an unreachable API adds a hint. Configuration
errors are handled once for all commands, in cli.main.
"""

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import click

from cli.credentials import CREDENTIALS_FILE, client_environment, read_credentials
from shared.config import Config

if TYPE_CHECKING:
    from shared.client import ApiClient

P = ParamSpec("P")
R = TypeVar("R")


def client_config() -> Config:
    """JOBYARD_API_URL and JOBYARD_TOKEN from the environment, else from .jobyard/credentials."""
    return Config.from_env(client_environment(os.environ, read_credentials(CREDENTIALS_FILE)))


def make_client() -> "ApiClient":
    from shared.client import ApiClient

    config = client_config()
    return ApiClient(config.api_url, config.token)


def fail(message: str, status: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(status)


def unreachable_hint(base_url: str) -> str:
    return (
        f"cannot reach the jobyard API at {base_url}. Is `jobyard up` running? "
        "(Set JOBYARD_API_URL to use another server.)"
    )


def api_command(function: Callable[P, R]) -> Callable[P, R]:
    """Turn ApiError into one `error:` line on stderr and exit status 1."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from shared.client import ApiError, ApiUnreachable

        try:
            return function(*args, **kwargs)
        except ApiUnreachable:
            fail(unreachable_hint(client_config().api_url))
        except ApiError as exc:
            hint = " (set JOBYARD_TOKEN, or run `jobyard up` here)" if exc.status == 401 else ""
            fail(exc.message + hint)

    return wrapper
