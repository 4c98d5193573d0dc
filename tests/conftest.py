"""Shared fixtures: a real Redis (the machine's, on a spare DB index, else an embedded redis-server),
real SQLite, a real local Ray cluster (head + a second node on this machine), and a small corpus."""
from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from shared.config import Settings

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The test cluster is local and short-lived; the embedded stack (tests/test_stack.py) sets up its own token.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# With no GPU, the Triton word2vec kernel's tests run under Triton's interpreter, which must be switched on
# before anything imports triton (torch may, from any test): set it for the whole test process here.
if not any(Path("/dev").glob("nvidia[0-9]*")):
    os.environ.setdefault("TRITON_INTERPRET", "1")
SPARE_REDIS = os.environ.get("KILN_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    spare = None
    try:
        redis.Redis.from_url(SPARE_REDIS, socket_connect_timeout=1).ping()
        # a spare, empty DB index (1-15), so two test runs on one machine never share keys
        for db in random.sample(range(1, 16), 15):
            url = f"{SPARE_REDIS.rstrip('/')}/{db}"
            if redis.Redis.from_url(url).dbsize() == 0:
                spare = url
                break
    except redis.RedisError:
        pass
    if spare is not None:
        yield spare
        return
    # no reachable Redis with an empty DB: an embedded redis-server of our own
    from services.stack import redis_server_binary

    port = _free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(d)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def settings(tmp_path, redis_client, redis_url) -> Settings:
    """Settings for one test: its own KILN_HOME, SQLite file, artifact folder and Ray namespace."""
    home = tmp_path / "kiln-home"
    return Settings(kiln_home=home, redis_url=redis_url, db_url=f"sqlite:///{home / 'registry.db'}",
                    artifacts=str(home / "artifacts"), ray_address=None, user="tester",
                    namespace="kiln-test-" + secrets.token_hex(3))


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster: a head with 2 CPUs and a second node with 1 CPU (stands in for a cluster)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def cluster_settings(settings, ray_cluster) -> Settings:
    return settings.with_(ray_address=ray_cluster.address)


@pytest.fixture
def dispatcher(cluster_settings):
    """The dispatcher actor for this test's namespace; killed (with its runners) afterwards."""
    import ray

    from services.dispatcher_client import ensure_dispatcher

    handle = ensure_dispatcher(cluster_settings)
    yield handle
    ray.kill(handle, no_restart=True)
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == cluster_settings.namespace:
            try:
                ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
            except ValueError:
                pass
    # jobs' placement groups are detached: a test that ends while a job runs must not leave CPUs reserved
    from services.placement import PG_PREFIX

    for info in ray.util.placement_group_table().values():
        if info.get("name", "").startswith(PG_PREFIX) and info.get("state") != "REMOVED":
            try:
                ray.util.remove_placement_group(ray.util.get_placement_group(info["name"]))
            except ValueError:
                pass


def write_corpus(path: Path, sentences: int = 4000, seed: int = 0) -> Path:
    """A small synthetic corpus with topical structure: each sentence draws its words from one topic."""
    rng = random.Random(seed)
    topics = [[f"{t}{i}" for i in range(30)] for t in ("cat", "car", "sun", "law", "sea")]
    common = ["the", "a", "of", "and", "to", "in"]
    lines = []
    for _ in range(sentences):
        words = rng.choice(topics)
        lines.append(" ".join(rng.choice(words) if rng.random() < 0.7 else rng.choice(common) for _ in range(12)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus.txt")


@pytest.fixture
def env(settings):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    e.update(KILN_HOME=str(settings.kiln_home), KILN_REDIS_URL=settings.redis_url, KILN_DB_URL=settings.db_url,
             KILN_ARTIFACTS=settings.artifacts, KILN_NAMESPACE=settings.namespace, KILN_USER="tester",
             RAY_ADDRESS="127.0.0.1:1")  # nothing listens there: bad input must not need Ray
    return e
