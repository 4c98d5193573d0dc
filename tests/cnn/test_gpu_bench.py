"""bench/cnn_gpu.py is prepared for a GPU machine that has no Ray, Redis, SQL or pydantic: a smoke run on
the CPU with those packages made unimportable proves it still imports and runs end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("pydantic", "ray", "redis", "sqlalchemy", "fastapi", "click", "rich")


def test_cnn_gpu_bench_runs_without_the_service_packages():
    code = (f"import sys, runpy\nfor m in {BLOCKED!r}: sys.modules[m] = None\n"
            "sys.argv = ['bench/cnn_gpu.py', '--device', 'cpu', '--train', '384', '--epochs', '2', "
            "'--repeats', '1', '--batch-size', '64', '--models', 'lenet5']\n"
            "runpy.run_path('bench/cnn_gpu.py', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {line.split("  ")[0]: line.split() for line in out.stdout.splitlines()
            if line.startswith(("plain fp32", "plain bf16", "kiln worker"))}
    assert set(rows) == {"plain fp32", "plain bf16 + channels-last", "kiln worker"}, out.stdout
    assert all(float(r[-4]) > 0 for r in rows.values())  # images/s of every row
    assert "lenet5: 346 training images 28x28x1" in out.stdout
