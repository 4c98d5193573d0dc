"""kiln models list / show / export / alias / tag / delete."""
from __future__ import annotations

from datetime import datetime

import click

from cli.render import emit_json, fmt_metrics, table


def _svc():
    from cli.context import model_service  # noqa: PLC0415

    return model_service()


@click.group()
def models() -> None:
    """The model registry."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """Every registered model version, newest first."""
    rows = _svc().list()
    if as_json:
        emit_json([{k: r[k] for k in ("name", "version", "kind", "created_at", "metrics")} for r in rows])
        return
    if not rows:
        click.echo("no models registered")
        return
    table(["MODEL", "VERSION", "KIND", "CREATED", "ALIASES", "METRICS"],
          [[r["name"], r["version"], r["kind"],
            datetime.fromisoformat(r["created_at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            ",".join(r["aliases"]), fmt_metrics(r["metrics"])] for r in rows])


@models.command()
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.option("--json", "as_json", is_flag=True)
def show(ref: str, as_json: bool) -> None:
    """A version's params, metrics, artifacts and lineage (latest version unless given)."""
    d = _svc().show(ref)
    if as_json:
        emit_json(d)
        return
    click.echo(f"{d['name']}:{d['version']}  ({d['kind']}, created {d['created_at']})")
    if d["aliases"]:
        click.echo(f"aliases: {', '.join(d['aliases'])}")
    for section in ("params", "metrics", "artifacts", "lineage", "tags"):
        if d.get(section):
            click.echo(f"{section}:")
            for k, v in sorted(d[section].items()):
                click.echo(f"  {k:<22} {v}")


@models.command()
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.option("--format", "fmt", default="word2vec-text", show_default=True,
              type=click.Choice(["word2vec-text", "word2vec-binary", "safetensors"]))
@click.option("-o", "--output", required=True, type=str, help="file to write (- for standard output)")
@click.option("--force", is_flag=True, help="replace an existing file")
def export(ref: str, fmt: str, output: str, force: bool) -> None:
    """Write a model's vectors to a file (gensim's KeyedVectors.load_word2vec_format reads the word2vec ones)."""
    path = _svc().export(ref, fmt, output, force=force)
    if output != "-":
        click.echo(f"wrote {path}", err=True)


@models.command()
@click.argument("ref", metavar="NAME:VERSION")
@click.argument("alias")
def alias(ref: str, alias: str) -> None:
    """Point ALIAS (e.g. production) at a version: NAME@ALIAS then resolves to it."""
    svc = _svc()
    mv = svc.get(ref)
    svc.b.db.models.set_alias(mv.name, alias, mv.version)
    click.echo(f"{mv.name}@{alias} -> version {mv.version}")


@models.command()
@click.argument("ref", metavar="NAME[:VERSION]")
@click.argument("key")
@click.argument("value")
def tag(ref: str, key: str, value: str) -> None:
    """Set a tag on a model (NAME) or on one version (NAME:VERSION)."""
    svc = _svc()
    from services.registry import parse_ref  # noqa: PLC0415

    name, version, alias_ = parse_ref(ref)
    if alias_:
        version = svc.get(ref).version
    svc.b.db.models.set_tag(name, key, value, version=version)
    click.echo(f"tagged {ref}: {key}={value}")


@models.command()
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--yes", is_flag=True, help="do not ask")
def delete(ref: str, yes: bool) -> None:
    """Delete one model version from the registry (its artifact files stay)."""
    svc = _svc()
    mv = svc.get(ref)
    if ":" not in ref:
        raise click.UsageError("name the version to delete: NAME:VERSION")
    if not yes:
        click.confirm(f"delete {mv.ref}?", abort=True)
    svc.b.db.models.delete_version(mv.name, mv.version)
    click.echo(f"deleted {mv.ref}")
