"""word2vec jobs through the whole path (job service -> dispatcher -> JobRunner -> Word2VecJob on a real local
Ray cluster, real Redis, real SQLite), with real faults: a runner killed after its first checkpoint, NaN
written into a running worker's weights, a file in the way of the checkpoint, workers on two nodes."""
from __future__ import annotations

import time

import numpy as np
import pytest
import ray

from services.backends import Backends
from services.jobs import JobService
from services.models import ModelService
from shared import keys
from shared.artifacts import ArtifactStore
from workers.word2vec.job import Word2VecJob

pytestmark = pytest.mark.timeout(400)


def w2v(corpus, name, **over):
    params = {"corpus": [str(corpus)], "dim": 16, "epochs": 2, "min_count": 2, **over.pop("params", {})}
    return {"kind": "word2vec", "name": name, "params": params, **over}


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


def logs(svc, job_id) -> list[str]:
    return [e["msg"] for e in svc.logs(job_id)]


def wait_until(what, predicate, timeout_s: float = 180):
    """Poll ``predicate`` (a state of the job) until it holds; fail naming ``what`` otherwise."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_resumed_job_ends_with_the_vectors_of_an_uninterrupted_one(svc, small_corpus, cluster_settings):
    spec = w2v(small_corpus, "resume", params={"epochs": 300}, checkpoint_interval_s=0.3)
    view = svc.submit(svc.validate(spec))
    wait_until("the first persisted checkpoint", lambda: any("checkpoint saved" in m for m in logs(svc, view["id"])))
    at_kill = svc.get(view["id"])
    assert at_kill["state"] == "RUNNING" and 0 < at_kill["progress"] < 1
    runner = svc.b.redis.hget(keys.job(view["id"]), "runner").decode()  # a spare runner or runner-<job id>
    ray.kill(ray.get_actor(runner, namespace=cluster_settings.namespace), no_restart=True)
    resumed = svc.wait(view["id"], timeout_s=300)
    assert resumed["state"] == "SUCCEEDED", (resumed["error"], logs(svc, view["id"])[-3:])
    assert resumed["attempt"] == 2
    assert any("resumed from the checkpoint at" in m for m in logs(svc, view["id"]))
    m = resumed["metrics"]
    assert 0 < m["resumed_at"] < 1
    # words/s counts the words this attempt trained, not the whole job's
    trained_raw = (1 - m["resumed_at"]) * m["corpus_words"] * 300
    assert m["words_per_s"] == pytest.approx(trained_raw / (m["prep_seconds"] + m["train_seconds"]), rel=0.02)

    whole = svc.wait(svc.submit(svc.validate(spec))["id"], timeout_s=300)
    assert whole["state"] == "SUCCEEDED" and whole["attempt"] == 1
    models = ModelService(svc.b)
    _, a = models.vectors(f"resume:{resumed['model']['version']}")
    _, b = models.vectors(f"resume:{whole['model']['version']}")
    assert a.words == b.words
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))


def test_nan_in_a_running_workers_weights_fails_the_job(svc, small_corpus, cluster_settings):
    view = svc.submit(svc.validate(w2v(small_corpus, "diverges", params={"epochs": 1000})))
    wait_until("training progress", lambda: (svc.get(view["id"])["progress"] or 0) > 0.001)
    worker = ray.get_actor(Word2VecJob.worker_name(view["id"], 1, 0), namespace=cluster_settings.namespace)
    rows = np.arange(3)
    ray.get(worker.set_rows.remote(rows, np.full((3, 16), np.nan, np.float32), np.zeros((3, 16), np.float32)))
    final = svc.wait(view["id"], timeout_s=120)
    assert final["state"] == "FAILED" and final["attempt"] == 1, final
    assert "training diverged at round" in final["error"] and "learning rate" in final["error"], final["error"]
    assert "syn0" in final["error"]
    assert svc.b.db.models.list_versions() == []


def test_a_checkpoint_that_cannot_be_written_does_not_fail_the_job(svc, small_corpus, cluster_settings):
    view = svc.submit(svc.validate(w2v(small_corpus, "no-ckpt", params={"epochs": 60}, checkpoint_interval_s=0.1)))
    # a regular file where the job's checkpoint must go (tests run as root: permissions would not stop it)
    obstacle = ArtifactStore(cluster_settings.artifacts).checkpoint_dir(view["id"])
    obstacle.parent.mkdir(parents=True, exist_ok=True)
    obstacle.write_text("not a checkpoint\n")
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, view["id"])[-3:])
    lines = logs(svc, view["id"])
    assert any("could not write the checkpoint" in m and "in the way" in m for m in lines), lines
    assert not any("checkpoint saved" in m for m in lines)
    assert final["model"] == {"name": "no-ckpt", "version": 1}


def test_cpus_per_worker_become_training_threads(svc, small_corpus):
    view = svc.submit(svc.validate(w2v(small_corpus, "threads", resources={"workers": 1, "cpus_per_worker": 2})))
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, view["id"])[-3:])
    assert any("1 worker(s) x 2 thread(s)" in m for m in logs(svc, view["id"]))
    params = ModelService(svc.b).show("threads:1")["params"]
    assert params["threads_per_worker"] == 2 and params["cpus_per_worker"] == 2.0


WIKI_MIN_SPEARMAN = 0.25
"""WordSim-353 Spearman a 2-node job must reach on the Wikipedia sample (skip-gram dim 100, 10 epochs).
One trainer measured 0.387-0.406 on it, and -0.03..0.10 with the words shuffled (tests/word2vec/
test_quality.py); 2 workers on 2 nodes merging by summed deltas measured 0.311 (one run, the frequent rows
every round, the others in turn) and 0.340 (one run, every row every round, as now for this vocabulary)."""


def test_two_workers_on_two_nodes_merge_and_learn_real_text(svc, cluster_settings):
    from bench.corpora import wiki_extract_text, wordsim353

    pytest.importorskip("gensim")
    spec = w2v(wiki_extract_text(), "two-nodes", params={"dim": 100, "epochs": 10, "min_count": 5,
                                                        "eval_similarity": str(wordsim353())},
               resources={"workers": 2, "placement": "spread"})
    view = svc.submit(svc.validate(spec))
    final = svc.wait(view["id"], timeout_s=300)
    assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, view["id"])[-3:])
    placement = svc.b.status.get(view["id"]).get("placement") or []
    assert len({p["node_id"] for p in placement}) == 2, placement
    assert any("placed 2 worker(s) on 2 node(s), 2 weight group(s)" in m for m in logs(svc, view["id"]))
    rho = final["metrics"]["similarity_spearman"]
    print(f"two nodes: wordsim353 Spearman {rho:.3f}")
    assert rho >= WIKI_MIN_SPEARMAN
