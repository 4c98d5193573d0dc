"""kiln submit: build a job spec from flags (or a YAML/JSON file), submit it, optionally follow it."""
from __future__ import annotations

import sys

import click

from cli.render import emit_json, fmt_eta, fmt_rate


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


def follow_until_done(svc, job_id: str, *, quiet: bool) -> dict:
    """Wait for a job to end, with a progress bar on a terminal (plain lines otherwise); return its view."""
    if quiet or not sys.stderr.isatty():
        return _follow_plain(svc, job_id, quiet=quiet)
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn  # noqa: PLC0415

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[detail]}"), transient=False) as bar:
        task = bar.add_task(job_id, total=1.0, detail="")

        def update(v):
            bar.update(task, completed=v["progress"], description=f"{job_id} {v['state']}", detail=_detail(v))

        return svc.wait(job_id, on_update=update)


def _follow_plain(svc, job_id: str, *, quiet: bool) -> dict:
    """Progress as a line every few seconds (for logs and pipes)."""
    import time  # noqa: PLC0415

    last = [0.0, None]

    def update(v):
        now = time.monotonic()
        if not quiet and (now - last[0] > 3 or v["state"] != last[1]):
            click.echo(f"{job_id} {v['state']:<9} {v['progress'] * 100:5.1f}% {_detail(v)}", err=True)
            last[0], last[1] = now, v["state"]

    return svc.wait(job_id, on_update=update)


def _detail(v: dict) -> str:
    parts = []
    if v.get("epoch"):
        parts.append(f"epoch {v['epoch']}/{v.get('epochs') or '?'}")
    if v.get("throughput"):
        parts.append(f"{fmt_rate(v['throughput'])} {v.get('throughput_unit') or ''}".strip())
    if v.get("loss") is not None:
        parts.append(f"loss {v['loss']:.4f}")
    if v.get("eta_s") is not None and v["state"] == "RUNNING":
        parts.append(f"eta {fmt_eta(v['eta_s'])}")
    if v.get("message") and v["state"] != "RUNNING":
        parts.append(v["message"])
    return "  ".join(parts)


def print_outcome(v: dict) -> None:
    if v["state"] == "SUCCEEDED":
        m = v.get("model") or {}
        click.echo(f"{v['id']} SUCCEEDED: registered model {m.get('name')} version {m.get('version')}")
    else:
        click.echo(f"error: {v['id']} {v['state']}: {v.get('error') or 'no error recorded'}", err=True)
