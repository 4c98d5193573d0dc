"""The connections a kiln process needs (Redis, the SQL database, the artifact store), opened lazily.

Read-only commands touch only what they use: ``kiln jobs`` never connects to Ray and works with
Redis down (it reads SQL).
"""
from __future__ import annotations

from functools import cached_property

import redis

from services.queue import JobQueue
from shared.artifacts import ArtifactStore
from shared.config import Settings
from shared.errors import Unavailable
from shared.status import StatusStore


class Backends:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def redis(self) -> redis.Redis:
        url = self.settings.redis_url
        if not url:
            raise Unavailable("Redis is not running: run `kiln up`, or set KILN_REDIS_URL")
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30, health_check_interval=30)
        try:
            client.ping()
        except redis.RedisError as e:
            raise Unavailable(f"cannot reach Redis at {url}: {e}") from None
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
