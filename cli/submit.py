"""kiln submit: build a job spec from flags (or a YAML/JSON file), submit it, optionally follow it.

Each job kind is a subcommand loaded only when used (``KINDS``), so read commands never import pydantic;
its options are generated from the spec (cli/spec_options.py), so defaults live in shared/specs.py.
"""
from __future__ import annotations

import importlib
import sys

import click

from cli.follow import follow_until_done, print_outcome
from cli.render import emit_json

KINDS = {"word2vec": "cli.submit:word2vec_command", "cnn": "cli.submit_cnn:cnn"}
"""Job kind -> "module:attribute" of its click command (a function returning one is called first)."""


def follow_options(f):
    f = click.option("--json", "as_json", is_flag=True,
                     help="print one JSON object: id (job_id too), state, model, error")(f)
    f = click.option("--follow", is_flag=True, help="wait for the job to end, showing progress")(f)
    return f


class _Kinds(click.Group):
    """Subcommands per job kind, imported on first use."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | {k for k in KINDS if self._load(k) is not None})

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or self._load(name)

    def _load(self, name: str):
        if name not in KINDS:
            return None
        module, _, attr = KINDS[name].partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None
        return found if isinstance(found, click.Command) else found()


@click.group(cls=_Kinds, invoke_without_command=True)
@click.option("-f", "--file", "spec_file", type=click.Path(dir_okay=False), help="a job spec in YAML or JSON")
@follow_options
@click.pass_context
def submit(ctx: click.Context, spec_file: str | None, follow: bool, as_json: bool) -> None:
    """Submit a training job: `kiln submit word2vec CORPUS...` or `kiln submit -f spec.yaml`."""
    if ctx.invoked_subcommand is not None:
        if spec_file is not None:
            raise click.UsageError("give either -f SPEC_FILE or a job kind with its flags, not both")
        return
    if spec_file is None:
        raise click.UsageError("give a job kind (`kiln submit word2vec CORPUS...`) or -f SPEC_FILE")
    from services.specfile import read_spec_file  # noqa: PLC0415

    submit_spec(read_spec_file(spec_file), follow=follow, as_json=as_json, flags=False)


def job_options() -> list:
    """The options every kind shares: resources and scheduling (from Resources and JobSpec)."""
    from cli.spec_options import spec_options  # noqa: PLC0415
    from shared.specs import JobSpec, Resources  # noqa: PLC0415

    return spec_options(Resources, "resources") + spec_options(
        JobSpec, "", exclude={"kind", "name", "params", "resources", "user"})


def word2vec_command() -> click.Command:
    """``kiln submit word2vec CORPUS...``, its options generated from Word2VecParams and the job spec."""
    from cli.spec_options import spec_data, spec_options, with_options  # noqa: PLC0415
    from shared.specs import Word2VecParams  # noqa: PLC0415

    options = spec_options(Word2VecParams, "params", exclude={"corpus"}) + job_options()

    @click.command("word2vec")
    @click.argument("corpus", nargs=-1, required=True)
    @click.option("--name", help="registered model name (default: word2vec-<first corpus file's stem>)")
    @with_options(options)
    @follow_options
    def word2vec(corpus, name, follow, as_json, **values) -> None:
        """Train word2vec embeddings on CORPUS (files, directories, globs; plain, .gz or .bz2)."""
        data = spec_data(options, values)
        data["kind"], data["name"] = "word2vec", name or default_name("word2vec", corpus[0])
        data.setdefault("params", {})["corpus"] = list(corpus)
        submit_spec(data, follow=follow, as_json=as_json, flags=True)

    return word2vec


def default_name(kind: str, first_input: str) -> str:
    """``<kind>-<stem of the first input>``, made a valid model name."""
    from pathlib import Path  # noqa: PLC0415

    stem = Path(first_input.rstrip("/")).name.split(".")[0] or "data"
    return f"{kind}-" + "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in stem)[:100]


def submit_spec(data: dict, *, follow: bool, as_json: bool, flags: bool) -> None:
    """Validate ``data`` (messages name CLI flags when ``flags``), start the stack if needed, submit, report."""
    from cli.context import job_writer  # noqa: PLC0415

    if isinstance(data, dict) and "user" in data:  # as validate_offline refuses it; a server takes the token's own user
        from shared.errors import InvalidParameter  # noqa: PLC0415

        raise InvalidParameter("user: a spec cannot name its submitter (kiln records who runs the command)")
    remote = job_writer(local=False)  # a server (KILN_URL, or the stack's) validates and stores, as the token's user
    if remote is not None:
        if not remote.server.explicit:  # the embedded stack's server reads the files this command names
            _warn_skipped(data)
        report_submitted(remote, remote.submit(data, flags=flags), follow=follow, as_json=as_json)
        return
    from services.jobs import validate_offline  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415

    from cli.context import job_service  # noqa: PLC0415

    skipped: list = []
    spec = validate_offline(data, user=get_settings().user, flags=flags, skipped=skipped)  # before any service starts
    if skipped:
        click.echo(f"warning: {skipped_line(skipped, len(spec.params.corpus))}", err=True)
    svc = job_service(start_stack=True)
    report_submitted(svc, svc.submit(spec), follow=follow, as_json=as_json)


def _warn_skipped(data: dict) -> None:
    """The local path's warning about files a corpus directory or glob leaves out (standard library only);
    any problem with the files is left for the server to report."""
    params = data.get("params") if isinstance(data, dict) else None
    corpus = params.get("corpus") if isinstance(params, dict) and data.get("kind", "word2vec") == "word2vec" else None
    if not isinstance(corpus, list) or not all(isinstance(c, str) for c in corpus):
        return
    from shared.corpus_files import resolve_corpus  # noqa: PLC0415
    from shared.errors import KilnError  # noqa: PLC0415

    skipped: list = []
    try:
        files = resolve_corpus(corpus, skipped=skipped)
    except KilnError:
        return
    if skipped:
        click.echo(f"warning: {skipped_line(skipped, len(files))}", err=True)


def skipped_line(skipped: list, kept: int) -> str:
    """One line for the files a corpus directory or glob left out: how many, why, the first few."""
    from collections import Counter  # noqa: PLC0415

    why = "; ".join(f"{n} {reason}" for reason, n in Counter(r for _, r in skipped).most_common())
    names = ", ".join(str(p) for p, _ in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
    return f"the corpus skips {len(skipped)} file(s) and reads {kept}: {why} ({names})"


def _summary(view: dict) -> dict:
    """submit/retry --json: the job's id (``job_id`` kept as an alias), state, model and error."""
    return {"id": view["id"], "job_id": view["id"], "state": view["state"], "model": view.get("model"),
            "error": view.get("error")}


def report_submitted(svc, view: dict, *, follow: bool, as_json: bool) -> None:
    """Print a new job's id (or JSON); with ``follow`` wait for it and exit 0 only if it succeeded."""
    job_id = view["id"]
    if not follow:
        if as_json:
            emit_json(_summary(view))
        else:
            click.echo(job_id)
        return
    if not as_json:
        click.echo(f"submitted {job_id}", err=True)
    final = follow_until_done(svc, job_id, quiet=as_json)
    if as_json:
        emit_json(_summary(final))
    else:
        print_outcome(final)
    sys.exit(0 if final["state"] == "SUCCEEDED" else 1)
