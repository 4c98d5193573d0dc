"""Model commands as whole processes: on the stores directly vs through a kiln server (thin client).

A temporary KILN_HOME with its own redis-server and SQLite file holds a small CNN (LeNet-5, 3 classes,
16x16 grey) and two word2vec versions; a real `kiln serve` runs over it. ``--images`` random PNGs are
classified with `kiln predict`; a 150-image folder dataset is evaluated. Each command runs once through
the server to warm its caches (the loaded classifier), then ``--runs`` times each way, interleaved
(direct, server, ...); medians of wall time and of the CLI process's CPU time (user + system; the
server's CPU is not in it) are printed with the load average around the run.

    python -m bench.cli_model_commands [--runs 3] [--images 2500]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _timed(env: dict, args: list[str]) -> tuple[float, float]:
    from tests.api.conftest import KILN  # noqa: PLC0415

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([KILN, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {out.stderr.strip()}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    from tests.api.conftest import (create_tokens, make_settings, own_redis, register_cnn,  # noqa: PLC0415
                                    register_word2vec, running_server, server_env)
    from tests.api.test_cli_via_server import write_images  # noqa: PLC0415

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=2500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as d:
        d = Path(d)
        with own_redis(d) as url:
            s = make_settings(d / "home", url)
            token = create_tokens(s, bench=True)["bench"]
            cnn, w2v = register_cnn(s, "b-cnn"), register_word2vec(s, "b-vecs")
            register_word2vec(s, "b-vecs")
            write_images(d / "many", a.images)
            for c in "abc":
                write_images(d / "ds" / c, 50, start=ord(c))
            with running_server(s) as srv:
                direct = server_env(s)
                remote = {**direct, "KILN_URL": srv.url, "KILN_TOKEN": token, "KILN_REDIS_URL": "redis://127.0.0.1:1/0",
                          "KILN_DB_URL": f"sqlite:///{d / 'absent.db'}"}
                cases = [["predict", cnn, str(d / "many" / "img00001.png")], ["predict", cnn, str(d / "many"), "--json"],
                         ["models", "compare", w2v, "b-vecs:2"], ["models", "lineage", w2v],
                         ["models", "describe", w2v, "x"], ["plot", cnn, "--what", "confusion", "-o", str(d / "p.png"), "--force"],
                         ["eval", cnn, str(d / "ds")],
                         ["models", "export", cnn, "--format", "onnx", "-o", str(d / "m.onnx"), "--force"]]
                print(f"command: python -m bench.cli_model_commands --runs {a.runs} --images {a.images}")
                print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; load average before "
                      f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
                print(f"{'command':58s} {'direct wall':>11s} {'cpu':>6s} {'server wall':>12s} {'client cpu':>10s}")
                for args in cases:
                    _timed(remote, args)
                    here, there = [], []
                    for _ in range(a.runs):
                        here.append(_timed(direct, args))
                        there.append(_timed(remote, args))
                    label = " ".join(x if not x.startswith(str(d)) else Path(x).name for x in args)
                    med = [statistics.median(v) for v in (*zip(*here), *zip(*there))]
                    print(f"{label:58s} {med[0]:10.2f}s {med[1]:5.2f}s {med[2]:11.2f}s {med[3]:9.2f}s")
                print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
