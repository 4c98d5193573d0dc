"""kiln similar / analogy / eval: questions asked of a registered model."""
from __future__ import annotations

import click

from cli.render import emit_json


def _svc():
    from cli.context import model_service  # noqa: PLC0415

    return model_service()


def _querier():
    """The server (it reads the model files; the client needs no store), else the local ModelService."""
    from cli.context import model_reader  # noqa: PLC0415

    return model_reader() or _svc()


def _print_neighbours(pairs, as_json: bool) -> None:
    if as_json:
        emit_json([{"word": w, "similarity": round(float(s), 6)} for w, s in pairs])
        return
    for w, s in pairs:
        click.echo(f"{s:8.4f}  {w}")


@click.command()
@click.argument("model", metavar="NAME[:VERSION|@ALIAS]")
@click.argument("word")
@click.option("--top", type=click.IntRange(1, 10000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def similar(model: str, word: str, top: int, as_json: bool) -> None:
    """The words nearest to WORD (cosine similarity)."""
    _print_neighbours(_querier().similar(model, word, top), as_json)


@click.command()
@click.argument("model", metavar="NAME[:VERSION|@ALIAS]")
@click.argument("a")
@click.argument("b")
@click.argument("c")
@click.option("--top", type=click.IntRange(1, 10000), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def analogy(model: str, a: str, b: str, c: str, top: int, as_json: bool) -> None:
    """A is to B as C is to ? (3CosAdd: nearest to B - A + C)."""
    _print_neighbours(_querier().analogy(model, a, b, c, top), as_json)


@click.command("eval")
@click.argument("model", metavar="NAME[:VERSION|@ALIAS]")
@click.argument("dataset", required=False)
@click.option("--format", "fmt", default="auto", show_default=True, help="DATASET's format (cnn models)")
@click.option("--analogies", type=str, default=None, help="questions-words file (3CosAdd, top 30,000 words)")
@click.option("--similarity", type=str, default=None, help="word pairs with human scores (Spearman)")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(model: str, dataset: str | None, fmt: str, analogies: str | None, similarity: str | None,
             as_json: bool) -> None:
    """Evaluate a word2vec model (recorded as the version's metrics), or a cnn model on DATASET."""
    from cli.context import model_reader  # noqa: PLC0415

    remote = model_reader()  # a server evaluates on its files (paths absolute, inside its data roots)
    if dataset is not None:  # a cnn model: accuracy, per-class accuracy, confusion matrix (cli/predict.py)
        from cli.predict import print_cnn_eval  # noqa: PLC0415

        if remote is not None:
            res = remote.evaluate(model, dataset=dataset, fmt=fmt)
        else:
            from services import vision  # noqa: PLC0415

            res = vision.evaluate(_svc(), model, dataset, fmt=fmt)
        print_cnn_eval(res, as_json)
        return
    if remote is not None:  # the server asks for a DATASET for a cnn model, as below
        res = remote.evaluate(model, analogies=analogies, similarity=similarity)
    else:
        if not analogies and not similarity and _svc().get(model).kind == "cnn":
            raise click.UsageError(f"give a DATASET to evaluate the cnn model {model} on (`kiln eval {model} DATASET`)")
        res = _svc().evaluate(model, analogies=analogies, similarity=similarity)
    if as_json:
        emit_json(res)
        return
    click.echo(f"{res['model']}")
    if "analogies" in res:
        a = res["analogies"]
        click.echo(f"  analogy accuracy     {a['accuracy']:.4f}  ({a['correct']}/{a['total']})")
    if "similarity" in res:
        s = res["similarity"]
        click.echo(f"  similarity Spearman  {s['spearman']:.4f}  ({s.get('pairs', '?')} pairs, {s.get('oov', 0)} out of vocabulary)")
