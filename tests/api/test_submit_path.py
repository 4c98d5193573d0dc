"""The fast submit and list paths of JobService (what `POST /api/jobs` and `GET /api/jobs` run) answer
exactly what the slow ones did: the view built from the submit's own round trip is ``get``'s, the
pipelined list is one ``get`` per job, and the corpus precheck remembered by a process is redone when
the corpus changes. Real Redis and SQLite."""
from __future__ import annotations

import os

import pytest

from services.backends import Backends
from services.jobs import JobService, validate_offline
from shared import keys
from shared.errors import InvalidParameter
from tests.conftest import write_corpus


def _spec(corpus, **params) -> dict:
    return {"kind": "word2vec", "name": "fast", "params": {"corpus": [str(corpus)], "dim": 8, "epochs": 1,
                                                           "min_count": 1, **params}}


def test_the_submit_view_is_what_get_reads_afterwards(settings, small_corpus, redis_client):
    svc = JobService(Backends(settings))
    first = svc.submit(validate_offline(_spec(small_corpus), user="tester"))
    second = svc.submit(validate_offline(_spec(small_corpus), user="tester"))
    assert first == svc.get(first["id"]) and second == svc.get(second["id"])
    assert (first["queue_position"], second["queue_position"]) == (1, 2)
    assert second["state"] == "QUEUED" and second["user"] == "tester" and second["epochs"] == 1
    # the dispatcher's wake-up list holds one element however many jobs came
    assert redis_client.llen(keys.DISPATCHER_WAKE) == 1


def test_the_pipelined_list_equals_one_get_per_job(settings, small_corpus):
    svc = JobService(Backends(settings))
    ids = [svc.submit(validate_offline(_spec(small_corpus), user="tester"))["id"] for _ in range(4)]
    svc.cancel(ids[1])
    svc.b.status.report(ids[2], progress=0.5, loss=1.25)
    listed = svc.list()
    assert [v["id"] for v in listed] == ids[::-1]
    assert listed == [svc.get(i) for i in ids[::-1]]
    assert [v["queue_position"] for v in listed] == [3, 2, None, 1]
    assert svc.list(state="queued", limit=1) == [svc.get(ids[3])]


def test_the_min_count_precheck_is_remembered_until_the_corpus_changes(settings, tmp_path, monkeypatch):
    import services.jobs as jobs

    corpus = write_corpus(tmp_path / "c.txt", sentences=50)
    counted = []
    real = jobs._check_min_count_once

    def counting(params, check):
        return real(params, lambda p: (counted.append(1), check(p)))

    monkeypatch.setattr(jobs, "_check_min_count_once", counting)
    validate_offline(_spec(corpus, min_count=2), user="tester")
    validate_offline(_spec(corpus, min_count=2), user="tester")
    assert len(counted) == 1  # the second submission did not read the corpus again
    validate_offline(_spec(corpus, min_count=2, lowercase=True), user="tester")
    assert len(counted) == 2  # other counting options: counted again
    # the same file rewritten so that no word reaches min_count 2: counted again (not the remembered
    # pass), and refused
    corpus.write_text("one two three four five six\n")
    os.utime(corpus, ns=(1, 1))
    with pytest.raises(InvalidParameter, match="corpus"):
        validate_offline(_spec(corpus, min_count=2), user="tester")
    with pytest.raises(InvalidParameter, match="corpus"):
        validate_offline(_spec(corpus, min_count=2), user="tester")  # a failure is never remembered
    assert len(counted) == 4


def test_a_submission_redis_refuses_is_not_stored_in_sql_either(settings, small_corpus, redis_client, monkeypatch):
    import redis

    import services.jobs as jobs
    from shared.errors import NotFound

    svc = JobService(Backends(settings))
    spec = validate_offline(_spec(small_corpus), user="tester")
    monkeypatch.setattr(jobs, "new_job_id", lambda: "job-0badc0de")
    redis_client.set(keys.job("job-0badc0de"), "not a hash")  # the transaction's HSET fails
    with pytest.raises(redis.ResponseError):
        svc.submit(spec)
    with pytest.raises(NotFound):
        svc.b.db.jobs.get("job-0badc0de")
    assert redis_client.zscore(keys.QUEUE, "job-0badc0de") is None and not redis_client.exists(keys.log("job-0badc0de"))
    monkeypatch.setattr(jobs, "new_job_id", lambda: "job-00c0ffee")
    assert svc.submit(spec)["id"] == "job-00c0ffee"  # the next one goes through


def test_the_wake_up_goes_with_the_queue_entry_in_the_same_transaction(redis_client):
    from services.queue import JobQueue, wake

    q = JobQueue(redis_client)
    pipe = redis_client.pipeline(transaction=True)
    q.push("job-0000aaaa", priority=0, submitted_at=1.0, pipeline=pipe)
    assert redis_client.llen(keys.DISPATCHER_WAKE) == 0  # nothing sent before the transaction runs
    pipe.execute()
    assert redis_client.llen(keys.DISPATCHER_WAKE) == 1 and "job-0000aaaa" in q
    wake(redis_client)
    wake(redis_client)
    assert redis_client.llen(keys.DISPATCHER_WAKE) == 1
    assert q.wait_for_work(0.1) and not q.wait_for_work(0.05)
