"""The whole path on a real local Ray cluster, real Redis and real SQLite:
job service -> queue -> dispatcher actor -> JobRunner -> word2vec workers -> artifacts -> registry."""
from __future__ import annotations

import time

import numpy as np
import pytest
import ray

from services.backends import Backends
from services.jobs import JobService
from services.models import ModelService
from shared import keys
from tests.conftest import write_corpus

pytestmark = pytest.mark.timeout(300)


def w2v(corpus, **over):
    params = {"corpus": [str(corpus)], "dim": 16, "epochs": 2, "min_count": 2, **over.pop("params", {})}
    return {"kind": "word2vec", "name": over.pop("name", "e2e"), "params": params, **over}


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


def test_submit_trains_and_registers(svc, small_corpus, cluster_settings):
    view = svc.submit(svc.validate(w2v(small_corpus)))
    assert view["state"] == "QUEUED" and view["attempt"] == 1
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], [e["msg"] for e in svc.logs(final["id"])][-3:])
    assert final["model"] == {"name": "e2e", "version": 1}
    assert final["progress"] == 1.0 and final["started_at"] and final["finished_at"]
    assert final["metrics"]["vocab_size"] > 100 and final["metrics"]["words_per_s"] > 0

    models = ModelService(svc.b)
    mv = models.show("e2e:1")
    assert mv["lineage"]["job_id"] == view["id"]
    assert mv["lineage"]["dataset_fingerprint"].startswith("sha256:")
    assert mv["lineage"]["kiln_version"]
    assert mv["params"]["dim"] == 16 and mv["params"]["sg"] is True and mv["params"]["max_vocab_size"] is None
    assert set(mv["artifacts"]) >= {"vectors", "vocab", "text"}
    # the topical structure is learned: a word's nearest neighbours come from its own topic
    near = [w for w, _ in models.similar("e2e", "cat3", top=5)]
    assert sum(w.startswith("cat") for w in near) >= 4, near
    logs = [e["msg"] for e in svc.logs(view["id"])]
    assert any("vocabulary" in m for m in logs) and any("registered model e2e version 1" in m for m in logs)

    # a second job registers version 2; with one worker and the same seed, the vectors are the same
    v2 = svc.submit(svc.validate(w2v(small_corpus)))
    assert svc.wait(v2["id"], timeout_s=240)["model"] == {"name": "e2e", "version": 2}
    _, m1 = models.vectors("e2e:1")
    _, m2 = models.vectors("e2e:2")
    assert m1.words == m2.words
    np.testing.assert_array_equal(np.asarray(m1.unit_vectors), np.asarray(m2.unit_vectors))


def test_no_word_reaches_min_count_fails_cleanly(svc, tmp_path, cluster_settings):
    big = tmp_path / "big.txt"
    # larger than the submit-time precheck reads, so the job itself finds the problem
    from workers.word2vec import precheck

    precheck.PRECHECK_MAX_BYTES, saved = 1000, precheck.PRECHECK_MAX_BYTES
    try:
        big.write_text(" ".join(f"w{i}" for i in range(3000)) + "\n")
        view = svc.submit(svc.validate(w2v(big, params={"min_count": 5})))
    finally:
        precheck.PRECHECK_MAX_BYTES = saved
    final = svc.wait(view["id"], timeout_s=120)
    assert final["state"] == "FAILED" and "min_count=5" in final["error"]
    assert final["attempt"] == 1  # a user error is not retried
    assert svc.b.db.models.list_versions() == []


def test_cancel_queued_and_running(svc, small_corpus, cluster_settings, tmp_path):
    # fill the cluster (3 CPUs) with a long job, so the next one waits in the queue: long enough on any
    # machine to be cancelled while it runs (200 epochs of small_corpus once finished before the cancel)
    corpus = write_corpus(tmp_path / "long.txt", sentences=20000)
    long = svc.submit(svc.validate(w2v(corpus, name="long", params={"epochs": 1000},
                                       resources={"workers": 3, "cpus_per_worker": 1})))
    queued = svc.submit(svc.validate(w2v(small_corpus, name="waiting")))
    deadline = time.time() + 120
    while svc.get(long["id"])["state"] != "RUNNING" and time.time() < deadline:
        time.sleep(0.2)
    assert svc.get(long["id"])["state"] == "RUNNING"
    assert svc.get(queued["id"])["state"] == "QUEUED"
    runner = svc.b.redis.hget(keys.job(long["id"]), "runner").decode()  # a spare runner or runner-<job id>
    assert svc.cancel(queued["id"])["state"] == "CANCELLED"
    assert queued["id"] not in svc.b.queue
    assert svc.cancel(long["id"])["state"] == "CANCELLED"
    # the runner is gone and its CPUs are free again
    deadline = time.time() + 60
    while time.time() < deadline:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == cluster_settings.namespace]
        if runner not in names:
            break
        time.sleep(0.2)
    assert runner not in names
    time.sleep(1.0)
    for job in (long, queued):  # terminal states never change
        assert svc.get(job["id"])["state"] == "CANCELLED"
    assert svc.b.db.models.list_versions() == []
    # a cancelled job can be submitted again: a new job with the same spec
    again = svc.retry(queued["id"])
    assert again["id"] != queued["id"] and again["name"] == "waiting"
    assert svc.wait(again["id"], timeout_s=240)["model"] == {"name": "waiting", "version": 1}
    assert any(f"retry of {queued['id']}" in e["msg"] for e in svc.logs(again["id"]))


def test_redis_wipe_keeps_history_and_rebuilds_queue(svc, small_corpus, cluster_settings, dispatcher):
    done = svc.submit(svc.validate(w2v(small_corpus, name="before-wipe")))
    assert svc.wait(done["id"], timeout_s=240)["state"] == "SUCCEEDED"
    ray.kill(dispatcher, no_restart=False)  # Ray restarts it
    svc.b.redis.flushdb()
    listed = {v["id"]: v["state"] for v in svc.list()}
    assert listed[done["id"]] == "SUCCEEDED"
    # a job whose Redis entries are gone (queued in SQL only) is re-queued by the restarted dispatcher
    view = svc.submit(svc.validate(w2v(small_corpus, name="after-wipe")))
    svc.b.redis.zrem(keys.QUEUE, view["id"])
    svc.b.redis.delete(keys.job(view["id"]))
    ray.kill(dispatcher, no_restart=False)
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], [e["msg"] for e in svc.logs(final["id"])][-3:])


def test_workers_spread_over_two_nodes(svc, small_corpus):
    """3 workers of 1 CPU cannot fit the 2-CPU head: Ray places one on the second node."""
    view = svc.submit(svc.validate(w2v(small_corpus, name="spread", params={"epochs": 4},
                                       resources={"workers": 3})))
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", final["error"]
    logs = [e["msg"] for e in svc.logs(view["id"])]
    assert any("placed 3 worker(s) on 2 node(s)" in m for m in logs), logs
    assert {f"worker{k}_words_per_s" for k in range(3)} <= set(final["metrics"])
    # two workers shared weights on the head node, the third merged with them by summed deltas: it learned
    near = [w for w, _ in ModelService(svc.b).similar("spread", "sun7", top=5)]
    assert sum(w.startswith("sun") for w in near) >= 4, near
