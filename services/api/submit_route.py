"""``POST /api/jobs`` answered as soon as the request reaches the app's own middleware, not through
FastAPI's router, dependency solver and thread-pool trip, which cost about as much CPU as the
submission itself (py-spy of a server under 10 clients: the framework's share of the event loop was
over half of the server's CPU). Everything that decides the answer is shared with the FastAPI route
(services/api/jobs.py, which stays for the OpenAPI document): the caller from ``auth.principal``, the
body from ``body.json_object``, the checks from ``jobs.prepare_job`` (in a worker thread, as they read
the job's files), the writes from the app's ``GroupCommit``, and errors from the handlers
``errors.install`` registered on the app, so both give the same bytes.

The worker thread does not wait for its job to be stored: it hands the checked spec to the group commit
(writing the batch itself when no other thread is writing one), and whichever thread writes the job's
batch settles the request's future on the event loop (fewer thread switches per request than a worker
thread waiting for a writer thread and then for the loop)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request

PATH = "/api/jobs"
THREADS = 32
"""Worker threads that check submitted specs."""


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
        from services.api.jobs import FLAGS_HEADER  # noqa: PLC0415

        app = scope["app"]  # the FastAPI app (Starlette puts itself there before its middleware runs)
        request = Request(scope, receive)
        try:
            who = await principal(request)
            spec = await json_object(request)
            stored = asyncio.get_running_loop().create_future()
            self._threads.submit(_check_and_queue, app, who, spec, request.headers.get(FLAGS_HEADER) == "1",
                                 stored)
            response = answer(await stored, 201)
        except Exception as e:  # noqa: BLE001 - answered by the app's own handler for it
            response = await _handled(app, request, e)
        await response(scope, receive, send)


def _check_and_queue(app, who, spec: dict, flags: bool, stored: asyncio.Future) -> None:
    """In a worker thread: check the spec, hand it to the group commit; ``stored`` gets the job's view,
    or the error, on its loop."""
    from services.api.jobs import prepare_job  # noqa: PLC0415

    loop = stored.get_loop()

    def settle(outcome) -> None:
        loop.call_soon_threadsafe(_settle, stored, outcome)

    try:
        validated = prepare_job(app, who, spec, flags)
    except BaseException as e:  # noqa: BLE001 - the request's own error, answered on the loop
        settle(e)
        return
    app.state.group_commit.enqueue(validated, settle, settle)


def _settle(stored: asyncio.Future, outcome) -> None:
    if stored.done():  # the request was cancelled (its client left)
        return
    if isinstance(outcome, BaseException):
        stored.set_exception(outcome)
    else:
        stored.set_result(outcome)


async def _handled(app, request: Request, e: Exception):
    """The response the app's exception handler for ``e`` gives (the most specific class first)."""
    for cls in type(e).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return await handler(request, e)
    raise e
