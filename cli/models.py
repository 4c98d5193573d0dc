"""kiln models list / show / compare / lineage / alias / tag / describe / delete / gc / export.

Every model is named ``NAME`` (the latest version), ``NAME:VERSION`` or ``NAME@ALIAS``.
"""
from __future__ import annotations

import json
import re
from datetime import datetime

import click

from cli.render import emit_json, fmt_metrics, table

REF = "NAME[:VERSION|@ALIAS]"
DEFAULT_LIMIT = 100
"""Versions ``kiln models list`` prints unless --limit says otherwise (like gh's lists)."""


def _svc():
    from cli.context import model_service  # noqa: PLC0415

    return model_service()


def _remote_or_svc():
    """The server (KILN_URL, or the embedded stack's) when there is one, else the local ModelService."""
    from cli.context import model_reader  # noqa: PLC0415

    return model_reader() or _svc()


def _local_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int | None) -> str:
    if n is None:
        return "missing"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group()
def models() -> None:
    """The model registry."""


def _query(kind, name, filters, order_by, desc, limit, all_versions):
    from services.models import ModelService  # noqa: PLC0415

    return ModelService.query(kind=kind, name=name, filters=filters, order_by=order_by, descending=desc,
                              limit=limit, all_versions=all_versions)


@models.command("list")
@click.option("--kind", type=click.Choice(["word2vec", "cnn"]), default=None, help="only models of this kind")
@click.option("--name", "name", metavar="GLOB", default=None, help="model names matching GLOB (* and ?)")
@click.option("--filter", "filters", metavar="EXPR", multiple=True,
              help="metric.NAME OP VALUE, param.NAME OP VALUE or tag.NAME OP VALUE; OP: = != < <= > >=; repeat to AND")
@click.option("--order-by", metavar="FIELD", default=None,
              help="name, version, created_at, kind, metric.NAME, param.NAME or tag.NAME (default: name)")
@click.option("--desc", is_flag=True, help="descending order")
@click.option("--limit", type=click.IntRange(1, 100_000), default=None,
              help=f"at most N versions (default {DEFAULT_LIMIT})")
@click.option("--all-versions", is_flag=True, help="every version, not only the latest of each model")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(kind, name, filters, order_by, desc, limit, all_versions, as_json) -> None:
    """Registered models: the latest version of each (or --all-versions), filtered and ordered.

    \b
    kiln models list --filter "metric.analogy_accuracy>=0.4" --filter tag.team=nlp \\
                     --order-by metric.analogy_accuracy --desc --limit 10
    """
    from cli.context import model_reader  # noqa: PLC0415

    remote = model_reader()
    if remote is not None:  # the server checks and runs the query; the table needs only its metric keys
        rows = remote.list(kind=kind, name=name, filters=filters, order_by=order_by, desc=desc,
                           limit=limit or DEFAULT_LIMIT, all_versions=all_versions)
        asked = metric_keys(filters, order_by)
    else:
        query = _query(kind, name, filters, order_by, desc, limit or DEFAULT_LIMIT, all_versions)
        rows = _svc().list(query)
        asked = tuple(f.key for f in query.filters if f.kind == "metric")
        if query.order is not None and query.order.kind == "metric":
            asked = (query.order.key, *asked)
    if as_json:
        emit_json(rows)
        return
    if limit is None and len(rows) == DEFAULT_LIMIT:
        click.echo(f"(the first {DEFAULT_LIMIT}; --limit N shows more)", err=True)
    if not rows:
        click.echo("no models match" if filters or kind or name else "no models registered")
        return
    keys = ("similarity_spearman", "analogy_accuracy", "accuracy", "words_per_s")
    table(["MODEL", "VERSION", "KIND", "CREATED", "ALIASES", "METRICS"],
          [[r["name"], r["version"], r["kind"], _local_time(r["created_at"]), ",".join(r["aliases"]),
            fmt_metrics(r["metrics"], tuple(dict.fromkeys(asked + keys)))] for r in rows])


_METRIC_FILTER = re.compile(r"[ \t]*metric\.([^\s=!<>]{1,250})[ \t]*(?:<=|>=|!=|==|=|<|>)")
_METRIC_FIELD = re.compile(r"metric\.([^\s=!<>]{1,250})")
"""The metric keys of ``--filter`` and ``--order-by`` as services/registry/search.py parses them (its
_FILTER and _FIELD): the thin client's table shows those metrics, without importing the query builder."""


def metric_keys(filters, order_by) -> tuple[str, ...]:
    """The metric keys a (valid) ``kiln models list`` asks about: the --order-by one first, then the filters'."""
    keys = tuple(m.group(1) for m in (_METRIC_FILTER.match(f) for f in filters) if m)
    order = _METRIC_FIELD.fullmatch(order_by) if order_by else None
    return (order.group(1), *keys) if order else keys


