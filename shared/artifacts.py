"""The artifact store: where checkpoints and model files live, addressed by URI.

``KILN_ARTIFACTS`` is a local or shared path (NFS), a ``file://`` URL, or any fsspec URL
(``s3://bucket/prefix``, ``gs://...``, ``memory://...``). Jobs always write into a local folder
(``job_dir``): for a path store that folder is the store itself; for a URL store it is a staging
folder on the node, and ``uri(path)`` uploads the file and returns its URL, which is what SQL keeps.
``local_path(uri)`` gives a local file for any URI, downloading (once, into a cache) what is remote.
Scratch data and checkpoints of a URL store stay on the node that wrote them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.errors import InvalidParameter, NotFound, Unavailable


def is_remote(url: str) -> bool:
    """True for a URL whose scheme is not ``file`` (a single letter is a Windows drive, not a scheme)."""
    scheme = urlparse(str(url)).scheme
    return "://" in str(url) and len(scheme) > 1 and scheme != "file"


def _filesystem(url: str):
    """The fsspec filesystem for ``url``; InvalidParameter if its scheme is unknown or its package missing.

    Options come from fsspec's own settings, e.g. ``FSSPEC_S3_ENDPOINT_URL`` for an S3-compatible server.
    """
    from fsspec.core import url_to_fs  # noqa: PLC0415 - only URL stores need it

    scheme = urlparse(url).scheme
    try:
        return url_to_fs(url)[0]
    except ValueError:
        raise InvalidParameter(f"KILN_ARTIFACTS: unknown URL scheme {scheme}://") from None
    except ImportError as e:
        raise InvalidParameter(f"KILN_ARTIFACTS: {scheme}:// needs a package that is not installed ({e}); "
                               f"for s3:// install kiln[s3]") from None


def _node_dir(kind: str, key: str) -> Path:
    """A folder of this user on this node for ``kind`` (staging, cache), one per ``key``."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kiln-{kind}-{os.getuid()}" / digest


class ArtifactStore:
    def __init__(self, root: str | Path, *, staging: str | Path | None = None):
        """``root``: the KILN_ARTIFACTS value. ``staging``: the local folder of a URL store (default: one
        per store under the system temp folder)."""
        root = str(root)
        self.url: str | None = None
        if is_remote(root):
            self.url = root.rstrip("/")
            self.fs = _filesystem(self.url)
            root = str(staging or _node_dir("staging", self.url))
        elif "://" in root:
            root = unquote(urlparse(root).path)
        self.root = Path(root).expanduser().absolute()

    def job_dir(self, job_id: str, *parts: str) -> Path:
        """A local directory for one job's files (data, checkpoints, model), created on demand."""
        d = self.root.joinpath("jobs", job_id, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def checkpoint_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "checkpoint"

    def uri(self, path: str | Path) -> str:
        """The URI that SQL keeps for ``path``: a ``file://`` URI, or, for a URL store, the URL of the copy
        uploaded now (``path`` must be inside ``job_dir``). Unavailable if the upload fails."""
        path = Path(path).absolute()
        if self.url is None:
            return path.as_uri()
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_uri()  # not one of the store's files: keep pointing at it where it is
        target = f"{self.url}/{rel}"
        try:
            self.fs.put(str(path), target, recursive=path.is_dir())
        except Exception as e:  # noqa: BLE001 - botocore, aiohttp, OSError...: one line
            raise Unavailable(f"could not upload {path.name} to {target}: {_first_line(e)}") from None
        return target

    @staticmethod
    def local_path(uri: str) -> Path:
        """A local path for ``uri`` (``file://``, a plain path, or a URL downloaded once into a cache);
        NotFound if it does not exist."""
        if is_remote(uri):
            return fetch(uri)
        parsed = urlparse(uri)
        p = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
        if not p.exists():
            raise NotFound(f"artifact {uri} no longer exists")
        return p

    def remove_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / "jobs" / job_id, ignore_errors=True)


def fetch(uri: str) -> Path:
    """Download the file or folder at ``uri`` into this node's cache (once) and return its local path."""
    target = _node_dir("cache", uri) / (uri.rstrip("/").rsplit("/", 1)[-1] or "artifact")
    if target.exists():
        return target
    fs = _filesystem(uri)
    try:
        if not fs.exists(uri):
            raise NotFound(f"artifact {uri} no longer exists")
        partial = target.with_name(target.name + f".part-{os.getpid()}")
        partial.parent.mkdir(parents=True, exist_ok=True)
        fs.get(uri, str(partial), recursive=fs.isdir(uri))
        os.replace(partial, target)  # whole or not at all: a reader never sees half a file
    except (NotFound, InvalidParameter):
        raise
    except Exception as e:  # noqa: BLE001
        raise Unavailable(f"could not download {uri}: {_first_line(e)}") from None
    return target


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
