"""Who is asking: a bearer token (or the page's session cookie) -> a Principal; and who may do what.

- Every /api route needs a valid token, except on a server bound to loopback while no token exists at
  all (the embedded single-user case): then the caller is the server's own user, as an admin.
- The web page keeps the token in an HttpOnly, SameSite=Strict cookie. A request authenticated by the
  cookie that changes something must also carry ``X-Requested-With: kiln``: a header another site's
  page cannot send without a CORS preflight, which this server never grants (no CSRF).
- Owners: only a job's user or an admin may cancel or retry it. Deletes in the registry need an admin.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request

from services.api.errors import PermissionDenied, Unauthenticated
from services.tokens import token_hash

COOKIE = "kiln_token"
CSRF_HEADER = "x-requested-with"
OPEN_CHECK_S = 2.0
"""How long the answer to "does any token exist?" is reused (a token created meanwhile closes the door
within this time)."""


@dataclass(frozen=True)
class Principal:
    user: str
    admin: bool
    via: str  # "token", "cookie" or "open"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be `Bearer TOKEN`")
    return token.strip()


def _credential(request: Request) -> tuple[str | None, str]:
    token, via = _bearer(request), "token"
    if token is None and request.cookies.get(COOKIE):
        token, via = request.cookies[COOKIE], "cookie"
    return token, via


def _caller(request: Request, rec, via: str) -> Principal:
    if rec is None:
        raise Unauthenticated("unknown or revoked token")
    if via == "cookie" and request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "kiln":
        raise PermissionDenied("a change made with the page's cookie needs the X-Requested-With: kiln header")
    return Principal(rec.user, rec.admin, via)


def identify(request: Request) -> Principal | None:
    """The caller, or None when no credential came and the server is open; Unauthenticated otherwise."""
    state = request.app.state.kiln
    token, via = _credential(request)
    if token is not None:
        return _caller(request, state.verified.check(token, state.tokens.authenticate), via)
    if state.is_open():
        return Principal(state.settings.user, True, "open")
    raise Unauthenticated("missing bearer token (Authorization: Bearer TOKEN; `kiln tokens create --user NAME`)")


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller (401 if there is none). Async, so that a token seen
    in the last VERIFIED_S costs no trip to a worker thread (nor to the database); anything else is
    looked up in a worker thread, as before."""
    state = request.app.state.kiln
    token, via = _credential(request)
    rec = state.verified.fresh(token) if token is not None else None
    if rec is not None:
        found = _caller(request, rec, via)
    else:
        from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

        found = await run_in_threadpool(identify, request)
    request.state.principal = found
    return found


VERIFIED_S = 1.0
"""How long a token found active in the database is taken as active without asking it again: a revoked
token is refused by a running server within this time."""


class VerifiedTokens:
    """Tokens found active in the last VERIFIED_S, by their SHA-256 (never the token itself). Only
    successes are kept: an unknown or revoked token is looked up every time."""

    MAX = 4096

    def __init__(self, ttl_s: float = VERIFIED_S):
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, object]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return token_hash(token)

    def fresh(self, token: str):
        """The record of ``token`` if it was found active less than ttl_s ago, else None."""
        hit = self._seen.get(self._key(token))
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def check(self, token: str, authenticate):
        """``authenticate(token)`` (the database's word), remembered when it is a record."""
        rec = authenticate(token)
        if rec is not None:
            if len(self._seen) >= self.MAX:
                self._seen.clear()
            self._seen[self._key(token)] = (time.monotonic(), rec)
        return rec


def require_admin(who: Principal, action: str) -> None:
    if not who.admin:
        raise PermissionDenied(f"{action} needs an admin token ({who.user} is not an admin)")


def require_owner(who: Principal, job: dict, action: str) -> None:
    """Only the job's user (or an admin) may ``action`` it."""
    if not who.admin and job.get("user") != who.user:
        raise PermissionDenied(f"{job['id']} belongs to {job.get('user')}; only its owner or an admin may {action} it")


class OpenDoor:
    """Whether the server answers without a token: bound to loopback and no active token in the store."""

    def __init__(self, tokens, *, loopback: bool):
        self.tokens = tokens
        self.loopback = loopback
        self._checked = (0.0, False)

    def __call__(self) -> bool:
        if not self.loopback:
            return False
        at, answer = self._checked
        now = time.monotonic()
        if now - at > OPEN_CHECK_S:
            answer = not self.tokens.any_active()
            self._checked = (now, answer)
        return answer
