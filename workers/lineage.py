"""Lineage recorded with each model version: the corpus fingerprint and the kiln version / git commit."""
from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path


def corpus_fingerprint(paths: list[str]) -> str:
    """sha256 over the corpus files' names and bytes, in order (streamed)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def kiln_lineage() -> dict:
    try:
        version = metadata.version("kiln")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = ""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"kiln_version": version, "git_commit": commit}
