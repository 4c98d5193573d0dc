"""kiln jobs / status / logs / cancel."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from cli.render import emit_json, fmt_eta, fmt_metrics, fmt_rate, table


def _svc():
    from cli.context import job_service  # noqa: PLC0415

    return job_service()


def _reader():
    from cli.context import job_reader  # noqa: PLC0415

    return job_reader()


def _age(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.option("--state", default=None, help="only jobs in this state (QUEUED, RUNNING, SUCCEEDED, ...)")
@click.option("--limit", type=int, default=None, help="at most this many (newest first)")
@click.option("--json", "as_json", is_flag=True)
def jobs(state: str | None, limit: int | None, as_json: bool) -> None:
    """List jobs, newest first (from SQL, so history survives a Redis or cluster restart)."""
    views = _reader().list(state=state, limit=limit)
    if as_json:
        emit_json(views)
        return
    rows = []
    for v in views:
        model = f"{v['model']['name']}:{v['model']['version']}" if v.get("model") else ""
        rows.append([v["id"], v["name"], v["kind"], v["state"], f"{v['progress'] * 100:.0f}%", v["attempt"],
                     _age(v["submitted_at"]), model or (v.get("error") or v.get("reason") or "")[:60]])
    if not rows:
        click.echo("no jobs")
        return
    table(["JOB", "NAME", "KIND", "STATE", "PROGRESS", "ATTEMPT", "SUBMITTED", "MODEL / ERROR / REASON"], rows)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """Show one job: state, progress, throughput, ETA, metrics, error."""
    v = _reader().get(job_id)
    if as_json:
        emit_json(v)
        return
    lines = [("job", v["id"]), ("name", v["name"]), ("kind", v["kind"]), ("user", v["user"]), ("state", v["state"]),
             ("progress", f"{v['progress'] * 100:.1f}%"), ("attempt", v["attempt"]),
             ("submitted", _age(v["submitted_at"])), ("started", _age(v["started_at"])),
             ("finished", _age(v["finished_at"]))]
    if v.get("throughput"):
        lines.append(("throughput", f"{fmt_rate(v['throughput'])} {v.get('throughput_unit') or ''}"))
    if v.get("epoch"):
        lines.append(("epoch", f"{v['epoch']}/{v.get('epochs') or '?'}"))
    if v.get("loss") is not None:
        lines.append(("loss", f"{v['loss']:.4f}"))
    if v.get("eta_s") is not None and v["state"] == "RUNNING":
        lines.append(("eta", fmt_eta(v["eta_s"])))
    if v.get("model"):
        lines.append(("model", f"{v['model']['name']}:{v['model']['version']}"))
    if v.get("metrics"):
        lines.append(("metrics", fmt_metrics(v["metrics"])))
    if v.get("live"):
        lines.append(("live", " ".join(f"{k}={val:.4g}" for k, val in v["live"].items())))
    if v.get("placement"):
        lines.append(("placement", ", ".join(f"worker {p.get('worker')} on {p.get('node_ip') or p.get('node_id', '?')[:12]}"
                                             for p in v["placement"])))
    if v["state"] == "QUEUED":
        if v.get("queue_position"):
            lines.append(("queue", f"#{v['queue_position']}"))
        if v.get("reason"):
            lines.append(("waiting", v["reason"]))
    if v.get("error"):
        lines.append(("error", v["error"]))
    for k, val in lines:
        if val not in (None, ""):
            click.echo(f"{k:<11} {val}")


@click.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
@click.option("--json", "as_json", is_flag=True,
              help='JSON Lines: one object per log line, {"time": ISO 8601, "level": ..., "message": ...}')
def logs(job_id: str, follow: bool, as_json: bool) -> None:
    """Print a job's log lines (with --json, one JSON object per line, flushed as they come)."""
    for entry in _reader().logs(job_id, follow=follow):
        when = datetime.fromtimestamp(float(entry["t"]), tz=timezone.utc)
        if as_json:
            click.echo(json.dumps({"time": when.isoformat(), "level": entry["level"], "message": entry["msg"]}))
        else:
            click.echo(f"{when.astimezone().strftime('%Y-%m-%d %H:%M:%S')} {entry['level']:<7} {entry['msg']}")


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a job: a queued job leaves the queue; a running one is stopped and its workers released."""
    from cli.context import job_writer  # noqa: PLC0415

    svc = job_writer()
    before = svc.get(job_id)["state"]
    v = svc.cancel(job_id)
    if as_json:
        emit_json(v)
    elif before == v["state"]:
        click.echo(f"{job_id} was already {before}; nothing to cancel")
    else:
        click.echo(f"{job_id} {v['state']}")


@click.command()
@click.argument("job_id")
def watch(job_id: str) -> None:
    """Follow a job's progress until it ends; exit 0 if it succeeded, 1 otherwise."""
    import sys  # noqa: PLC0415

    from cli.follow import follow_until_done, print_outcome  # noqa: PLC0415

    final = follow_until_done(_reader(), job_id, quiet=False)
    print_outcome(final)
    sys.exit(0 if final["state"] == "SUCCEEDED" else 1)


@click.command()
@click.argument("job_id")
@click.option("--follow", is_flag=True, help="wait for the new job to end, showing progress")
@click.option("--json", "as_json", is_flag=True)
def retry(job_id: str, follow: bool, as_json: bool) -> None:
    """Submit a FAILED or CANCELLED job again (same spec, new job id)."""
    from cli.context import job_writer  # noqa: PLC0415
    from cli.submit import report_submitted  # noqa: PLC0415

    svc = job_writer(local=False)
    if svc is None:  # no server: the job is checked before the stack is started for it
        _svc().retry_spec(job_id)
        svc = job_writer(start_stack=True)
    report_submitted(svc, svc.retry(job_id), follow=follow, as_json=as_json)


@click.command()
@click.option("--dry-run", is_flag=True, help="only say what would be removed")
@click.option("--json", "as_json", is_flag=True)
def gc(dry_run: bool, as_json: bool) -> None:
    """Remove what finished jobs left in the artifact store: encoded corpora, checkpoints, and the files of
    failed or cancelled jobs. Registered models and live jobs are never touched."""
    from cli.context import store_admin  # noqa: PLC0415
    from cli.render import fmt_bytes  # noqa: PLC0415

    store_admin("gc", artifacts=True)
    out = _svc().collect_garbage(dry_run=dry_run)
    if as_json:
        emit_json({**out, "dry_run": dry_run})
        return
    verb = "would free" if dry_run else "freed"
    click.echo(f"{len(out['jobs'])} finished job(s) cleaned, {verb} {fmt_bytes(out['bytes_freed'])}")
    if out["skipped"]:
        click.echo(f"left alone: {len(out['skipped'])} folder(s) of jobs this registry does not know", err=True)