def list_query(argv: list[str]):
    """The VersionQuery ``kiln models list ARGV`` runs (for benchmarks and tests)."""
    ctx = list_cmd.make_context("list", list(argv))
    p = ctx.params
    return _query(p["kind"], p["name"], p["filters"], p["order_by"], p["desc"], p["limit"] or DEFAULT_LIMIT,
                  p["all_versions"])


@models.command()
@click.argument("ref", metavar=REF)
@click.option("--json", "as_json", is_flag=True)
def show(ref: str, as_json: bool) -> None:
    """A version's params, metrics (and per-epoch history), tags, aliases, files and lineage."""
    from cli.context import model_reader  # noqa: PLC0415

    d = (model_reader() or _svc()).show(ref)
    if as_json:
        emit_json(d)
        return
    click.echo(f"{d['name']}:{d['version']}  ({d['kind']}, created {_local_time(d['created_at'])})")
    if d["description"]:
        click.echo(f"  {d['description']}")
    if d["aliases"]:
        click.echo(f"aliases: {', '.join(d['name'] + '@' + a for a in d['aliases'])}")
    for section in ("params", "metrics", "tags"):
        if d[section]:
            click.echo(f"{section}:")
            for k, v in sorted(d[section].items()):
                click.echo(f"  {k:<24} {_value(v)}")
    if d["history"]:
        click.echo("history (by epoch):")
        for k, points in d["history"].items():
            click.echo(f"  {k:<24} " + "  ".join(f"{p['step']}:{p['value']:.4g}" for p in points))
    if d["artifacts"]:
        click.echo("artifacts:")
        for k, uri in sorted(d["artifacts"].items()):
            click.echo(f"  {k:<24} {_size(d['artifact_sizes'].get(k)):>10}  {uri}")
    click.echo("lineage:")
    for k, v in d["lineage"].items():
        if v:
            click.echo(f"  {k:<24} {v}")


def _value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


