"""Run the HTTP server (uvicorn) for the resolved settings: ``kiln serve`` and the embedded stack.

A server that listens beyond loopback answers only to tokens; with none in the store it refuses to
start (anyone on the network could otherwise submit jobs as the server's user).
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from shared.config import Settings
from shared.errors import InvalidParameter

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_bind(host: str, tokens) -> None:
    """Refuse to listen beyond loopback while no token exists (InvalidParameter, exit code 2)."""
    if not is_loopback(host) and not tokens.any_active():
        raise InvalidParameter(f"--host {host}: refusing to listen beyond loopback without API tokens; "
                               "create one first (`kiln tokens create --user NAME`)")


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, on_ready=None,
          data_roots: tuple[str, ...] = ()) -> None:
    """Build the app and serve it until interrupted. ``on_ready(url)`` is called once it is listening;
    ``data_roots``: the folders submitted jobs may read (services/api/data_roots.py)."""
    import uvicorn  # noqa: PLC0415

    from services.api.app import create_app  # noqa: PLC0415

    for root in data_roots:
        if not Path(root).is_dir():
            raise InvalidParameter(f"--data-root: {root} is not a folder")
    app = create_app(settings, loopback=is_loopback(host), data_roots=tuple(Path(r) for r in data_roots))
    check_bind(host, app.state.kiln.tokens)
    config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level="warning", access_log=False,
                            timeout_keep_alive=30, limit_concurrency=512, proxy_headers=False,
                            timeout_graceful_shutdown=5)  # live log streams do not hold a stop up
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets=None):
            await original(sockets)
            if server.started:
                on_ready(url_for(host, port))

        server.startup = startup
    server.run()
    if not server.started:
        raise InvalidParameter(f"could not listen on {url_for(host, port)} (is the port in use?)")
