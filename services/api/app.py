"""The kiln HTTP server: the job and model services under /api, the web page at /.

``create_app(settings, loopback=True)`` builds the ASGI app; services/api/server.py runs it with uvicorn.
The OpenAPI document is at /api/openapi.json (interactive docs at /api/docs).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api import errors
from services.api.auth import OpenDoor
from services.api.group_commit import GroupCommit
from services.api.limits import BodyLimit
from services.api.state import ServerState
from services.api.submit_route import SubmitRoute
from services.backends import Backends
from shared.config import Settings

STATIC = Path(__file__).resolve().parent / "static"
THREADS = 256
"""Worker threads for request handlers (anyio's default is 40)."""


def create_app(settings: Settings, *, loopback: bool = True, data_roots: tuple[Path, ...] = ()) -> FastAPI:
    """The app for ``settings``. ``loopback``: the server listens on loopback only (it may then answer
    without a token while no token exists). ``data_roots``: folders job data must lie in (empty: any)."""
    from services.api import jobs, models, pages, predict  # noqa: PLC0415
    from services.tokens import TokenService  # noqa: PLC0415

    backends = Backends(settings)
    tokens = TokenService(backends.db)  # opens (and migrates) the database now, not on the first request
    app = FastAPI(title="kiln", version=_version(), openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None, lifespan=_lifespan,
                  description="Training jobs, the model registry and model queries over HTTP. "
                              "Send `Authorization: Bearer TOKEN` (`kiln tokens create --user NAME`).")
    app.state.kiln = ServerState(settings=settings, backends=backends, tokens=tokens,
                                 is_open=OpenDoor(tokens, loopback=loopback),
                                 data_roots=tuple(Path(r).resolve() for r in data_roots))
    app.state.group_commit = GroupCommit(lambda: app.state.kiln.job_service(settings.user))
    errors.install(app)
    app.add_middleware(SubmitRoute)  # POST /api/jobs without the router (inside BodyLimit: the same limit)
    app.add_middleware(BodyLimit)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(predict.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Handlers are plain functions run in a thread pool; a live log stream holds a thread while it waits
    # for lines, so the pool is sized well above MAX_STREAMS (jobs.py) to keep answering.
    import anyio.to_thread  # noqa: PLC0415

    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


def _version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("kiln")
    except Exception:  # running from a tree that is not installed
        return "0"
