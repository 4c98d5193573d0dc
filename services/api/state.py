"""What every request handler shares: the settings, one set of backends, the token store, and services
bound to the caller (a job submitted through the API belongs to the token's user)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from services.api.auth import VerifiedTokens
from services.backends import Backends
from shared.config import Settings


@dataclass
class ServerState:
    settings: Settings
    backends: Backends
    tokens: object  # services.tokens.TokenService
    is_open: Callable[[], bool]
    data_roots: tuple[Path, ...] = ()
    """Folders job data must lie in (services/api/data_roots.py); empty: any path the server can read."""
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)
    """Tokens found active a moment ago (services/api/auth.py)."""

    def backends_for(self, user: str) -> Backends:
        """The shared connections, with ``settings.user`` set to ``user`` (who the services act for)."""
        shared = self.backends
        if shared.redis_or_none() is not None:
            shared.status, shared.queue  # noqa: B018 - cached on the shared object before it is copied
        b = copy.copy(shared)  # shares the cached Redis client, database engine and stores
        b.settings = self.settings.with_(user=user)
        return b

    def job_service(self, user: str):
        from services.jobs import JobService  # noqa: PLC0415

        return JobService(self.backends_for(user))

    def model_service(self):
        from services.models import ModelService  # noqa: PLC0415

        return ModelService(self.backends)
