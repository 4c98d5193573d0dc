"""Writing an export to a path the user gave, without ever destroying what is there.

``export_target(dest, force=...)`` yields a fresh temporary file to write, created exclusively
(O_CREAT|O_EXCL|O_NOFOLLOW, a random name) in the target's own folder, then renames it onto ``dest``
only if ``dest`` is new or a regular file (and then only with ``force``). Devices, named pipes, sockets,
symbolic links and folders are refused; ``-`` means standard output.
"""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from shared.errors import InvalidParameter


def _refusal(dest: str, mode: int, force: bool) -> str | None:
    """Why ``dest`` (whose lstat mode is ``mode``) must not be replaced, or None if it may be."""
    if stat.S_ISLNK(mode):
        return f"-o: {dest} is a symbolic link; kiln does not write through links (give the real path)"
    if stat.S_ISDIR(mode):
        return f"-o: {dest} is a directory; give a file path"
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        return f"-o: {dest} is {kind}, not a regular file; use -o - to write to standard output"
    if not force:
        return f"-o: {dest} exists; add --force to replace it"
    return None


def _check(dest: str, out: Path, force: bool) -> None:
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        return
    why = _refusal(dest, mode, force)
    if why:
        raise InvalidParameter(why)


@contextmanager
def export_target(dest: str, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the export to; on success it becomes ``dest`` (see module doc).

    Raises InvalidParameter (one line, nothing changed at ``dest``) when ``dest`` cannot be written."""
    if dest == "-":
        with tempfile.TemporaryDirectory(prefix="kiln-export-") as d:
            tmp = Path(d) / "export"
            yield tmp
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return
    out = Path(dest).expanduser()
    parent = out.parent
    if not parent.is_dir():
        raise InvalidParameter(f"-o: the directory {parent} does not exist")
    _check(dest, out, force)
    tmp = parent / f".{out.name}.kiln-{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except PermissionError:
        raise InvalidParameter(f"-o: {dest}: permission denied") from None
    except OSError as e:
        raise InvalidParameter(f"-o: {dest}: cannot be written ({e.strerror or e})") from None
    os.close(fd)
    try:
        yield tmp
        _check(dest, out, force)  # again: the target may have changed while the export was written
        os.replace(tmp, out)  # rename never follows a link at the destination
    except PermissionError:
        raise InvalidParameter(f"-o: {dest}: permission denied") from None
    except OSError as e:
        raise InvalidParameter(f"-o: {dest}: cannot be written ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)
