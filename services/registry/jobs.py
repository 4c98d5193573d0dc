"""JobRecords: the durable record of every job (SQL), next to the live status kept in Redis.

State changes go through ``shared.states.check_transition`` on a locked row, so two writers (say the
dispatcher failing a job while a user cancels it) cannot both move it. ``session=`` joins a caller's
transaction, as ModelRegistry's methods do.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.registry.engine import reader, session_or_new
from services.registry.entities import JobRecord
from services.registry.schema import SqlJob
from services.registry.timestamps import as_utc, utcnow
from shared.errors import AlreadyExists, InvalidParameter, InvalidTransition, KilnError, NotFound
from shared.states import JobState, check_transition

_JOBS = SqlJob.__table__
_INSERT_JOB = insert(_JOBS)
_SELECT_JOBS = select(_JOBS)
ACTIVE_STATES = tuple(s for s in JobState if not s.is_terminal())
"""States of jobs the dispatcher still owns (rebuilt into the Redis queue after Redis is wiped)."""


class JobRecords:
    """Job rows in SQL. Every method returns ``JobRecord`` entities."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def _session(self, session: Session | None, *, read_only: bool = False):
        return session_or_new(self._engine, session, read_only=read_only)

    def create(self, *, job_id: str, name: str, kind: str, user: str, spec_json: str, priority: int,
               max_retries: int, submitted_at: datetime | float | None = None,
               session: Session | None = None) -> JobRecord:
        """Record a new job in state QUEUED, attempt 1. AlreadyExists if ``job_id`` is taken.

        ``spec_json`` is the job spec as JSON text; ``submitted_at`` an aware datetime or epoch seconds
        (default: now).
        """
        rec, values = _new_job(job_id=job_id, name=name, kind=kind, user=user, spec_json=spec_json,
                               priority=priority, max_retries=max_retries, submitted_at=submitted_at)
        with self._session(session) as s:
            # A Core INSERT on the session's connection: the ORM unit of work cost ~1.5 ms of CPU a job
            # (an HTTP submit's largest part); nothing reads the row back through this session's identity map.
            conn = s.connection()
            try:
                with conn.begin_nested():  # a duplicate id fails only this savepoint, not the caller's work
                    conn.execute(_INSERT_JOB, values)
            except IntegrityError:
                raise AlreadyExists(f"a job with id {job_id!r} already exists") from None
            return rec

    def create_many(self, jobs: list[dict], *, session: Session | None = None) -> list[JobRecord | KilnError]:
        """``create`` for several jobs (each a dict of ``create``'s keyword arguments): in order, each
        job's record or the error that refused that job alone (InvalidParameter, AlreadyExists). One
        INSERT for them all, in one savepoint; only if it meets a taken id are they inserted one by one,
        so that just the job with that id is refused."""
        out: list = []
        for job in jobs:
            try:
                out.append(_new_job(**job))
            except KilnError as e:
                out.append(e)
        rows = [o[1] for o in out if not isinstance(o, KilnError)]
        with self._session(session) as s:
            conn = s.connection()
            try:
                if rows:
                    with conn.begin_nested():
                        conn.execute(_INSERT_JOB, rows)
                return [o if isinstance(o, KilnError) else o[0] for o in out]
            except IntegrityError:
                pass
            answers = []
            for o, job in zip(out, jobs):
                try:
                    answers.append(o if isinstance(o, KilnError) else self.create(**job, session=s))
                except KilnError as e:
                    answers.append(e)
            return answers

    def remove_unstarted(self, job_id: str) -> bool:
        """Delete a job that never left the queue (QUEUED, attempt 1): a submission whose Redis half
        failed is taken back. False (nothing deleted) for any other job."""
        with self._session(None) as s:
            done = s.connection().execute(_JOBS.delete().where(_JOBS.c.id == job_id, _JOBS.c.attempt == 1,
                                                                _JOBS.c.state == JobState.QUEUED.value))
            return done.rowcount == 1

    def remove_unstarted_many(self, job_ids: Iterable[str]) -> int:
        """``remove_unstarted`` for several jobs in one statement; how many rows were deleted."""
        ids = list(job_ids)
        if not ids:
            return 0
        with self._session(None) as s:
            done = s.connection().execute(_JOBS.delete().where(_JOBS.c.id.in_(ids), _JOBS.c.attempt == 1,
                                                                _JOBS.c.state == JobState.QUEUED.value))
            return done.rowcount

    def get(self, job_id: str, *, session: Session | None = None) -> JobRecord:
        """The job's record; NotFound if there is none."""
        if session is None:  # Core on a pooled connection: a read command's path, no ORM session
            with reader(self._engine).connect() as conn:
                row = conn.execute(_SELECT_JOBS.where(_JOBS.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            return _entity(row)
        with self._session(session, read_only=True) as s:
            return self._row(s, job_id).to_entity()

    def list(self, state: JobState | str | Iterable[JobState | str] | None = None, user: str | None = None,
             limit: int | None = None, *, session: Session | None = None) -> list[JobRecord]:
        """Jobs newest first, optionally only in ``state`` (one or several) and/or of ``user``."""
        query = _SELECT_JOBS.order_by(_JOBS.c.submitted_at.desc(), _JOBS.c.id.desc())
        if state is not None:
            states = [state] if isinstance(state, str) else state
            query = query.where(_JOBS.c.state.in_([_state(x).value for x in states]))
        if user is not None:
            query = query.where(_JOBS.c.user == user)
        if limit is not None:
            if not isinstance(limit, int) or limit < 0:
                raise InvalidParameter(f"limit must be a non-negative integer, got {limit!r}")
            query = query.limit(limit)
        if session is None:  # Core rows, not ORM objects: about 3x less CPU per job listed
            with reader(self._engine).connect() as conn:
                return [_entity(row) for row in conn.execute(query)]
        session.flush()  # what the caller's session changed is seen, as an ORM query would autoflush
        return [_entity(row) for row in session.connection().execute(query)]

    def non_terminal(self, *, session: Session | None = None) -> list[JobRecord]:
        """Jobs not yet finished, oldest first: what the dispatcher puts back after Redis is wiped."""
        query = (select(SqlJob).where(SqlJob.state.in_([s.value for s in ACTIVE_STATES]))
                 .order_by(SqlJob.submitted_at, SqlJob.id))
        with self._session(session, read_only=True) as s:
            return [row.to_entity() for row in s.scalars(query)]

    def transition(self, job_id: str, new_state: JobState | str, *, error: str | None = None,
                   metrics: dict[str, Any] | None = None, result: dict[str, Any] | None = None,
                   session: Session | None = None) -> JobRecord:
        """Move a job to ``new_state`` if shared.states allows it (InvalidTransition otherwise).

        Entering RUNNING stamps ``started_at``; entering a terminal state stamps ``finished_at``.
        ``error``/``metrics``/``result`` are stored when given; SUCCEEDED clears an earlier attempt's error.
        """
        new = _state(new_state)
        with self._session(session) as s:
            row = self._row(s, job_id, lock=True)
            _check(job_id, row.state, new)
            row.state = new.value
            now = utcnow()
            if new is JobState.RUNNING:
                row.started_at = now
            if new.is_terminal():
                row.finished_at = now
            if error is not None or new is JobState.SUCCEEDED:
                row.error = error
            if metrics is not None:
                row.metrics = metrics
            if result is not None:
                row.result = result
            s.flush()
            return row.to_entity()

    def requeue(self, job_id: str, *, error: str, session: Session | None = None) -> JobRecord:
        """Send a STARTING/RUNNING job back to QUEUED for another attempt (attempt + 1), keeping ``error``.

        Refused with InvalidTransition, and nothing changed, when the job has used its ``max_retries``;
        the caller then marks it FAILED.
        """
        with self._session(session) as s:
            row = self._row(s, job_id, lock=True)
            _check(job_id, row.state, JobState.QUEUED)
            if row.attempt > row.max_retries:
                raise InvalidTransition(f"job {job_id} has used all {row.max_retries} retries "
                                        f"(attempt {row.attempt} of {row.max_retries + 1})")
            row.attempt += 1
            row.state = JobState.QUEUED.value
            row.error = error
            row.finished_at = None
            s.flush()
            return row.to_entity()

    def requeue_without_attempt(self, job_id: str, *, session: Session | None = None) -> JobRecord | None:
        """Send a STARTING/RUNNING job back to QUEUED with the same attempt: a deliberate stop (``kiln
        down --force``), not a failure, so no retry is spent. None, and nothing changed, if the job is
        no longer STARTING or RUNNING."""
        with self._session(session) as s:
            row = self._row(s, job_id, lock=True)
            if row.state not in (JobState.STARTING.value, JobState.RUNNING.value):
                return None
            _check(job_id, row.state, JobState.QUEUED)
            row.state = JobState.QUEUED.value
            row.finished_at = None
            s.flush()
            return row.to_entity()

    def set_checkpoint(self, job_id: str, uri: str, *, session: Session | None = None) -> JobRecord:
        """Remember the job's latest checkpoint; the next attempt resumes from it."""
        if not isinstance(uri, str) or not uri:
            raise InvalidParameter(f"checkpoint uri must be a non-empty string, got {uri!r}")
        with self._session(session) as s:
            row = self._row(s, job_id, lock=True)
            row.checkpoint_uri = uri
            s.flush()
            return row.to_entity()

    @staticmethod
    def _row(s: Session, job_id: str, *, lock: bool = False) -> SqlJob:
        query = select(SqlJob).where(SqlJob.id == job_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = s.scalars(query).one_or_none()
        if row is None:
            raise NotFound(f"no job with id {job_id!r}")
        return row


def _new_job(*, job_id: str, name: str, kind: str, user: str, spec_json: str, priority: int, max_retries: int,
             submitted_at: datetime | float | None = None) -> tuple[JobRecord, dict]:
    """A new job's record and its row's values, after checking every field (InvalidParameter)."""
    for label, value in (("job_id", job_id), ("name", name), ("kind", kind), ("user", user)):
        if not isinstance(value, str) or not value:
            raise InvalidParameter(f"{label} must be a non-empty string, got {value!r}")
    if len(job_id) > 64:
        raise InvalidParameter(f"job_id is longer than 64 characters: {job_id!r}")
    for label, value in (("priority", priority), ("max_retries", max_retries)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidParameter(f"{label} must be an integer, got {value!r}")
    if max_retries < 0:
        raise InvalidParameter(f"max_retries must be >= 0, got {max_retries}")
    try:
        json.loads(spec_json)
    except (TypeError, ValueError):
        raise InvalidParameter("spec_json must be the job spec as JSON text") from None
    rec = JobRecord(id=job_id, name=name, kind=kind, user=user, spec_json=spec_json, priority=priority,
                    state=JobState.QUEUED, attempt=1, max_retries=max_retries,
                    submitted_at=as_utc(submitted_at) or utcnow())
    values = {"id": rec.id, "name": name, "kind": kind, "user": user, "spec": spec_json, "priority": priority,
              "state": rec.state.value, "attempt": 1, "max_retries": max_retries, "submitted_at": rec.submitted_at}
    return rec, values


def _entity(row) -> JobRecord:
    """A JobRecord from a Core row of the jobs table (the same fields as ``SqlJob.to_entity``)."""
    return JobRecord(id=row.id, name=row.name, kind=row.kind, user=row.user, spec_json=row.spec, priority=row.priority,
                     state=JobState(row.state), attempt=row.attempt, max_retries=row.max_retries,
                     submitted_at=row.submitted_at, started_at=row.started_at, finished_at=row.finished_at,
                     error=row.error, metrics=row.metrics, result=row.result, checkpoint_uri=row.checkpoint_uri)


def _state(value: JobState | str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        raise InvalidParameter(f"unknown job state {value!r} (one of {', '.join(s.value for s in JobState)})") from None


def _check(job_id: str, old: str, new: JobState) -> None:
    try:
        check_transition(old, new)
    except InvalidTransition as e:
        raise InvalidTransition(f"job {job_id}: {e.message}") from None
