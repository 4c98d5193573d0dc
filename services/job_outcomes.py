"""How the dispatcher records each attempt's outcome as job state: SQL first, then Redis (the one writer).

A trained result is written beside the job's artifacts (services/job_files.py) before it is registered,
and registration is retried until the database takes it: a transient database error (a locked SQLite
file, an unreachable server) never throws a model away. A FAILED or a re-queue that the database cannot
take now is kept too and written on a later round, so a job whose runner is gone never stays RUNNING.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services import job_files
from services.backends import Backends
from shared.errors import InvalidTransition, KilnError, NotFound, Unavailable
from shared.states import JobState

log = logging.getLogger("kiln.dispatcher")

REGISTER_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
"""Waits between tries to register a kept result (the last repeats until the database answers)."""


@dataclass
class Unregistered:
    """A trained result waiting for the database."""

    result: dict
    tries: int = 0
    next_at: float = 0.0


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _why(e: BaseException) -> str:
    return "the database is locked by another process" if "locked" in str(e) else one_line(e)


class OutcomeRecorder:
    """Writes job states for the dispatcher and keeps what the database could not take yet."""

    def __init__(self, backends: Backends):
        self.b = backends
        self.unregistered: dict[str, Unregistered] = {}
        self.failing: dict[str, str] = {}
        """Jobs whose runner is gone but whose FAILED the database has not taken yet (job id -> error)."""
        self.retrying: dict[str, str] = {}
        """Likewise for re-queues (job id -> the attempt's error)."""

    def flush(self) -> None:
        """Try again what the database could not take before: kept results (when due), failures, re-queues."""
        now = time.time()
        for job_id, kept in list(self.unregistered.items()):
            if now >= kept.next_at:
                self.register(job_id)
        for job_id, error in list(self.failing.items()):
            self.fail(job_id, error)
        for job_id, error in list(self.retrying.items()):
            self.retry_or_fail(job_id, error)

    def keep(self, job_id: str, result: dict) -> None:
        """A finished attempt's result: written beside the job's artifacts first, then registered."""
        job_files.save_result(self.b.artifacts, job_id, result)
        self.unregistered[job_id] = Unregistered(result)
        self.register(job_id)

    def forget(self, job_id: str) -> None:
        """Drop a kept result whose job ended elsewhere (cancelled): nothing is registered."""
        if self.unregistered.pop(job_id, None) is not None:
            job_files.remove_scratch(self.b.artifacts, job_id)

    def register(self, job_id: str) -> None:
        """Register a kept result and mark the job SUCCEEDED in one transaction. A database that cannot
        be reached or stays locked leaves the result kept for the next try; a result the registry refuses
        fails the job; a job cancelled meanwhile registers nothing."""
        kept = self.unregistered[job_id]
        result = kept.result
        db = self.b.db
        try:
            with db.session() as s:
                rec = db.jobs.get(job_id, session=s)
                if JobState(rec.state) == JobState.STARTING:
                    db.jobs.transition(job_id, JobState.RUNNING, session=s)
                mv = db.models.register_version(
                    name=rec.name, kind=rec.kind, params=result["params"], metrics=result["metrics"],
                    artifacts=result["artifacts"], lineage=result["lineage"], job_id=job_id,
                    history=result.get("history") or None, session=s)
                model = {"name": mv.name, "version": mv.version}
                db.jobs.transition(job_id, JobState.SUCCEEDED, metrics=result["metrics"],
                                   result={"model": model, "artifacts": result["artifacts"]}, session=s)
        except InvalidTransition as e:  # cancelled while finishing: nothing is registered
            self.unregistered.pop(job_id, None)
            job_files.remove_scratch(self.b.artifacts, job_id)
            self.b.status.log(job_id, f"finished but not registered: {e}", level="WARNING")
            return
        except NotFound:
            self.unregistered.pop(job_id, None)
            return
        except (Unavailable, OSError) as e:
            self._later(job_id, kept, e)
            return
        except KilnError as e:  # the registry refused the result (e.g. a bad metric): fail the job
            self.unregistered.pop(job_id, None)
            self.fail(job_id, f"could not register the model: {e}")
            return
        except Exception as e:  # noqa: BLE001 - any other database error is taken as transient
            self._later(job_id, kept, e)
            return
        self.unregistered.pop(job_id, None)
        job_files.remove_scratch(self.b.artifacts, job_id)
        ref = f"{model['name']}:{model['version']}"
        self.b.status.set_state(job_id, JobState.SUCCEEDED, progress=1.0, model=ref, metrics=result["metrics"],
                                eta_s=0, message=f"registered {ref}", reason="")
        self.b.status.log(job_id, f"registered model {model['name']} version {model['version']}")
        log.info("job %s succeeded: %s", job_id, ref)

    def _later(self, job_id: str, kept: Unregistered, e: BaseException) -> None:
        wait = REGISTER_BACKOFF_S[min(kept.tries, len(REGISTER_BACKOFF_S) - 1)]
        kept.tries += 1
        kept.next_at = time.time() + wait
        self.b.status.log(job_id, f"could not register the model yet ({_why(e)}); the result is kept, "
                                  f"retrying in {wait:g} s (try {kept.tries})", level="WARNING")

    def fail(self, job_id: str, error: str) -> None:
        """Record FAILED (SQL, then Redis). If the database cannot take it now, the failure is kept and
        recorded on a later round: a job whose runner is gone never stays RUNNING."""
        try:
            self.b.db.jobs.transition(job_id, JobState.FAILED, error=error)
        except (InvalidTransition, NotFound):
            self.failing.pop(job_id, None)
            return
        except Exception as e:  # noqa: BLE001 - transient (locked, unreachable): keep it for the next round
            if job_id not in self.failing:
                self.b.status.log(job_id, f"could not record the failure yet ({_why(e)}); retrying", level="WARNING")
            self.failing[job_id] = error
            return
        self.failing.pop(job_id, None)
        job_files.remove_scratch(self.b.artifacts, job_id)
        try:
            self.b.status.set_state(job_id, JobState.FAILED, error=error, message="failed", reason="")
        except InvalidTransition:
            pass
        self.b.status.log(job_id, f"failed: {error}", level="ERROR")

    def retry_or_fail(self, job_id: str, error: str) -> None:
        """Re-queue the job as its next attempt, or FAILED when it has no retries left. Kept for a later
        round, like ``fail``, when the database cannot take it now."""
        db = self.b.db
        try:
            rec = db.jobs.get(job_id)
            if JobState(rec.state).is_terminal():
                self.retrying.pop(job_id, None)
                return
            if rec.attempt > rec.max_retries:
                self.retrying.pop(job_id, None)
                self.fail(job_id, f"{error} (no retries left after {rec.attempt} attempts)")
                return
            rec = db.jobs.requeue(job_id, error=error)
        except (InvalidTransition, NotFound):
            self.retrying.pop(job_id, None)
            return
        except Exception:  # noqa: BLE001 - transient: keep it for the next round
            self.retrying[job_id] = error
            return
        self.retrying.pop(job_id, None)
        status = self.b.status
        status.set_state(job_id, JobState.QUEUED, attempt=rec.attempt, error=error, progress=0.0)
        status.log(job_id, f"attempt {rec.attempt - 1} failed ({error}); re-queued as attempt {rec.attempt}",
                   level="WARNING")
        self.b.queue.push(job_id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())

    def requeue_same_attempt(self, job_id: str, why: str) -> None:
        """Back to the queue without counting an attempt (the job's own run was never at fault)."""
        rec = self.b.db.jobs.requeue_without_attempt(job_id)
        if rec is None:
            return
        self.b.status.set_state(job_id, JobState.QUEUED, attempt=rec.attempt, message=why)
        self.b.status.log(job_id, f"{why}; re-queued (attempt {rec.attempt} not counted)", level="WARNING")
        self.b.queue.push(job_id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())
