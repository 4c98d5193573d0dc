"""API tokens in SQL: who a bearer token belongs to and whether it is an admin's.

Only the SHA-256 of a token is stored (``token_hash``); the token itself is shown once, by whoever
creates it (services.tokens). SQL rows stay here: callers get ``ApiToken`` records.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.registry.engine import reader, session_or_new
from services.registry.schema import Base
from services.registry.timestamps import UTCDateTime, utcnow
from shared.errors import NotFound


class SqlApiToken(Base):
    """One bearer token (its hash), its user, and whether it can do admin things."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(128))
    admin: Mapped[bool] = mapped_column(Boolean)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_entity(self) -> "ApiToken":
        return ApiToken(id=self.id, user=self.user, admin=self.admin, created_at=self.created_at,
                        revoked_at=self.revoked_at)


@dataclass(frozen=True)
class ApiToken:
    """A token's record (never the token itself)."""

    id: int
    user: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        return {"id": self.id, "user": self.user, "admin": self.admin, "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "active": self.active}


_FIND = (select(SqlApiToken.id, SqlApiToken.user, SqlApiToken.admin, SqlApiToken.created_at)
         .where(SqlApiToken.token_hash == bindparam("token_hash"), SqlApiToken.revoked_at.is_(None)))


class TokenRecords:
    """Token rows. ``token_hash`` is the hex SHA-256 of the token (computed by services.tokens)."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def add(self, *, user: str, admin: bool, token_hash: str, session: Session | None = None) -> ApiToken:
        with session_or_new(self._engine, session) as s:
            row = SqlApiToken(user=user, admin=admin, token_hash=token_hash, created_at=utcnow())
            s.add(row)
            s.flush()
            return row.to_entity()

    def find(self, token_hash: str) -> ApiToken | None:
        """The active token with this hash, or None (unknown or revoked)."""
        # Core, not an ORM session: the server checks a token on every request (0.25 ms instead of 0.9 ms)
        with reader(self._engine).connect() as conn:
            row = conn.execute(_FIND, {"token_hash": token_hash}).first()
        if row is None:
            return None
        return ApiToken(id=row.id, user=row.user, admin=row.admin, created_at=row.created_at, revoked_at=None)

    def list(self, *, user: str | None = None) -> list[ApiToken]:
        with session_or_new(self._engine, None, read_only=True) as s:
            q = select(SqlApiToken).order_by(SqlApiToken.id)
            if user is not None:
                q = q.where(SqlApiToken.user == user)
            return [row.to_entity() for row in s.scalars(q)]

    def any_active(self) -> bool:
        with session_or_new(self._engine, None, read_only=True) as s:
            return s.scalar(select(SqlApiToken.id).where(SqlApiToken.revoked_at.is_(None)).limit(1)) is not None

    def revoke(self, token_id: int, *, session: Session | None = None) -> ApiToken:
        """Revoke one token by id (revoking twice keeps the first time). NotFound if there is no such id."""
        with session_or_new(self._engine, session) as s:
            row = s.get(SqlApiToken, token_id)
            if row is None:
                raise NotFound(f"no token with id {token_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.flush()
            return row.to_entity()

    def revoke_user(self, user: str, *, session: Session | None = None) -> int:
        """Revoke every active token of ``user``; returns how many."""
        with session_or_new(self._engine, session) as s:
            rows = list(s.scalars(select(SqlApiToken).where(SqlApiToken.user == user,
                                                            SqlApiToken.revoked_at.is_(None))))
            for row in rows:
                row.revoked_at = utcnow()
            return len(rows)
