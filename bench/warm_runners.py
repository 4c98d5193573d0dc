"""Queue-to-running per job: which runner each job got (a warm spare or a fresh one) and where the time went.

Its own redis-server and SQLite file, a private local Ray instance (2 CPUs), the real dispatcher; ``--jobs``
small word2vec jobs submitted one at a time through ``JobService`` (no HTTP), each cancelled once RUNNING,
as ``bench.api_load --q2r`` does. Per job: SQL ``started_at - submitted_at``, split at the dispatcher's
"placed" log line, and whether a spare was ready when it was submitted. ``--spares N`` sets
KILN_SPARE_RUNNERS for the dispatcher (0: fresh runners only, the path before warm runners).

    python -m bench.warm_runners [--jobs 20] [--spares 2]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--spares", type=int, default=None, help="KILN_SPARE_RUNNERS for the dispatcher")
    args = ap.parse_args()
    if args.spares is not None:
        os.environ["KILN_SPARE_RUNNERS"] = str(args.spares)  # the Ray instance started below passes it on
    for k, v in {"RAY_AUTH_MODE": "disabled", "RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        os.environ.setdefault(k, v)

    import ray
    import redis
    from ray.cluster_utils import Cluster

    from bench.api_load import start_redis
    from services.backends import Backends
    from services.dispatcher_client import ensure_dispatcher
    from services.jobs import JobService
    from shared import keys
    from shared.config import Settings
    from tests.conftest import write_corpus

    tmp = Path(tempfile.mkdtemp(prefix="kiln-warm-runners-"))
    home = tmp / "home"
    redis_proc, url = start_redis(tmp)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        settings = Settings(kiln_home=home, redis_url=url, db_url=f"sqlite:///{home / 'registry.db'}",
                            artifacts=str(home / "artifacts"), ray_address=cluster.address, user="bench",
                            namespace="kiln-bench-" + secrets.token_hex(3))
        corpus = write_corpus(tmp / "corpus.txt", sentences=300)
        svc, r = JobService(Backends(settings)), redis.Redis.from_url(url)
        dispatcher = ensure_dispatcher(settings)
        rows = []
        for i in range(args.jobs):
            ready = bool(ray.get(dispatcher.info.remote(), timeout=60)["spares_ready"])
            spec = {"kind": "word2vec", "name": f"q2r-{i}",
                    "params": {"corpus": [str(corpus)], "dim": 8, "epochs": 200, "min_count": 1}}
            job = svc.submit(svc.validate(spec))["id"]
            deadline = time.monotonic() + 60
            while (rec := svc.b.db.jobs.get(job)).started_at is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{job} did not start within 60 s ({rec.state})")
                time.sleep(0.01)
            placed = next(float(f[b"t"]) for _, f in r.xrange(keys.log(job)) if b"placed" in f[b"msg"])
            runner = (r.hget(keys.job(job), "runner") or b"").decode()
            sub, started = rec.submitted_at.timestamp(), rec.started_at.timestamp()
            rows.append({"q2r": (started - sub) * 1000, "reserve": (placed - sub) * 1000,
                         "start": (started - placed) * 1000, "spare": runner.startswith("runner-spare-"),
                         "ready": ready})
            svc.cancel(job)
            while r.exists(keys.job(job)) and r.sismember(keys.CANCEL_REQUESTS, job):
                time.sleep(0.05)
        print(f"# queue-to-running per job, KILN_SPARE_RUNNERS={os.environ.get('KILN_SPARE_RUNNERS', 'default')}, "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| job | queue-to-running | submit -> group reserved | group reserved -> RUNNING | runner | "
              "spare ready at submit |")
        print("| ---: | ---: | ---: | ---: | --- | --- |")
        for i, x in enumerate(rows):
            print(f"| {i} | {x['q2r']:.0f} ms | {x['reserve']:.0f} ms | {x['start']:.0f} ms | "
                  f"{'spare' if x['spare'] else 'fresh'} | {'yes' if x['ready'] else 'no'} |")
        q2r = [x["q2r"] for x in rows]
        by = {k: [x["start"] for x in rows if x["spare"] == k] for k in (True, False)}
        print(f"p50 {statistics.median(q2r):.0f} ms, mean {statistics.mean(q2r):.0f} ms, max {max(q2r):.0f} ms; "
              f"{len(by[True])} of {len(rows)} jobs on a spare; group reserved -> RUNNING p50: spare "
              + (f"{statistics.median(by[True]):.0f} ms" if by[True] else "-") + ", fresh "
              + (f"{statistics.median(by[False]):.0f} ms" if by[False] else "-"))
    finally:
        ray.shutdown()
        cluster.shutdown()
        redis_proc.terminate()
        redis_proc.wait(10)


if __name__ == "__main__":
    main()
