"""The stack's failures that need no running stack: unreachable or malformed settings end in one line
and the right exit code (never a traceback, never a hang, nothing started), passwords never shown,
and a stale stack.json whose PID now names an unrelated process is neither trusted nor killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from services import processes
from tests.test_cli import one_line_error, run

SECRET = "s3cretpw0rd"


@pytest.fixture
def bare_env(tmp_path):
    """A fresh KILN_HOME with no settings: every part would be embedded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env["KILN_HOME"] = str(tmp_path / "home")
    return env


def _nothing_started(home):
    assert not (home / "stack.json").exists()
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--home {home}" not in out  # no stack daemon for this home


def test_unreachable_redis_url_fails_submit_in_one_line_and_starts_nothing(bare_env, small_corpus, tmp_path):
    env = {**bare_env, "KILN_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0"}
    r = run(["submit", "word2vec", str(small_corpus), "--min-count", "2"], env, timeout=60)
    line = one_line_error(r, 3)
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in line and SECRET not in r.stderr + r.stdout
    _nothing_started(tmp_path / "home")  # the embedded Ray was not started for a job that cannot be queued


def test_malformed_redis_url_is_one_line(bare_env):
    r = run(["jobs"], {**bare_env, "KILN_REDIS_URL": "notaurl"}, timeout=60)
    assert "KILN_REDIS_URL 'notaurl' is not a Redis URL" in one_line_error(r, 2)


def test_unreachable_ray_address_is_one_line_after_a_timeout(bare_env, small_corpus, tmp_path):
    env = {**bare_env, "RAY_ADDRESS": "127.0.0.1:1"}
    t0 = time.monotonic()
    r = run(["doctor"], env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert "--  ray       cannot reach Ray at 127.0.0.1:1" in r.stdout
    r = run(["submit", "word2vec", str(small_corpus), "--min-count", "2"], env, timeout=120)
    assert "cannot reach Ray at 127.0.0.1:1" in one_line_error(r, 3)
    assert time.monotonic() - t0 < 110
    _nothing_started(tmp_path / "home")


def test_passwords_are_masked_in_doctor_and_db_upgrade(bare_env):
    env = {**bare_env, "KILN_DB_URL": f"postgresql+psycopg://kiln:{SECRET}@127.0.0.1:1/kiln",
           "KILN_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0", "RAY_ADDRESS": "127.0.0.1:1"}
    doctor = run(["doctor"], env, timeout=120)
    assert doctor.returncode == 1
    assert "postgresql+psycopg://kiln:***@127.0.0.1:1/kiln" in doctor.stdout
    assert "redis://:***@127.0.0.1:1/0" in doctor.stdout
    upgrade = run(["db", "upgrade"], env, timeout=120)
    one_line_error(upgrade, 3)
    for r in (doctor, upgrade, run(["doctor", "--json"], env, timeout=120)):
        assert SECRET not in r.stdout + r.stderr


def test_stale_record_with_a_reused_pid_is_not_trusted_nor_killed(bare_env, tmp_path):
    """stack.json names a PID that is now an unrelated process (here: a real `sleep`, with its real start
    time recorded, as if the PID had wrapped onto it). kiln must not treat it as the stack or signal it."""
    home = tmp_path / "home"
    home.mkdir()
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        record = {"pid": unrelated.pid, "pid_start": processes.start_time(unrelated.pid), "pgid": unrelated.pid,
                  "state": "up", "redis_url": "redis://127.0.0.1:1/0", "ray_address": "127.0.0.1:1",
                  "parts": {"ray": {"pid": unrelated.pid, "pgid": unrelated.pid}}}
        (home / "stack.json").write_text(json.dumps(record))
        doctor = run(["doctor"], bare_env, timeout=60)
        assert "the local stack is not running" in doctor.stdout, doctor.stdout
        down = run(["down"], bare_env, timeout=60)
        assert down.returncode == 0 and "kiln was not running" in down.stdout
        time.sleep(0.5)  # a wrongful SIGTERM would have landed by now
        assert unrelated.poll() is None, "kiln down signalled an unrelated process"
    finally:
        unrelated.send_signal(signal.SIGKILL)
        unrelated.wait()


@pytest.mark.parametrize("command", [["db", "upgrade"], ["jobs"]])
def test_a_new_sqlite_registry_is_private(bare_env, tmp_path, command):
    r = run(command, bare_env, timeout=120)
    assert r.returncode == 0, r.stderr
    db = tmp_path / "home" / "registry.db"
    assert db.stat().st_mode & 0o777 == 0o600


def test_a_daemon_of_an_older_kiln_is_stopped_not_doubled(bare_env, tmp_path):
    """An older kiln's stack.json had only a PID; its daemon (here a stand-in with the same command line)
    holds no lock, so a new stack would start beside it: it is stopped first."""
    home = tmp_path / "home"
    home.mkdir()
    legacy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "services.stack_daemon",
                               "--home", str(home)])
    try:
        (home / "stack.json").write_text(json.dumps({"pid": legacy.pid, "redis_url": "redis://127.0.0.1:1/0"}))
        assert run(["down"], bare_env, timeout=60).returncode == 0
        assert legacy.wait(10) == -signal.SIGTERM
    finally:
        if legacy.poll() is None:
            legacy.kill()
            legacy.wait()


def test_doctor_json_is_typed(bare_env):
    r = run(["doctor", "--json"], {**bare_env, "KILN_MAX_RUNNING_JOBS": "3"}, timeout=120)
    report = json.loads(r.stdout)
    s = report["settings"]
    assert s["KILN_MAX_RUNNING_JOBS"] == 3 and s["KILN_MAX_RUNNING_PER_USER"] is None
    assert s["KILN_REDIS_URL"] is None and s["RAY_ADDRESS"] is None  # not set: the embedded parts
    assert report["in_use"] == {"redis_url": None, "ray_address": None, "embedded_redis": True, "embedded_ray": True,
                                "caps": None}  # no dispatcher runs: none reports the caps it applies
    assert report["nodes"] == [] and report["warnings"] == []
    assert all(isinstance(c["ok"], bool) for c in report["checks"].values())


def test_doctor_says_when_running_jobs_have_no_stack(bare_env, tmp_path):
    """A job left RUNNING in SQL by a stack that died: doctor says that nothing runs it until `kiln up`."""
    from datetime import datetime, timezone

    from services.registry import Database

    db = Database(f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
    db.jobs.create(job_id="job-orphan1", name="m", kind="word2vec", user="tester", spec_json="{}", priority=0,
                   max_retries=2, submitted_at=datetime.now(timezone.utc))
    db.jobs.transition("job-orphan1", "STARTING")
    db.jobs.transition("job-orphan1", "RUNNING")
    report = json.loads(run(["doctor", "--json"], bare_env, timeout=120).stdout)
    assert any("job-orphan1" in w and "the local stack is down" in w for w in report["warnings"]), report["warnings"]
