"""The same LeNet-5 training steps in this process and in Ray actors with and without kiln's malloc settings.

Each row runs ``--steps`` training steps (batch 64, 1 thread, after 20 warm-up steps) ``--rounds`` times,
the rows interleaved: CPU seconds of the process (all threads) and minor page faults (getrusage) per round,
medians printed with every round's value. Rows: this process (glibc's defaults, as the plain PyTorch loop of
bench/cnn_vs_plain_torch.py runs), a 1-CPU Ray actor with glibc's defaults, and a 1-CPU Ray actor started
with kiln's CNN worker settings (``WORKER_RUNTIME_ENV`` in workers/cnn/job.py).

    python -m bench.cnn_malloc_faults [--steps 150] [--rounds 6]
"""
from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_worker_niceness", "0")

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def steps(n: int) -> tuple[float, int]:
    """(process CPU seconds, minor page faults) of ``n`` LeNet-5 training steps on one thread."""
    import torch
    import torch.nn.functional as F

    from workers.cnn.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model({"arch": "lenet5", "in_channels": 1, "num_classes": 10, "image_size": [28, 28]})
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    f0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    for _ in range(n):
        step()
    return time.process_time() - c0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()

    import ray

    from workers.cnn.job import WORKER_RUNTIME_ENV

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=1)(type("Steps", (), {"run": lambda self, n: steps(n)}))
        rows = {"this process (glibc defaults)": lambda n: steps(n)}
        plain, tuned = actor.remote(), actor.options(runtime_env=WORKER_RUNTIME_ENV).remote()
        rows["Ray actor, glibc defaults"] = lambda n: ray.get(plain.run.remote(n))
        rows["Ray actor, kiln's worker settings"] = lambda n: ray.get(tuned.run.remote(n))
        ray.get([plain.run.remote(1), tuned.run.remote(1)])
        got: dict[str, list[tuple[float, int]]] = {k: [] for k in rows}
        for _ in range(args.rounds):
            for name, run in rows.items():
                got[name].append(run(args.steps))
        print(f"# {args.steps} LeNet-5 steps (batch 64, 1 thread) x {args.rounds} rounds, interleaved; "
              f"load average {os.getloadavg()[0]:.2f} at the end")
        print("| row | CPU s (median) | minor faults (median) | CPU s per round | faults per round |")
        print("| --- | ---: | ---: | --- | --- |")
        for name, vals in got.items():
            cpu, faults = [v[0] for v in vals], [v[1] for v in vals]
            print(f"| {name} | {statistics.median(cpu):.3f} | {statistics.median(faults):.0f} | "
                  f"{', '.join(f'{c:.2f}' for c in cpu)} | {', '.join(str(f) for f in faults)} |")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
