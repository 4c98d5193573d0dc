"""Warm runners on the real local Ray cluster, real Redis and real SQLite: a job dispatched while a spare
runner is ready starts on it (no new worker process); a dispatcher SIGKILLed right after handing a job to
a spare is followed by one that finds the job's runner, counts no attempt and leaves no spare behind."""
from __future__ import annotations

import os
import signal

import pytest
import ray

from services import placement, runner_pool
from services.backends import Backends
from services.jobs import JobService
from shared import keys
from shared.states import JobState
from tests import waiting

pytestmark = pytest.mark.timeout(400)


def w2v(corpus, name, epochs=2):
    return {"kind": "word2vec", "name": name,
            "params": {"corpus": [str(corpus)], "dim": 16, "epochs": epochs, "min_count": 2}}


def wait_for(predicate, timeout_s=120, what="condition", poll_s=0.02):
    return waiting.wait_for(predicate, timeout_s, what, poll_s)


def info(dispatcher):
    return ray.get(dispatcher.info.remote(), timeout=120)


def recorded(svc, job_id):
    raw = svc.b.redis.hget(keys.job(job_id), "runner")
    return raw.decode() if raw else None


def runner_actors(namespace):
    return sorted(runner_pool.runner_names(namespace))


def only_idle_spares_left(dispatcher, namespace):
    """Every runner actor of the namespace is a spare of the dispatcher's pool, holding no job."""
    spares = info(dispatcher)["spares"]
    names = runner_actors(namespace)
    if names != spares or len(names) > runner_pool.SPARES:
        return False
    return all(ray.get(runner_pool.get(n, namespace).held.remote(), timeout=60) is None for n in names)


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


def test_the_second_job_starts_on_a_spare_runner(svc, small_corpus, dispatcher, cluster_settings):
    ns = cluster_settings.namespace
    first = svc.submit(svc.validate(w2v(small_corpus, "first", epochs=100)))["id"]
    wait_for(lambda: svc.b.db.jobs.get(first).state == JobState.RUNNING, what="the first job RUNNING")
    ready = wait_for(lambda: info(dispatcher)["spares_ready"], what="a ready spare runner")
    second = svc.submit(svc.validate(w2v(small_corpus, "second")))["id"]
    wait_for(lambda: svc.b.db.jobs.get(second).state == JobState.RUNNING, what="the second job RUNNING")
    spare = recorded(svc, second)
    assert spare in ready  # handed to a spare that was ready, recorded in the live hash
    assert info(dispatcher)["runners"][second] == spare
    handle = runner_pool.get(spare, ns)
    assert ray.get(handle.held.remote(), timeout=60) == second
    assert ray.get(handle.assign.remote("other", "{}", {}, 1, None), timeout=60) is False  # one job only
    assert f"runner-{second}" not in runner_actors(ns)  # no fresh runner was made for it
    final = svc.wait(second, timeout_s=240)
    assert final["state"] == "SUCCEEDED" and final["attempt"] == 1, final["error"]
    wait_for(lambda: spare not in runner_actors(ns), 60, "the used spare to be killed when its job ended")
    svc.cancel(first)
    wait_for(lambda: only_idle_spares_left(dispatcher, ns), 60, "only idle spares of the pool left")
    assert placement.find(first) is None and placement.find(second) is None


