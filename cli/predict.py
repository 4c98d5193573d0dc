"""``kiln predict MODEL IMAGE_OR_DIR...`` and the rendering of ``kiln eval MODEL DATASET`` for CNNs."""
from __future__ import annotations

import click

from cli.render import emit_json, table


@click.command()
@click.argument("model", metavar="NAME[:VERSION|@ALIAS]")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option("--top", type=click.IntRange(1, 1000), default=1, show_default=True, help="best K classes per image")
@click.option("--json", "as_json", is_flag=True,
              help='a list of {"path", "label", "score", "top": [{"label", "score"}, ...]}')
def predict(model: str, images: tuple[str, ...], top: int, as_json: bool) -> None:
    """Classify images (PNG/JPEG files, or folders of them) with a registered CNN model."""
    from cli.context import model_reader  # noqa: PLC0415

    remote = model_reader()
    if remote is not None:  # a server: the files are listed here, uploaded, decoded and classified there
        from shared.image_files import image_files  # noqa: PLC0415

        rows = remote.predict(model, image_files(list(images)), top=top)
    else:
        from services import vision  # noqa: PLC0415

        from cli.context import model_service  # noqa: PLC0415

        rows = vision.predict(model_service(), model, list(images), top=top)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        others = "  ".join(f"{t['label']} {t['score']:.3f}" for t in r["top"][1:])
        click.echo(f"{r['label']:<12} {r['score']:.3f}  {r['path']}" + (f"  ({others})" if others else ""))


def print_cnn_eval(res: dict, as_json: bool) -> None:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    if as_json:
        emit_json(res)
        return
    click.echo(f"{res['model']} on {res['dataset']} ({res['split']}, {res['count']} images)")
    click.echo(f"  accuracy  {res['accuracy']:.4f}")
    classes = res["classes"]
    rows = []
    for i, c in enumerate(classes):
        acc = res["per_class"][c]
        rows.append([c, "-" if acc is None else f"{acc:.4f}", *res["confusion"][i]])
    table(["CLASS", "ACCURACY", *classes], rows)
