"""kiln up / down / doctor / db: the stack's life and health."""
from __future__ import annotations

import sys

import click

from cli.render import emit_json
from shared.config import get_settings, mask_url
from shared.errors import KilnError


@click.command()
def up() -> None:
    """Start the embedded stack (local Ray, redis-server, SQLite), the dispatcher and the local HTTP server;
    on a running stack, apply changed caps on running jobs (KILN_MAX_RUNNING_JOBS / _PER_USER)."""
    from services import stack  # noqa: PLC0415

    settings = get_settings()
    resolved = stack.up(settings, on_start=lambda home: click.echo(f"starting the local stack under {home}", err=True))
    stack.apply_caps(resolved)  # KILN_MAX_RUNNING_JOBS / _PER_USER changed since the stack started: now in force
    from services.registry import Database  # noqa: PLC0415

    db = Database(resolved.db_url)  # creates / upgrades the schema
    from services.api.local import start_local_server  # noqa: PLC0415

    url = start_local_server(resolved, db)
    click.echo(f"kiln is up: redis {mask_url(resolved.redis_url)}  ray {resolved.ray_address}  "
               f"db {mask_url(resolved.db_url)}")
    from services.health import artifact_warning, cluster_node_count  # noqa: PLC0415

    warning = artifact_warning(resolved.artifacts, cluster_node_count(resolved.redis_url))
    if warning:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"server {url}  (your token: {resolved.kiln_home / 'api_token'})")


@click.command()
@click.option("--force", is_flag=True,
              help="stop even while jobs run: they go back to the queue without counting an attempt")
def down(force: bool) -> None:
    """Stop the embedded stack. Running jobs are re-queued (with --force, or after you confirm) and
    resume from their last checkpoint at the next `kiln up`; their records stay in SQL."""
    from services import stack  # noqa: PLC0415

    from services.api.local import stop_local_server  # noqa: PLC0415

    settings = get_settings()
    if stack.read_stack(settings) is None:
        stop_local_server(settings)
        stack.down(settings)  # cleans what a dead stack left behind
        click.echo("kiln was not running")
        return
    try:
        active = stack.active_jobs(settings)
    except KilnError as e:
        if not force:
            click.echo(f"error: cannot tell which jobs run ({e.message}); `kiln down --force` stops the stack "
                       "anyway (running jobs are then retried at the next `kiln up`)", err=True)
            sys.exit(1)
        active = []
    if active and not force:
        ids = ", ".join(r.id for r in active[:5]) + (" ..." if len(active) > 5 else "")
        what = (f"{len(active)} job(s) running ({ids}): stopping the stack stops them and puts them back in "
                "the queue without counting an attempt; they resume from their last checkpoint at the next `kiln up`")
        if not sys.stdin.isatty():
            click.echo(f"error: {what}. Run `kiln down --force` to do it.", err=True)
            sys.exit(1)
        click.confirm(f"{what}. Stop now?", abort=True, err=True)
    stop_local_server(settings)
    result = stack.down(settings, requeue=bool(active))
    if result is None:
        click.echo("kiln was not running")
        return
    for job_id in result["requeued"]:
        click.echo(f"{job_id} re-queued (attempt not counted)")
    click.echo("kiln is down")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def doctor(as_json: bool) -> None:
    """Check Ray, Redis and the database; show versions, nodes, GPUs seen and the settings in force."""
    from services.health import check_all  # noqa: PLC0415

    from services.api.local import local_server_url  # noqa: PLC0415

    report = check_all(get_settings())
    report["server_url"] = local_server_url(get_settings())
    if as_json:
        emit_json(report)
    else:
        for name, item in report["checks"].items():
            mark = "ok " if item["ok"] else "-- "
            click.echo(f"{mark} {name:<9} {item['detail']}")
        if report["nodes"]:
            click.echo("nodes:")
            for n in report["nodes"]:
                click.echo(f"    {n['node_id'][:12]}  {n['address'] or '?':<15} {n['cpus']:g} CPUs  {n['gpus']:g} GPUs  "
                           f"{n['memory_bytes'] / 2**30:.1f} GiB{'  (head)' if n['head'] else ''}")
        click.echo(f"server:  {report['server_url'] or 'not running (`kiln up` starts it, or `kiln serve`)'}")
        for warning in report["warnings"]:
            click.echo(f"warning: {warning}")
        click.echo("settings:")
        for k, v in report["settings"].items():
            click.echo(f"    {k:<20} {_shown_setting(k, v, report['in_use'])}")
    if not all(item["ok"] for item in report["checks"].values()):
        raise SystemExit(1)


def _shown_setting(name: str, value, in_use: dict) -> str:
    """A setting as people read it: the embedded part's address when unset, "no cap" for an unset cap."""
    if name == "KILN_REDIS_URL" and value is None:
        return f"(embedded) {in_use['redis_url'] or 'not running'}"
    if name == "RAY_ADDRESS" and value is None:
        return f"(embedded) {in_use['ray_address'] or 'not running'}"
    if name.startswith("KILN_MAX_RUNNING") and value is None:
        return "no cap"
    return str(value)


@click.group()
def db() -> None:
    """The registry database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations to KILN_DB_URL."""
    from cli.context import store_admin  # noqa: PLC0415
    from services.registry.engine import upgrade  # noqa: PLC0415
    from services.stack import private_home  # noqa: PLC0415

    store_admin("db")
    settings = get_settings()
    private_home(settings)  # a new SQLite registry is created 0600
    upgrade(settings.db_url)
    click.echo(f"database at {mask_url(settings.db_url)} is up to date")


@db.command("current")
@click.option("--json", "as_json", is_flag=True)
def db_current(as_json: bool) -> None:
    """The schema revision of KILN_DB_URL, next to the one this kiln needs."""
    from cli.context import store_admin  # noqa: PLC0415
    from services.registry.engine import schema_status  # noqa: PLC0415

    store_admin("db")
    settings = get_settings()
    d = schema_status(settings.db_url)
    if as_json:
        emit_json(d)
        return
    where = mask_url(settings.db_url)
    if d["up_to_date"]:
        click.echo(f"{d['current']} (up to date) at {where}")
    else:
        click.echo(f"{d['current'] or 'no kiln schema'} at {where}; this kiln needs {d['head']}: run `kiln db upgrade`")
