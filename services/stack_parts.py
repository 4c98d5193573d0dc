"""The two processes the stack daemon supervises: a redis-server and a Ray head (``ray start --block``).

Each part is started in its own process group and dies with the daemon (PR_SET_PDEATHSIG: SIGTERM,
which both handle by shutting down cleanly, Ray taking its agents with it). A part keeps its port
across restarts, so the addresses in ``stack.json`` stay valid. The embedded Redis writes an
append-only file under ``$KILN_HOME/redis`` (logs and final progress survive a restart) and asks
for a generated password, stored 0600 like the Ray token.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from services import processes
from services.private_files import secret_file, write_private
from shared.errors import Unavailable

READY_TIMEOUT_S = 60.0
"""How long a part may take to answer after it was started."""
STOP_TIMEOUT_S = 20.0
"""How long a part may take to stop after SIGTERM before its group is killed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_tmp() -> Path:
    """``/tmp/kiln-<uid>``, a folder only this user can enter (a fresh temporary one if that name is taken
    by something that is not this user's own folder)."""
    base = Path("/tmp") / f"kiln-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        st = base.lstat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():  # lstat: a planted symlink does not count
            os.chmod(base, 0o700)
            return base
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="kiln-"))


class Part:
    """A supervised child process: ``start()``, ``alive()``, ``stop()``; ``restarts`` counts restarts."""

    name = "part"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.restarts = 0

    def _spawn(self, cmd: list[str], log: Path, env: dict | None = None) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                         preexec_fn=processes.die_with_parent(signal.SIGTERM))
        self.pgid = self.proc.pid  # die_with_parent makes it a group leader

    def exited(self) -> bool:
        """True once the process has exited (it stays unreaped, so its PID cannot be reused yet)."""
        if self.proc is None:
            return True
        if self.proc.returncode is not None:
            return True
        try:
            res = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return res is not None

    def record(self) -> dict:
        pid = self.proc.pid if self.proc else None
        return {"pid": pid, "pid_start": processes.start_time(pid) if pid else None, "pgid": self.pgid}

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL whatever is left of the part's process group."""
        if self.proc is None:
            return
        if not self.exited():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        # Members of the group outlive its leader (e.g. Ray's agents): the group id is still theirs.
        processes.kill_group(self.pgid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class EmbeddedRedis(Part):
    name = "redis-server"

    def __init__(self, home: Path, binary: str):
        super().__init__()
        self.home, self.binary = home, binary
        self.dir = home / "redis"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.password = secret_file(home / "redis_password")
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        conf = self.dir / "redis.conf"
        # The password lives in a 0600 file, not on the command line (which every local user can read).
        write_private(conf, "\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", f"requirepass {self.password}",
            f"dir {self.dir}", "appendonly yes", "appendfsync everysec", 'save ""',
            f"logfile {self.home / 'logs' / 'redis.log'}", ""]))
        self._spawn([self.binary, str(conf)], self.home / "logs" / "redis.log")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.BusyLoadingError:
                pass  # replaying the append-only file
            except redis.ConnectionError:
                if self.exited():
                    raise Unavailable(f"redis-server exited at start (see {self.home / 'logs' / 'redis.log'})") from None
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"redis-server did not answer within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def alive(self) -> bool:
        return not self.exited()


class EmbeddedRay(Part):
    """A local Ray head started with ``ray start --head --block``: it watches its own processes and
    exits (taking the rest with it) when one dies, which is how the daemon learns that Ray is down."""

    name = "ray"

    def __init__(self, home: Path, token_path: Path):
        super().__init__()
        self.home, self.token_path = home, token_path
        self.port = free_port()
        # Ray's own temp folder: short (socket paths are limited to 107 bytes) and not /tmp/ray, so that
        # `RAY_ADDRESS=auto` and other local Ray instances never mistake this one for theirs. Ray makes its
        # folders world-writable; they sit inside one that only this user can enter.
        digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
        self.temp_dir = private_tmp() / digest

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path),
               "RAY_USAGE_STATS_ENABLED": "0",
               # Training actors at the priority of other processes: Ray's default niceness 15 for its workers
               # gave a CNN job's actor a fraction of the plain loop's CPU on a busy machine (BENCHMARKS.md, CNN).
               "RAY_worker_niceness": "0",
               # On SIGTERM stop at once: Ray would otherwise wait 30 s for the detached dispatcher to "drain".
               "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        env.pop("RAY_AUTH_TOKEN", None)
        env.pop("RAY_ADDRESS", None)
        ray_cli = str(Path(sys.executable).with_name("ray"))
        cmd = [ray_cli, "start", "--head", "--block", f"--port={self.port}", "--node-ip-address=127.0.0.1",
               f"--temp-dir={self.temp_dir}", "--include-dashboard=false", "--disable-usage-stats"]
        self._prune_sessions(keep=2)
        self._spawn(cmd, self.home / "logs" / "ray.log", env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.exited():
                raise Unavailable(f"ray start exited at start (see {self.home / 'logs' / 'ray.log'})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self._raylet_up():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"Ray did not start within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def record(self) -> dict:
        return {**super().record(), "temp_dir": str(self.temp_dir)}

    def _prune_sessions(self, keep: int) -> None:
        """Remove Ray's older session folders (logs of earlier runs), keeping the ``keep`` newest."""
        sessions = sorted((p for p in self.temp_dir.glob("session_2*") if p.is_dir() and not p.is_symlink()),
                          key=lambda p: p.stat().st_mtime)
        for old in sessions[:-keep] if keep else sessions:
            shutil.rmtree(old, ignore_errors=True)

    def _raylet_up(self) -> bool:
        # The head is usable once its raylet runs (a child of `ray start` in the part's group).
        return any("raylet" in processes.cmdline(pid).split(" ", 1)[0] for pid in processes.group_members(self.pgid))

    def alive(self) -> bool:
        return not self.exited()
