"""How long kiln's read-only commands take, as whole processes, next to the commands users know.

The read commands (``kiln --help``, ``kiln jobs --json``, ``kiln status ID --json``, ``kiln models list
--json``, ``kiln models show NAME --json``) must not import torch or Ray: they read SQL (and Redis when it
answers). Each runs ``--runs`` times as a subprocess against a temporary KILN_HOME whose SQLite registry
holds one finished job and its registered model (written directly through services.registry.Database),
first with KILN_REDIS_URL pointing at a Redis that is not there (the commands fall back to SQL), then,
if 127.0.0.1:6379 answers, with that Redis (a spare DB index, holding the job's live hash). The peers:
``python -c pass`` (the interpreter alone), ``ray --help`` (Ray's CLI) and ``python -c "import torch"``
(the cost the read commands avoid). Each kiln command is also run once under ``python -X importtime``
to show that neither torch nor ray is imported.

    python -m bench.cli_latency [--runs 10] [--redis-url redis://127.0.0.1:6379/14]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: connecting fails at once and the commands read SQL only."""
JOB_ID = "job-bench0001"
MODEL = "bench-w2v"


def seed_registry(home: Path) -> None:
    """One SUCCEEDED word2vec job and the model version it registered, written as the dispatcher would."""
    from services.registry import Database
    from shared.specs import JobSpec, Word2VecParams
    from shared.states import JobState

    spec = JobSpec(name=MODEL, params=Word2VecParams(corpus=[str(home / "corpus.txt")]), user="bench")
    params = {k: ("" if v is None else str(v)) for k, v in spec.params.model_dump().items()}
    metrics = {"vocab_size": 71290.0, "corpus_words": 3416957.0, "words_per_s": 250000.0,
               "analogy_accuracy": 0.31, "similarity_spearman": 0.62}
    artifacts = {name: (home / "artifacts" / "jobs" / JOB_ID / "model" / f).as_uri()
                 for name, f in (("vectors", "vectors.safetensors"), ("vocab", "vocab.json"), ("text", "vectors.txt"))}
    lineage = {"job_id": JOB_ID, "dataset_fingerprint": "sha256:" + "0" * 64, "kiln_version": "0.1.0",
               "git_commit": ""}
    db = Database(f"sqlite:///{home / 'registry.db'}")
    try:
        db.jobs.create(job_id=JOB_ID, name=MODEL, kind="word2vec", user="bench", spec_json=spec.model_dump_json(),
                       priority=0, max_retries=2)
        with db.session() as s:
            for state in (JobState.STARTING, JobState.RUNNING):
                db.jobs.transition(JOB_ID, state, session=s)
            mv = db.models.register_version(name=MODEL, kind="word2vec", params=params, metrics=metrics,
                                            artifacts=artifacts, lineage=lineage, job_id=JOB_ID, session=s)
            db.jobs.transition(JOB_ID, JobState.SUCCEEDED, metrics=metrics, session=s,
                               result={"model": {"name": mv.name, "version": mv.version}, "artifacts": artifacts})
    finally:
        db.close()


def seed_redis(url: str) -> bool:
    """The job's live hash in the Redis at ``url`` (``drop_redis`` removes it); False if unreachable."""
    import redis

    from shared.status import StatusStore

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return False
    StatusStore(client).create(JOB_ID, {"state": "SUCCEEDED", "progress": 1.0, "throughput": 250000.0,
                                        "throughput_unit": "words/s", "epoch": 5, "epochs": 5})
    return True


def drop_redis(url: str) -> None:
    import redis

    from shared.status import StatusStore

    StatusStore(redis.Redis.from_url(url)).delete(JOB_ID)


def kiln_commands() -> list[tuple[str, list[str]]]:
    return [("kiln --help", ["--help"]), ("kiln jobs --json", ["jobs", "--json"]),
            (f"kiln status {JOB_ID} --json", ["status", JOB_ID, "--json"]),
            ("kiln models list --json", ["models", "list", "--json"]),
            (f"kiln models show {MODEL} --json", ["models", "show", MODEL, "--json"])]


