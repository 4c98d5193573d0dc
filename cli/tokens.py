"""kiln tokens create / list / revoke: bearer tokens for the HTTP API (`kiln serve`)."""
from __future__ import annotations

import click

from cli.render import emit_json, table


def _svc():
    from cli.context import backends, store_admin  # noqa: PLC0415

    store_admin("tokens")
    from services.tokens import TokenService  # noqa: PLC0415

    return TokenService(backends().db)


@click.group()
def tokens() -> None:
    """Bearer tokens for the HTTP API (stored hashed; a token is shown once)."""


@tokens.command()
@click.option("--user", required=True, help="who the token authenticates as (jobs it submits are theirs)")
@click.option("--admin", is_flag=True, help="may cancel or retry anyone's job and delete models")
def create(user: str, admin: bool) -> None:
    """Create a token; it is printed alone on the last line (store it now: only its hash is kept)."""
    token, rec = _svc().create(user, admin=admin)
    click.echo(f"token {rec['id']} for {rec['user']}{' (admin)' if rec['admin'] else ''}; it is shown only once:",
               err=True)
    click.echo(token)


@tokens.command("list")
@click.option("--user", default=None, help="only this user's tokens")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(user: str | None, as_json: bool) -> None:
    """Every token's id, user, admin flag and dates (never the token itself)."""
    rows = _svc().list(user)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tokens")
        return
    table(["ID", "USER", "ADMIN", "CREATED", "REVOKED"],
          [[r["id"], r["user"], "yes" if r["admin"] else "", r["created_at"][:19], (r["revoked_at"] or "")[:19]]
           for r in rows])


@tokens.command()
@click.argument("token_id", type=int, required=False)
@click.option("--user", default=None, help="revoke every token of this user")
def revoke(token_id: int | None, user: str | None) -> None:
    """Revoke token TOKEN_ID, or every token of --user NAME."""
    if (token_id is None) == (user is None):
        raise click.UsageError("give a TOKEN_ID or --user NAME")
    svc = _svc()
    if user is not None:
        click.echo(f"revoked {svc.revoke_user(user)} token(s) of {user}")
    else:
        rec = svc.revoke(token_id)
        click.echo(f"revoked token {rec['id']} of {rec['user']}")
