"""The process behind ``kiln up``: owns the embedded redis-server and local Ray instance until SIGTERM.

Run as ``python -m services.stack_daemon --home KILN_HOME``; it writes ``$KILN_HOME/stack.json`` once
both answer, and removes it when it stops.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time

import redis

from services.stack import STACK_FILE, redis_server_binary, use_ray_token
from shared.config import load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(home) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(home), "--logfile", str(home / "logs" / "redis.log"),
    ], stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise SystemExit(f"redis-server exited with code {proc.returncode}")
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("redis-server did not answer within 10s")


def ray_token(home):
    """Create the embedded Ray's auth token (once) and make this process and its children use it."""
    path = home / "ray_auth_token"
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    use_ray_token(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    args = ap.parse_args()
    os.environ["KILN_HOME"] = args.home
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    settings = load_settings()
    home = settings.kiln_home
    (home / "logs").mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    redis_proc, redis_url = (None, settings.redis_url)
    if settings.embedded_redis:
        redis_proc, redis_url = _start_redis(home)
    ray_address = settings.ray_address
    try:
        token_path = None
        if settings.embedded_ray:
            token_path = ray_token(home)  # before Ray is imported: it reads the auth settings then
            import ray  # noqa: PLC0415 - the daemon is the only process that must import ray at start

            # Token authentication, with the token kept under KILN_HOME (mode 0600).
            ctx = ray.init(include_dashboard=False, namespace=settings.namespace, logging_level="WARNING",
                           log_to_driver=False, configure_logging=True)
            ray_address = ctx.address_info["gcs_address"]
        info = {"pid": os.getpid(), "redis_url": redis_url, "ray_address": ray_address, "started_at": time.time(),
                "ray_auth_token_path": str(token_path) if token_path else None}
        tmp = home / (STACK_FILE + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(home / STACK_FILE)
        print(f"kiln stack up: redis {redis_url}, ray {ray_address}", flush=True)
        while not stop.wait(1.0):
            if redis_proc is not None and redis_proc.poll() is not None:
                print("redis-server exited; stopping the stack", flush=True)
                break
    finally:
        (home / STACK_FILE).unlink(missing_ok=True)
        if settings.embedded_ray:
            import ray  # noqa: PLC0415

            ray.shutdown()
        if redis_proc is not None:
            redis_proc.terminate()
            try:
                redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                redis_proc.kill()
        print("kiln stack down", flush=True)


if __name__ == "__main__":
    main()
