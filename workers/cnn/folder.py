"""Image folders: one sub-folder per class holding PNG/JPEG (or any Pillow-readable) files.

Policy for bad files: a file that is not an image stops the job at submit with one line naming it
(and how many others are bad), rather than training silently on less data than the user gave.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import InvalidParameter, TrainingError
from shared.image_files import IMAGE_SUFFIXES  # noqa: F401 - one list of image suffixes


@dataclass(frozen=True)
class FolderListing:
    files: list[str]      # every image, class by class
    labels: list[int]     # class index of each file
    classes: list[str]    # sub-folder names, sorted


def list_folder(root: Path) -> FolderListing:
    """Classes (sub-folders, sorted) and their image files (by suffix, hidden files skipped)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(str(f))
                labels.append(i)
    return FolderListing(files, labels, classes)


def looks_like_folder(root: Path) -> bool:
    """A directory with at least one sub-folder holding an image file."""
    for d in root.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file()):
                return True
    return False


def scan_headers(files: list[str]) -> tuple[set[tuple[int, int]], bool]:
    """(the distinct (H, W) sizes, whether any image has colour), reading only each file's header.

    InvalidParameter naming the first file Pillow cannot identify, with the count of bad files."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    sizes: set[tuple[int, int]] = set()
    colour = False
    bad: list[str] = []
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.add((im.height, im.width))
                colour = colour or im.mode not in ("1", "L", "I", "I;16", "F", "LA", "P") or (
                    im.mode == "P" and im.palette is not None and im.palette.mode == "RGB" and _palette_colour(im))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            bad.append(f)
    if bad:
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise InvalidParameter(f"{bad[0]}: not a readable image{more}; remove it or fix it")
    return sizes, colour


def _palette_colour(im) -> bool:
    pal = im.getpalette() or []
    return any(pal[i] != pal[i + 1] or pal[i] != pal[i + 2] for i in range(0, len(pal) - 2, 3))


def decode(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image as uint8 (H, W, C): converted to L or RGB, resized (bilinear) to ``size`` if it differs.

    Used by training (prepare) and prediction alike, so both see the same pixels."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if (im.height, im.width) != tuple(size):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def decode_into(files: list[str], put, rows: range, size: tuple[int, int], channels: int) -> int:
    """Decode ``files[r]`` and ``put(r, image)`` for each r in ``rows`` (a shard of the job); returns the count."""
    from PIL import UnidentifiedImageError  # noqa: PLC0415

    n = 0
    for r in rows:
        try:
            image = decode(files[r], size, channels)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise TrainingError(f"{files[r]}: cannot be decoded ({e}); remove it or fix it") from None
        put(r, image)
        n += 1
    return n
