"""POST /api/models/{ref}/predict: classify one uploaded image with a registered CNN;
POST /api/models/{ref}/batch/predict: many images in one request (what `kiln predict` sends).

The upload is decoded in memory (never written to a file; its name is only echoed back) by the same
``decode`` the CNN job trains with, after a size check of the header (a small file cannot unpack into
a huge image). Loaded classifiers are kept per version uid, so repeated predictions skip loading.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from services.api.auth import Principal, principal
from services.api.errors import PayloadTooLarge
from shared.errors import InvalidParameter

router = APIRouter(prefix="/api", tags=["models"])
MAX_PIXELS = 40_000_000
"""Largest image (width x height) accepted before decoding: 40 megapixels."""
CACHED_MODELS = 4
_cache: OrderedDict[str, object] = OrderedDict()
_lock = threading.Lock()


MAX_IMAGES = 1000
"""Images in one batch request (multipart files; Starlette's parser refuses more)."""


def _classifier(request: Request, ref: str, what: str = "predict"):
    svc = request.app.state.kiln.model_service()
    mv = svc.get(ref)
    if mv.kind != "cnn":
        raise InvalidParameter(f"{mv.ref} is a {mv.kind} model; {what} needs a cnn (image classifier) model")
    with _lock:
        if mv.uid in _cache:
            _cache.move_to_end(mv.uid)
            return mv, _cache[mv.uid]
    clf = svc.load(ref)  # outside the lock: loading takes a while, and two loads of one model are harmless
    with _lock:
        _cache[mv.uid] = clf
        while len(_cache) > CACHED_MODELS:
            _cache.popitem(last=False)
    return mv, clf


def _decode(data: bytes, name: str, shape: tuple[int, int, int], unreadable: str = "image: {} is not a readable image"):
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    from workers.cnn.folder import decode  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            if im.width * im.height > MAX_PIXELS:
                raise PayloadTooLarge(f"image: {im.width}x{im.height} is over {MAX_PIXELS // 1_000_000} megapixels")
        return decode(io.BytesIO(data), shape[:2], shape[2])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidParameter(unreadable.format(name or "the upload")) from None


@router.post("/models/{ref}/predict", summary="Classify an uploaded image (CNN)")
def predict(request: Request, ref: str, who: Principal = Depends(principal), image: UploadFile = File(...),
            top: int = Query(3, ge=1, le=1000)) -> dict:
    """``{"model", "name", "label", "score", "top": [{"label", "score"}, ...]}`` for one image upload."""
    mv, clf = _classifier(request, ref)
    data = image.file.read()
    if not data:
        raise InvalidParameter("image: the upload is empty")
    name = (image.filename or "")[:200]
    row = clf.predict([_decode(data, name, clf.shape)], top=top)[0]
    return {"model": {"name": mv.name, "version": mv.version}, "name": name, "label": row["label"],
            "score": row["score"], "top": row["top"]}


@router.post("/models/{ref}/batch/predict", summary="Classify several uploaded images (CNN)",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "properties": {"image": {"type": "array", "items": {"type": "string",
                                                                                        "format": "binary"}}}}}}}})
async def predict_batch(request: Request, ref: str, who: Principal = Depends(principal),
                        top: int = Query(1, ge=1, le=1000)) -> dict:
    """``{"model", "predictions": [{"name", "label", "score", "top": [...]}, ...]}``: one prediction per
    ``image`` part, in order (up to 1000 per request, within the upload size limit). Each image is
    decoded and normalised as in training (the same code as `kiln predict` on the server's own files);
    the first unreadable one fails the request with its file name, as `kiln predict` does."""
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

    form = await request.form(max_files=MAX_IMAGES, max_fields=MAX_IMAGES)
    try:
        uploads = [(part.filename or "", part.file.read()) for part in form.getlist("image") if hasattr(part, "file")]
    finally:
        await form.close()
    if not uploads:
        raise InvalidParameter("image: give one or more image files (multipart parts named image)")
    return await run_in_threadpool(_predict_many, request, ref, uploads, top)


def _predict_many(request: Request, ref: str, uploads: list[tuple[str, bytes]], top: int) -> dict:
    mv, clf = _classifier(request, ref, "kiln predict")
    arrays = [_decode(data, name, clf.shape, "{}: not a readable image") for name, data in uploads]
    rows = clf.predict(arrays, top=top)
    return {"model": {"name": mv.name, "version": mv.version},
            "predictions": [{"name": name, "label": r["label"], "score": r["score"], "top": r["top"]}
                            for (name, _), r in zip(uploads, rows)]}
