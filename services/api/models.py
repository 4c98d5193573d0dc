"""/api/models: the registry (list/search, show, lineage, compare, aliases, tags, delete) and the
questions asked of a model (similar, analogy, the 2-D word map, predict when the vision service exists).

Answers carry the field names of ``kiln models ... --json`` / ``kiln similar --json``. A model is named by
a reference (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) that the registry parses and checks; nothing from
a request becomes a path but the data `kiln eval` reads (services/api/evaluate.py: absolute, inside the
server's data roots). Deletes need an admin token.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.api.auth import Principal, principal, require_admin
from services.api.body import json_object, openapi_body
from shared.errors import InvalidParameter

router = APIRouter(prefix="/api", tags=["models"])
MAX_TOP = 10_000


def _svc(request: Request):
    return request.app.state.kiln.model_service()


@router.get("/models", summary="Search model versions (default: the latest of each model)")
def list_models(request: Request, kind: str | None = Query(None, max_length=32),
                name: str | None = Query(None, max_length=256, description="a glob on the model name"),
                filter: list[str] = Query([], max_length=50, description="e.g. metric.analogy_accuracy>=0.4"),
                order_by: str | None = Query(None, max_length=256), desc: bool = False,
                limit: int | None = Query(None, ge=1, le=100_000), all_versions: bool = False,
                who: Principal = Depends(principal)) -> list[dict]:
    svc = _svc(request)
    return svc.list(svc.query(kind=kind, name=name, filters=filter, order_by=order_by, descending=desc,
                              limit=limit, all_versions=all_versions))


@router.get("/compare", summary="Params, metrics and tags of several versions side by side")
def compare(request: Request, ref: list[str] = Query(..., max_length=20), who: Principal = Depends(principal)) -> dict:
    return _svc(request).compare(ref)


@router.get("/models/{ref}", summary="One version: params, metrics, artifacts, lineage, history")
def show(request: Request, ref: str, who: Principal = Depends(principal)) -> dict:
    return _svc(request).show(ref)


@router.get("/models/{ref}/lineage", summary="Where a version came from")
def lineage(request: Request, ref: str, who: Principal = Depends(principal)) -> dict:
    return _svc(request).lineage(ref)


@router.post("/models/{ref}/aliases", summary="Point NAME@ALIAS at this version",
             openapi_extra=openapi_body("the alias", {"alias": "production"}))
def set_alias(request: Request, ref: str, who: Principal = Depends(principal),
              body: dict[str, Any] = Depends(json_object)) -> dict:
    alias = body.get("alias")
    if not isinstance(alias, str):
        raise InvalidParameter("alias: a string is required")
    return _svc(request).set_alias(ref, alias).to_dict()


@router.delete("/models/{name}/aliases/{alias}", summary="Remove NAME@ALIAS (admin)")
def delete_alias(request: Request, name: str, alias: str, who: Principal = Depends(principal)) -> dict:
    require_admin(who, "removing an alias")
    version = _svc(request).delete_alias(name, alias)
    return {"name": name, "alias": alias, "version": version}


@router.post("/models/{ref}/tags", summary="Set tags on a version (NAME:VERSION) or a model (NAME)",
             openapi_extra=openapi_body("the tags to set", {"tags": {"team": "search"}}))
def set_tags(request: Request, ref: str, who: Principal = Depends(principal),
             body: dict[str, Any] = Depends(json_object)) -> dict:
    tags = body.get("tags")
    if not isinstance(tags, dict) or not tags or not all(isinstance(k, str) and isinstance(v, str)
                                                          for k, v in tags.items()):
        raise InvalidParameter("tags: an object of string keys and string values is required")
    svc = _svc(request)
    svc.set_tags(ref, tags)
    return {"ref": ref, "tags": tags}


@router.delete("/models/{ref}/tags/{key}", summary="Remove a tag (admin)")
def delete_tag(request: Request, ref: str, key: str, who: Principal = Depends(principal)) -> dict:
    require_admin(who, "removing a tag")
    _svc(request).delete_tags(ref, [key])
    return {"ref": ref, "removed": [key]}


@router.post("/models/{ref}/description", summary="Set the description of a version (NAME:VERSION) or a model (NAME)",
             openapi_extra=openapi_body("the description (\"\" clears it)", {"description": "trained on the 2024 dump"}))
def describe(request: Request, ref: str, who: Principal = Depends(principal),
             body: dict[str, Any] = Depends(json_object)) -> dict:
    text = body.get("description")
    if not isinstance(text, str):
        raise InvalidParameter("description: a string is required")
    _svc(request).describe(ref, text)
    return {"ref": ref, "description": text}


@router.get("/models/{ref}/deletable", summary="The version a delete of ref would remove (admin)")
def deletable(request: Request, ref: str, who: Principal = Depends(principal)) -> dict:
    """What `kiln models delete` asks to confirm: a bare NAME is refused (name the version)."""
    require_admin(who, "deleting a model version")
    mv = _svc(request).deletable(ref)
    return {"name": mv.name, "version": mv.version, "ref": mv.ref}


@router.delete("/models/{ref}", summary="Delete one version and its files (admin)")
def delete(request: Request, ref: str, force: bool = False, who: Principal = Depends(principal)) -> dict:
    require_admin(who, "deleting a model version")
    return _svc(request).delete(ref, force=force)


def _pairs(pairs) -> list[dict]:
    """(word, cosine) as computed: a client rounds for display, and rounding here too would round twice
    (0.1234498 -> 0.123450 -> "0.1235" where the CLI prints "0.1234" directly)."""
    return [{"word": w, "similarity": float(s)} for w, s in pairs]


@router.get("/models/{ref}/similar", summary="The words nearest to a word (cosine)")
def similar(request: Request, ref: str, word: str = Query(..., max_length=1000),
            top: int = Query(10, ge=1, le=MAX_TOP), who: Principal = Depends(principal)) -> list[dict]:
    return _pairs(_svc(request).similar(ref, word, top))


@router.get("/models/{ref}/analogy", summary="A is to B as C is to ? (3CosAdd)")
def analogy(request: Request, ref: str, a: str = Query(..., max_length=1000), b: str = Query(..., max_length=1000),
            c: str = Query(..., max_length=1000), top: int = Query(5, ge=1, le=MAX_TOP),
            who: Principal = Depends(principal)) -> list[dict]:
    return _pairs(_svc(request).analogy(ref, a, b, c, top))


@router.get("/models/{ref}/map", summary="2-D PCA map of the most frequent words (word2vec)")
def word_map(request: Request, ref: str, n: int = Query(200, ge=2, le=2000), who: Principal = Depends(principal)) -> dict:
    from services.embedding_map import embedding_map  # noqa: PLC0415

    mv, model = _svc(request).vectors(ref)
    return {"model": {"name": mv.name, "version": mv.version}, **embedding_map(model, n)}


@router.get("/plot/{target}", summary="A job's or a model's picture as PNG (what `kiln plot` draws)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def plot(request: Request, target: str, what: str = Query(..., pattern="^(loss|throughput|embeddings|confusion|filters)$"),
         words: int = Query(100, ge=2, le=2000), who: Principal = Depends(principal)) -> Response:
    from services.plots import render  # noqa: PLC0415

    png = render(request.app.state.kiln.backends, target, what, words=words)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _include_more() -> None:
    """Routes kept in modules of their own, served under this router's /api prefix (app.py includes
    only this router for them)."""
    from services.api import evaluate, export  # noqa: PLC0415

    router.include_router(evaluate.router)
    router.include_router(export.router)


_include_more()
