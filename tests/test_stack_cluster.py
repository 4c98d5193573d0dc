"""With RAY_ADDRESS naming a running cluster, `kiln up` starts only what is missing (the embedded
Redis), uses that cluster, and `kiln doctor` lists its nodes with CPUs, GPUs and memory."""
from __future__ import annotations

import json
import os
import secrets
import time

import pytest
import redis

from shared import keys

from tests.test_cli import run


@pytest.mark.timeout(300)
def test_up_on_an_existing_cluster_starts_only_redis(tmp_path, ray_cluster):
    import ray

    home = tmp_path / "home"
    namespace = "kiln-test-" + secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env.update(KILN_HOME=str(home), RAY_ADDRESS=ray_cluster.address, KILN_NAMESPACE=namespace)
    try:
        r = run(["up"], env, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"ray {ray_cluster.address}" in r.stdout
        info = json.loads((home / "stack.json").read_text())
        assert set(info["parts"]) == {"redis-server"} and info["ray_address"] == ray_cluster.address
        assert ray.get_actor("dispatcher", namespace=namespace)  # the dispatcher runs on that cluster

        report = json.loads(run(["doctor", "--json"], env, timeout=120).stdout)
        assert report["checks"]["ray"]["ok"], report["checks"]["ray"]
        nodes = sorted(report["nodes"], key=lambda n: -n["cpus"])
        assert [n["cpus"] for n in nodes] == [2, 1] and all(n["gpus"] == 0 for n in nodes)
        assert all(n["memory_bytes"] > 0 and n["node_id"] for n in nodes) and nodes[0]["head"]
        # the default artifact store is a local path: with two nodes, doctor warns that every node must mount it
        assert len(report["warnings"]) == 1 and "KILN_ARTIFACTS is a local path" in report["warnings"][0]
        text = run(["doctor"], env, timeout=120).stdout
        assert "nodes:" in text and "2 CPUs  0 GPUs" in text and "1 CPUs  0 GPUs" in text

        # `kiln down` stops the local Redis, so the cluster's dispatcher (which knew it) goes too; the next
        # `kiln up` (a new Redis, on another port) gets a dispatcher that works with it
        assert run(["down"], env, timeout=120).returncode == 0
        with pytest.raises(ValueError):
            ray.get_actor("dispatcher", namespace=namespace)
        assert run(["up"], env, timeout=180).returncode == 0
        info = json.loads((home / "stack.json").read_text())
        client = redis.Redis.from_url(info["redis_url"])
        deadline = time.monotonic() + 60
        while client.get(keys.DISPATCHER_HEARTBEAT) is None:
            assert time.monotonic() < deadline, "the new dispatcher never beat on the new Redis"
            time.sleep(0.2)
    finally:
        try:
            ray.kill(ray.get_actor("dispatcher", namespace=namespace), no_restart=True)
        except ValueError:
            pass
        run(["down"], env, timeout=120)
    assert not (home / "stack.json").exists()
