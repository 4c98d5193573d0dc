"""Rendering helpers: JSON for scripts, compact tables for people."""
from __future__ import annotations

import json
import sys

import click


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def table(headers: list[str], rows: list[list]) -> None:
    """A plain aligned table (no colour when not a terminal): rich's layout (no box, two spaces between
    columns), written directly when every cell is plain ASCII and the table fits, else by rich itself.
    Cells are data, never rich markup or emoji codes (a tag "[x]" or a name "a:x:" prints as it is)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    tty = sys.stdout.isatty()
    # Piped output is never cut to 80 columns: scripts and logs get whole cells.
    width = _terminal_width() if tty else 250
    plain = _plain_table(cells, width)
    if plain is not None:
        if tty:  # rich's bold header, the only style it gives this table
            head, _, rest = plain.partition("\n")
            plain = f"\x1b[1m{head}\x1b[0m\n{rest}"
        sys.stdout.write(plain)
        sys.stdout.flush()
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    t = Table(box=None, header_style="bold", pad_edge=False)
    for h in cells[0]:
        t.add_column(Text(h))
    for row in cells[1:]:
        t.add_row(*[Text(c) for c in row])
    Console(soft_wrap=True, no_color=not tty, width=None if tty else 250, markup=False, emoji=False,
            highlight=False).print(t)


def _terminal_width() -> int:
    import shutil  # noqa: PLC0415

    return shutil.get_terminal_size().columns


def _plain_table(cells: list[list[str]], width: int) -> str | None:
    """The text rich prints for this table with no box and no edge padding, or None where rich would do
    more than align (non-ASCII or control characters: wide glyphs, line breaks; a table wider than ``width``)."""
    ncols = len(cells[0])
    if any(len(row) != ncols for row in cells):
        return None
    for row in cells:
        for c in row:
            if not c.isascii() or not c.isprintable():
                return None
    widths = [max(len(row[i]) for row in cells) for i in range(ncols)]
    if sum(widths) + 2 * (ncols - 1) > width:
        return None
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "\n" for row in cells)


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
