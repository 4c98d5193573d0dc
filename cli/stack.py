"""kiln up / down / doctor / db: the stack's life and health."""
from __future__ import annotations

import click

from cli.render import emit_json
from shared.config import get_settings


@click.command()
def up() -> None:
    """Start the embedded stack (local Ray, redis-server, SQLite) and the dispatcher."""
    from services import stack  # noqa: PLC0415

    settings = get_settings()
    resolved = stack.up(settings)
    from services.registry import Database  # noqa: PLC0415

    Database(resolved.db_url)  # creates / upgrades the schema
    click.echo(f"kiln is up: redis {resolved.redis_url}  ray {resolved.ray_address}  db {resolved.db_url}")


@click.command()
def down() -> None:
    """Stop the embedded stack (running jobs are stopped; their records stay in SQL)."""
    from services import stack  # noqa: PLC0415

    settings = get_settings()
    if stack.down(settings):
        click.echo("kiln is down")
    else:
        click.echo("kiln was not running")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def doctor(as_json: bool) -> None:
    """Check Ray, Redis and the database; show versions, GPUs seen and the settings in force."""
    from services.health import check_all  # noqa: PLC0415

    report = check_all(get_settings())
    if as_json:
        emit_json(report)
    else:
        for name, item in report["checks"].items():
            mark = "ok " if item["ok"] else "-- "
            click.echo(f"{mark} {name:<9} {item['detail']}")
        click.echo("settings:")
        for k, v in report["settings"].items():
            click.echo(f"    {k:<20} {v}")
    if not all(item["ok"] for item in report["checks"].values()):
        raise SystemExit(1)


@click.group()
def db() -> None:
    """The registry database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations to KILN_DB_URL."""
    from services.registry.engine import upgrade  # noqa: PLC0415

    settings = get_settings()
    upgrade(settings.db_url)
    click.echo(f"database at {settings.db_url} is up to date")
