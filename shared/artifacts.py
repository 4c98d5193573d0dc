"""The artifact store: where checkpoints and model files live, addressed by URI.

The embedded default is a local directory (``$KILN_HOME/artifacts``); a shared filesystem path (NFS)
works the same way for a multi-node cluster. URIs are ``file://`` URLs so they stay valid in SQL.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.errors import InvalidParameter, NotFound


class ArtifactStore:
    def __init__(self, root: str | Path):
        root = str(root)
        if "://" in root:
            parsed = urlparse(root)
            if parsed.scheme != "file":
                raise InvalidParameter(
                    f"KILN_ARTIFACTS: the {parsed.scheme}:// scheme is not supported yet; use a local or shared path")
            root = unquote(parsed.path)
        self.root = Path(root).expanduser().absolute()

    def job_dir(self, job_id: str, *parts: str) -> Path:
        """A directory for one job's files (data, checkpoints, model), created on demand."""
        d = self.root.joinpath("jobs", job_id, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def checkpoint_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id / "checkpoint"

    @staticmethod
    def uri(path: str | Path) -> str:
        return Path(path).absolute().as_uri()

    @staticmethod
    def local_path(uri: str) -> Path:
        """The local path of a ``file://`` URI (or a plain path); NotFound if it does not exist."""
        parsed = urlparse(uri)
        p = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
        if not p.exists():
            raise NotFound(f"artifact {uri} no longer exists")
        return p

    def remove_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / "jobs" / job_id, ignore_errors=True)
