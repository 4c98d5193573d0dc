"""Image uploads for `kiln predict` through a server: the files in batches, each batch one multipart
request (standard library only: the client reads bytes, the server decodes them as training does)."""
from __future__ import annotations

import secrets

from shared.errors import InvalidParameter

UPLOAD_LIMIT = 10 << 20
"""The server's largest upload body (services/api/limits.py MAX_UPLOAD_BYTES; not imported: it pulls in FastAPI)."""
BATCH_BYTES = 8 << 20
"""File bytes per request: well inside UPLOAD_LIMIT with the multipart framing."""
BATCH_IMAGES = 512
"""Images per request: the server's batch (services/api/predict.py takes up to 1000), and the batch
`kiln predict` runs the model on locally (workers/cnn/inference.py), so both see the same batches."""
_PART_OVERHEAD = 256


def _read(path: str) -> bytes:
    """The file's bytes; b"" when it cannot be read (the server then names it "not a readable image",
    after the model checks, as the local path does)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def batches(paths: list[str]):
    """Yield lists of (path, bytes) that each fit one request."""
    batch, size = [], 0
    for path in paths:
        data = _read(path)
        cost = len(data) + len(path.encode("utf-8", "surrogateescape")) + _PART_OVERHEAD
        if cost > UPLOAD_LIMIT - 2 * _PART_OVERHEAD:
            raise InvalidParameter(f"{path}: {len(data) >> 20} MiB is over the server's upload limit of "
                                   f"{UPLOAD_LIMIT >> 20} MiB per request")
        if batch and (size + cost > BATCH_BYTES or len(batch) >= BATCH_IMAGES):
            yield batch
            batch, size = [], 0
        batch.append((path, data))
        size += cost
    if batch:
        yield batch


def _quoted(name: str) -> str:
    """A file name as a quoted-string in Content-Disposition (backslash, quote escaped; no line breaks)."""
    name = name.replace("\\", "\\\\").replace('"', '\\"')
    return "".join("?" if c in "\r\n" else c for c in name)


def multipart(field: str, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request with one ``field`` part per file."""
    boundary = "kiln-" + secrets.token_hex(16)
    out = []
    for name, data in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{_quoted(name)}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        out += [head.encode("utf-8", "surrogateescape"), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
