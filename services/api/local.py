"""The embedded stack's HTTP server: started by `kiln up`, stopped by `kiln down`, found by the CLI.

One server per KILN_HOME, on loopback, as a background `kiln serve` process (its own session, so a
terminal's Ctrl-C does not stop it). ``$KILN_HOME/server.json`` (0600) records its URL, PID and PID
start time; a record counts only while that PID has that start time and is a kiln server. The local
user gets an admin token in ``$KILN_HOME/api_token`` (0600), which the CLI sends.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from services import processes
from services.tokens import TokenService, read_token_file, write_token_file
from shared.config import Settings
from shared.errors import Unavailable

SERVER_FILE = "server.json"
DEFAULT_PORT = 8470
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_MARKER = "serve"


def server_file(settings: Settings) -> Path:
    return settings.kiln_home / SERVER_FILE


def read_server(settings: Settings) -> dict | None:
    """The running local server's record ({"url", "pid", "pid_start"}), or None."""
    try:
        info = json.loads(server_file(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not processes.is_same(info.get("pid"), info.get("pid_start"), cmd_contains=_MARKER):
        return None
    return info


def local_server_url(settings: Settings) -> str | None:
    info = read_server(settings)
    return info.get("url") if info else None


def ensure_local_token(settings: Settings, db) -> str:
    """The local user's token from ``$KILN_HOME/api_token``, made (admin, mode 0600) if missing or revoked."""
    tokens = TokenService(db)
    token = read_token_file(settings.kiln_home)
    if token and tokens.authenticate(token) is not None:
        return token
    token, _ = tokens.create(settings.user, admin=True)
    write_token_file(settings.kiln_home, token)
    return token


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_port() -> int:
    if _port_free(DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    from urllib.request import urlopen  # noqa: PLC0415

    try:
        with urlopen(url + "/api/openapi.json", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_local_server(settings: Settings, db) -> str:
    """Start the server for ``settings`` unless one runs; return its URL. Unavailable if it does not come up.

    One `kiln up` at a time gets here per KILN_HOME (a file lock): two run at once used to start two servers,
    the second record overwriting the first, so `kiln down` stopped one and the other outlived the stack."""
    from services.file_lock import held  # noqa: PLC0415

    with held(settings.kiln_home / "server.lock", timeout_s=START_TIMEOUT_S + 15,
              waiting="another `kiln up` is starting the kiln server"):
        return _start_local_server(settings, db)


def _start_local_server(settings: Settings, db) -> str:
    ensure_local_token(settings, db)
    info = read_server(settings)
    if info is not None:
        return info["url"]
    port = _pick_port()
    url = f"http://127.0.0.1:{port}"
    logs = settings.kiln_home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "server.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "KILN_HOME": str(settings.kiln_home)})
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise Unavailable(f"the kiln server did not start (see {logs / 'server.log'})")
        time.sleep(0.1)
    record = {"url": url, "pid": proc.pid, "pid_start": processes.start_time(proc.pid)}
    path = server_file(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    return url


def stop_local_server(settings: Settings) -> bool:
    """Stop the recorded server (SIGTERM, then SIGKILL after a while); True if one was running."""
    info = read_server(settings)
    server_file(settings).unlink(missing_ok=True)
    if info is None:
        return False
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while processes.is_same(pid, info.get("pid_start")) and time.monotonic() < deadline:
        time.sleep(0.05)
    if processes.is_same(pid, info.get("pid_start")):
        os.kill(pid, signal.SIGKILL)
    return True
