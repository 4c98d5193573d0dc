"""`kiln up` starts the HTTP server with the embedded stack: loopback, a token for the local user in
$KILN_HOME/api_token (0600), its URL in `kiln doctor --json`; `kiln down` stops it."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest
import requests

from services import processes
from tests.api.conftest import KILN


def kiln(env, *args, timeout=300):
    return subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(400)
def test_kiln_up_starts_the_server_and_kiln_down_stops_it(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env.update(KILN_HOME=str(home), KILN_USER="localuser")
    try:
        up = kiln(env, "up")
        assert up.returncode == 0, up.stderr
        url = re.search(r"^server (http://127\.0\.0\.1:\d+)", up.stdout, re.M).group(1)
        token_file = home / "api_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()

        doctor = kiln(env, "doctor", "--json")
        assert json.loads(doctor.stdout)["server_url"] == url

        assert requests.get(url + "/api/jobs", timeout=10).status_code == 401  # a token exists: no open door
        r = requests.get(url + "/api/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200 and r.json() == []

        again = kiln(env, "up")  # idempotent: the same server, the same token
        assert f"server {url}" in again.stdout and token_file.read_text().strip() == token
        pid = json.loads((home / "server.json").read_text())["pid"]

        down = kiln(env, "down")
        assert down.returncode == 0 and "kiln is down" in down.stdout
        assert not (home / "server.json").exists()
        # exited: gone, or a zombie that init has not reaped yet (the server was started by `kiln up`, which
        # has exited; init reaps it when it gets to it, which on a loaded machine can follow `down` by a moment)
        assert not processes.running(pid)
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/api/jobs", timeout=5)
        assert json.loads(kiln(env, "doctor", "--json").stdout)["server_url"] is None
    finally:
        kiln(env, "down", "--force")
