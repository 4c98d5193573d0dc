"""kiln serve: the HTTP API and the web page over this machine's settings (Redis, SQL, Ray)."""
from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; beyond loopback needs API tokens (`kiln tokens create`)")
@click.option("--port", type=click.IntRange(1, 65535), default=8470, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the job and model API under /api and the web page at / until interrupted."""
    from services import stack  # noqa: PLC0415
    from services.api.server import serve as run  # noqa: PLC0415
    from shared.config import get_settings  # noqa: PLC0415

    settings = stack.resolve(get_settings())
    run(settings, host, port, on_ready=lambda url: click.echo(f"kiln server on {url}", err=True))
