"""Group commit of submissions (services/api/group_commit.py, JobService.submit_many): concurrent
submissions share one SQL and one Redis transaction, every job is stored exactly once, each answer comes
only after its job is stored, and a Redis failure leaves no job stored in one store and not the other.
Real Redis (the test's DB, or a redis-server of the test's own), real SQLite, a real `kiln serve`."""
from __future__ import annotations

import threading
import time

import pytest
import redis
import requests

from services.api.group_commit import GroupCommit
from services.backends import Backends
from services.jobs import _SQLITE_WRITES, JobService, validate_offline
from services.registry import Database
from shared import keys
from shared.errors import InvalidParameter, NotFound
from tests.api.conftest import create_tokens, make_settings, own_redis, running_server
from tests.conftest import write_corpus

pytestmark = pytest.mark.timeout(120)


def _spec(corpus, i: int = 0, **params) -> dict:
    return {"kind": "word2vec", "name": f"gc-{i}", "params": {"corpus": [str(corpus)], "dim": 8, "epochs": 1,
                                                              "min_count": 1, **params}}


def _in_both_stores(svc: JobService, client, job_id: str) -> bool:
    try:
        svc.b.db.jobs.get(job_id)
        in_sql = True
    except NotFound:
        in_sql = False
    in_redis = client.zscore(keys.QUEUE, job_id) is not None
    assert in_sql == in_redis == bool(client.exists(keys.job(job_id))) == bool(client.exists(keys.log(job_id))), job_id
    return in_sql


def test_waiting_submissions_are_written_together_and_each_stored_once(settings, small_corpus, redis_client):
    svc = JobService(Backends(settings))
    commit = GroupCommit(lambda: svc)
    spec = validate_offline(_spec(small_corpus), user="tester")
    views, errors = [], []

    def one():
        try:
            views.append(commit.submit(spec))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    # hold SQLite's write turn: the writer waits with what it took, the others gather behind it
    threads = [threading.Thread(target=one) for _ in range(12)]
    try:
        with _SQLITE_WRITES:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while commit.taken + commit._waiting.qsize() < 12:  # taken read first: never counted twice
                assert time.monotonic() < deadline, "the submissions never reached the writer"
                time.sleep(0.01)
            assert not views  # nothing is answered before its row is committed
    finally:
        for t in threads:
            t.join(30)
    assert not errors and len(views) == 12
    assert commit.batches <= 2  # the first one alone (or with others), then every one that waited
    ids = [v["id"] for v in views]
    assert len(set(ids)) == 12 and sorted(v["queue_position"] for v in views) == list(range(1, 13))
    assert {j.id for j in svc.b.db.jobs.list()} == set(ids)
    assert {m.decode() for m in redis_client.zrange(keys.QUEUE, 0, -1)} == set(ids)
    assert all(v == svc.get(v["id"]) for v in views)
    assert redis_client.llen(keys.DISPATCHER_WAKE) == 1


def test_a_job_refused_in_the_middle_of_a_batch_leaves_the_others_stored(settings, small_corpus, redis_client,
                                                                         monkeypatch):
    import services.jobs as jobs

    svc = JobService(Backends(settings))
    ids = iter(["job-000000a1", "job-000000a2", "job-000000a3", "job-000000a4"])
    monkeypatch.setattr(jobs, "new_job_id", lambda: next(ids))
    redis_client.set(keys.job("job-000000a2"), "not a hash")  # that job's HSET fails inside the transaction
    good = validate_offline(_spec(small_corpus), user="tester")
    out = svc.submit_many([good, good, _spec(small_corpus, dim=-1), good])
    assert isinstance(out[1], redis.ResponseError) and isinstance(out[2], InvalidParameter)
    assert [v["id"] for v in (out[0], out[3])] == ["job-000000a1", "job-000000a3"]  # the bad spec took no id
    redis_client.delete(keys.job("job-000000a2"))
    assert [_in_both_stores(svc, redis_client, j) for j in ("job-000000a1", "job-000000a2", "job-000000a3")] \
        == [True, False, True]
    assert out[0] == svc.get("job-000000a1") and out[3] == svc.get("job-000000a3")
    assert out[3]["queue_position"] == 2


