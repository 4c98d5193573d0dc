"""Bearer tokens for the HTTP API: create, check, list and revoke (the Python API behind `kiln tokens`).

A token is ``kiln_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored
(services/registry/tokens.py), so the token is shown once, when it is created. The local user's token
for the embedded stack lives in ``$KILN_HOME/api_token`` (mode 0600).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from shared.errors import InvalidParameter

TOKEN_PREFIX = "kiln_"
TOKEN_FILE = "api_token"
"""The local user's token, under KILN_HOME, readable by its owner only."""
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")


def token_hash(token: str) -> str:
    """The hex SHA-256 that the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise InvalidParameter(f"--user: {user!r} is not a user name (letters, digits, _ . @ -; at most 128)")
    return user


class TokenService:
    """Tokens over a registry ``Database`` (``backends.db``)."""

    def __init__(self, db):
        from services.registry.tokens import TokenRecords  # noqa: PLC0415

        self.records = TokenRecords(db.engine)

    def create(self, user: str, *, admin: bool = False) -> tuple[str, dict]:
        """A new token for ``user``: returns (the token, its record as a dict). The token is not stored."""
        check_user(user)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        rec = self.records.add(user=user, admin=admin, token_hash=token_hash(token))
        return token, rec.to_dict()

    def authenticate(self, token: str):
        """The active ``ApiToken`` record for ``token``, or None (unknown, revoked, or not a kiln token)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return self.records.find(token_hash(token))

    def any_active(self) -> bool:
        return self.records.any_active()

    def list(self, user: str | None = None) -> list[dict]:
        return [t.to_dict() for t in self.records.list(user=check_user(user) if user else None)]

    def revoke(self, token_id: int) -> dict:
        return self.records.revoke(token_id).to_dict()

    def revoke_user(self, user: str) -> int:
        return self.records.revoke_user(check_user(user))


def write_token_file(home: Path, token: str) -> Path:
    """Write ``token`` to ``home/api_token`` with mode 0600 (created that way, never world-readable)."""
    path = Path(home) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return path


def read_token_file(home: Path) -> str | None:
    """The local token, or None if there is none (or it cannot be read)."""
    try:
        text = (Path(home) / TOKEN_FILE).read_text().strip()
    except OSError:
        return None
    return text or None
