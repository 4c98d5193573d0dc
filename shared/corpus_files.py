"""Finding and checking the text files a corpus argument names (files, directories, globs).

Used both when a spec is validated (before anything is stored) and by the corpus reader.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import os
from pathlib import Path

from shared.errors import InvalidParameter

_SNIFF_BYTES = 8192


def open_binary(path: Path | str):
    """Open a corpus file for reading bytes, decompressing .gz and .bz2 transparently."""
    p = str(path)
    if p.endswith(".gz"):
        return gzip.open(p, "rb")
    if p.endswith(".bz2"):
        return bz2.open(p, "rb")
    return open(p, "rb")


def _is_hidden(part: str) -> bool:
    return part.startswith(".")


def expand(arg: str) -> list[Path]:
    """The files one corpus argument names, sorted; raises InvalidParameter if it names none."""
    if any(ch in arg for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(arg), recursive=True))
        files = [m for m in matches if m.is_file()]
        if not files:
            raise InvalidParameter(f"corpus: the pattern {arg!r} matches no file")
        return [f.absolute() for f in files]
    p = Path(arg).expanduser()
    if not p.exists():
        raise InvalidParameter(f"corpus: {arg}: no such file or directory")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(_is_hidden(x) for x in f.relative_to(p).parts))
        if not files:
            raise InvalidParameter(f"corpus: the directory {arg} holds no files")
        return [f.absolute() for f in files]
    return [p.absolute()]


def check_text_file(path: Path) -> int:
    """Check that ``path`` is a readable, non-binary corpus file; return its size in bytes (on disk)."""
    if not os.access(path, os.R_OK):
        raise InvalidParameter(f"corpus: {path}: permission denied")
    try:
        with open_binary(path) as f:
            head = f.read(_SNIFF_BYTES)
    except PermissionError:
        raise InvalidParameter(f"corpus: {path}: permission denied") from None
    except (OSError, EOFError) as e:
        raise InvalidParameter(f"corpus: {path}: cannot be read ({e})") from None
    if b"\x00" in head:
        raise InvalidParameter(f"corpus: {path}: looks like a binary file, not text")
    return path.stat().st_size if head else 0


def resolve_corpus(args: list[str]) -> list[Path]:
    """Expand corpus arguments into checked files; raise InvalidParameter naming the problem."""
    if not args:
        raise InvalidParameter("corpus: give at least one file, directory or glob")
    files: list[Path] = []
    for arg in args:
        found = expand(arg)
        many = Path(arg).expanduser().is_dir() or any(ch in arg for ch in "*?[")
        if many:
            # In a directory or glob, skip empty files and binaries quietly only if others hold text.
            text = []
            for f in found:
                try:
                    if check_text_file(f) > 0:
                        text.append(f)
                except InvalidParameter:
                    continue
            if not text:
                raise InvalidParameter(f"corpus: {arg} holds no readable text files")
            found = text
        else:
            if check_text_file(found[0]) == 0:
                raise InvalidParameter(f"corpus: {found[0]} is empty")
        files.extend(found)
    # keep order, drop duplicates
    return list(dict.fromkeys(files))
