"""Files that hold secrets or private records: created 0600, written atomically.

What kiln keeps under KILN_HOME that another local user must not read: the Redis password and Ray token,
stack.json (it holds the Redis URL with its password), the logs, and the SQLite registry.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by this user only (0600)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def secret_file(path: Path) -> str:
    """The secret stored in ``path``, generated (64 hex digits, mode 0600) the first time."""
    if not path.is_file():
        write_private(path, secrets.token_hex(32))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def private_file(path: Path) -> None:
    """Create ``path`` if missing, mode 0600 (an empty file is a valid new SQLite database)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.stat().st_uid == os.getuid():
            os.chmod(path, 0o600)
    except OSError:
        pass  # not ours to change; the command that needs it reports the problem


def sqlite_path(db_url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL, None for other databases and in-memory SQLite."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix) or "mode=memory" in db_url:
        return None
    path = db_url[len(prefix):].split("?", 1)[0]
    return Path(path).expanduser() if path and path != ":memory:" else None
