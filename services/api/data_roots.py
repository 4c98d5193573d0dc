"""Which server files a job submitted over HTTP may read: `kiln serve --data-root DIR` (repeatable).

A spec names files on the server's side (a corpus, evaluation files, a dataset, starting weights). With
data roots, each of them must lie inside one of the roots once resolved (``..`` and symbolic links
followed), so a token cannot make the server train on, and so leak, any file it happens to be able to
read. Without roots every readable path is allowed (the single-user embedded stack).
"""
from __future__ import annotations

import os
from pathlib import Path

from shared.errors import InvalidParameter

PATH_FIELDS = ("corpus", "eval_analogies", "eval_similarity", "dataset", "test", "weights")
"""Spec params that name files (the CLI's HTTP client makes them absolute before sending)."""
BUILT_IN = frozenset({"digits"})
"""Dataset names that are not files."""


def _paths(get) -> list[str]:
    out = []
    for field in PATH_FIELDS:
        value = get(field)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v and v not in BUILT_IN:
                out.append(v)
    return out


def spec_paths(spec) -> list[str]:
    """The file paths a validated JobSpec names."""
    return _paths(lambda field: getattr(spec.params, field, None))


def raw_paths(data: dict) -> list[str]:
    """The file paths a spec as submitted (JSON, not yet validated) names; wrong types are left to validation."""
    params = data.get("params") if isinstance(data, dict) else None
    return _paths(params.get) if isinstance(params, dict) else []


def _glob_base(path: str) -> Path:
    """The part of ``path`` before its first glob character (the folder a glob searches)."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return Path(*parts[:i]) if i else Path("/")
    return Path(path)


def check_absolute(paths: list[str]) -> None:
    """InvalidParameter for a relative path: over HTTP it would resolve against the server's working folder."""
    for raw in paths:
        if not os.path.isabs(os.path.expanduser(raw)):
            raise InvalidParameter(f"{raw}: give an absolute path (the server reads it on its side)")


def check_paths(paths: list[str], roots: tuple[Path, ...]) -> None:
    """PermissionDenied (403) for the first of ``paths`` outside every root; nothing if ``roots`` is empty.

    Called on the submitted spec before validation opens any file (so a refused path is never read, and
    no answer tells whether it exists), and on the validated spec again."""
    from services.api.errors import PermissionDenied  # noqa: PLC0415 - keeps this module free of fastapi

    if not roots:
        return
    for raw in paths:
        where = _glob_base(raw).resolve()
        if not any(where == root or where.is_relative_to(root) for root in roots):
            raise PermissionDenied(f"{raw}: this server reads job data only under {', '.join(map(str, roots))}")
