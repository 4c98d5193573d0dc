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
    """What `kiln models list --json` / `kiln models show` read from: a kiln server over HTTP when there is
    one (see job_reader), else the ModelService."""
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
