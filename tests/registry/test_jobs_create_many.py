"""JobRecords.create_many (the group commit's one INSERT for a batch of submissions) on SQLite and
PostgreSQL: each job's own refusal (a bad field, a taken id) refuses that job alone, the others are
stored in the caller's transaction; remove_unstarted_many takes back only jobs that never started."""
from __future__ import annotations

from shared.errors import AlreadyExists
from shared.states import JobState
from tests.registry.factories import create_job


def _job(job_id: str, **over) -> dict:
    return {"job_id": job_id, "name": "n", "kind": "word2vec", "user": "u", "spec_json": '{"kind": "word2vec"}',
            "priority": 0, "max_retries": 2, "submitted_at": 1_700_000_000.0, **over}


def test_one_insert_for_a_batch_and_each_refusal_its_own_job_s(db):
    out = db.jobs.create_many([_job("job-a"), _job("job-b", max_retries=-1), _job("job-c")])
    assert [type(o).__name__ for o in out] == ["JobRecord", "InvalidParameter", "JobRecord"]
    assert sorted(j.id for j in db.jobs.list()) == ["job-a", "job-c"]
    assert db.jobs.get("job-c") == out[2] and out[2].state is JobState.QUEUED


def test_a_taken_id_refuses_that_job_alone_inside_the_caller_s_transaction(db):
    create_job(db, job_id="job-taken")
    with db.session() as s:
        out = db.jobs.create_many([_job("job-1"), _job("job-taken"), _job("job-2")], session=s)
        assert isinstance(out[1], AlreadyExists) and "job-taken" in out[1].message
    assert sorted(j.id for j in db.jobs.list()) == ["job-1", "job-2", "job-taken"]
    assert db.jobs.get("job-taken").name == "w2v"  # the job that had the id first is untouched


def test_remove_unstarted_many_leaves_started_jobs(db):
    db.jobs.create_many([_job("job-1"), _job("job-2"), _job("job-3")])
    db.jobs.transition("job-2", JobState.STARTING)
    assert db.jobs.remove_unstarted_many(["job-1", "job-2", "job-3", "job-none"]) == 2
    assert [j.id for j in db.jobs.list()] == ["job-2"]
    assert db.jobs.remove_unstarted_many([]) == 0
