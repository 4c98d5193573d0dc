"""Rendering helpers: JSON for scripts, compact tables for people."""
from __future__ import annotations

import json
import sys

import click


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def table(headers: list[str], rows: list[list]) -> None:
    """A plain aligned table (no colour when not a terminal)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    t = Table(*headers, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    tty = sys.stdout.isatty()
    # Piped output is never cut to 80 columns: scripts and logs get whole cells.
    Console(soft_wrap=True, no_color=not tty, width=None if tty else 250).print(t)


def fmt_rate(x) -> str:
    if x is None:
        return ""
    x = float(x)
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def fmt_eta(s) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def fmt_metrics(metrics: dict | None, keys: tuple[str, ...] = ("similarity_spearman", "analogy_accuracy",
                                                                "words_per_s")) -> str:
    if not metrics:
        return ""
    parts = []
    for k in keys:
        if k in metrics and metrics[k] is not None:
            v = metrics[k]
            parts.append(f"{k}={fmt_rate(v) if k.endswith('_per_s') else f'{v:.4g}'}")
    return " ".join(parts)


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