@models.command()
@click.argument("refs", metavar=f"{REF} {REF}...", nargs=-1, required=True)
@click.option("--all", "show_all", is_flag=True, help="also the rows where every version agrees")
@click.option("--json", "as_json", is_flag=True)
def compare(refs: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """Params, metrics and tags of two or more versions side by side; differences are marked '*'."""
    d = _remote_or_svc().compare(list(refs))
    if as_json:
        emit_json(d)
        return
    heads = [f"{m['name']}:{m['version']}" for m in d["models"]]
    rows = []
    for section in ("params", "metrics", "tags"):
        for key, row in d[section].items():
            if row["differ"] or show_all:
                mark = "*" if row["differ"] else ""
                rows.append([mark, f"{section[:-1]}.{key}", *["-" if v is None else _cell(v) for v in row["values"]]])
    if not rows:
        click.echo("no differences" + ("" if show_all else " (--all shows every row)"))
        return
    table(["", "KEY", *heads], rows)


def _cell(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else _value(v)


@models.command()
@click.argument("ref", metavar=REF)
@click.option("--json", "as_json", is_flag=True)
def lineage(ref: str, as_json: bool) -> None:
    """Where a version came from: job, input data, kiln version / commit, parent version."""
    d = _remote_or_svc().lineage(ref)
    if as_json:
        emit_json(d)
        return
    m = d["model"]
    click.echo(f"{m['name']}:{m['version']}")
    job = d["job"]
    if job:
        click.echo(f"  job        {job['id']} (attempt {job['attempt']}, by {job['user']}, {job['state']}, "
                   f"submitted {_local_time(job['submitted_at'])})")
    else:
        click.echo(f"  job        {d['job_id'] or '-'}" + (" (no record left)" if d["job_id"] else ""))
    data = d["data"]
    if data["paths"]:
        click.echo(f"  data       {', '.join(data['paths'])}")
    click.echo(f"  fingerprint {data['fingerprint'] or '-'}")
    click.echo(f"  kiln       {d['kiln_version'] or '-'}  commit {d['git_commit'] or '-'}")
    parent = d["trained_from"]
    click.echo(f"  trained from {parent['name']}:{parent['version']}" if parent else "  trained from -")
    if job:
        click.echo("  spec")
        for k, v in sorted((job["spec"].get("params") or {}).items()):
            click.echo(f"    {k:<20} {_value(v)}")


@models.command()
@click.argument("ref", metavar="NAME:VERSION|NAME")
@click.argument("alias")
@click.option("--delete", "delete_", is_flag=True, help="remove NAME@ALIAS")
def alias(ref: str, alias: str, delete_: bool) -> None:
    """Point ALIAS (e.g. production) at a version, moving it if it exists; NAME@ALIAS then names it."""
    from cli.context import model_reader  # noqa: PLC0415

    remote = model_reader()  # a server, if there is one (the client may have no store of its own)
    svc = remote or _svc()
    if delete_:
        version = svc.delete_alias(ref, alias)
        click.echo(f"removed {ref.split(':')[0].split('@')[0]}@{alias} (was version {version})")
        return
    mv = svc.set_alias(ref, alias)
    name, version = (mv["name"], mv["version"]) if remote is not None else (mv.name, mv.version)
    click.echo(f"{name}@{alias} -> version {version}")


@models.command()
@click.argument("ref", metavar=REF)
@click.argument("pairs", metavar="KEY=VALUE...", nargs=-1)
@click.option("--delete", "delete_keys", metavar="KEY", multiple=True, help="remove the tag KEY (repeatable)")
def tag(ref: str, pairs: tuple[str, ...], delete_keys: tuple[str, ...]) -> None:
    """Set tags on a version (NAME:VERSION, NAME@ALIAS) or on the model (NAME: all its versions show them)."""
    if not pairs and not delete_keys:
        raise click.UsageError("give KEY=VALUE pairs and/or --delete KEY")
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"not a KEY=VALUE pair: {pair!r}")
        tags[key] = value
    from cli.context import model_reader  # noqa: PLC0415

    svc = model_reader() or _svc()
    if tags:
        svc.set_tags(ref, tags)
    if delete_keys:
        svc.delete_tags(ref, list(delete_keys))
    done = [f"{k}={v}" for k, v in tags.items()] + [f"-{k}" for k in delete_keys]
    click.echo(f"tagged {ref}: {' '.join(done)}")


@models.command()
@click.argument("ref", metavar=REF)
@click.argument("text")
def describe(ref: str, text: str) -> None:
    """Set the description of a version, or of the model for a bare NAME ("" clears it)."""
    _remote_or_svc().describe(ref, text)
    click.echo(f"described {ref}")


@models.command()
@click.argument("ref", metavar="NAME:VERSION|NAME@ALIAS")
@click.option("--force", is_flag=True, help="delete even while an alias points at it")
@click.option("--yes", is_flag=True, help="do not ask")
@click.option("--json", "as_json", is_flag=True)
def delete(ref: str, force: bool, yes: bool, as_json: bool) -> None:
    """Delete one version from the registry, then its files from the artifact store."""
    from cli.context import model_reader  # noqa: PLC0415

    remote = model_reader()  # a server deletes as an admin token's user; else the stores directly
    svc = remote or _svc()
    confirmed = remote.deletable(ref) if remote is not None else svc.deletable(ref).ref
    if not yes:
        import sys  # noqa: PLC0415

        if not sys.stdin.isatty():  # nobody to answer the question: say what to do instead of "aborted"
            raise click.UsageError(f"no terminal to confirm the delete of {confirmed}: add --yes")
        click.confirm(f"delete {confirmed} and its files?", abort=True)
    d = svc.delete(confirmed, force=force)  # the version confirmed, even if an alias moves meanwhile
    if as_json:
        emit_json(d)
        return
    m = d["model"]
    click.echo(f"deleted {m['name']}:{m['version']} ({len(d['removed'])} files, {_size(d['freed_bytes'])} freed)")


@models.command()
@click.option("--dry-run", is_flag=True, help="only say what would be removed")
@click.option("--json", "as_json", is_flag=True)
def gc(dry_run: bool, as_json: bool) -> None:
    """Remove model files that no registered version references, and stale query caches."""
    from cli.context import store_admin  # noqa: PLC0415

    store_admin("models gc", artifacts=True)
    d = _svc().gc(dry_run=dry_run)
    if as_json:
        emit_json(d)
        return
    for path in d["removed"]:
        click.echo(f"{'would remove' if dry_run else 'removed'} {path}")
    verb = "would free" if dry_run else "freed"
    click.echo(f"{len(d['removed'])} files, {verb} {_size(d['freed_bytes'])}; {d['caches']} stale caches removed")


@models.command()
@click.argument("ref", metavar=REF)
@click.option("--format", "fmt", default="word2vec-text", show_default=True,
              type=click.Choice(["word2vec-text", "word2vec-binary", "safetensors", "onnx", "torchscript"]))
@click.option("-o", "--output", required=True, type=str, help="file to write (- for standard output)")
@click.option("--force", is_flag=True, help="replace an existing file")
def export(ref: str, fmt: str, output: str, force: bool) -> None:
    """Write a model to a file (gensim's KeyedVectors.load_word2vec_format reads the word2vec ones)."""
    path = _remote_or_svc().export(ref, fmt, output, force=force)  # a server writes it; the file is written here
    if output != "-":
        click.echo(f"wrote {path}", err=True)
