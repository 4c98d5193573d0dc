"""Which files ``kiln predict`` reads: image files named on the command line, or found in folders.

Standard library only, so the CLI can list (and upload) images to a server without numpy or torch;
workers/cnn uses the same suffixes and the same listing.
"""
from __future__ import annotations

from pathlib import Path

from shared.errors import InvalidParameter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def image_files(args: list[str]) -> list[str]:
    """Files named by ``args``: each file as given, each directory's image files (recursive, sorted)."""
    out = []
    for a in args:
        p = Path(a).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidParameter(f"{a}: a directory with no image files")
            out += found
        elif p.is_file():
            out.append(str(p))
        else:
            raise InvalidParameter(f"{a}: no such file or directory")
    return out
