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


def expand(arg: str, what: str = "corpus", unlisted: list[Path] | None = None) -> list[Path]:
    """The files one corpus argument names, sorted; raises InvalidParameter if it names none.

    Sub-directories that cannot be listed are appended to ``unlisted`` (when given): a directory whose
    only files lie under them is refused as unreadable, not as empty."""
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
        denied: list[Path] = []
        files = sorted(f for f in _walk(p, denied) if not any(_is_hidden(x) for x in f.relative_to(p).parts))
        if unlisted is not None:
            unlisted.extend(denied)
        if not files and denied:
            raise InvalidParameter(f"{what}: {arg}: permission denied ({len(denied)} sub-directory(ies) cannot "
                                   f"be listed, e.g. {denied[0]})")
        if not files:
            raise InvalidParameter(f"{what}: the directory {arg} holds no files")
        return [f.absolute() for f in files]
    return [p.absolute()]


def _walk(top: Path, denied: list[Path]) -> list[Path]:
    """Every file under ``top`` (links followed, each directory walked once); the sub-directories that
    cannot be listed go to ``denied`` (rglob would skip them without a word)."""
    files, seen = [], set()
    for root, dirs, names in os.walk(top, onerror=lambda e: denied.append(Path(e.filename).absolute()),
                                     followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree: walked once
            dirs[:] = []
            continue
        seen.add(real)
        # pipes, sockets and devices too, so that they are reported as skipped, not dropped unseen
        files.extend(f for f in (Path(root) / n for n in names) if f.exists() and not f.is_dir())
    return files


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
        unlisted: list[Path] = []
        found = expand(arg, what, unlisted)
        left_out = [(d, "permission denied (the directory cannot be listed)") for d in unlisted]
        many = Path(arg).expanduser().is_dir() or any(ch in arg for ch in "*?[")
        if many:
            # In a directory or glob, skip empty files and binaries, if others hold text.
            text = []
            for f in found:
                try:
                    if check_text_file(f, what) > 0:
                        text.append(f)
                    else:
                        left_out.append((f, "empty"))
                except InvalidParameter as e:  # the reason alone: "looks like a binary file, not text", ...
                    msg, head = str(e), f"{what}: {f}"
                    why = msg[len(head):].lstrip(": ") if msg.startswith(head) else msg
                    left_out.append((f, why.split(";")[0].removeprefix("is ")))
            if not text:
                reasons = sorted({why for _, why in left_out})
                raise InvalidParameter(f"{what}: {arg} holds no readable text files ({len(left_out)} left out: "
                                       f"{'; '.join(reasons)})")
            found = text
        elif check_text_file(found[0], what) == 0:
            raise InvalidParameter(f"{what}: {found[0]} is empty")
        if skipped is not None:
            skipped.extend(left_out)
        files.extend(found)
    # keep order, drop duplicates
    return list(dict.fromkeys(files))