def check(argv: list[str], env: dict, json_out: bool) -> None:
    """Run once; fail loudly if the command fails or its --json output does not parse."""
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {out.returncode}: {out.stderr.strip()[-500:]}")
    if json_out:
        json.loads(out.stdout)


def heavy_imports(args: list[str], env: dict) -> list[str]:
    """Which of torch / ray a kiln command imports (from ``python -X importtime``)."""
    code = "import sys; from cli.main import main; sys.argv[0] = 'kiln'; main(sys.argv[1:])"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    found = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:"):
            module = line.rsplit("|", 1)[-1].strip()
            if module.split(".")[0] in ("torch", "ray"):
                found.add(module.split(".")[0])
    return sorted(found)


def timings(argv: list[str], env: dict, runs: int) -> list[float]:
    """Wall milliseconds of ``runs`` runs of ``argv`` as a subprocess (output discarded)."""
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


HEADER = f"{'command':<40} {'median':>8} {'min':>8} {'max':>8} {'x ray --help':>12} {'x import torch':>14}"


def row(name: str, ms: list[float], ray_ms: float, torch_ms: float, note: str = "") -> str:
    """One table line: median / min / max ms and the median as a multiple of the two peers'."""
    med = statistics.median(ms)
    return (f"{name:<40} {med:>8.0f} {min(ms):>8.0f} {max(ms):>8.0f} {med / ray_ms:>12.2f} "
            f"{med / torch_ms:>14.2f}  {note}").rstrip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per command (median, min, max reported)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                    help="a reachable Redis for the second table, if it answers (only this job's keys are written)")
    args = ap.parse_args()
    print(f"command: python -m bench.cli_latency {shlex.join(sys.argv[1:])}".rstrip())
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"{args.runs} runs per command, wall ms of the whole process")

    kiln = str(BIN / "kiln")
    peers = [('python -c "pass"', [sys.executable, "-c", "pass"]),
             ("ray --help", [str(BIN / "ray"), "--help"]),
             ('python -c "import torch"', [sys.executable, "-c", "import torch"])]
    with tempfile.TemporaryDirectory(prefix="kiln-cli-bench-") as tmp:
        home = Path(tmp) / "kiln-home"
        home.mkdir()
        seed_registry(home)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
        base_env.update(KILN_HOME=str(home), KILN_USER="bench")
        setups = [(f"KILN_REDIS_URL={UNREACHABLE_REDIS} (unreachable: SQL only)", UNREACHABLE_REDIS)]
        reachable = seed_redis(args.redis_url)
        try:
            if reachable:
                setups.append((f"KILN_REDIS_URL={args.redis_url} (reachable)", args.redis_url))
            else:
                print(f"note: no Redis answers at {args.redis_url}; only the SQL-only table")
            peer_ms = {name: timings(argv, base_env, args.runs) for name, argv in peers}
            torch_ms = statistics.median(peer_ms['python -c "import torch"'])
            ray_ms = statistics.median(peer_ms["ray --help"])
            print("\npeers")
            print(HEADER)
            for name, _ in peers:
                print(row(name, peer_ms[name], ray_ms, torch_ms), flush=True)
            for title, url in setups:
                env = {**base_env, "KILN_REDIS_URL": url}
                print(f"\n{title}")
                print(f"{HEADER}  imports")
                for name, cmd in kiln_commands():
                    check([kiln, *cmd], env, json_out="--json" in cmd)
                    heavy = heavy_imports(cmd, env)
                    print(row(name, timings([kiln, *cmd], env, args.runs), ray_ms, torch_ms,
                              "torch/ray: " + (", ".join(heavy) if heavy else "neither")), flush=True)
        finally:
            if reachable:
                drop_redis(args.redis_url)

if __name__ == "__main__":
    main()
