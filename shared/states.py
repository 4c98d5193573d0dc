"""Job states and the one place where transitions are checked."""
from __future__ import annotations

from enum import Enum

from shared.errors import InvalidTransition


class JobState(str, Enum):
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# A retried job goes back to QUEUED from STARTING or RUNNING (its attempt counter is raised).
ALLOWED = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.FAILED}),
    JobState.STARTING: frozenset({JobState.RUNNING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED,
                                  JobState.SUCCEEDED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

_MESSAGES = {
    JobState.QUEUED: "waiting in the queue",
    JobState.STARTING: "placed on the cluster, workers starting",
    JobState.RUNNING: "training",
    JobState.SUCCEEDED: "finished; model registered",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
}


def check_transition(old: JobState | str, new: JobState | str) -> JobState:
    """Return ``new`` as a JobState if ``old -> new`` is allowed, else raise InvalidTransition."""
    old, new = JobState(old), JobState(new)
    if new not in ALLOWED[old]:
        if old.is_terminal():
            raise InvalidTransition(f"job is already {old.value}; terminal states never change")
        raise InvalidTransition(f"a job cannot go from {old.value} to {new.value}")
    return new
