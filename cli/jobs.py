"""kiln jobs / status / logs / cancel."""
from __future__ import annotations

import time
from datetime import datetime

import click

from cli.render import emit_json, fmt_eta, fmt_metrics, fmt_rate, table


def _svc():
    from cli.context import job_service  # noqa: PLC0415

    return job_service()


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
    views = _svc().list(state=state, limit=limit)
    if as_json:
        emit_json(views)
        return
    rows = []
    for v in views:
        model = f"{v['model']['name']}:{v['model']['version']}" if v.get("model") else ""
        rows.append([v["id"], v["name"], v["kind"], v["state"], f"{v['progress'] * 100:.0f}%", v["attempt"],
                     _age(v["submitted_at"]), model or (v.get("error") or "")[:60]])
    if not rows:
        click.echo("no jobs")
        return
    table(["JOB", "NAME", "KIND", "STATE", "PROGRESS", "ATTEMPT", "SUBMITTED", "MODEL / ERROR"], rows)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """Show one job: state, progress, throughput, ETA, metrics, error."""
    v = _svc().get(job_id)
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
    if v.get("error"):
        lines.append(("error", v["error"]))
    for k, val in lines:
        if val not in (None, ""):
            click.echo(f"{k:<11} {val}")


@click.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
def logs(job_id: str, follow: bool) -> None:
    """Print a job's log lines."""
    for entry in _svc().logs(job_id, follow=follow):
        t = time.strftime("%H:%M:%S", time.localtime(float(entry["t"])))
        click.echo(f"{t} {entry['level']:<7} {entry['msg']}")


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a job: a queued job leaves the queue; a running one is stopped and its workers released."""
    svc = _svc()
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

    final = follow_until_done(_svc(), job_id, quiet=False)
    print_outcome(final)
    sys.exit(0 if final["state"] == "SUCCEEDED" else 1)


@click.command()
@click.argument("job_id")
@click.option("--follow", is_flag=True, help="wait for the new job to end, showing progress")
@click.option("--json", "as_json", is_flag=True)
def retry(job_id: str, follow: bool, as_json: bool) -> None:
    """Submit a FAILED or CANCELLED job again (same spec, new job id)."""
    from cli.context import job_service  # noqa: PLC0415
    from cli.submit import report_submitted  # noqa: PLC0415

    svc = job_service(start_stack=True)
    report_submitted(svc, svc.retry(job_id), follow=follow, as_json=as_json)
