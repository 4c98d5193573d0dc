"""Atomicity and races: one session across both stores, failed writes, concurrent registrations."""
from __future__ import annotations

import threading

import pytest

from services.registry import Database
from shared.errors import AlreadyExists, InvalidTransition
from shared.states import JobState
from tests.registry.factories import create_job, register


def _running_job(db, job_id="job-1"):
    create_job(db, job_id)
    db.jobs.transition(job_id, JobState.STARTING)
    db.jobs.transition(job_id, JobState.RUNNING)


def test_register_and_succeed_commit_together(db):
    _running_job(db)
    with db.session() as s:
        v = register(db, job_id="job-1", session=s)
        db.jobs.transition("job-1", JobState.SUCCEEDED, result={"model": v.ref}, session=s)
    assert db.jobs.get("job-1").state is JobState.SUCCEEDED
    assert db.models.get_version("w2v").job_id == "job-1"


def test_register_then_failed_transition_writes_nothing(db):
    create_job(db)
    db.jobs.transition("job-1", JobState.CANCELLED)  # the second step will be refused
    with pytest.raises(InvalidTransition):
        with db.session() as s:
            register(db, job_id="job-1", session=s)
            db.jobs.transition("job-1", JobState.SUCCEEDED, session=s)
    assert db.models.list_models() == []
    assert db.jobs.get("job-1").state is JobState.CANCELLED


def test_an_error_after_both_writes_rolls_both_back(db):
    _running_job(db)
    with pytest.raises(RuntimeError):
        with db.session() as s:
            register(db, job_id="job-1", session=s)
            db.jobs.transition("job-1", JobState.SUCCEEDED, session=s)
            raise RuntimeError("the dispatcher died here")
    assert db.models.list_models() == []
    assert db.jobs.get("job-1").state is JobState.RUNNING


def test_a_failing_write_leaves_earlier_data_intact(db):
    register(db)
    create_job(db, "job-1")
    with pytest.raises(AlreadyExists):
        with db.session() as s:
            register(db, session=s)  # version 2, not yet committed
            db.jobs.set_checkpoint("job-1", "file:///ckpt", session=s)
            create_job(db, "job-1", session=s)  # duplicate id: the database refuses it
    assert [v.version for v in db.models.list_versions("w2v")] == [1]
    assert db.jobs.get("job-1").checkpoint_uri is None
    assert register(db).version == 2


def test_concurrent_registrations_get_distinct_consecutive_numbers(db_url):
    threads_n, per_thread = 8, 5
    databases = [Database(db_url) for _ in range(threads_n)]  # one engine (pool) per "process"
    barrier = threading.Barrier(threads_n)
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(db):
        try:
            barrier.wait()
            for _ in range(per_thread):
                v = register(db, name="race")
                with lock:
                    got.append(v.version)
        except BaseException as e:  # reported below, with the numbers
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for d in databases:
        d.close()
    assert not errors, errors
    assert sorted(got) == list(range(1, threads_n * per_thread + 1))


def test_concurrent_registrations_through_one_engine(db):
    got: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(5):
            v = register(db, name="shared")
            with lock:
                got.append(v.version)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(got) == list(range(1, 41))


def test_twenty_concurrent_registrations_get_twenty_distinct_versions(db_url):
    """Issue 6: 20 registrations of one model at once (20 engines, as 20 dispatchers/processes would have)."""
    databases = [Database(db_url) for _ in range(20)]
    barrier = threading.Barrier(20)
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(db):
        try:
            barrier.wait()
            v = register(db, name="twenty")
            with lock:
                got.append(v.version)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for d in databases:
        d.close()
    assert not errors, errors
    assert sorted(got) == list(range(1, 21))
    with Database(db_url) as db:
        versions = db.models.list_versions("twenty")
    assert [v.version for v in versions] == list(range(1, 21)) and len({v.uid for v in versions}) == 20
