"""Dispatcher faults, reproduced for real on the local Ray cluster, real Redis and real SQLite: the
dispatcher SIGKILLed at the moment a job is STARTING, the registry file locked (BEGIN EXCLUSIVE) when a
runner returns, cancel requests SQL does not confirm, a cancel SQL holds but Redis lost, time limits,
and a finished job's scratch data."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import ray

from services import job_files, placement, runner_pool
from services.backends import Backends
from services.jobs import JobService
from shared import keys
from shared.states import JobState
from tests.conftest import write_corpus
from tests.test_cli import run
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(400)


def w2v(corpus, **over):
    params = {"corpus": [str(corpus)], "dim": 16, "epochs": 2, "min_count": 2, **over.pop("params", {})}
    return {"kind": "word2vec", "name": over.pop("name", "faults"), "params": params, **over}


def kill_dispatcher(dispatcher) -> int:
    """SIGKILL the ray::Dispatcher process (Ray restarts the actor); returns the PID killed."""
    pid = ray.get(dispatcher.info.remote(), timeout=60)["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def live_state(svc, job_id):
    raw = svc.b.redis.hget(keys.job(job_id), "state")
    return raw.decode() if raw else None


def runner_name(svc, job_id):
    """The actor that runs the job, as the dispatcher recorded it (a spare runner, or runner-<job id>)."""
    return svc.b.redis.hget(keys.job(job_id), "runner").decode()


def logs(svc, job_id):
    return [e["msg"] for e in svc.logs(job_id)]


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


@pytest.fixture
def long_corpus(tmp_path):
    """240k words an epoch: a job of many epochs runs for a while (for jobs stopped while they run)."""
    return write_corpus(tmp_path / "long.txt", sentences=20000)


def test_dispatcher_killed_while_a_job_is_starting(svc, small_corpus, dispatcher):
    """Killed between creating the runner and calling start(): the restarted dispatcher starts it."""
    finished = []
    for i in range(2):
        job = svc.submit(svc.validate(w2v(small_corpus, name=f"starting-{i}")))["id"]
        wait_for(lambda: live_state(svc, job) == "STARTING", what="STARTING", poll_s=0.005)
        pid = kill_dispatcher(dispatcher)
        wait_for(lambda: ray.get(dispatcher.info.remote(), timeout=60)["pid"] != pid, what="the restart")
        finished.append(job)
    later = svc.submit(svc.validate(w2v(small_corpus, name="later")))["id"]
    for job in [*finished, later]:
        final = svc.wait(job, timeout_s=240)
        assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, job)[-5:])
        assert final["attempt"] == 1  # the dispatcher's death costs the job nothing
    assert sorted((v.name, v.version) for v in svc.b.db.models.list_versions()) == [
        ("later", 1), ("starting-0", 1), ("starting-1", 1)]


def test_a_locked_registry_never_throws_a_trained_model_away(svc, small_corpus, dispatcher, cluster_settings):
    db_file = cluster_settings.db_url.removeprefix("sqlite:///")
    job = svc.submit(svc.validate(w2v(small_corpus, name="locked", params={"epochs": 3})))["id"]
    wait_for(lambda: svc.b.db.jobs.get(job).state == JobState.RUNNING, what="RUNNING")
    lock = sqlite3.connect(db_file, isolation_level=None, timeout=60)
    lock.execute("BEGIN EXCLUSIVE")  # held across the moment the runner returns
    try:
        wait_for(lambda: any("could not register the model yet" in m for m in logs(svc, job)), 240,
                 "a failed registration")
        assert job_files.load_result(svc.b.artifacts, job) is not None  # the result is kept on disk
        # the dispatcher dies too while the result waits: its successor must register it from the file
        pid = kill_dispatcher(dispatcher)
        wait_for(lambda: ray.get(dispatcher.info.remote(), timeout=60)["pid"] != pid, what="the restart")
        assert svc.b.db.jobs.get(job).state == JobState.RUNNING
    finally:
        lock.rollback()
        lock.close()
    final = svc.wait(job, timeout_s=120)
    assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, job)[-5:])
    assert final["model"] == {"name": "locked", "version": 1}
    assert [(v.name, v.version) for v in svc.b.db.models.list_versions()] == [("locked", 1)]
    assert job_files.load_result(svc.b.artifacts, job) is None  # registered: nothing left to keep


def test_cancel_requests_are_taken_on_sqls_word(svc, small_corpus, long_corpus, cluster_settings):
    # a cancel request that SQL does not confirm (anyone who can write to Redis) is ignored: the job ends
    job = svc.submit(svc.validate(w2v(small_corpus, name="forged", params={"epochs": 4})))["id"]
    wait_for(lambda: svc.b.db.jobs.get(job).state == JobState.RUNNING, what="RUNNING")
    svc.b.redis.sadd(keys.CANCEL_REQUESTS, job)
    wait_for(lambda: any("ignored a cancel request" in m for m in logs(svc, job)), 30, "the ignored request")
    final = svc.wait(job, timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], logs(svc, job)[-5:])

    # a cancel recorded in SQL whose Redis request was lost still stops the runner and frees its group
    job = svc.submit(svc.validate(w2v(long_corpus, name="sql-cancel", params={"epochs": 1000})))["id"]
    wait_for(lambda: svc.b.db.jobs.get(job).state == JobState.RUNNING, what="RUNNING")
    assert placement.find(job) is not None
    svc.b.db.jobs.transition(job, JobState.CANCELLED, error="cancelled by user")
    wait_for(lambda: live_state(svc, job) == "CANCELLED", 30, "Redis to follow SQL")
    wait_for(lambda: placement.find(job) is None, 30, "the group to be removed")
    runner = runner_name(svc, job)  # a spare runner or runner-<job id>
    wait_for(lambda: runner not in runner_pool.runner_names(cluster_settings.namespace), 30,
             "the runner to be stopped")
    assert svc.get(job)["state"] == "CANCELLED"


def test_a_job_past_its_time_limit_fails(svc, long_corpus, cluster_settings):
    job = svc.submit(svc.validate(w2v(long_corpus, name="slow", params={"epochs": 1000}, timeout_s=3)))["id"]
    final = svc.wait(job, timeout_s=120)
    assert final["state"] == "FAILED" and final["error"].startswith("timed out after 3s"), final["error"]
    assert final["attempt"] == 1 and svc.b.db.models.list_versions() == []
    wait_for(lambda: placement.find(job) is None, 30, "the group to be removed")
    assert not (job_files.job_root(svc.b.artifacts, job) / "data").exists()


def test_scratch_is_deleted_when_a_job_ends_and_gc_cleans_old_leftovers(svc, small_corpus, env, cluster_settings):
    job = svc.submit(svc.validate(w2v(small_corpus, name="tidy", params={"epochs": 3},
                                      checkpoint_interval_s=0.2)))["id"]
    root = job_files.job_root(svc.b.artifacts, job)
    wait_for(lambda: (root / "data").exists(), 120, "the encoded corpus")
    final = svc.wait(job, timeout_s=240)
    assert final["state"] == "SUCCEEDED", final["error"]
    # the kept result goes once the registration committed, a moment after SQL says SUCCEEDED
    wait_for(lambda: job_files.load_result(svc.b.artifacts, job) is None, 30, "the kept result removed")
    left = sorted(p.name for p in root.iterdir())
    assert "data" not in left and not [n for n in left if "checkpoint" in n], left
    model_files = [Path(u.removeprefix("file://")) for u in svc.b.db.models.get_version("tidy", 1).artifacts.values()]
    assert model_files and all(p.exists() for p in model_files)

    # what an older kiln left behind: scratch of a finished job, and the folder of a failed one
    (root / "data").mkdir()
    (root / "data" / "corpus.npy").write_bytes(b"\0" * 4096)
    (root / "checkpoint-123").mkdir()
    failed = svc.submit(svc.validate(w2v(small_corpus, name="gone")))["id"]
    svc.cancel(failed)
    (job_files.job_root(svc.b.artifacts, failed) / "data").mkdir(parents=True)
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    r = run(["gc", "--json"], env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert sorted(out["jobs"]) == sorted([job, failed]) and out["bytes_freed"] >= 4096
    assert sorted(p.name for p in root.iterdir()) == sorted(n for n in left)
    assert not job_files.job_root(svc.b.artifacts, failed).exists()
    assert all(p.exists() for p in model_files)


def test_a_planned_stop_requeues_without_counting_an_attempt(svc, long_corpus, dispatcher, cluster_settings):
    job = svc.submit(svc.validate(w2v(long_corpus, name="drained", params={"epochs": 60}, max_retries=0,
                                      checkpoint_interval_s=0.3)))["id"]
    wait_for(lambda: any("checkpoint saved" in m for m in logs(svc, job)), 120, "a checkpoint")
    assert ray.get(dispatcher.drain.remote(), timeout=120) == [job]
    rec = svc.b.db.jobs.get(job)
    assert rec.state == JobState.QUEUED and rec.attempt == 1 and live_state(svc, job) == "QUEUED"
    assert job in svc.b.queue and placement.find(job) is None
    # no detached actor outlives the stop: the job's runner and the spare runners are killed
    wait_for(lambda: not runner_pool.runner_names(cluster_settings.namespace), 30, "no runner actor left")
    ray.kill(dispatcher, no_restart=False)  # the next `kiln up`: a fresh dispatcher
    final = svc.wait(job, timeout_s=240)
    assert final["state"] == "SUCCEEDED" and final["attempt"] == 1, (final["error"], logs(svc, job)[-5:])
    assert any("resum" in m for m in logs(svc, job))
    assert [(v.name, v.version) for v in svc.b.db.models.list_versions()] == [("drained", 1)]


def test_a_runner_lost_while_the_registry_is_locked_still_ends_failed(svc, long_corpus, cluster_settings):
    db_file = cluster_settings.db_url.removeprefix("sqlite:///")
    job = svc.submit(svc.validate(w2v(long_corpus, name="lost", params={"epochs": 1000}, max_retries=0)))["id"]
    wait_for(lambda: svc.b.db.jobs.get(job).state == JobState.RUNNING, what="RUNNING")
    lock = sqlite3.connect(db_file, isolation_level=None, timeout=60)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        ray.kill(ray.get_actor(runner_name(svc, job), namespace=cluster_settings.namespace), no_restart=True)
        wait_for(lambda: any("could not record the failure yet" in m for m in logs(svc, job)), 120,
                 "a failure the database could not take")
        assert svc.b.db.jobs.get(job).state == JobState.RUNNING
    finally:
        lock.rollback()
        lock.close()
    final = svc.wait(job, timeout_s=60)
    assert final["state"] == "FAILED" and "runner lost" in final["error"] and "no retries left" in final["error"]
    assert live_state(svc, job) == "FAILED" and placement.find(job) is None
