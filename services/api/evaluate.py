"""POST /api/models/{ref}/evaluate: what `kiln eval` runs, on the server's files.

A CNN version on a dataset (accuracy, per-class accuracy, confusion matrix: services/vision.py), or a
word2vec version on analogy / similarity files (recorded as its metrics: ModelService.evaluate). The
paths name files on the server's side: absolute, and inside `kiln serve --data-root` folders when the
server has any (services/api/data_roots.py), checked before anything is opened.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.api.auth import Principal, principal
from services.api.body import json_object, openapi_body
from services.api.data_roots import BUILT_IN, check_absolute, check_paths
from shared.errors import InvalidParameter

router = APIRouter(tags=["models"])


def _text(body: dict, key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"{key}: a string is required")
    return value


@router.post("/models/{ref}/evaluate", summary="Evaluate a version: a cnn on a dataset, a word2vec on analogies/similarity",
             openapi_extra=openapi_body("server-side paths", {"dataset": "/data/mnist", "format": "auto"}))
def evaluate(request: Request, ref: str, who: Principal = Depends(principal),
             body: dict[str, Any] = Depends(json_object)) -> Response:
    """``{"dataset", "format"}`` for a cnn version, ``{"analogies", "similarity"}`` for a word2vec one;
    the answer is what `kiln eval --json` prints (a Spearman of no pairs is NaN there, and here)."""
    return _json(_evaluate(request, ref, body))


def _json(value) -> Response:
    import json  # noqa: PLC0415

    return Response(json.dumps(value, default=_plain), media_type="application/json")


def _plain(v):
    """numpy scalars as Python numbers; anything else as `kiln eval --json` prints it (str)."""
    item = getattr(v, "item", None)
    return item() if callable(item) else str(v)


def _evaluate(request: Request, ref: str, body: dict) -> dict:
    dataset, fmt = _text(body, "dataset"), _text(body, "format", "auto")
    analogies, similarity = _text(body, "analogies"), _text(body, "similarity")
    paths = [p for p in (dataset, analogies, similarity) if p and p not in BUILT_IN]
    check_absolute(paths)
    check_paths(paths, request.app.state.kiln.data_roots)
    svc = request.app.state.kiln.model_service()
    if dataset is not None:
        from services import vision  # noqa: PLC0415

        return vision.evaluate(svc, ref, dataset, fmt=fmt)
    if not analogies and not similarity and svc.get(ref).kind == "cnn":
        raise InvalidParameter(f"give a DATASET to evaluate the cnn model {ref} on (`kiln eval {ref} DATASET`)")
    return svc.evaluate(ref, analogies=analogies, similarity=similarity)
