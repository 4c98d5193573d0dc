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

    def push(self, job_id: str, *, priority: int, submitted_at: float, pipeline=None, wake_up: bool = True) -> None:
        """Queue ``job_id`` and wake the dispatcher (``wait_for_work``) in the same round trip.
        ``wake_up=False``: the caller wakes it later (``wake``), once the job's SQL row is committed."""
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=True)
        pipe.zadd(keys.QUEUE, {job_id: score(priority, submitted_at)})
        if wake_up:
            wake(pipe)
        if pipeline is None:
            pipe.execute()

    def wait_for_work(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for a wake-up (a job queued, a runner started); True if one came."""
        return self.redis.blpop([keys.DISPATCHER_WAKE], timeout=timeout_s) is not None

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


def wake(client_or_pipeline) -> None:
    """Wake the dispatcher now: one element in the wake list, however many wake-ups came meanwhile (one
    round trip when given a client; added to a pipeline when given one)."""
    pipe = client_or_pipeline
    own = not isinstance(pipe, redis.client.Pipeline)  # (a Pipeline is a Redis too)
    if own:
        pipe = pipe.pipeline(transaction=False)
    pipe.lpush(keys.DISPATCHER_WAKE, b"1")
    pipe.ltrim(keys.DISPATCHER_WAKE, 0, 0)
    if own:
        pipe.execute()
