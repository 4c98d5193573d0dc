"""Every Redis key kiln uses, built in one place."""
from __future__ import annotations

PREFIX = "kiln"
QUEUE = f"{PREFIX}:queue"
"""Sorted set of queued job ids, scored by (priority, submit time)."""
DISPATCHER_HEARTBEAT = f"{PREFIX}:dispatcher:heartbeat"
"""String with the dispatcher's last heartbeat (epoch seconds); expires when it stops."""
CLUSTER_NODES = f"{PREFIX}:cluster:nodes"
"""JSON list of alive nodes' total resources, published by the dispatcher."""
CAPS = f"{PREFIX}:settings:caps"
"""JSON {"max_running_jobs", "max_running_per_user"} written by `kiln up`: the dispatcher applies it at its
next round (no restart); without it, the dispatcher's own settings."""
CAPS_IN_FORCE = f"{PREFIX}:dispatcher:caps"
"""JSON of the caps the dispatcher applied at its last round (what `kiln doctor` shows); expires with it."""
DISPATCHER_WAKE = f"{PREFIX}:dispatcher:wake"
"""List of at most one element: pushed with every job put on the queue; the dispatcher waits on it (BLPOP)
between rounds, so a submitted job is looked at at once instead of at the next poll."""
CANCEL_REQUESTS = f"{PREFIX}:cancel"
"""Set of job ids whose cancellation the dispatcher has still to carry out."""


def job(job_id: str) -> str:
    """Hash with a job's live status (state, progress, throughput, heartbeat...)."""
    return f"{PREFIX}:job:{job_id}"


def log(job_id: str) -> str:
    """Stream of a job's log lines, bounded in length."""
    return f"{PREFIX}:log:{job_id}"


def series(job_id: str) -> str:
    """Stream of a job's progress points (loss, throughput...) over time, bounded in length: the curves."""
    return f"{PREFIX}:series:{job_id}"
