"""Following a job until it ends (`submit --follow`, `watch`, `retry --follow`): honest, short feedback.

The line shows what the job is doing (its phase while data is prepared, epoch/throughput/loss/ETA while
it trains, its queue position and why it waits while queued), fits 80 columns, and is not drawn red
for a normal run. Ctrl-C detaches: the job keeps running, and the message says how to get back to it.
"""
from __future__ import annotations

import sys
import time

import click

from cli.render import fmt_eta, fmt_rate

WIDTH = 80
"""Columns the progress line must fit in."""


def detail(v: dict) -> str:
    """The short status text after the bar: the phase, the queue, or the training numbers."""
    state = v["state"]
    if state == "QUEUED":
        parts = []
        if v.get("queue_position"):
            parts.append(f"#{v['queue_position']} in queue")
        if v.get("message") and v["message"] != "waiting in the queue":
            parts.append(v["message"])
        return ", ".join(parts) or "waiting in the queue"
    if state in ("STARTING", "RUNNING") and not v.get("throughput"):
        return v.get("message") or ("starting workers" if state == "STARTING" else "preparing data")
    parts = []
    if v.get("epoch"):
        parts.append(f"epoch {v['epoch']}/{v.get('epochs') or '?'}")
    if v.get("throughput"):
        parts.append(f"{fmt_rate(v['throughput'])} {v.get('throughput_unit') or ''}".strip())
    if v.get("loss") is not None:
        parts.append(f"loss {v['loss']:.4f}")
    if v.get("eta_s") is not None and state == "RUNNING":
        parts.append(f"eta {fmt_eta(v['eta_s'])}")
    if v.get("message") and state != "RUNNING":
        parts.append(v["message"])
    return "  ".join(parts)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def follow_until_done(svc, job_id: str, *, quiet: bool) -> dict:
    """Wait for a job to end, with a progress bar on a terminal (plain lines otherwise); return its view.

    Ctrl-C stops following (exit 130) and says the job keeps running."""
    try:
        if quiet or not sys.stderr.isatty():
            return _follow_plain(svc, job_id, quiet=quiet)
        return _follow_bar(svc, job_id)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following {job_id}; it keeps running. Follow it again with `kiln watch {job_id}`, "
                   f"stop it with `kiln cancel {job_id}`.", err=True)
        sys.exit(130)


def _follow_bar(svc, job_id: str) -> dict:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn  # noqa: PLC0415

    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=16, complete_style="green",
                                                              finished_style="green"),
                  TaskProgressColumn(), TextColumn("{task.fields[detail]}"), transient=False) as bar:
        task = bar.add_task(job_id, total=1.0, detail="")
        # job id + state + bar + percentage take about 45 columns; the detail gets the rest
        room = WIDTH - len(job_id) - 36

        def update(v):
            bar.update(task, completed=v["progress"], description=f"{job_id} {v['state']}",
                       detail=_fit(detail(v), room))

        return svc.wait(job_id, on_update=update)


def _follow_plain(svc, job_id: str, *, quiet: bool) -> dict:
    """Progress as a line every few seconds, or whenever the state or phase changes (for logs and pipes)."""
    last = [0.0, None]

    def update(v):
        now = time.monotonic()
        key = (v["state"], v.get("message"))
        if not quiet and (now - last[0] > 3 or key != last[1]):
            line = f"{job_id} {v['state']:<9} {v['progress'] * 100:5.1f}% {detail(v)}"
            click.echo(_fit(line, WIDTH), err=True)
            last[0], last[1] = now, key

    return svc.wait(job_id, on_update=update)


def print_outcome(v: dict) -> None:
    if v["state"] == "SUCCEEDED":
        m = v.get("model") or {}
        click.echo(f"{v['id']} SUCCEEDED: registered model {m.get('name')} version {m.get('version')}")
    else:
        click.echo(f"error: {v['id']} {v['state']}: {v.get('error') or 'no error recorded'}", err=True)
