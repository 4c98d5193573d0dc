"""Advisory file locks (fcntl.flock) with a timeout: one owner at a time across processes.

The kernel drops a flock when its holder dies, however it dies, so a lock file never goes stale.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from shared.errors import Unavailable


def open_lock_file(path: Path) -> int:
    """An fd on ``path`` (created 0600 if missing), for flock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take the lock without waiting; False if another process holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise


def acquire(path: Path, *, timeout_s: float, waiting: str) -> int:
    """Hold an exclusive lock on ``path``; return its fd (close it to release).

    Waits up to ``timeout_s``; then Unavailable with ``waiting`` (what the holder is doing) in the message.
    """
    fd = open_lock_file(path)
    deadline = time.monotonic() + timeout_s
    while not try_lock(fd):
        if time.monotonic() > deadline:
            os.close(fd)
            raise Unavailable(f"{waiting}: still waiting after {timeout_s:.0f} s (lock {path})")
        time.sleep(0.1)
    return fd


@contextmanager
def held(path: Path, *, timeout_s: float, waiting: str) -> Iterator[None]:
    """``with held(path, ...)``: the exclusive lock for the block's duration."""
    fd = acquire(path, timeout_s=timeout_s, waiting=waiting)
    try:
        yield
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """True if some process holds an exclusive lock on ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not try_lock(fd, shared=True)
    finally:
        os.close(fd)  # also drops the shared lock we may just have taken
