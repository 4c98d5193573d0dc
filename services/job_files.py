"""A job's files in the artifact store (``jobs/<id>/``): the trained result kept until it is registered,
the scratch data deleted when the job ends, and ``kiln gc`` for what older runs left behind.

Scratch is what only a running job needs: its encoded corpus (``data/``) and checkpoints (``checkpoint``,
``checkpoint-*`` and ``.checkpoint*`` folders). Model files (``model/`` and whatever a registered version
points at) are never touched here.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from shared.artifacts import ArtifactStore

RESULT_FILE = "result.json"
"""A finished attempt's result (artifact URIs, params, metrics, lineage), kept until it is registered."""
SCRATCH = ("data", "checkpoint", "checkpoint-*", ".checkpoint*")
"""Glob patterns, inside a job's folder, of what a finished job no longer needs."""


def job_root(store: ArtifactStore, job_id: str) -> Path:
    return store.root / "jobs" / job_id


def save_result(store: ArtifactStore, job_id: str, result: dict) -> Path:
    """Write ``result`` beside the job's artifacts (atomically), so a restarted dispatcher can register it."""
    folder = job_root(store, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, folder / RESULT_FILE)
    return folder / RESULT_FILE


def load_result(store: ArtifactStore, job_id: str) -> dict | None:
    """The kept result of ``job_id``, or None (none kept, or unreadable)."""
    try:
        return json.loads((job_root(store, job_id) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def drop_result(store: ArtifactStore, job_id: str) -> None:
    (job_root(store, job_id) / RESULT_FILE).unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _remove(path: Path) -> int:
    freed = _size(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
    return freed


def remove_scratch(store: ArtifactStore, job_id: str) -> int:
    """Delete a finished job's scratch (encoded corpus, checkpoints, kept result). Returns bytes freed."""
    root = job_root(store, job_id)
    if not root.is_dir():
        return 0
    freed = 0
    for pattern in (*SCRATCH, RESULT_FILE, RESULT_FILE + ".tmp"):
        for path in root.glob(pattern):
            freed += _remove(path)
    return freed


def collect_garbage(store: ArtifactStore, db, *, dry_run: bool = False) -> dict:
    """Remove what finished jobs left in the artifact store: the scratch of every terminal job, and the
    whole folder of a terminal job that no registered version points at (failed or cancelled jobs,
    deleted versions). Live jobs and folders of jobs unknown to the database are left alone.

    Returns {"jobs": [ids cleaned], "removed": [paths], "bytes_freed": n, "skipped": [ids unknown]}."""
    from shared.errors import NotFound  # noqa: PLC0415
    from shared.states import JobState  # noqa: PLC0415

    jobs_dir = store.root / "jobs"
    out = {"jobs": [], "removed": [], "bytes_freed": 0, "skipped": []}
    if not jobs_dir.is_dir():
        return out
    referenced = {v.job_id for v in db.models.list_versions() if v.job_id}
    for folder in sorted(p for p in jobs_dir.iterdir() if p.is_dir()):
        try:
            rec = db.jobs.get(folder.name)
        except NotFound:
            out["skipped"].append(folder.name)
            continue
        if not JobState(rec.state).is_terminal():
            continue
        targets = [folder] if folder.name not in referenced else [
            p for pattern in (*SCRATCH, RESULT_FILE) for p in folder.glob(pattern)]
        if not targets:
            continue
        out["jobs"].append(folder.name)
        for path in targets:
            out["removed"].append(str(path))
            out["bytes_freed"] += _size(path) if dry_run else _remove(path)
    return out
