"""JobRecords on SQLite and PostgreSQL: create, list, transitions through shared.states, retries."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.errors import AlreadyExists, InvalidParameter, InvalidTransition, NotFound
from shared.states import JobState
from tests.registry.factories import create_job


def test_create_and_get(db):
    job = create_job(db, submitted_at=1_700_000_000.0)
    assert job.state is JobState.QUEUED and job.attempt == 1 and job.retries_left == 2
    got = db.jobs.get("job-1")
    assert got == job
    assert got.submitted_at == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    assert got.spec == {"kind": "word2vec"}
    d = got.to_dict()
    json.dumps(d)
    assert d["state"] == "QUEUED" and d["submitted_at"] == "2023-11-14T22:13:20+00:00"


def test_duplicate_and_missing_ids(db):
    create_job(db)
    with pytest.raises(AlreadyExists) as e:
        create_job(db)
    assert e.value.code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(NotFound, match="no job with id 'nope'") as e:
        db.jobs.get("nope")
    assert e.value.code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(NotFound):
        db.jobs.transition("nope", JobState.STARTING)


def test_bad_create_arguments(db):
    with pytest.raises(InvalidParameter):
        create_job(db, spec_json="{not json")
    with pytest.raises(InvalidParameter):
        create_job(db, max_retries=-1)
    with pytest.raises(InvalidParameter):
        db.jobs.list(state="SLEEPING")


def test_list_newest_first_with_filters(db):
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i, user in enumerate(["ada", "grace", "ada"]):
        create_job(db, f"job-{i}", user=user, submitted_at=t0 + timedelta(minutes=i))
    db.jobs.transition("job-0", JobState.CANCELLED)
    assert [j.id for j in db.jobs.list()] == ["job-2", "job-1", "job-0"]
    assert [j.id for j in db.jobs.list(user="ada")] == ["job-2", "job-0"]
    assert [j.id for j in db.jobs.list(state="QUEUED")] == ["job-2", "job-1"]
    assert [j.id for j in db.jobs.list(state=[JobState.CANCELLED, "QUEUED"], limit=2)] == ["job-2", "job-1"]
    assert [j.id for j in db.jobs.non_terminal()] == ["job-1", "job-2"]


def test_a_job_life_stamps_times(db):
    create_job(db)
    db.jobs.transition("job-1", JobState.STARTING)
    running = db.jobs.transition("job-1", "RUNNING")
    assert running.started_at is not None and running.finished_at is None
    done = db.jobs.transition("job-1", JobState.SUCCEEDED, metrics={"loss": 1.0}, result={"version": 1})
    assert done.state is JobState.SUCCEEDED and done.finished_at >= done.started_at
    assert db.jobs.get("job-1").metrics == {"loss": 1.0}
    assert db.jobs.get("job-1").result == {"version": 1}


@pytest.mark.parametrize("terminal", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_terminal_jobs_never_change(db, terminal):
    create_job(db)
    db.jobs.transition("job-1", JobState.STARTING)
    db.jobs.transition("job-1", terminal, error="boom" if terminal is JobState.FAILED else None)
    for target in JobState:
        with pytest.raises(InvalidTransition) as e:
            db.jobs.transition("job-1", target)
        assert e.value.code == "INVALID_STATE_TRANSITION"
    with pytest.raises(InvalidTransition):
        db.jobs.requeue("job-1", error="again")
    assert db.jobs.get("job-1").state is terminal


def test_forbidden_transition_leaves_the_row_alone(db):
    create_job(db)
    with pytest.raises(InvalidTransition, match="cannot go from QUEUED to RUNNING"):
        db.jobs.transition("job-1", JobState.RUNNING)
    assert db.jobs.get("job-1").state is JobState.QUEUED


def test_requeue_raises_attempt_and_respects_max_retries(db):
    create_job(db, max_retries=2)
    for attempt in (2, 3):
        db.jobs.transition("job-1", JobState.STARTING)
        db.jobs.transition("job-1", JobState.RUNNING)
        job = db.jobs.requeue("job-1", error=f"worker died ({attempt - 1})")
        assert (job.state, job.attempt, job.error) == (JobState.QUEUED, attempt, f"worker died ({attempt - 1})")
    db.jobs.transition("job-1", JobState.STARTING)
    with pytest.raises(InvalidTransition, match="used all 2 retries") as e:
        db.jobs.requeue("job-1", error="worker died (3)")
    assert e.value.code == "INVALID_STATE_TRANSITION"
    job = db.jobs.get("job-1")
    assert (job.state, job.attempt, job.retries_left) == (JobState.STARTING, 3, 0)
    assert db.jobs.transition("job-1", JobState.FAILED, error="out of retries").state is JobState.FAILED


def test_requeue_needs_a_started_job(db):
    create_job(db)
    with pytest.raises(InvalidTransition):
        db.jobs.requeue("job-1", error="x")


def test_checkpoint_survives_requeue(db):
    create_job(db)
    db.jobs.transition("job-1", JobState.STARTING)
    db.jobs.set_checkpoint("job-1", "file:///ckpt/1")
    job = db.jobs.requeue("job-1", error="node lost")
    assert job.checkpoint_uri == "file:///ckpt/1"
