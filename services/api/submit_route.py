"""``POST /api/jobs`` answered as soon as the request reaches the app's own middleware, not through
FastAPI's router, dependency solver and thread-pool trip, which cost about as much CPU as the
submission itself (py-spy of a server under 10 clients: the framework's share of the event loop was
over half of the server's CPU). Everything that decides the answer is shared with the FastAPI route
(services/api/jobs.py, which stays for the OpenAPI document): the caller from ``auth.principal``, the
body from ``body.json_object``, the submission from ``jobs.submit_job`` (in a worker thread), and
errors from the handlers ``errors.install`` registered on the app, so both give the same bytes."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request

PATH = "/api/jobs"
THREADS = 64
"""Worker threads for submissions (each waits while its group commit is written)."""


class SubmitRoute:
    """ASGI middleware: ``POST /api/jobs`` here, every other request to ``app``."""

    def __init__(self, app):
        self.app = app
        self._threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="kiln-submit")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        from services.api.auth import principal  # noqa: PLC0415
        from services.api.body import answer, json_object  # noqa: PLC0415
        from services.api.jobs import FLAGS_HEADER, submit_job  # noqa: PLC0415

        app = scope["app"]  # the FastAPI app (Starlette puts itself there before its middleware runs)
        request = Request(scope, receive)
        try:
            who = await principal(request)
            spec = await json_object(request)
            view = await asyncio.get_running_loop().run_in_executor(
                self._threads, submit_job, app, who, spec, request.headers.get(FLAGS_HEADER) == "1")
            response = answer(view, 201)
        except Exception as e:  # noqa: BLE001 - answered by the app's own handler for it
            response = await _handled(app, request, e)
        await response(scope, receive, send)


async def _handled(app, request: Request, e: Exception):
    """The response the app's exception handler for ``e`` gives (the most specific class first)."""
    for cls in type(e).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return await handler(request, e)
    raise e
