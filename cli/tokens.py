"""`jobyard tokens`: an admin creates, lists and revokes people's access tokens."""

from typing import Any
from urllib.parse import quote

import click

from cli.context import api_command, make_client
from cli.jobs import print_json
from cli.render import age, table


@click.group()
def tokens() -> None:
    """Access tokens for people (an admin token is needed)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True,
              help="A user sees only their own jobs; an admin sees and acts on everything.")
@click.argument("name")
@api_command
def create(role: str, name: str) -> None:
    """Create a token for NAME, who will own the jobs it submits; prints the token."""
    answer = make_client().request("POST", "/api/v1/tokens", json={"name": name, "role": role})
    click.echo(answer["token"])
    click.echo(
        f"token for {answer['name']} ({answer['role']}): shown only this once, so keep it now "
        "(only its hash is stored)",
        err=True,
    )


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
