"""A model version's files in the artifact store: their sizes, removing them, collecting the unreferenced.

Only files inside the artifact store's root are ever removed: a URI that points elsewhere (a registry
written by hand, another store) is reported and kept. Model files live in ``jobs/<job id>/model/``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

MODEL_DIR = "model"
"""The folder of a job's directory that holds the model files it registered."""


@dataclass
class Removal:
    """What a delete or gc removed (or, on a dry run, would remove)."""

    files: list[str] = field(default_factory=list)
    bytes: int = 0
    kept: list[str] = field(default_factory=list)  # referenced elsewhere, or outside the store

    def to_dict(self) -> dict:
        return {"removed": list(self.files), "freed_bytes": self.bytes, "kept": list(self.kept)}


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI or a plain path; None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        return Path(uri)
    return None


def size_of(uri: str) -> int | None:
    """Bytes in the artifact (a file, or every file under a folder); None if it is gone or not local."""
    path = local_path(uri)
    try:
        if path is None or not path.exists():
            return None
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return None


def _inside(path: Path, root: Path) -> bool:
    """True for a path inside a job's folder of the store (``root/jobs/<id>/...``), never root or jobs/ itself."""
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return False
    return len(parts) >= 3 and parts[0] == "jobs" and ".." not in parts


def remove_artifacts(uris: list[str], root: Path, still_used: set[str]) -> Removal:
    """Remove the files behind ``uris`` that lie inside ``root`` and that no URI in ``still_used`` names.

    A model folder left empty is removed too.
    """
    out = Removal()
    folders = set()
    for uri in uris:
        path = local_path(uri)
        if uri in still_used or path is None or not _inside(path, root):
            out.kept.append(uri)
            continue
        size = size_of(uri) or 0
        try:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            else:
                continue
        except OSError:
            out.kept.append(uri)
            continue
        out.files.append(str(path))
        out.bytes += size
        folders.add(path.parent)
    for folder in folders:
        if folder.name == MODEL_DIR and _inside(folder, root):
            try:
                folder.rmdir()  # only if empty
            except OSError:
                pass
    return out


def collect(root: Path, referenced: set[str], active_jobs: set[str], *, dry_run: bool = False) -> Removal:
    """Remove model files under ``root/jobs/*/model`` that no version references.

    Jobs in ``active_jobs`` (not yet terminal: they may be about to register) are left alone.
    """
    used = {p.resolve() for p in (local_path(u) for u in referenced) if p is not None}
    out = Removal()
    jobs = root / "jobs"
    if not jobs.is_dir():
        return out
    for folder in sorted(jobs.glob(f"*/{MODEL_DIR}")):
        if folder.parent.name in active_jobs or not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.resolve() in used or any(parent in used for parent in path.resolve().parents):
                continue
            size = path.stat().st_size
            if not dry_run:
                try:
                    path.unlink()
                except OSError:
                    out.kept.append(str(path))
                    continue
            out.files.append(str(path))
            out.bytes += size
        if not dry_run:
            for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
                try:
                    sub.rmdir()
                except OSError:
                    pass
            try:
                folder.rmdir()
            except OSError:
                pass
    return out
