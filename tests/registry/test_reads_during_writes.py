"""Readers never wait for writers (SQLite, WAL): with another process's write transaction open, job and model
reads answer at once from the last commit, and writers still take their turn instead of failing."""
from __future__ import annotations

import sqlite3
import threading

from services.registry import Database, upgrade
from tests.registry.factories import create_job, register


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # reported by the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_reads_answer_while_another_process_holds_the_write_lock(tmp_path):
    path = tmp_path / "registry.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    with Database(url) as db:
        create_job(db, "job-1")
        register(db, job_id="job-1")
    holder = sqlite3.connect(path, isolation_level=None)  # what `sqlite3 registry.db` + BEGIN IMMEDIATE does
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE jobs SET state = 'RUNNING'")  # uncommitted
    try:
        def read():
            with Database(url) as other:  # opening reads the schema revision: no wait either
                return ([j.state.value for j in other.jobs.list()], other.jobs.get("job-1").attempt,
                        [v.ref for v in other.models.search()], other.models.get_version("w2v").ref,
                        [j.id for j in other.jobs.non_terminal()])
        reader, got = _in_thread(read)
        reader.join(timeout=15)  # a waiting reader would sit out the 30 s busy timeout
        assert not reader.is_alive(), "a read waited for the writer's lock"
        assert got == {"value": (["QUEUED"], 1, ["w2v:1"], "w2v:1", ["job-1"])}  # the last commit, not the open write

        with Database(url) as writer_db:
            writer, wrote = _in_thread(lambda: register(writer_db).version)
            holder.execute("COMMIT")  # the writer was waiting its turn; now it goes
            writer.join(timeout=30)
        assert wrote == {"value": 2}
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


def test_kiln_jobs_and_models_list_answer_while_the_registry_is_locked(tmp_path):
    """Issue 9.10 as a user saw it: `kiln jobs` waited 19.7 s behind a 20 s `BEGIN EXCLUSIVE` in sqlite3."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'registry.db'}"
    with Database(url) as db:
        create_job(db, "job-1")
        register(db, job_id="job-1")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))},
           "KILN_HOME": str(home), "KILN_DB_URL": url, "KILN_ARTIFACTS": str(home / "artifacts"),
           "KILN_REDIS_URL": "redis://127.0.0.1:1/0", "RAY_ADDRESS": "127.0.0.1:1"}
    kiln = str(Path(sys.executable).parent / "kiln")
    holder = sqlite3.connect(home / "registry.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # in WAL mode this is the write lock; readers go on
    holder.execute("UPDATE jobs SET state = 'RUNNING'")
    try:
        jobs = subprocess.run([kiln, "jobs", "--json"], env=env, capture_output=True, text=True, timeout=20)
        models = subprocess.run([kiln, "models", "list", "--json"], env=env, capture_output=True, text=True,
                                timeout=20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert jobs.returncode == 0, jobs.stderr
    assert [(j["id"], j["state"]) for j in json.loads(jobs.stdout)] == [("job-1", "QUEUED")]
    assert models.returncode == 0 and [m["version"] for m in json.loads(models.stdout)] == [1], models.stderr
