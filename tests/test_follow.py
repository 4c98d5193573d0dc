"""Following a job: a queued job shows its place and why it waits, lines fit 80 columns, and Ctrl-C
detaches with a message saying the job keeps running (and how to get back to it)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from services.backends import Backends
from services.jobs import JobService
from tests.conftest import write_corpus

KILN = str(Path(sys.executable).parent / "kiln")


def test_watch_a_queued_job_then_ctrl_c(env, settings, tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", sentences=200)
    svc = JobService(Backends(settings))  # no dispatcher: the jobs stay QUEUED
    first = svc.submit({"name": "first", "params": {"corpus": [str(corpus)], "min_count": 1}})
    second = svc.submit({"name": "second", "params": {"corpus": [str(corpus)], "min_count": 1}})
    assert svc.get(second["id"])["queue_position"] == 2

    # a terminal's Ctrl-C: SIGINT at its default in the child even where this test process inherited it
    # ignored (a test run started in the background by a non-interactive shell)
    proc = subprocess.Popen([KILN, "watch", second["id"]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stderr.readline()  # the first progress line arrives once the job has been read
    assert second["id"] in line and "QUEUED" in line and "#2 in queue" in line, line
    assert len(line.rstrip("\n")) <= 80
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert f"keeps running" in err and f"kiln watch {second['id']}" in err and f"kiln cancel {second['id']}" in err
    assert svc.get(second["id"])["state"] == "QUEUED"  # detaching changed nothing
    assert svc.get(first["id"])["queue_position"] == 1
