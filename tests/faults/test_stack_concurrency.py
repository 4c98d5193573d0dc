"""One stack per KILN_HOME, whoever starts it: concurrent `kiln submit` / `kiln up` processes wait for
one owner and all use it, even when a stale stack.json names a PID that an unrelated process now has."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services import processes
from tests.faults.test_stack_faults import record, stack_members
from tests.test_cli import KILN, run

pytestmark = pytest.mark.timeout(600)


def _daemons_for(home: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and processes.cmdline(int(entry.name)).endswith(f"services.stack_daemon --home {home}"):
            found.append(int(entry.name))
    return found


def _servers_for(home: Path) -> list[int]:
    """Live `kiln serve` processes started for KILN_HOME ``home`` (by `kiln up`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not processes.running(int(entry.name)):
            continue
        if "cli.main serve" not in processes.cmdline(int(entry.name)):
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"KILN_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_concurrent_submits_share_one_stack_and_a_reused_pid_is_left_alone(tmp_path, small_corpus):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS", "RAY_AUTH"))}
    env.update(KILN_HOME=str(home), KILN_USER="tester")
    # A stale record whose PID (and process group) now belong to an unrelated process.
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    stale = {"pid": unrelated.pid, "pid_start": processes.start_time(unrelated.pid), "state": "up",
             "redis_url": "redis://127.0.0.1:1/0", "ray_address": "127.0.0.1:1",
             "parts": {"ray": {"pid": unrelated.pid, "pid_start": processes.start_time(unrelated.pid),
                               "pgid": unrelated.pid}}}
    (home / "stack.json").write_text(json.dumps(stale))
    try:
        submits = [subprocess.Popen([KILN, "submit", "word2vec", str(small_corpus), "--name", f"r{i}", "--dim", "8",
                                     "--epochs", "1", "--min-count", "2"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for i in range(3)]
        outs = [p.communicate(timeout=300) for p in submits]
        for p, (out, err) in zip(submits, outs):
            assert p.returncode == 0, err
        job_ids = {out.strip() for out, _ in outs}
        assert len(job_ids) == 3
        starters = [err for _, err in outs if "starting the local stack" in err]
        assert len(starters) == 1, [err for _, err in outs]  # one started it, and said so; the others used it

        info = record(home)
        assert info["pid"] != unrelated.pid and _daemons_for(home) == [info["pid"]]  # exactly one owner
        redis_servers = [pid for pid in stack_members(info) if "redis-server" in processes.cmdline(pid)]
        assert len(redis_servers) == 1
        assert unrelated.poll() is None  # the process with the reused PID was never signalled
        # every job is on the stack that stack.json names: its Redis has their live status
        listed = json.loads(run(["jobs", "--json"], env).stdout)
        assert {j["id"] for j in listed} == job_ids

        # `kiln up` now finds that same stack (and says so quickly)
        again = [subprocess.Popen([KILN, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for p in again:
            p.communicate(timeout=180)
            assert p.returncode == 0
        assert record(home)["pid"] == info["pid"] and _daemons_for(home) == [info["pid"]]
        # and one HTTP server: two `kiln up` at once used to start one each, and `down` stopped only the recorded one
        servers = _servers_for(home)
        assert servers == [json.loads((home / "server.json").read_text())["pid"]], servers
    finally:
        run(["down", "--force"], env, timeout=120)
        assert unrelated.poll() is None
        unrelated.send_signal(signal.SIGKILL)
        unrelated.wait()
    assert _daemons_for(home) == []
    assert _servers_for(home) == []
