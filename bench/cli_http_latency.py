"""Read commands as whole processes: reading the stores directly vs. through a kiln server (thin client).

A temporary KILN_HOME with its own redis-server and SQLite file holds ``--jobs`` queued jobs and one
word2vec model version; a real
`kiln serve` runs over it. Each command runs ``--runs`` times both ways, interleaved (local, HTTP, local,
HTTP...) so that machine load hits both alike; medians are printed side by side with the ratio, next to
``python -c pass`` (the interpreter alone: the floor for any Python CLI).

    python -m bench.cli_http_latency [--runs 11] [--jobs 20]

Target (issue #7): `kiln jobs`, `kiln status`, `kiln models list` under 0.2 s per process (median) via
the server.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.api_load import spec, start_redis, start_server

KILN = str(Path(sys.executable).with_name("kiln"))


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each timed process, by command line: less moved by others' load than
wall time (a process waiting for a core uses none)."""


def timed(cmd: list[str], env: dict, tag: str = "") -> float:
    import resource  # noqa: PLC0415

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(tag + " ".join(cmd), []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--jobs", type=int, default=20)
    args = ap.parse_args()

    import requests

    from services.registry import Database
    from services.tokens import TokenService
    from shared.config import Settings
    from tests.api.conftest import register_word2vec
    from tests.conftest import write_corpus

    tmp = Path(tempfile.mkdtemp(prefix="kiln-cli-http-"))
    home = tmp / "home"
    home.mkdir()
    redis_proc, redis_url = start_redis(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env.update(KILN_HOME=str(home), KILN_REDIS_URL=redis_url, KILN_DB_URL=f"sqlite:///{home / 'registry.db'}",
               KILN_USER="bench", RAY_ADDRESS="127.0.0.1:1")
    db = Database(env["KILN_DB_URL"])
    token = TokenService(db).create("bench")[0]
    server, url = start_server(env)
    try:
        corpus = write_corpus(tmp / "corpus.txt", sentences=300)
        ids = [requests.post(url + "/api/jobs", json=spec(corpus, i), headers={"Authorization": f"Bearer {token}"},
                             timeout=60).json()["id"] for i in range(args.jobs)]
        ref = register_word2vec(Settings(kiln_home=home, redis_url=redis_url, db_url=env["KILN_DB_URL"],
                                         artifacts=str(home / "artifacts"), ray_address=None), "bench-w2v")
        remote = {**env, "KILN_URL": url, "KILN_TOKEN": token}
        commands = [("kiln jobs --json", [KILN, "jobs", "--json"]),
                    ("kiln status ID --json", [KILN, "status", ids[0], "--json"]),
                    ("kiln status ID", [KILN, "status", ids[0]]),
                    ("kiln jobs", [KILN, "jobs"]),
                    ("kiln models list --json", [KILN, "models", "list", "--json"]),
                    ("kiln models list", [KILN, "models", "list"]),
                    ("kiln models show NAME:1 --json", [KILN, "models", "show", ref, "--json"])]
        print(f"# read commands, median of {args.runs} processes each ({os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start)")
        print("| command | stores directly | via kiln server (HTTP) | ratio | HTTP < 200 ms | HTTP process CPU |")
        print("| --- | ---: | ---: | ---: | --- | ---: |")
        floor = statistics.median(timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs))
        for label, cmd in commands:
            local, http = [], []
            for _ in range(args.runs):
                local.append(timed(cmd, env))
                http.append(timed(cmd, remote, "http "))
            a, b = statistics.median(local), statistics.median(http)
            cpu = statistics.median(CPU["http " + " ".join(cmd)])
            print(f"| `{label}` | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {a / b:.2f}x faster | "
                  f"{'yes' if b < 0.2 else 'no'} | {cpu * 1000:.0f} ms |")
        floor_cpu = statistics.median(CPU[f"{sys.executable} -c pass"])
        print(f"| `python -c pass` (floor) | {floor * 1000:.0f} ms | | | | {floor_cpu * 1000:.0f} ms |")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        server.terminate()
        server.wait(15)
        redis_proc.terminate()
        redis_proc.wait(15)
        db.close()


if __name__ == "__main__":
    main()
