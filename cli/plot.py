"""kiln plot: a job's or a model's picture as a PNG file (matplotlib; drawn by the server when there is one)."""
from __future__ import annotations

import click


@click.command()
@click.argument("target", metavar="JOB|MODEL")
@click.option("--what", required=True, type=click.Choice(["loss", "throughput", "embeddings", "confusion", "filters"]),
              help="loss/throughput: a job's curves (or a model's per-epoch history); embeddings: word2vec PCA "
                   "map; confusion/filters: CNN")
@click.option("-o", "--output", required=True, help="the PNG file to write")
@click.option("--words", type=click.IntRange(2, 2000), default=100, show_default=True,
              help="embeddings: how many of the most frequent words")
@click.option("--force", is_flag=True, help="replace an existing file")
def plot(target: str, what: str, output: str, words: int, force: bool) -> None:
    """Draw WHAT for a job (job-...) or a model (NAME[:VERSION|@ALIAS]) into a PNG file."""
    from cli.context import model_reader  # noqa: PLC0415
    from services.export_target import export_target  # noqa: PLC0415 - standard library only

    remote = model_reader()
    if remote is not None:  # the server draws it (matplotlib there); the client writes the bytes
        png = remote.plot(target, what, words)
    else:
        from cli.context import backends  # noqa: PLC0415
        from services.plots import render  # noqa: PLC0415

        png = render(backends(), target, what, words=words)
    with export_target(output, force=force) as tmp:
        tmp.write_bytes(png)
    if output != "-":
        click.echo(f"wrote {output}", err=True)
