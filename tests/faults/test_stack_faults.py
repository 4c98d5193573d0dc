"""The supervised embedded stack under real faults, on one stack for the module (starting one is slow
on 2 cores): SIGKILL of the embedded redis-server, of Ray's GCS, of the stack daemon itself; an
explicit RAY_ADDRESS beside a running local stack; and `kiln down` while a job runs and another
terminal follows it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from services import processes
from services.stack_daemon import MAX_RESTARTS
from shared import keys
from shared.status import StatusStore
from tests.test_cli import KILN, one_line_error, run

pytestmark = pytest.mark.timeout(600)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def record(home: Path) -> dict:
    try:
        return json.loads((home / "stack.json").read_text())
    except (OSError, ValueError):
        return {}


def stack_members(info: dict) -> list[int]:
    """Every live process of the stack: the daemon and the members of its parts' process groups (a zombie
    waiting for init to reap it has exited)."""
    pids = [info["pid"]] if processes.is_same(info["pid"], info["pid_start"]) else []
    for part in info["parts"].values():
        pids += processes.group_members(part["pgid"])
    return pids


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS", "RAY_AUTH"))}
    env.update(KILN_HOME=str(home), KILN_USER="tester")
    r = run(["up"], env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    yield env
    run(["down", "--force"], env, timeout=120)


def _home(env) -> Path:
    return Path(env["KILN_HOME"])


def live_stack(env) -> dict:
    """The record of a running stack, every recorded part alive; a stack an earlier test left down (its
    daemon gone, its record stale) is brought up first, so one failure does not fail the tests after it."""
    home = _home(env)
    info = record(home)
    if not info.get("pid") or processes.start_time(info["pid"]) != info.get("pid_start"):
        assert run(["up"], env, timeout=180).returncode == 0
    return wait_for(lambda: record(home) if _all_alive(record(home)) else None, 60, "the stack up")


def _all_alive(info: dict) -> bool:
    return info.get("state") == "up" and all(part.get("pid") and processes.start_time(part["pid"]) is not None
                                             for part in info.get("parts", {}).values())


def test_stack_files_are_private_and_redis_needs_the_password(stack_env):
    home = _home(stack_env)
    for name in ("stack.json", "logs/stack.log", "registry.db", "redis_password", "ray_auth_token"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    ray_tmp = Path(record(home)["parts"]["ray"]["temp_dir"])
    assert ray_tmp.is_dir() and ray_tmp.parent.stat().st_mode & 0o777 == 0o700  # Ray's 0777 folders, fenced
    url = record(home)["redis_url"]
    password = (home / "redis_password").read_text().strip()
    assert f":{password}@" in url
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(f":{password}@", "")).ping()
    up = run(["up"], stack_env)
    assert up.returncode == 0 and password not in up.stdout + up.stderr and "redis://:***@" in up.stdout
    assert password not in run(["doctor", "--json"], stack_env).stdout


def test_explicit_ray_address_is_never_overridden_by_the_local_stack(stack_env):
    r = run(["doctor", "--json"], {**stack_env, "RAY_ADDRESS": "127.0.0.1:1"}, timeout=120)
    report = json.loads(r.stdout)
    assert report["checks"]["redis"]["ok"]  # the local Redis is still used
    assert not report["checks"]["ray"]["ok"] and "cannot reach Ray at 127.0.0.1:1" in report["checks"]["ray"]["detail"]


def test_redis_server_killed_is_restarted_with_its_data(stack_env):
    home = _home(stack_env)
    before = record(home)
    client = redis.Redis.from_url(before["redis_url"])
    status = StatusStore(client)
    status.create("job-crashtest", {"name": "x", "kind": "word2vec", "user": "tester"})
    status.report("job-crashtest", progress=0.42, epoch=3)
    status.set_state("job-crashtest", "CANCELLED")
    status.log("job-crashtest", "a line that must outlive a crash")
    # appendfsync everysec: wait until the line is in the append-only file, then kill
    wait_for(lambda: any(b"outlive a crash" in p.read_bytes() for p in (home / "redis").rglob("*.aof")), 10,
             "the log line in the append-only file")
    os.kill(before["parts"]["redis-server"]["pid"], signal.SIGKILL)
    after = wait_for(lambda: record(home) if record(home).get("parts", {}).get("redis-server", {}).get("restarts") == 1
                     and record(home)["state"] == "up" else None, 60, "redis-server restarted")
    assert after["redis_url"] == before["redis_url"]  # same port and password: clients reconnect
    client = redis.Redis.from_url(after["redis_url"])
    assert [e["msg"] for _, e in StatusStore(client).read_logs("job-crashtest")] == ["a line that must outlive a crash"]
    live = StatusStore(client).get("job-crashtest")  # a cancelled job's progress does not drop to 0%
    assert (live["state"], live["progress"], live["epoch"]) == ("CANCELLED", 0.42, 3)
    assert run(["doctor"], stack_env, timeout=120).returncode == 0


def test_ray_killed_is_restarted_with_a_dispatcher_and_no_command_hangs(stack_env):
    home = _home(stack_env)
    before = record(home)
    gcs = [pid for pid in processes.group_members(before["parts"]["ray"]["pgid"]) if "gcs_server" in processes.cmdline(pid)]
    assert gcs, "no gcs_server in Ray's process group"
    killed_at = time.time()
    os.kill(gcs[0], signal.SIGKILL)
    t0 = time.monotonic()
    r = run(["doctor"], stack_env, timeout=150)  # during the restart: an answer, never a hang
    assert time.monotonic() - t0 < 140 and "Traceback" not in r.stdout + r.stderr
    wait_for(lambda: record(home).get("parts", {}).get("ray", {}).get("restarts") == 1 and record(home)["state"] == "up",
             90, "Ray restarted")
    client = redis.Redis.from_url(before["redis_url"])
    # the daemon starts a new dispatcher on the new Ray: its heartbeat comes back, newer than the kill
    wait_for(lambda: float(client.get(keys.DISPATCHER_HEARTBEAT) or 0) > killed_at + 1, 120, "a new dispatcher heartbeat")
    r = run(["doctor"], stack_env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert record(home)["ray_address"] == before["ray_address"]


def _status(env, job_id) -> dict:
    r = run(["status", job_id, "--json"], env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_down_while_a_job_runs_requeues_it_without_counting_an_attempt(stack_env, tmp_path):
    from tests.conftest import write_corpus

    corpus = write_corpus(tmp_path / "corpus.txt", sentences=20000)  # 240k words x 300 epochs: minutes
    follow = subprocess.Popen([KILN, "submit", "word2vec", str(corpus), "--name", "planned-stop", "--dim", "16",
                               "--epochs", "300", "--min-count", "2", "--max-retries", "0", "--follow"],
                              env=stack_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_id = wait_for(lambda: next((j["id"] for j in json.loads(run(["jobs", "--json"], stack_env).stdout)
                                        if j["name"] == "planned-stop"), None), 120, "the job to be submitted")
        wait_for(lambda: _status(stack_env, job_id)["state"] == "RUNNING", 180, "the job to run")

        refused = run(["down"], stack_env, timeout=60)  # no terminal: says what would happen, does nothing
        line = one_line_error(refused, 1)
        assert job_id in line and "--force" in line and "without counting an attempt" in line
        assert _status(stack_env, job_id)["state"] == "RUNNING"

        down = run(["down", "--force"], stack_env, timeout=120)
        assert down.returncode == 0, down.stderr
        assert f"{job_id} re-queued (attempt not counted)" in down.stdout and "kiln is down" in down.stdout
        # the terminal that followed the job gets one line and exit 3, not a traceback
        _, err = follow.communicate(timeout=60)
        assert follow.returncode == 3 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("error: lost the connection to Redis"), err
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()

    view = _status(stack_env, job_id)
    assert (view["state"], view["attempt"]) == ("QUEUED", 1)
    assert run(["up"], stack_env, timeout=180).returncode == 0
    # the same attempt runs again (with max_retries 0 a counted attempt would have failed it)
    wait_for(lambda: _status(stack_env, job_id)["state"] == "RUNNING", 180, "the job to run again")
    view = _status(stack_env, job_id)
    assert (view["state"], view["attempt"]) == ("RUNNING", 1)
    logs = run(["logs", job_id], stack_env).stdout
    assert "re-queued" in logs and "submitted by" in logs  # the log survived `kiln down; kiln up` (AOF)
    assert run(["cancel", job_id], stack_env).returncode == 0


def test_sigkill_of_the_stack_daemon_leaves_no_orphans(stack_env):
    home = _home(stack_env)
    info = live_stack(stack_env)
    assert len(stack_members(info)) >= 4  # daemon, redis-server, ray start, gcs, raylet, agents...
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: not stack_members(info), 60, "every process of the killed stack to exit")
    doctor = run(["doctor"], stack_env, timeout=60)
    assert doctor.returncode == 1 and "the local stack is not running" in doctor.stdout
    assert run(["up"], stack_env, timeout=180).returncode == 0  # and a new one starts cleanly
    assert record(home)["pid"] != info["pid"]


def test_leftovers_of_a_killed_stack_are_cleaned_by_the_next_up(stack_env):
    """SIGKILL of the daemon and of `ray start` at once: Ray's agents outlive both (nothing was left to
    stop them). The next `kiln up` finds them by identity (recorded process group, started after its
    leader, a Ray command line) and kills them before it starts a new stack."""
    home = _home(stack_env)
    info = live_stack(stack_env)
    ray_group = info["parts"]["ray"]["pgid"]
    os.kill(info["pid"], signal.SIGKILL)
    os.kill(info["parts"]["ray"]["pid"], signal.SIGKILL)
    wait_for(lambda: processes.start_time(info["pid"]) is None, 30, "the daemon to be gone")
    leftovers = processes.group_members(ray_group)
    assert leftovers, "nothing of Ray outlived the kill: the fault was not reproduced"
    assert run(["up"], stack_env, timeout=180).returncode == 0
    assert [pid for pid in leftovers if processes.start_time(pid) is not None] == []
    assert record(home)["pid"] != info["pid"]


def test_a_part_that_keeps_dying_brings_the_stack_down_and_says_so(stack_env):
    """Last in the module: it leaves the stack down."""
    home = _home(stack_env)
    live_stack(stack_env)
    for n in range(MAX_RESTARTS + 1):
        info = wait_for(lambda: record(home) if _all_alive(record(home)) else None, 60, "the stack up")
        os.kill(info["parts"]["redis-server"]["pid"], signal.SIGKILL)
        if n < MAX_RESTARTS:
            wait_for(lambda: record(home).get("parts", {}).get("redis-server", {}).get("restarts") == n + 1, 60,
                     f"restart {n + 1}")
    wait_for(lambda: record(home).get("state") == "down" and not _daemons(home), 60, "the daemon to give up")
    doctor = run(["doctor"], stack_env, timeout=60)
    assert doctor.returncode == 1
    assert "the local stack went down: redis-server died 6 times within 300 s" in doctor.stdout, doctor.stdout
    wait_for(lambda: not stack_members(info), 60, "the daemon and its Ray to exit")  # it took its Ray with it
    submit = run(["jobs"], {**stack_env, "KILN_USER": "tester"}, timeout=60)
    assert submit.returncode == 0  # history is still there (SQL)


def _daemons(home: Path) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and processes.cmdline(int(p.name)).endswith(f"services.stack_daemon --home {home}")]