def test_a_batch_redis_refuses_as_a_whole_is_stored_nowhere(tmp_path, small_corpus):
    with own_redis(tmp_path) as url:  # its memory limit is changed: a redis-server of this test's own
        settings = make_settings(tmp_path / "home", url)
        svc = JobService(Backends(settings))
        client = redis.Redis.from_url(url)
        good = validate_offline(_spec(small_corpus), user="tester")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # every write refused (OOM): the transaction is discarded
        with pytest.raises(redis.RedisError):
            svc.submit_many([good, good, good])
        client.config_set("maxmemory", 0)
        assert svc.b.db.jobs.list() == [] and client.zcard(keys.QUEUE) == 0 and client.dbsize() == 0
        view = svc.submit(good)  # the next one goes through
        assert [j.id for j in svc.b.db.jobs.list()] == [view["id"]]


def test_concurrent_http_submissions_each_stored_exactly_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", sentences=300)
    with own_redis(tmp_path) as url:
        settings = make_settings(tmp_path / "home", url)
        tokens = create_tokens(settings, **{f"u{k}": False for k in range(8)})
        with running_server(settings) as server:
            answered, refused, errors = [], [], []
            lock = threading.Lock()

            def client(k: int):
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {tokens[f'u{k}']}"
                for i in range(15):
                    bad = i % 5 == 4  # a bad spec among good ones: refused alone
                    body = _spec(corpus, i, **({"dim": -1} if bad else {}))
                    r = session.post(server.url + "/api/jobs", json=body, timeout=60)
                    with lock:
                        if r.status_code == 201 and not bad:
                            view = r.json()
                            answered.append((view["id"], view["user"], view["state"], view["queue_position"]))
                        elif r.status_code == 400 and bad and r.json()["error"]["code"] == "INVALID_PARAMETER_VALUE":
                            refused.append(k)
                        else:
                            errors.append((bad, r.status_code, r.text[:200]))

            threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors and len(refused) == 8 * 3 and len(answered) == 8 * 12
            ids = {a[0] for a in answered}
            assert len(ids) == len(answered)
            assert all(state == "QUEUED" and pos >= 1 and user.startswith("u") for _, user, state, pos in answered)
            with Database(settings.db_url) as db:
                rows = db.jobs.list()
            assert len(rows) == len(ids) and {r.id for r in rows} == ids
            assert {r.user for r in rows} == {f"u{k}" for k in range(8)}
            client = redis.Redis.from_url(url)
            assert {m.decode() for m in client.zrange(keys.QUEUE, 0, -1)} == ids


def test_a_job_no_node_could_hold_is_refused_alone_in_its_batch(settings, small_corpus, redis_client):
    import json

    redis_client.set(keys.CLUSTER_NODES, json.dumps([{"CPU": 2.0, "GPU": 0.0, "memory_gb": 4.0}]))
    svc = JobService(Backends(settings))
    big = {**_spec(small_corpus), "resources": {"workers": 4, "cpus_per_worker": 2}}
    out = svc.submit_many([_spec(small_corpus), big, _spec(small_corpus)])
    assert isinstance(out[1], InvalidParameter) and "could ever hold" in out[1].message
    assert [_in_both_stores(svc, redis_client, v["id"]) for v in (out[0], out[2])] == [True, True]
    assert len(svc.b.db.jobs.list()) == 2


def test_the_fastapi_route_s_submission_waits_for_its_job_and_answers_what_get_reads(settings, small_corpus,
                                                                                   redis_client):
    """``jobs.submit_job``: what the FastAPI route (the OpenAPI document's) runs, blocking in its thread."""
    from services.api.app import create_app
    from services.api.auth import Principal
    from services.api.jobs import submit_job

    app = create_app(settings)
    view = submit_job(app, Principal("alice", False, "token"), _spec(small_corpus), False)
    svc = JobService(Backends(settings))
    assert view == svc.get(view["id"]) and view["user"] == "alice" and view["queue_position"] == 1
    assert _in_both_stores(svc, redis_client, view["id"]) and app.state.group_commit.batches == 1
    with pytest.raises(InvalidParameter, match="belong to alice"):
        submit_job(app, Principal("alice", False, "token"), {**_spec(small_corpus), "user": "bob"}, False)
