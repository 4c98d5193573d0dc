"""The JSON object a request carries, parsed by kiln (whatever Content-Type the client sent), so a
malformed body and a body of the wrong type each get their own one-line error."""
from __future__ import annotations

import json

from fastapi import Request

from services.api.errors import PayloadTooLarge  # noqa: F401 - raised by the BodyLimit middleware while reading
from shared.errors import UserError


class MalformedJSON(UserError):
    """The body is not JSON (400)."""

    code = "MALFORMED_JSON"


class WrongType(UserError):
    """The body is JSON but not an object (400)."""

    code = "INVALID_PARAMETER_VALUE"


async def json_object(request: Request) -> dict:
    """FastAPI dependency: the body as a JSON object."""
    raw = await request.body()
    if not raw.strip():
        raise MalformedJSON("the request needs a JSON object as its body")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedJSON(f"the body is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise WrongType(f"the body must be a JSON object, not {type(value).__name__ if value is not None else 'null'}")
    return value


def answer(content, status: int = 200):
    """``content`` as the JSON response FastAPI would render from a returned dict or list (the same bytes),
    without its jsonable_encoder pass, which a sync route runs in one more trip to a worker thread."""
    from starlette.responses import JSONResponse  # noqa: PLC0415

    return JSONResponse(content, status_code=status)


def openapi_body(description: str, example: dict | None = None) -> dict:
    """``openapi_extra`` describing a JSON-object body (the dependency reads it, FastAPI does not)."""
    content = {"schema": {"type": "object"}}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "description": description, "content": {"application/json": content}}}