def test_a_dispatcher_killed_right_after_handing_a_job_to_a_spare(svc, small_corpus, dispatcher,
                                                                   cluster_settings):
    ns = cluster_settings.namespace
    warm = svc.submit(svc.validate(w2v(small_corpus, "warm", epochs=100)))["id"]  # so the next job has a spare
    wait_for(lambda: svc.b.db.jobs.get(warm).state == JobState.RUNNING, what="the warm-up job RUNNING")
    jobs = [warm]
    for moment in ("recorded", "held"):
        wait_for(lambda: info(dispatcher)["spares_ready"], what="a ready spare runner")
        pid = info(dispatcher)["pid"]
        job = svc.submit(svc.validate(w2v(small_corpus, f"handed-{moment}")))["id"]
        jobs.append(job)
        # the dispatcher records the spare's name in the job's hash, then hands the job over
        wait_for(lambda: runner_pool.is_spare(recorded(svc, job) or ""), 60, "the record", poll_s=0.001)
        if moment == "held":  # the hand-over done: the spare holds the job
            spare = runner_pool.get(recorded(svc, job), ns)
            wait_for(lambda: ray.get(spare.held.remote(), timeout=60) == job, 60, "the hand-over", poll_s=0.001)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: info(dispatcher)["pid"] != pid, 120, "the restart")
        final = svc.wait(job, timeout_s=240)
        msgs = [m["msg"] for m in svc.logs(job)]
        assert final["state"] == "SUCCEEDED", (final["error"], msgs[-5:])
        assert final["attempt"] == 1, msgs  # the dispatcher's death counted no attempt
        if moment == "held":  # found by asking the spares, and run where it was handed
            assert any(m.startswith("dispatcher restarted; re-attached") for m in msgs), msgs
        else:  # either the hand-over landed first (re-attached) or the job went back, uncounted
            assert any("re-attached" in m or "not counted" in m for m in msgs), msgs
    svc.cancel(warm)
    wait_for(lambda: only_idle_spares_left(dispatcher, ns), 60, "no spare or runner left behind")
    for job in jobs:
        wait_for(lambda: placement.find(job) is None, 30, "every group removed")


def test_a_dead_spare_costs_the_job_no_attempt(svc, small_corpus, dispatcher, cluster_settings):
    """Spares killed while idle (a node or process lost): the job handed to one goes back to the queue
    uncounted and runs on another runner."""
    ns = cluster_settings.namespace
    spares = wait_for(lambda: (lambda i: i["spares"] if i["spares"] == i["spares_ready"] and i["spares"] else None)(
        info(dispatcher)), what="every spare started")
    for name in spares:
        ray.kill(runner_pool.get(name, ns), no_restart=True)
    wait_for(lambda: not set(spares) & set(runner_actors(ns)), 30, "the spares dead")
    job = svc.submit(svc.validate(w2v(small_corpus, "after-dead-spares")))["id"]
    final = svc.wait(job, timeout_s=240)
    msgs = [m["msg"] for m in svc.logs(job)]
    assert final["state"] == "SUCCEEDED" and final["attempt"] == 1, (final["error"], msgs)
    assert any("spare runner could not take the job" in m and "not counted" in m for m in msgs), msgs
    assert recorded(svc, job) not in spares  # it ran on a runner that was alive
    wait_for(lambda: only_idle_spares_left(dispatcher, ns), 60, "only idle spares of the pool left")


def test_a_job_on_a_spare_is_found_when_redis_lost_its_record(svc, small_corpus, dispatcher, cluster_settings):
    """The job's live hash (which names its runner) lost, then the dispatcher killed: its successor asks
    the spares which job each holds, re-attaches, and the job ends on its first attempt."""
    ns = cluster_settings.namespace
    wait_for(lambda: info(dispatcher)["spares_ready"], what="a ready spare runner")
    job = svc.submit(svc.validate(w2v(small_corpus, "lost-record", epochs=40)))["id"]
    wait_for(lambda: svc.b.db.jobs.get(job).state == JobState.RUNNING, what="RUNNING")
    spare = recorded(svc, job)
    assert runner_pool.is_spare(spare)
    pid = info(dispatcher)["pid"]
    svc.b.redis.delete(keys.job(job))  # Redis lost the job's hash, its runner's name with it
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: info(dispatcher)["pid"] != pid, 120, "the restart")
    final = svc.wait(job, timeout_s=240)
    msgs = [m["msg"] for m in svc.logs(job)]
    assert final["state"] == "SUCCEEDED" and final["attempt"] == 1, (final["error"], msgs)
    assert f"dispatcher restarted; re-attached to the job's runner ({spare})" in msgs, msgs
    wait_for(lambda: only_idle_spares_left(dispatcher, ns), 60, "only idle spares of the pool left")
