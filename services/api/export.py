"""GET /api/models/{ref}/export?format=F: a version as the file `kiln models export` writes.

The server writes the export (ModelService.export: word2vec text/binary/safetensors, a CNN's ONNX,
safetensors or TorchScript) to a private temporary folder under its KILN_HOME, sends it, and removes it.
The client writes what it receives to its own -o path (cli/http_client.py, services/export_target.py).
"""
from __future__ import annotations

import shutil
import tempfile

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from services.api.auth import Principal, principal

router = APIRouter(tags=["models"])
FORMATS = "^(word2vec-text|word2vec-binary|safetensors|onnx|torchscript)$"
KIND_HEADER = "X-Kiln-Model-Kind"


@router.get("/models/{ref}/export", summary="A version as a file: word2vec text/binary, safetensors, ONNX, TorchScript",
            response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def export(request: Request, ref: str, format: str = Query("word2vec-text", pattern=FORMATS),
           who: Principal = Depends(principal)) -> FileResponse:
    st = request.app.state.kiln
    svc = st.model_service()
    kind = svc.get(ref).kind
    home = st.settings.kiln_home
    home.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".export-", dir=home)
    try:
        path = svc.export(ref, format, f"{folder}/export", force=False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, media_type="application/octet-stream", headers={KIND_HEADER: kind},
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
