"""`jobyard tokens`: an admin creates, lists and revokes people's access tokens."""

from typing import Any
from urllib.parse import quote

import click

from cli.context import api_command, fail, make_client
from cli.jobs import print_json
from cli.render import age, table
from shared.identities import PERSON_ROLES


@click.group()
def tokens() -> None:
    """Access tokens for people (an admin token is needed)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(PERSON_ROLES), default="user", show_default=True,
              help="A user sees only their own jobs; an admin sees and acts on everything.")
@click.argument("name")
@api_command
def create(role: str, name: str) -> None:
    """Create a token for NAME, who will own the jobs it submits; prints the token."""
    from shared.client import ApiError

    try:
        answer = make_client().request("POST", "/api/v1/tokens", json={"name": name, "role": role})
    except ApiError as exc:
        if exc.status != 422:
            raise  # api_command says it, as for every command
        fail(invalid_message(exc.message, exc.details))
    click.echo(answer["token"])
    click.echo(
        f"token for {answer['name']} ({answer['role']}): shown only this once, so keep it now "
        "(only its hash is stored)",
        err=True,
    )


def invalid_message(message: str, details: Any) -> str:
    """The API's 422 message with why the name was refused ("admin is the name of a
    configured token"), not only that the request had invalid values."""
    fields = details.get("json") if isinstance(details, dict) else None
    reasons = fields.get("name") if isinstance(fields, dict) else None
    return f"{message}: {'; '.join(map(str, reasons))}" if reasons else message


def token_row(token: dict[str, Any]) -> list[str]:
    last_used = token.get("last_used_at")
    return [
        str(token.get("name", "")),
        str(token.get("role") or "-"),
        age(token.get("created_at")),
        age(last_used) if last_used else "never",
    ]


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@api_command
def list_tokens(as_json: bool) -> None:
    """List people's tokens: name, role, created, last used (never the token)."""
    body = make_client().request("GET", "/api/v1/tokens")
    if as_json:
        print_json(body)
        return
    rows = [token_row(token) for token in body.get("tokens", [])]
    click.echo(table(["NAME", "ROLE", "CREATED", "LAST USED"], rows))


@tokens.command("revoke")
@click.argument("name")
@api_command
def revoke(name: str) -> None:
    """Revoke NAME's token; the name is free for a new one."""
    make_client().request("DELETE", f"/api/v1/tokens/{quote(name, safe='')}")
    click.echo(f"{name}: revoked")
