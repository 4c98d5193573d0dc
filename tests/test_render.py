"""cli.render.table: the plain writer prints exactly what rich prints for the same table (rich stays the
fallback for wide glyphs, line breaks and over-wide tables), and cells are data, never markup or emoji."""
from __future__ import annotations

import io
import random
import string

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.render import _plain_table, table


def rich_text(headers: list[str], rows: list[list[str]]) -> str:
    t = Table(box=None, header_style="bold", pad_edge=False)
    for h in headers:
        t.add_column(Text(h))
    for row in rows:
        t.add_row(*[Text(c) for c in row])
    buf = io.StringIO()
    Console(file=buf, soft_wrap=True, no_color=True, width=250, markup=False, emoji=False, highlight=False).print(t)
    return buf.getvalue()


def test_plain_table_is_rich_layout_on_random_tables():
    rnd = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " -_.:=/%()[]"
    compared = 0
    for _ in range(1500):
        ncols, nrows = rnd.randint(1, 8), rnd.randint(0, 6)
        headers = ["".join(rnd.choice(string.ascii_uppercase) for _ in range(rnd.randint(0, 10))) for _ in range(ncols)]
        rows = [["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30))) for _ in range(ncols)]
                for _ in range(nrows)]
        plain = _plain_table([headers, *rows], 250)
        if plain is None:  # wider than 250 columns: rich wraps it
            continue
        assert plain == rich_text(headers, rows)
        compared += 1
    assert compared > 1000


def test_falls_back_to_rich_where_it_does_more_than_align():
    assert _plain_table([["A"], ["wide \u4e2d"]], 250) is None
    assert _plain_table([["A"], ["two\nlines"]], 250) is None
    assert _plain_table([["A", "B"], ["x" * 200, "y" * 60]], 250) is None


def test_cells_print_as_they_are(capsys):
    table(["NAME", "TAGS"], [["a:x:", "[bold]t[/bold]"], ["caf\u00e9 [x]", None]])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "TAGS"]
    assert out[1].split() == ["a:x:", "[bold]t[/bold]"]
    assert out[2].split() == ["caf\u00e9", "[x]"]  # the rich fallback (non-ASCII), still no markup
