"""The connections a kiln process needs (Redis, the SQL database, the artifact store), opened lazily.

Read-only commands touch only what they use: ``kiln jobs`` never connects to Ray and works with
Redis down (it reads SQL).
"""
from __future__ import annotations

from functools import cached_property

import redis

from services.queue import JobQueue
from shared.artifacts import ArtifactStore
from shared.config import Settings, mask_url
from shared.errors import InvalidParameter, Unavailable
from shared.status import StatusStore


class Backends:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def redis(self) -> redis.Redis:
        url = self.settings.redis_url
        if not url:
            raise Unavailable("Redis is not running: run `kiln up` (`kiln doctor` says why it stopped), "
                              "or set KILN_REDIS_URL")
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30, health_check_interval=30)
        except ValueError as e:
            raise InvalidParameter(f"KILN_REDIS_URL {mask_url(url)!r} is not a Redis URL ({e})") from None
        try:
            client.ping()
        except redis.RedisError as e:
            raise Unavailable(f"cannot reach Redis at {mask_url(url)}: {e}") from None
        return client

    def redis_or_none(self) -> redis.Redis | None:
        """Redis if reachable, else None (callers fall back to SQL)."""
        try:
            return self.redis
        except Unavailable:
            return None

    @cached_property
    def db(self):
        from services.registry import Database  # noqa: PLC0415 - sqlalchemy only when SQL is needed
        from services.private_files import private_file, sqlite_path  # noqa: PLC0415

        path = sqlite_path(self.settings.db_url)
        if path is not None and not path.exists():
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError:
                pass  # the engine reports it in one line
            private_file(path)  # the registry holds job specs and lineage: 0600 from the start
        return Database(self.settings.db_url)

    @cached_property
    def status(self) -> StatusStore:
        return StatusStore(self.redis)

    @cached_property
    def queue(self) -> JobQueue:
        return JobQueue(self.redis)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts)
