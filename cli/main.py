"""The ``kiln`` command. Parsing and rendering only: the work happens in services/.

Every user mistake ends as one line on stderr and an exit code: 2 for usage and validation errors,
1 for not-found and failed jobs, 3 when a backing service is unreachable. Never a traceback.
"""
from __future__ import annotations

import sys

import click

from cli.jobs import cancel, gc, jobs, logs, retry, status, watch
from cli.models import models
from cli.query import analogy, eval_cmd, similar
from cli.stack import db, doctor, down, up
from cli.plot import plot
from cli.predict import predict
from cli.serve import serve
from cli.submit import submit
from cli.tokens import tokens
from shared.errors import KilnError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kiln", prog_name="kiln")
def kiln() -> None:
    """kiln: train word2vec and CNN models on a Ray cluster, with a queue and a model registry."""


for command in (up, down, doctor, db, submit, jobs, status, logs, watch, cancel, retry, gc, models, similar, analogy,
                eval_cmd, predict, serve, tokens, plot):
    kiln.add_command(command)


def main(argv: list[str] | None = None) -> None:
    try:
        kiln.main(args=argv, prog_name="kiln", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: one line, exit 2
        msg = e.format_message().replace("\n", " ")
        click.echo(f"error: {msg}", err=True)
        sys.exit(e.exit_code if e.exit_code else 2)
    except KilnError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:
        lost = lost_connection(e)
        if lost is None:
            raise
        click.echo(f"error: {lost}", err=True)
        sys.exit(3)
    sys.exit(0)


def lost_connection(e: BaseException) -> str | None:
    """One line for a connection to Redis or Ray that broke mid-command (say, `kiln down` elsewhere),
    or None if ``e`` is not that. Checked by class, so the CLI imports neither redis nor ray."""
    module, name = type(e).__module__, type(e).__name__
    if module.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError",
                                               "AuthenticationError", "ReadOnlyError"):
        service = "Redis"
    elif module.startswith("ray") and ("Connection" in name or "Unavailable" in name or "Timeout" in name):
        service = "Ray"
    else:
        return None
    from shared.config import get_settings, mask_secrets  # noqa: PLC0415

    first = (str(e).strip().splitlines() or [name])[0]
    try:
        first = mask_secrets(first, get_settings().redis_url, get_settings().db_url)
    except KilnError:
        pass
    return f"lost the connection to {service} ({first}); is the stack down? `kiln doctor` shows what runs"


if __name__ == "__main__":
    main()
