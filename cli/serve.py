"""kiln serve: the HTTP API and the web page over this machine's settings (Redis, SQL, Ray)."""
from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; beyond loopback needs API tokens (`kiln tokens create`)")
@click.option("--port", type=click.IntRange(1, 65535), default=8470, show_default=True)
@click.option("--data-root", "data_roots", multiple=True, metavar="DIR",
              help="jobs submitted over HTTP may read files only under DIR (repeatable); default: any path the "
                   "server can read")
def serve(host: str, port: int, data_roots: tuple[str, ...]) -> None:
    """Serve the job and model API under /api and the web page at / until interrupted."""
    from services import stack  # noqa: PLC0415
    from services.api.server import is_loopback, serve as run  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415

    def ready(url: str) -> None:
        click.echo(f"kiln server on {url}", err=True)
        if not is_loopback(host) and not data_roots:
            click.echo("warning: jobs submitted over HTTP may read any file this server can read; "
                       "--data-root DIR limits them", err=True)

    run(stack.resolve(get_settings()), host, port, data_roots=data_roots, on_ready=ready)
