"""Finding and checking the text files a corpus argument names (files, directories, globs).

Used both when a spec is validated (before anything is stored) and by the corpus reader.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import os
import stat
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


def expand(arg: str, what: str = "corpus") -> list[Path]:
    """The files one corpus argument names, sorted; raises InvalidParameter if it names none."""
    if any(ch in arg for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(arg), recursive=True))
        files = [m for m in matches if m.is_file()]
        if not files:
            raise InvalidParameter(f"{what}: the pattern {arg!r} matches no file")
        return [f.absolute() for f in files]
    p = Path(arg).expanduser()
    if not p.exists():
        raise InvalidParameter(f"{what}: {arg}: no such file or directory")
    if p.is_dir():
        if not os.access(p, os.R_OK | os.X_OK):
            raise InvalidParameter(f"{what}: {arg}: permission denied (the directory cannot be listed)")
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(_is_hidden(x) for x in f.relative_to(p).parts))
        if not files:
            raise InvalidParameter(f"{what}: the directory {arg} holds no files")
        return [f.absolute() for f in files]
    return [p.absolute()]


def check_regular_file(path: Path, what: str = "corpus") -> None:
    """Refuse named pipes, sockets and devices: kiln reads a corpus several times (vocabulary, encoding)
    and from several workers, and reading a pipe at submit would block or consume it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InvalidParameter(f"{what}: {path}: cannot be read ({e.strerror})") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise InvalidParameter(f"{what}: {path} is {kind}; kiln reads a corpus more than once, from several "
                           "workers: write it to a regular file first")


def check_text_file(path: Path, what: str = "corpus") -> int:
    """Check that ``path`` is a readable, non-binary regular file; return its size in bytes (on disk).

    The head and (for plain files) the tail are sniffed for NUL bytes; the reader keeps checking every
    block it reads, so binary data in the middle fails the job with one line."""
    check_regular_file(path, what)
    if not os.access(path, os.R_OK):
        raise InvalidParameter(f"{what}: {path}: permission denied")
    tail = b""
    try:
        with open_binary(path) as f:
            head = f.read(_SNIFF_BYTES)
        if not str(path).endswith((".gz", ".bz2")):
            size = os.path.getsize(path)
            if size > 2 * _SNIFF_BYTES:
                with open(path, "rb") as f:
                    f.seek(size - _SNIFF_BYTES)
                    tail = f.read(_SNIFF_BYTES)
    except PermissionError:
        raise InvalidParameter(f"{what}: {path}: permission denied") from None
    except (OSError, EOFError) as e:
        raise InvalidParameter(f"{what}: {path}: cannot be read ({e})") from None
    if b"\x00" in head or b"\x00" in tail:
        raise InvalidParameter(f"{what}: {path}: looks like a binary file, not text")
    return path.stat().st_size if head else 0


def resolve_corpus(args: list[str], *, what: str = "corpus", skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expand corpus arguments into checked files; raise InvalidParameter naming the problem.

    In a directory or glob, empty and non-text files are skipped; each is appended to ``skipped`` as
    (path, reason) when a list is given, so the caller can say how many were skipped and why."""
    if not args:
        raise InvalidParameter(f"{what}: give at least one file, directory or glob")
    files: list[Path] = []
    for arg in args:
        found = expand(arg, what)
        many = Path(arg).expanduser().is_dir() or any(ch in arg for ch in "*?[")
        if many:
            # In a directory or glob, skip empty files and binaries quietly only if others hold text.
            text = []
            for f in found:
                try:
                    if check_text_file(f, what) > 0:
                        text.append(f)
                    elif skipped is not None:
                        skipped.append((f, "empty"))
                except InvalidParameter as e:
                    if skipped is not None:
                        skipped.append((f, str(e).rsplit(": ", 1)[-1]))
                    continue
            if not text:
                raise InvalidParameter(f"{what}: {arg} holds no readable text files")
            found = text
        else:
            if check_text_file(found[0], what) == 0:
                raise InvalidParameter(f"{what}: {found[0]} is empty")
        files.extend(found)
    # keep order, drop duplicates
    return list(dict.fromkeys(files))
