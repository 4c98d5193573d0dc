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


def identify(request: Request) -> Principal | None:
    """The caller, or None when no credential came and the server is open; Unauthenticated otherwise."""
    state = request.app.state.kiln
    token, via = _bearer(request), "token"
    if token is None and request.cookies.get(COOKIE):
        token, via = request.cookies[COOKIE], "cookie"
    if token is not None:
        rec = state.tokens.authenticate(token)
        if rec is None:
            raise Unauthenticated("unknown or revoked token")
        if via == "cookie" and request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "kiln":
            raise PermissionDenied("a change made with the page's cookie needs the X-Requested-With: kiln header")
        return Principal(rec.user, rec.admin, via)
    if state.is_open():
        return Principal(state.settings.user, True, "open")
    raise Unauthenticated("missing bearer token (Authorization: Bearer TOKEN; `kiln tokens create --user NAME`)")


def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller (401 if there is none)."""
    found = identify(request)
    request.state.principal = found
    return found


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
