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
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = wants_json(args)
    try:
        kiln.main(args=args, prog_name="kiln", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        fail("ABORTED", "aborted", 130, as_json)
    except click.ClickException as e:  # usage errors: one line, exit 2
        fail("INVALID_PARAMETER_VALUE", e.format_message(), e.exit_code if e.exit_code else 2, as_json)
    except KilnError as e:
        fail(e.code, e.message, e.exit_code, as_json)
    except KeyboardInterrupt:
        fail("INTERRUPTED", "interrupted", 130, as_json)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:
        lost = lost_connection(e)
        if lost is None:
            raise
        fail("SERVICE_UNAVAILABLE", lost, 3, as_json)
    sys.exit(0)


def wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``): its errors are JSON too."""
    return "--json" in (args[:args.index("--")] if "--" in args else args)


def fail(code: str, message: str, exit_code: int, as_json: bool) -> None:
    """End the command with one line on stderr: ``error: MESSAGE``, or under --json the same object the
    HTTP API answers with, ``{"error": {"code": CODE, "message": MESSAGE}}``; exit with ``exit_code``."""
    message = " ".join(str(message).split())  # one line, whatever the message held
    if as_json:
        import json  # noqa: PLC0415

        click.echo(json.dumps({"error": {"code": code, "message": message}}), err=True)
    else:
        click.echo(f"error: {message}" if message not in ("aborted", "interrupted") else message, err=True)
    sys.exit(exit_code)


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
