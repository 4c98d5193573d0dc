"""Random SIGKILLs of the real dispatcher process while ten small jobs go through the queue.

Kills land at random moments and, every other time, at the moment some job is STARTING (between the
runner's creation and its start). Ray restarts the dispatcher each time. At the end every job is
terminal and SUCCEEDED, none is lost or run twice, every trained model is registered exactly once, and
no placement group or runner is left behind (but the dispatcher's idle spare runners). The schedule is seeded (KILN_FAULT_SEED) so a failure can
be replayed.
"""
from __future__ import annotations

import os
import random
import signal
import time

import pytest
import ray

from services import placement
from services.runner_pool import SPARES, runner_names
from services.backends import Backends
from services.jobs import JobService
from shared import keys
from tests.conftest import write_corpus
from tests import waiting

pytestmark = pytest.mark.timeout(900)

JOBS = 10
KILLS = 20


def wait_for(predicate, timeout_s=120, what="condition", poll_s=0.01):
    return waiting.wait_for(predicate, timeout_s, what, poll_s)


def test_random_dispatcher_kills_lose_nothing(cluster_settings, dispatcher, tmp_path):
    rng = random.Random(int(os.environ.get("KILN_FAULT_SEED", "12")))
    svc = JobService(Backends(cluster_settings))
    corpus = write_corpus(tmp_path / "corpus.txt", sentences=20000)
    jobs = []
    for i in range(JOBS):
        workers = 2 if i % 4 == 3 else 1
        spec = {"kind": "word2vec", "name": f"kill-{i}", "priority": rng.randint(0, 2),
                "params": {"corpus": [str(corpus)], "dim": 12, "epochs": rng.randint(60, 160), "min_count": 2},
                "resources": {"workers": workers}, "checkpoint_interval_s": 0.5}
        jobs.append(svc.submit(svc.validate(spec))["id"])

    def starting():
        return any(svc.b.redis.hget(keys.job(j), "state") == b"STARTING" for j in jobs)

    def all_terminal():
        return all(svc.get(j)["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") for j in jobs)

    kills = 0
    while kills < KILLS and not all_terminal():
        if kills % 2:
            try:
                wait_for(starting, 10, "a STARTING job")
            except AssertionError:
                pass  # none started meanwhile: kill anyway
        else:
            time.sleep(rng.uniform(0.2, 4.0))  # the fault schedule: a random moment
        pid = ray.get(dispatcher.info.remote(), timeout=120)["pid"]
        os.kill(pid, signal.SIGKILL)
        kills += 1
        wait_for(lambda: ray.get(dispatcher.info.remote(), timeout=120)["pid"] != pid, 120, "the restart")
    print(f"{kills} dispatcher kills over {JOBS} jobs")
    assert kills >= KILLS // 2, f"only {kills} kills before every job ended: make the jobs longer"

    finals = {j: svc.wait(j, timeout_s=300) for j in jobs}
    problems = {j: (v["state"], v["error"]) for j, v in finals.items() if v["state"] != "SUCCEEDED"}
    assert not problems, problems
    recounted = {j: [e["msg"] for e in svc.logs(j)] for j, v in finals.items() if v["attempt"] != 1}
    assert not recounted, recounted  # a kill never counts an attempt; the logs say which path re-queued
    live = {j: svc.b.redis.hget(keys.job(j), "state") for j in jobs}
    assert all(state == b"SUCCEEDED" for state in live.values()), live  # SQL and Redis agree
    versions = svc.b.db.models.list_versions()
    assert sorted((v.name, v.version) for v in versions) == sorted((f"kill-{i}", 1) for i in range(JOBS))
    assert sorted(v.job_id for v in versions) == sorted(jobs)  # one version per job, none run twice
    assert {(v["model"]["name"], v["model"]["version"]) for v in finals.values()} == {
        (f"kill-{i}", 1) for i in range(JOBS)}
    assert svc.b.redis.zcard(keys.QUEUE) == 0
    wait_for(lambda: all(placement.find(j) is None for j in jobs), 30, "every placement group removed")
    # no runner left but the dispatcher's idle spares (each holds no job)
    wait_for(lambda: sorted(runner_names(cluster_settings.namespace)) == ray.get(dispatcher.info.remote(),
                                                                                timeout=120)["spares"],
             30, "only the dispatcher's spares left")
    names = runner_names(cluster_settings.namespace)
    assert len(names) <= SPARES, names
    assert all(ray.get(ray.get_actor(n, namespace=cluster_settings.namespace).held.remote(), timeout=60) is None
               for n in names), names
