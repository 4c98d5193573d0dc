"""How fast ``kiln models list`` searches a big registry, on SQLite and on PostgreSQL.

A registry of ``--models`` x ``--versions`` model versions (default 500 x 20 = 10,000), each with
``--tags`` tags (default 50), 4 typed params and 3 metrics, is written straight into freshly migrated
databases (a SQLite file in a temporary folder; a schema of its own on the PostgreSQL server at
``--pg-url``, dropped afterwards; skipped with the reason when no server answers). Then each query
below runs ``--runs`` times through ``ModelRegistry.search`` (what ``kiln models list`` calls: the SQL
search plus loading the page's versions with their params, metrics, tags and aliases) and the median
and best wall times are printed.

The peer is what a client of a registry without server-side search does (and what ``kiln models list``
did before): load every version (``list_versions``, with the same bulk loader) and filter, order and cut
in Python. The ratio is peer / search.

    python -m bench.registry_search [--models 500] [--versions 20] [--tags 50] [--runs 15] [--pg-url URL]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url

from services.registry import Database, VersionQuery, upgrade
from services.registry.schema import (SqlArtifact, SqlMetric, SqlModelAlias, SqlModelVersion, SqlParam,
                                      SqlRegisteredModel, SqlVersionTag)

TEAMS = ["nlp", "vision", "search", "ads", "ranking", "speech", "maps", "mail", "video", "news"]
QUERIES = [
    ("2 filters + order, all versions, top 20",
     "--all-versions --filter tag.team=nlp --filter metric.accuracy>=0.5 --order-by metric.accuracy --desc "
     "--limit 20"),
    ("2 filters + order, all versions, first 100 (the CLI's default limit)",
     "--all-versions --filter tag.team=nlp --filter metric.accuracy>=0.5 --order-by metric.accuracy --desc"),
    ("2 filters + order, all versions, every match",
     "--all-versions --filter tag.team=nlp --filter metric.accuracy>=0.5 --order-by metric.accuracy --desc "
     "--limit 100000"),
    ("2 filters + order, latest of each model",
     "--filter param.dim>=200 --filter tag.stage=prod --order-by created_at --desc"),
    ("kind + name glob + 2 filters + param order, top 50",
     "--kind word2vec --name m-01* --filter param.window<=5 --filter tag.t07=v3 --order-by param.dim --limit 50"),
]


def query_of(args: str) -> VersionQuery:
    """The VersionQuery that ``kiln models list ARGS`` builds (the CLI's own option parsing, without a process)."""
    from cli.models import list_query  # noqa: PLC0415

    return list_query(shlex.split(args))


def fill(url: str, models: int, versions: int, tags: int, seed: int = 0) -> None:
    """Write the registry in bulk (executemany), as registrations would have left it."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Database(url) as db, db.session() as s:
        s.execute(insert(SqlRegisteredModel), [
            {"id": m + 1, "name": f"m-{m:04d}", "kind": "word2vec" if m % 5 else "cnn", "created_at": start}
            for m in range(models)])
        rows, params, metrics, arts, tag_rows, aliases = [], [], [], [], [], []
        vid = 0
        for m in range(models):
            for v in range(versions):
                vid += 1
                rows.append({"id": vid, "model_id": m + 1, "version": v + 1, "status": "READY",
                             "created_at": start + timedelta(minutes=vid), "uid": uuid.uuid4().hex,
                             "job_id": f"job-{vid:08x}", "dataset_fingerprint": "sha256:" + "0" * 64})
                dim, window = rng.choice([50, 100, 200, 300]), rng.randint(2, 10)
                for key, text, num in (("dim", str(dim), dim), ("window", str(window), window),
                                       ("sg", "true", None), ("model", '"skipgram"', None)):
                    params.append({"version_id": vid, "key": key, "value": text, "num": num})
                for key, value in (("accuracy", rng.random()), ("loss", rng.uniform(0.5, 3)),
                                   ("words_per_s", rng.uniform(1e5, 1e6))):
                    metrics.append({"version_id": vid, "key": key, "value": value, "step": None})
                arts.append({"version_id": vid, "name": "vectors", "uri": f"file:///a/{vid}/vectors.safetensors"})
                tag_rows.append({"version_id": vid, "key": "team", "value": rng.choice(TEAMS)})
                tag_rows.append({"version_id": vid, "key": "stage", "value": rng.choice(["dev", "staging", "prod"])})
                tag_rows += [{"version_id": vid, "key": f"t{t:02d}", "value": f"v{rng.randint(0, 9)}"}
                             for t in range(tags - 2)]
            aliases.append({"model_id": m + 1, "alias": "production", "version_id": vid - 1})
        for table, data in ((SqlModelVersion, rows), (SqlParam, params), (SqlMetric, metrics),
                            (SqlArtifact, arts), (SqlVersionTag, tag_rows), (SqlModelAlias, aliases)):
            for i in range(0, len(data), 20_000):
                s.execute(insert(table), data[i:i + 20_000])
    if url.startswith("postgresql"):
        analyze(url)  # autovacuum would have; SQLite registries get no ANALYZE, so neither does the benchmark


def analyze(url: str) -> None:
    """Fresh planner statistics, as a long-lived PostgreSQL database has (autovacuum)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def peer(db: Database, q: VersionQuery) -> list:
    """Load everything, then filter, order and cut in Python."""
    import operator  # noqa: PLC0415

    ops = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}
    found = db.models.list_versions()
    if not q.all_versions:
        latest = {}
        for mv in found:
            latest[mv.name] = mv
        found = list(latest.values())
    out = []
    for mv in found:
        if q.kind and mv.kind != q.kind:
            continue
        if q.name_glob:
            import fnmatch  # noqa: PLC0415
            if not fnmatch.fnmatchcase(mv.name, q.name_glob):
                continue
        ok = True
        for f in q.filters:
            have = {"metric": mv.metrics, "param": mv.params, "tag": mv.tags}[f.kind]
            ok = ok and f.key in have and ops[f.op](have[f.key], f.value)
        if ok:
            out.append(mv)
    if q.order:
        def key(mv):
            o = q.order
            value = getattr(mv, o.kind) if o.key is None else {"metric": mv.metrics, "param": mv.params,
                                                               "tag": mv.tags}[o.kind].get(o.key)
            return value
        out.sort(key=lambda mv: (mv.name, -mv.version))
        out.sort(key=key, reverse=q.descending)
    return out[:q.limit] if q.limit else out


