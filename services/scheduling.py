"""The placement policy: which queued jobs start now. Pure (no Ray, Redis or SQL), so it is tested alone.

Jobs are considered in queue order (priority, then submit time). A job that does not fit the free
capacity waits; jobs behind it that fit may start around it (backfill), and each such start counts
as one bypass of every job waiting ahead of it. Once a waiting job has been bypassed ``max_bypass``
times, it reserves the capacity: nothing behind it starts until it has started, so it is never starved.
"""
from __future__ import annotations

from dataclasses import dataclass, field

_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    job_id: str
    user: str
    cpus: float
    gpus: float


@dataclass
class Capacity:
    free_cpu: float
    free_gpu: float
    running: int = 0
    running_by_user: dict[str, int] = field(default_factory=dict)


def pick(candidates: list[Candidate], cap: Capacity, *, bypassed: dict[str, int], max_bypass: int,
         max_running: int = 0, max_per_user: int = 0) -> list[str]:
    """The ids to start now, in order. ``bypassed`` (job id -> times passed over) is updated in place.

    ``max_running`` / ``max_per_user``: caps on running jobs (0 = none). A user at their cap is skipped
    without counting as a bypass of anyone: the capacity is not what holds them back.
    """
    free_cpu, free_gpu = cap.free_cpu, cap.free_gpu
    running, by_user = cap.running, dict(cap.running_by_user)
    waiting: list[str] = []
    started: list[str] = []
    for c in candidates:
        if max_running and running >= max_running:
            break
        if max_per_user and by_user.get(c.user, 0) >= max_per_user:
            continue
        if c.cpus > free_cpu + _EPS or c.gpus > free_gpu + _EPS:
            if bypassed.get(c.job_id, 0) >= max_bypass:
                break  # this job reserves the capacity now
            waiting.append(c.job_id)
            continue
        started.append(c.job_id)
        free_cpu -= c.cpus
        free_gpu -= c.gpus
        running += 1
        by_user[c.user] = by_user.get(c.user, 0) + 1
        for w in waiting:
            bypassed[w] = bypassed.get(w, 0) + 1
    for job_id in started:
        bypassed.pop(job_id, None)
    return started
