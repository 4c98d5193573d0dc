"""The Redis priority queue of job ids (a sorted set): higher priority first, then first come first served."""
from __future__ import annotations

import redis

from shared import keys

_PRIORITY_WEIGHT = 1e10
"""Score = -priority * weight + submit time: any priority step outranks ~300 years of submit times."""


def score(priority: int, submitted_at: float) -> float:
    return -priority * _PRIORITY_WEIGHT + submitted_at


class JobQueue:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def push(self, job_id: str, *, priority: int, submitted_at: float, pipeline=None) -> None:
        (pipeline or self.redis).zadd(keys.QUEUE, {job_id: score(priority, submitted_at)})

    def ids(self, limit: int | None = None) -> list[str]:
        """Queued job ids in the order the dispatcher considers them."""
        end = -1 if limit is None else limit - 1
        return [x.decode() for x in self.redis.zrange(keys.QUEUE, 0, end)]

    def claim(self, job_id: str) -> bool:
        """Take ``job_id`` off the queue; True only for the one caller that removed it."""
        return self.redis.zrem(keys.QUEUE, job_id) == 1

    def remove(self, job_id: str, *, pipeline=None) -> None:
        (pipeline or self.redis).zrem(keys.QUEUE, job_id)

    def position(self, job_id: str) -> int | None:
        rank = self.redis.zrank(keys.QUEUE, job_id)
        return None if rank is None else int(rank)

    def __len__(self) -> int:
        return int(self.redis.zcard(keys.QUEUE))

    def __contains__(self, job_id: str) -> bool:
        return self.redis.zscore(keys.QUEUE, job_id) is not None
