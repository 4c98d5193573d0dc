"""The settings and service objects a command uses, built once per process."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def backends(start_stack: bool = False):
    """Backends for the resolved settings; with ``start_stack`` the embedded stack is started if needed."""
    from services import stack  # noqa: PLC0415
    from services.backends import Backends  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415 - a client of a server needs no settings of its own

    settings = get_settings()
    if start_stack:
        settings = stack.up(settings, on_start=_say_starting)
    else:
        settings = stack.resolve(settings)
    return Backends(settings)


def _say_starting(home) -> None:
    import click  # noqa: PLC0415

    click.echo(f"starting the local stack (redis-server, Ray) under {home}; `kiln down` stops it", err=True)


def job_service(start_stack: bool = False):
    from services.jobs import JobService  # noqa: PLC0415

    return JobService(backends(start_stack))


def model_service():
    from services.models import ModelService  # noqa: PLC0415

    return ModelService(backends())


def job_reader():
    """What `kiln jobs` / `kiln status` read from: a kiln server over HTTP when one is configured or the
    embedded stack's answers (cli/http_client.py, standard library only), else the JobService."""
    from cli.http_client import RemoteJobs, find_server  # noqa: PLC0415

    server = find_server()
    return job_service() if server is None else RemoteJobs(server, job_service)


def model_reader():
    """The kiln server (over HTTP) that the model commands (models ..., similar, analogy, predict, eval,
    plot) go through when there is one (see job_reader), else None: they use the ModelService."""
    from cli.http_client import RemoteModels, find_server  # noqa: PLC0415

    server = find_server()
    return None if server is None else RemoteModels(server, model_service)


def job_writer(start_stack: bool = False, *, local: bool = True):
    """What `kiln submit` / `cancel` / `retry` act through: the server named by KILN_URL, or the embedded
    stack's server when it answers (its jobs are the local user's either way: `kiln up` wrote that user's
    token), else the JobService (None instead with ``local=False``)."""
    from cli.http_client import RemoteJobs, find_server  # noqa: PLC0415

    server = find_server()
    if server is None:
        return job_service(start_stack) if local else None
    return RemoteJobs(server, lambda: job_service(start_stack))


def store_admin(command: str, *, artifacts: bool = False) -> None:
    """`kiln tokens`, `db`, `gc` and `models gc` administer the stores themselves (as `mlflow db upgrade`
    does), never through a server. With KILN_URL set, the store must be named (KILN_DB_URL, and
    KILN_ARTIFACTS with ``artifacts``: in the environment or $KILN_HOME/config.toml): otherwise the command
    would act on this machine's default registry, which the server at KILN_URL never reads. UserError
    (one line, exit 2) then; an unreachable store stays its own one-line error (exit 3)."""
    import os  # noqa: PLC0415

    url = os.environ.get("KILN_URL")
    if not url:
        return
    from shared.config import read_config_file  # noqa: PLC0415
    from shared.errors import UserError  # noqa: PLC0415

    from cli.http_client import _home  # noqa: PLC0415

    named = read_config_file(_home() / "config.toml")
    needed = [var for var, key, wanted in (("KILN_DB_URL", "db_url", True), ("KILN_ARTIFACTS", "artifacts", artifacts))
              if wanted and not (os.environ.get(var) or named.get(key))]
    if needed:
        raise UserError(f"kiln {command} works on the stores directly, not through the server at {url}: run it where "
                        f"the server runs, or set {' and '.join(needed)} to the server's")
