"""The HTTP API under load: 500 job submissions from 10 concurrent clients, then queue-to-running.

Phase 1 (submit): a real `kiln serve` process over its own redis-server and SQLite file; 10 threads, each
with its own token and its own keep-alive connection (the standard library's ``http.client``, lighter on
the shared cores than ``requests``), POST /api/jobs 50 times. Checked afterwards:
every answered job id is distinct, SQL holds exactly the 500 jobs (no more, no fewer) and the Redis queue
holds each of them once. Then one client alone submits 50 more (latency without queueing behind the
other clients). The peer figure is the same submission made in-process through
``JobService.submit`` (no HTTP, no auth, one thread): the ratio is what the server adds.
Phase 2 (queue-to-running): the queue is cleared (jobs cancelled through the API), a dispatcher on a local
Ray instance starts, and ``--q2r`` jobs are submitted one at a time while nothing else runs (free
capacity). For each: SQL ``started_at - submitted_at`` (the dispatcher's pick-up, written as the job
enters RUNNING). Each job is cancelled once RUNNING.

    python -m bench.api_load [--jobs 500] [--clients 10] [--q2r 20]

Targets (issue #7): submit p50 < 20 ms, p99 < 100 ms; queue-to-running p50 < 1 s with free capacity.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

KILN = str(Path(sys.executable).with_name("kiln"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    import redis

    from services.stack import redis_server_binary

    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_server(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([KILN, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/api/openapi.json", timeout=2)
            return proc, url
        except (requests.ConnectionError, requests.Timeout):  # a loaded machine: not up yet
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("kiln serve did not start")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spec(corpus: Path, i: int, epochs: int = 1) -> dict:
    return {"kind": "word2vec", "name": f"load-{i % 7}",
            "params": {"corpus": [str(corpus)], "dim": 8, "epochs": epochs, "min_count": 1}}


def submit_load(url: str, tokens: list[str], corpus: Path, jobs: int, clients: int) -> tuple[list[float], list[str], float]:
    """(latencies in s, job ids answered, wall seconds) for ``jobs`` POSTs from ``clients`` threads."""
    per = jobs // clients
    latencies: list[float] = []
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    host, port = urlsplit(url).hostname, urlsplit(url).port

    def client(k: int) -> None:
        # a keep-alive http.client connection per thread: a few times less CPU per request than a
        # requests.Session, so the load generator takes less of the cores it shares with the server
        conn = http.client.HTTPConnection(host, port, timeout=60)
        headers = {"Authorization": f"Bearer {tokens[k]}", "Content-Type": "application/json"}
        mine, got = [], []
        barrier.wait()
        for i in range(per):
            t0 = time.perf_counter()
            conn.request("POST", "/api/jobs", body=json.dumps(spec(corpus, k * per + i)), headers=headers)
            r = conn.getresponse()
            body = r.read()
            mine.append(time.perf_counter() - t0)
            if r.status != 201:
                errors.append(f"{r.status} {body[:200]!r}")
            else:
                got.append(json.loads(body)["id"])
        conn.close()
        with lock:
            latencies.extend(mine)
            ids.extend(got)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} submissions failed, first: {errors[0]}")
    return latencies, ids, wall


def in_process_submit(settings, corpus: Path, n: int) -> list[float]:
    """The peer: JobService.submit in this process (validation + SQL + Redis, no HTTP)."""
    from services.backends import Backends
    from services.jobs import JobService, validate_offline

    svc = JobService(Backends(settings))
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        svc.submit(validate_offline(spec(corpus, i), user="peer"))
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--q2r", type=int, default=20, help="jobs for the queue-to-running measurement (0: skip)")
    args = ap.parse_args()

    import redis

    from services.registry import Database
    from services.tokens import TokenService
    from shared import keys
    from shared.config import Settings
    from tests.conftest import write_corpus

    tmp = Path(tempfile.mkdtemp(prefix="kiln-api-load-"))
    home = tmp / "home"
    home.mkdir()
    redis_proc, redis_url = start_redis(tmp)
    settings = Settings(kiln_home=home, redis_url=redis_url, db_url=f"sqlite:///{home / 'registry.db'}",
                        artifacts=str(home / "artifacts"), ray_address=None, user="bench",
                        namespace="kiln-bench-" + secrets.token_hex(3))
    corpus = write_corpus(tmp / "corpus.txt", sentences=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env.update(KILN_HOME=str(home), KILN_REDIS_URL=redis_url, KILN_DB_URL=settings.db_url,
               KILN_ARTIFACTS=settings.artifacts, KILN_NAMESPACE=settings.namespace, KILN_USER="bench")
    db = Database(settings.db_url)
    tokens = [TokenService(db).create(f"user{k}")[0] for k in range(args.clients)]
    admin = TokenService(db).create("admin", admin=True)[0]
    server, url = start_server(env)
    r = redis.Redis.from_url(redis_url)
    try:
        for _ in range(20):  # warm-up: imports, first connections, the SQLite file
            requests.post(url + "/api/jobs", json=spec(corpus, 0), headers={"Authorization": f"Bearer {admin}"})
        warm = {j.id for j in db.jobs.list()}
        load_before = os.getloadavg()[0]
        cpu0 = (cpu_s(server.pid), time.process_time(), cpu_s(redis_proc.pid))
        lat, ids, wall = submit_load(url, tokens, corpus, args.jobs, args.clients)
        cpu1 = (cpu_s(server.pid), time.process_time(), cpu_s(redis_proc.pid))
        server_ms, client_ms, redis_ms = ((b - a) * 1000 / args.jobs for a, b in zip(cpu0, cpu1))
        rows = [j for j in db.jobs.list() if j.id not in warm]
        queued = {m.decode() for m in r.zrange(keys.QUEUE, 0, -1)} - warm
        exactly_once = (len(ids) == len(set(ids)) == args.jobs and {j.id for j in rows} == set(ids)
                        and len(rows) == args.jobs and queued == set(ids))
        peer = in_process_submit(settings, corpus, 100)
        # one client alone: the latency of a submission that does not wait behind others
        solo, solo_ids, _ = submit_load(url, tokens, corpus, 50, 1)

        print(f"# kiln API load: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"{args.jobs} submissions from {args.clients} concurrent clients in {wall:.2f} s "
              f"({args.jobs / wall:.0f} jobs/s); stored exactly once: {exactly_once} "
              f"({len(rows)} SQL rows, {len(queued)} queued, {len(set(ids))} distinct ids)")
        print(f"CPU per submission: server {server_ms:.2f} ms, the {args.clients} client threads (http.client) {client_ms:.2f} ms, "
              f"redis-server {redis_ms:.2f} ms (sum x {args.jobs / wall:.0f} jobs/s = "
              f"{(server_ms + client_ms + redis_ms) * args.jobs / wall / 1000:.2f} of {os.cpu_count()} CPUs); "
              f"load average {load_before:.2f} before the load phase, {os.getloadavg()[0]:.2f} after")
        print("| measure | kiln HTTP (10 clients) | in-process JobService.submit (1 thread) | ratio | target |")
        print("| --- | ---: | ---: | ---: | --- |")
        for q in (50, 99):
            a, b = pct(lat, q) * 1000, pct(peer, q) * 1000
            print(f"| submit p{q} | {a:.1f} ms | {b:.1f} ms | {a / b:.2f}x | < {20 if q == 50 else 100} ms |")
        for q in (50, 99):
            a, b = pct(solo, q) * 1000, pct(peer, q) * 1000
            print(f"| submit p{q}, 1 client alone (50 jobs) | {a:.1f} ms | {b:.1f} ms | {a / b:.2f}x | |")
        if not exactly_once:
            raise SystemExit("FAILED: jobs lost or stored twice")

        if args.q2r:
            q2r, parts = queue_to_running(url, admin, settings, db, corpus, args.q2r, r)
            print(f"| queue-to-running p50 (free capacity, {len(q2r)} jobs) | {statistics.median(q2r) * 1000:.0f} ms "
                  f"| | | < 1000 ms |")
            print(f"| queue-to-running max | {max(q2r) * 1000:.0f} ms | | | |")
            if parts:
                print(f"| of which submit -> group reserved (p50) | {statistics.median(p[0] for p in parts) * 1000:.0f} ms "
                      f"| | | |")
                print(f"| of which group reserved -> runner started, RUNNING (p50) | "
                      f"{statistics.median(p[1] for p in parts) * 1000:.0f} ms | | | |")
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        server.terminate()
        server.wait(15)
        redis_proc.terminate()
        redis_proc.wait(15)
        db.close()


def queue_to_running(url, admin, settings, db, corpus, n, r) -> list[float]:
    """Cancel everything queued, start a dispatcher, then time ``n`` jobs one at a time from submit to RUNNING."""
    import ray

    from services.dispatcher_client import ensure_dispatcher
    from shared import keys

    auth = {"Authorization": f"Bearer {admin}"}
    for job_id in [m.decode() for m in r.zrange(keys.QUEUE, 0, -1)]:
        requests.post(f"{url}/api/jobs/{job_id}/cancel", headers=auth, timeout=60)
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # as the embedded stack runs Ray (services/stack_parts.py): workers at niceness 0, not Ray's 15, which
    # on a busy machine left a new runner's worker process waiting for CPU behind everything else
    os.environ.setdefault("RAY_worker_niceness", "0")
    # a Ray instance of our own (plain ray.init() would join any cluster another `ray start` left running)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        ensure_dispatcher(settings.with_(ray_address=cluster.address))
        out, parts = [], []
        for i in range(n):
            job = requests.post(url + "/api/jobs", json=spec(corpus, i, epochs=200), headers=auth, timeout=60).json()
            deadline = time.monotonic() + 60
            while True:
                rec = db.jobs.get(job["id"])
                if rec.started_at is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if rec.started_at is None:
                raise SystemExit(f"{job['id']} did not start within 60 s ({rec.state})")
            out.append((rec.started_at - rec.submitted_at).total_seconds())
            placed = [float(f[b"t"]) for _, f in r.xrange(keys.log(job["id"])) if b"placed" in f[b"msg"]]
            if placed:  # the dispatcher's log line written once the group is reserved, before the runner starts
                parts.append((placed[0] - rec.submitted_at.timestamp(), rec.started_at.timestamp() - placed[0]))
            requests.post(f"{url}/api/jobs/{job['id']}/cancel", headers=auth, timeout=60)
            while not db.jobs.get(job["id"]).is_terminal:
                time.sleep(0.05)
            # wait until the dispatcher has released the job's workers: the next job finds free capacity
            while r.exists(keys.job(job["id"])) and r.sismember(keys.CANCEL_REQUESTS, job["id"]):
                time.sleep(0.05)
        return out, parts
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