def timed(fn, runs: int) -> tuple[float, float, float, int]:
    """(median wall ms, best wall ms, best CPU ms of this process, rows) over ``runs`` calls after a warm-up."""
    fn()  # warm-up: caches, prepared plans
    times, cpu, n = [], [], 0
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        n = len(fn())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times) * 1000, min(times) * 1000, min(cpu) * 1000, n


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_backend(label: str, url: str, args) -> None:
    t0 = time.perf_counter()
    fill(url, args.models, args.versions, args.tags)
    print(f"\n## {label}: {args.models * args.versions:,} versions x {args.tags} tags "
          f"(written in {time.perf_counter() - t0:.1f} s; load average {load_average()})\n")
    print("| query (`kiln models list ...`) | rows | kiln search: median wall ms (best) | kiln: best CPU ms of "
          "this process | peer: load all + filter in Python, median wall ms | peer / kiln (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with Database(url) as db:
        for title, cli_args in QUERIES:
            q = query_of(cli_args)
            med, best, cpu, n = timed(lambda: db.models.search(q), args.runs)
            peer_med, _, _, peer_n = timed(lambda: peer(db, q), max(1, args.peer_runs))
            same = "" if peer_n == n else f" (peer found {peer_n})"
            print(f"| {title}: `{cli_args}` | {n}{same} | {med:.1f} ({best:.1f}) | {cpu:.1f} | {peer_med:.0f} | "
                  f"{peer_med / med:.0f}x |")
    print(f"\nload average after: {load_average()}")


def pg_schema_url(pg_url: str) -> tuple[str | None, str, object]:
    """A new schema on the server (its URL, its name, an engine to drop it), or (None, reason, None)."""
    engine = create_engine(pg_url, connect_args={"connect_timeout": 3})
    try:
        engine.connect().close()
    except Exception as e:  # no server: say why and go on with SQLite alone
        engine.dispose()
        return None, str(getattr(e, "orig", e)).strip().splitlines()[0], None
    name = f"kiln_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False), name, engine


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=500)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--tags", type=int, default=50)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--peer-runs", type=int, default=1)
    ap.add_argument("--pg-url", default=os.environ.get("KILN_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--skip-sqlite", action="store_true")
    args = ap.parse_args(argv)
    print(f"# registry search: `python -m bench.registry_search {' '.join(sys.argv[1:])}`".rstrip())
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'registry.db'}"
            upgrade(url)
            run_backend("SQLite", url, args)
    url, name, engine = pg_schema_url(args.pg_url)
    if url is None:
        print(f"\nPostgreSQL: skipped ({name})")
        return
    try:
        upgrade(url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        run_backend(f"PostgreSQL {version}", url, args)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        engine.dispose()


if __name__ == "__main__":
    main()
