"""HTTP errors: every failure leaves the server as ``{"error": {"code", "message"}}`` with a status code.

KilnError subclasses carry a stable ``code``; the status comes from the class (the CLI maps the same
classes to exit codes). The message is one line; internal failures say no more than that they happened.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import (AlreadyExists, InvalidTransition, KilnError, NotFound, Unavailable, UserError)

log = logging.getLogger("kiln.api")


class Unauthenticated(KilnError):
    """No bearer token, or one that is unknown or revoked (401)."""

    code = "UNAUTHENTICATED"
    exit_code = 2


class PermissionDenied(KilnError):
    """The token's user may not do this (someone else's job; an admin-only action) (403)."""

    code = "PERMISSION_DENIED"
    exit_code = 2


class PayloadTooLarge(KilnError):
    """A request body or upload over the server's limit (413)."""

    code = "PAYLOAD_TOO_LARGE"
    exit_code = 2


def status_for(e: KilnError) -> int:
    """The HTTP status for a kiln error, by class (most specific first)."""
    for cls, status in ((Unauthenticated, 401), (PermissionDenied, 403), (PayloadTooLarge, 413),
                        (NotFound, 404), (AlreadyExists, 409), (InvalidTransition, 409), (UserError, 400),
                        (Unavailable, 503)):
        if isinstance(e, cls):
            return status
    if e.code == "SCHEMA_OUT_OF_DATE":
        return 503
    if "InUse" in type(e).__name__:  # the registry's VersionInUse: a conflict with an alias
        return 409
    return 500


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": " ".join(str(message).split())}}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ROUTE_NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


def _validation_message(exc: RequestValidationError) -> str:
    """One line from FastAPI's list of problems: ``where: what`` for the first one, and a count of the rest."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    msg = first.get("msg", "invalid")
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON ({first.get('ctx', {}).get('error', msg)})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where or 'request'}: {msg}{more}"


def lost_service(e: BaseException) -> str | None:
    """A one-line message if ``e`` is a dropped connection to Redis or Ray (checked by class name)."""
    module, name = type(e).__module__, type(e).__name__
    if module.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
        return "lost the connection to Redis"
    if module.startswith("ray") and ("Connection" in name or "Unavailable" in name):
        return "lost the connection to Ray"
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error body."""

    @app.exception_handler(KilnError)
    async def _kiln(request: Request, e: KilnError):
        status = status_for(e)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, e.message)
        return error_response(status, e.code, e.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        code = "MALFORMED_JSON" if first.get("type") == "json_invalid" else "INVALID_PARAMETER_VALUE"
        return error_response(400, code, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        lost = lost_service(e)
        if lost is not None:
            return error_response(503, "SERVICE_UNAVAILABLE", lost)
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "INTERNAL_ERROR", f"internal error ({type(e).__name__}); see the server log")
