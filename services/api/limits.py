"""Request size limits, enforced before any handler reads the body.

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
counted as it arrives and refused the moment it passes the limit, so nothing oversized is buffered.
"""
from __future__ import annotations

from services.api.errors import PayloadTooLarge, error_body

MAX_JSON_BYTES = 1 << 20
"""Largest JSON request body (1 MiB): a job spec or a model change is a few hundred bytes."""
MAX_UPLOAD_BYTES = 10 << 20
"""Largest image upload for predict (10 MiB)."""


class BodyLimit:
    """ASGI middleware: at most ``upload_bytes`` for paths ending in one of ``upload_suffixes``,
    ``json_bytes`` for every other request."""

    def __init__(self, app, *, json_bytes: int = MAX_JSON_BYTES, upload_bytes: int = MAX_UPLOAD_BYTES,
                 upload_suffixes: tuple[str, ...] = ("/predict",)):
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes
        self.upload_suffixes = upload_suffixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if scope["path"].endswith(self.upload_suffixes) else self.json_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server itself rejects a malformed length
            if too_big:
                return await _refuse(send, limit)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"the request body is over the limit of {_size(limit)}")
            return message

        await self.app(scope, counted, send)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


async def _refuse(send, limit: int) -> None:
    import json  # noqa: PLC0415

    body = json.dumps(error_body("PAYLOAD_TOO_LARGE", f"the request body is over the limit of {_size(limit)}")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
