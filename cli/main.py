"""The ``kiln`` command. Parsing and rendering only: the work happens in services/.

Every user mistake ends as one line on stderr and an exit code: 2 for usage and validation errors,
1 for not-found and failed jobs, 3 when a backing service is unreachable. Never a traceback.
"""
from __future__ import annotations

import sys

import click

from shared.errors import KilnError

COMMANDS = {
    "up": "cli.stack:up", "down": "cli.stack:down", "doctor": "cli.stack:doctor", "db": "cli.stack:db",
    "submit": "cli.submit:submit", "jobs": "cli.jobs:jobs", "status": "cli.jobs:status", "logs": "cli.jobs:logs",
    "watch": "cli.jobs:watch", "cancel": "cli.jobs:cancel", "retry": "cli.jobs:retry", "gc": "cli.jobs:gc",
    "models": "cli.models:models", "similar": "cli.query:similar", "analogy": "cli.query:analogy",
    "eval": "cli.query:eval_cmd", "predict": "cli.predict:predict", "serve": "cli.serve:serve",
    "tokens": "cli.tokens:tokens", "plot": "cli.plot:plot",
}
"""Command name -> "module:attribute". A command's module is imported only when that command runs (or
``kiln --help`` lists them all): `kiln jobs` does not pay for the imports of `kiln up` or `kiln plot`."""


def _load(where: str) -> click.Command:
    import importlib  # noqa: PLC0415

    module, _, attr = where.partition(":")
    return getattr(importlib.import_module(module), attr)


class _Commands(dict):
    """The group's commands, each imported on first use; ``in``, ``[]`` and ``get`` answer for all."""

    def __contains__(self, name) -> bool:
        return name in COMMANDS or super().__contains__(name)

    def __missing__(self, name):
        if name not in COMMANDS:
            raise KeyError(name)
        self[name] = found = _load(COMMANDS[name])
        return found

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def _all(self) -> None:
        for name in COMMANDS:
            self[name]  # noqa: B018 - loads it

    def __iter__(self):
        self._all()
        return super().__iter__()

    def __len__(self) -> int:
        self._all()
        return super().__len__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()


class _Kiln(click.Group):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = _Commands()

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)


@click.group(cls=_Kiln, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kiln", prog_name="kiln")
def kiln() -> None:
    """kiln: train word2vec and CNN models on a Ray cluster, with a queue and a model registry."""


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
