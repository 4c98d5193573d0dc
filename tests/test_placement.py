"""Placement groups on the fragmented test cluster (head 2 CPUs + a second node with 1 CPU), real Ray:
a job that fits the cluster's total free CPUs but no node stays QUEUED with its reason and runs when
capacity frees; a request larger than any node is refused at submit; the group is removed at the end."""
from __future__ import annotations

import json
import time

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from services import placement
from services.backends import Backends
from services.jobs import JobService
from tests.test_cli import one_line_error, run

pytestmark = pytest.mark.timeout(300)


def w2v(corpus, **over):
    params = {"corpus": [str(corpus)], "dim": 16, "epochs": 2, "min_count": 2, **over.pop("params", {})}
    return {"kind": "word2vec", "name": over.pop("name", "placed"), "params": params, **over}


def wait_for(predicate, timeout_s=120, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@ray.remote(num_cpus=1)
class Hog:
    """Someone else's work holding one CPU on a chosen node."""

    def ping(self):
        return True


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


def test_a_job_no_node_can_hold_now_stays_queued_with_its_reason_then_runs(svc, small_corpus, env, dispatcher,
                                                                              cluster_settings, ray_cluster):
    head = ray_cluster.head_node.node_id
    hog = Hog.options(scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote()
    ray.get(hog.ping.remote())
    try:
        # free: 1 CPU on the head + 1 CPU on the second node = 2, but a 2-CPU worker fits on neither
        view = svc.submit(svc.validate(w2v(small_corpus, resources={"workers": 1, "cpus_per_worker": 2})))
        job = view["id"]
        # the first round may still see the cluster as it was before the hog (the view refreshes every second)
        queued = wait_for(lambda: "free per node" in ((v := svc.get(job))["reason"] or "") and v,
                          what="the dispatcher's reason")
        assert queued["state"] == "QUEUED"
        assert "free per node: 1 CPU + 1 CPU" in queued["reason"] and "enough in total" in queued["reason"]
        env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
        shown = json.loads(run(["status", job, "--json"], env).stdout)
        assert shown["state"] == "QUEUED" and shown["reason"] == queued["reason"] and shown["queue_position"] == 1
        human = run(["status", job], env)
        assert "waiting" in human.stdout and "free per node" in human.stdout
        listed = {j["id"]: j for j in json.loads(run(["jobs", "--json"], env).stdout)}
        assert listed[job]["queue_position"] == 1 and listed[job]["reason"] == queued["reason"]
        assert placement.find(job) is None  # nothing reserved for a job that cannot be placed
        # several rounds later it still waits (the dispatcher refreshes the cluster every second)
        ticks = ray.get(dispatcher.info.remote())["ticks"]
        wait_for(lambda: ray.get(dispatcher.info.remote())["ticks"] > ticks + 20, what="20 dispatcher rounds")
        assert svc.get(job)["state"] == "QUEUED"
    finally:
        ray.kill(hog)
    final = svc.wait(job, timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], [e["msg"] for e in svc.logs(job)][-5:])
    assert final["reason"] is None and final["started_at"]
    assert [p["worker"] for p in final["placement"]] == [0]
    assert final["placement"][0]["node_id"] == head  # the only node with 2 CPUs
    assert any("placed (PACK)" in e["msg"] for e in svc.logs(job))
    wait_for(lambda: placement.find(job) is None, 30, "the placement group to be removed")


def test_spread_puts_workers_on_different_nodes(svc, small_corpus):
    view = svc.submit(svc.validate(w2v(small_corpus, name="spread-pg",
                                       resources={"workers": 2, "cpus_per_worker": 1, "placement": "spread"})))
    final = svc.wait(view["id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", (final["error"], [e["msg"] for e in svc.logs(view["id"])][-5:])
    assert len({p["node_id"] for p in final["placement"]}) == 2, final["placement"]
    assert any("placed (SPREAD)" in e["msg"] for e in svc.logs(view["id"]))


def test_a_request_larger_than_any_node_is_refused_at_submit(env, cluster_settings, dispatcher, small_corpus,
                                                            redis_client):
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}  # the dispatcher has just started: no wait
    r = run(["submit", "word2vec", str(small_corpus), "--min-count", "2", "--cpus-per-worker", "3"], env)
    line = one_line_error(r, 2)
    assert "asked for 1 worker(s) x 3 CPU" in line and "2 node(s): " in line and "GB memory" in line
    assert "2 CPU, 0 GPU" in line and "1 CPU, 0 GPU" in line
    assert redis_client.zcard("kiln:queue") == 0 and not redis_client.keys("kiln:job:*")


def test_a_group_left_by_an_ended_job_is_removed_on_recovery(ray_cluster):
    """A dispatcher killed after recording a job's end but before removing its group leaves the group
    holding CPUs; the next dispatcher's recovery removes every group whose job is not live."""
    import ray

    from services import placement

    leaked = ray.util.placement_group([{"CPU": 1}], name=placement.pg_name("job-ended"), lifetime="detached")
    live = ray.util.placement_group([{"CPU": 1}], name=placement.pg_name("job-live"), lifetime="detached")
    assert leaked.wait(timeout_seconds=60) and live.wait(timeout_seconds=60)
    try:
        assert placement.remove_orphans({"job-live"}) == ["job-ended"]
        assert placement.find("job-ended") is None
        assert placement.find("job-live") is not None
    finally:
        placement.remove("job-live")
        placement.remove("job-ended")
