"""The process behind ``kiln up``: owns and supervises the embedded redis-server and Ray head.

Run as ``python -m services.stack_daemon --home KILN_HOME``. It first takes ``$KILN_HOME/stack.lock``
(one owner per home; the kernel drops the lock when the daemon dies), starts the parts, and writes
``$KILN_HOME/stack.json`` (mode 0600) once both answer. Then it watches them: a part that dies is
restarted on the same port (Redis replays its append-only file; after a Ray restart the dispatcher
is started again), at most MAX_RESTARTS times in RESTART_WINDOW_S, after which the daemon says the
stack is down (in ``stack.json`` and ``logs/stack.log``) and stops. SIGTERM stops everything;
SIGUSR1 stops Ray only (``kiln down --force`` re-queues the running jobs meanwhile, then SIGTERMs).

``python -m services.stack_daemon --home KILN_HOME --ensure-dispatcher`` starts the dispatcher on
the running stack (the daemon runs it after a Ray restart; the daemon itself never joins Ray, so a
dying Ray cannot take it down).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from services import file_lock, processes
from services.stack import LOCK_FILE, STACK_FILE, redis_server_binary
from services.private_files import secret_file, write_private
from services.stack_parts import EmbeddedRay, EmbeddedRedis, Part
from shared.config import load_settings, mask_url
from shared.errors import KilnError

MAX_RESTARTS = 5
"""Restarts of one part allowed within RESTART_WINDOW_S before the daemon gives up."""
RESTART_WINDOW_S = 300.0
WATCH_S = 0.5
"""Seconds between checks that each part is alive."""


def say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", flush=True)


class StackDaemon:
    def __init__(self, home: Path, settings):
        self.home, self.settings = home, settings
        self.redis = EmbeddedRedis(home, redis_server_binary()) if settings.embedded_redis else None
        self.ray = EmbeddedRay(home, home / "ray_auth_token") if settings.embedded_ray else None
        self.state = "starting"
        self.message = ""
        self.history: dict[str, deque] = {"redis-server": deque(), "ray": deque()}
        self.helpers: list[subprocess.Popen] = []

    # -- the record ---------------------------------------------------------------------------------
    def write_record(self) -> None:
        me = os.getpid()
        info = {
            "pid": me, "pid_start": processes.start_time(me), "pgid": os.getpgid(0), "home": str(self.home),
            "state": self.state, "message": self.message, "updated_at": time.time(),
            "redis_url": self.redis.url if self.redis else self.settings.redis_url,
            "ray_address": self.ray.address if self.ray else self.settings.ray_address,
            "ray_auth_token_path": str(self.ray.token_path) if self.ray else None,
            "parts": {p.name: {**p.record(), "restarts": p.restarts} for p in self.parts()},
        }
        write_private(self.home / STACK_FILE, json.dumps(info))

    def parts(self) -> list[Part]:
        return [p for p in (self.redis, self.ray) if p is not None]

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.ray is not None:
            secret_file(self.ray.token_path)
        for part in self.parts():
            part.start()
            say(f"{part.name} started (pid {part.proc.pid})")
        self.state = "up"
        self.write_record()
        say(f"kiln stack up: redis {mask_url(self.redis.url if self.redis else self.settings.redis_url)}, "
            f"ray {self.ray.address if self.ray else self.settings.ray_address}")

    def check(self) -> bool:
        """Restart a dead part; False when the stack has to give up."""
        self.helpers = [h for h in self.helpers if h.poll() is None]
        for part in self.parts():
            if part.proc is None or not part.exited():
                continue
            code = part.proc.poll()
            part.stop()  # reap it and anything left in its group
            window = self.history[part.name]
            now = time.monotonic()
            while window and now - window[0] > RESTART_WINDOW_S:
                window.popleft()
            if len(window) >= MAX_RESTARTS:
                self.give_up(f"{part.name} died {len(window) + 1} times within {RESTART_WINDOW_S:.0f} s "
                             f"(last exit code {code})")
                return False
            window.append(now)
            say(f"{part.name} exited (code {code}); restarting it")
            self.state, self.message = f"restarting {part.name}", f"{part.name} exited with code {code}"
            self.write_record()
            try:
                part.start()
            except KilnError as e:
                self.give_up(f"{part.name} could not be restarted: {e.message}")
                return False
            part.restarts += 1
            self.state, self.message = "up", f"{part.name} restarted after exiting with code {code}"
            self.write_record()
            say(f"{part.name} restarted (pid {part.proc.pid})")
            if part is self.ray:
                self.helpers.append(self.ensure_dispatcher())
        return True

    def ensure_dispatcher(self) -> subprocess.Popen:
        """Start the dispatcher on the (restarted) Ray from a helper process: the daemon never joins Ray."""
        return subprocess.Popen([sys.executable, "-m", "services.stack_daemon", "--home", str(self.home),
                                 "--ensure-dispatcher"], stdin=subprocess.DEVNULL,
                                preexec_fn=processes.die_with_parent(signal.SIGKILL))

    def give_up(self, reason: str) -> None:
        self.state, self.message = "down", reason
        say(f"the local stack is down: {reason}")
        self.write_record()

    def stop_ray(self) -> None:
        if self.ray is not None and self.ray.proc is not None:
            say("stopping Ray")
            self.ray.stop()
        self.ray = None
        self.state = "ray stopped"
        self.write_record()

    def stop(self) -> None:
        for h in self.helpers:
            h.kill()
        for part in reversed(self.parts()):  # Ray first: its workers still write to Redis as they stop
            say(f"stopping {part.name}")
            part.stop()


def ensure_dispatcher_once(home: str) -> int:
    from services import stack  # noqa: PLC0415

    try:
        settings = stack.resolve(load_settings())
        stack.start_dispatcher(settings, trust_heartbeat=False)
    except KilnError as e:
        say(f"could not start the dispatcher: {e.message}")
        return 1
    say("dispatcher started")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--ensure-dispatcher", action="store_true")
    args = ap.parse_args()
    os.environ["KILN_HOME"] = args.home
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.ensure_dispatcher:
        sys.exit(ensure_dispatcher_once(args.home))
    settings = load_settings()
    home = settings.kiln_home
    (home / "logs").mkdir(parents=True, exist_ok=True)
    try:
        # Blocking for a moment: a reader may be probing the lock right now.
        lock_fd = file_lock.acquire(home / LOCK_FILE, timeout_s=10, waiting="another kiln stack owns this KILN_HOME")
    except KilnError as e:
        say(e.message)
        sys.exit(75)
    stop, stop_ray = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: stop_ray.set())
    daemon = StackDaemon(home, settings)
    try:
        daemon.start()
        while not stop.wait(WATCH_S):
            if stop_ray.is_set() and daemon.ray is not None:
                daemon.stop_ray()
            if not daemon.check():
                break
    except KilnError as e:
        daemon.give_up(e.message)
    finally:
        daemon.stop()
        if daemon.state != "down":
            (home / STACK_FILE).unlink(missing_ok=True)
        os.close(lock_fd)
        say("kiln stack down")


if __name__ == "__main__":
    main()
