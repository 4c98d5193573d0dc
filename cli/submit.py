"""kiln submit: build a job spec from flags (or a YAML/JSON file), submit it, optionally follow it."""
from __future__ import annotations

import sys

import click

from cli.follow import follow_until_done, print_outcome
from cli.render import emit_json


def _follow_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="print one JSON object: job_id, state, model, error")(f)
    f = click.option("--follow", is_flag=True, help="wait for the job to end, showing progress")(f)
    return f


@click.group(invoke_without_command=True)
@click.option("-f", "--file", "spec_file", type=click.Path(dir_okay=False), help="a job spec in YAML or JSON")
@_follow_options
@click.pass_context
def submit(ctx: click.Context, spec_file: str | None, follow: bool, as_json: bool) -> None:
    """Submit a training job: `kiln submit word2vec CORPUS...` or `kiln submit -f spec.yaml`."""
    if ctx.invoked_subcommand is not None:
        return
    if spec_file is None:
        raise click.UsageError("give a job kind (`kiln submit word2vec CORPUS...`) or -f SPEC_FILE")
    from services.specfile import read_spec_file  # noqa: PLC0415

    _submit(read_spec_file(spec_file), follow=follow, as_json=as_json)


@submit.command("word2vec")
@click.argument("corpus", nargs=-1, required=True)
@click.option("--name", help="registered model name (default: word2vec-<first corpus file's stem>)")
@click.option("--sg/--cbow", default=True, show_default=True, help="skip-gram or CBOW")
@click.option("--dim", type=int, default=100, show_default=True)
@click.option("--window", type=int, default=5, show_default=True)
@click.option("--negative", type=int, default=5, show_default=True)
@click.option("--min-count", type=int, default=5, show_default=True)
@click.option("--max-vocab", "max_vocab_size", type=int, default=None, help="keep at most this many words")
@click.option("--sample", type=float, default=1e-3, show_default=True)
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--lr", type=float, default=0.025, show_default=True)
@click.option("--min-lr", type=float, default=0.0001, show_default=True)
@click.option("--lowercase", is_flag=True, help="lowercase tokens")
@click.option("--token-pattern", default=None, help="regex for tokens (default: split on whitespace)")
@click.option("--eval-analogies", type=str, default=None, help="questions-words file; accuracy becomes a metric")
@click.option("--eval-similarity", type=str, default=None, help="word pairs with scores; Spearman becomes a metric")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--cpus-per-worker", type=float, default=1.0, show_default=True)
@click.option("--gpus-per-worker", type=float, default=0.0, show_default=True)
@click.option("--priority", type=int, default=0, show_default=True, help="higher runs first")
@click.option("--max-retries", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@_follow_options
def word2vec(corpus, name, sg, dim, window, negative, min_count, max_vocab_size, sample, epochs, lr, min_lr,
             lowercase, token_pattern, eval_analogies, eval_similarity, workers, cpus_per_worker, gpus_per_worker,
             priority, max_retries, seed, follow, as_json) -> None:
    """Train word2vec embeddings on CORPUS (files, directories, globs; plain, .gz or .bz2)."""
    if name is None:
        from pathlib import Path  # noqa: PLC0415

        stem = Path(corpus[0].rstrip("/")).name.split(".")[0] or "corpus"
        name = "word2vec-" + "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in stem)[:100]
    data = {
        "kind": "word2vec", "name": name, "priority": priority, "max_retries": max_retries, "seed": seed,
        "params": {"corpus": list(corpus), "sg": sg, "dim": dim, "window": window, "negative": negative,
                   "min_count": min_count, "max_vocab_size": max_vocab_size, "sample": sample, "epochs": epochs,
                   "lr": lr, "min_lr": min_lr, "lowercase": lowercase, "token_pattern": token_pattern,
                   "eval_analogies": eval_analogies, "eval_similarity": eval_similarity},
        "resources": {"workers": workers, "cpus_per_worker": cpus_per_worker, "gpus_per_worker": gpus_per_worker},
    }
    _submit(data, follow=follow, as_json=as_json)


def _submit(data: dict, *, follow: bool, as_json: bool) -> None:
    from services.jobs import validate_offline  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415

    from cli.context import job_service  # noqa: PLC0415

    spec = validate_offline(data, user=get_settings().user)  # fail fast, before any service is started
    svc = job_service(start_stack=True)
    report_submitted(svc, svc.submit(spec), follow=follow, as_json=as_json)


def report_submitted(svc, view: dict, *, follow: bool, as_json: bool) -> None:
    """Print a new job's id (or JSON); with ``follow`` wait for it and exit 0 only if it succeeded."""
    job_id = view["id"]
    if not follow:
        if as_json:
            emit_json({"job_id": job_id, "state": view["state"], "model": None, "error": None})
        else:
            click.echo(job_id)
        return
    if not as_json:
        click.echo(f"submitted {job_id}", err=True)
    final = follow_until_done(svc, job_id, quiet=as_json)
    if as_json:
        emit_json({"job_id": job_id, "state": final["state"], "model": final.get("model"), "error": final["error"]})
    else:
        print_outcome(final)
    sys.exit(0 if final["state"] == "SUCCEEDED" else 1)
