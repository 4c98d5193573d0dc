"""kiln's CNN job against a plain PyTorch loop: same model, data, batch size, epochs and recipe, one run.

Rows:
- ``plain PyTorch``: a hand-written loop (below, independent of workers/cnn/loop.py): the whole training
  split as one tensor, per-sample random shifts, SGD with Nesterov momentum, torch's OneCycleLR, label
  smoothing; no evaluation or checkpoint between epochs; the shift gathers every pixel by row and column
  index tensors, the way it is usually written;
- ``plain PyTorch, window shift``: the same loop with kiln's shift (``workers.cnn.augment.random_translate``:
  each image's window taken from an unfold view of the padded batch, the same values for ~2.5x less CPU),
  so that kiln's rows can also be read against a peer doing exactly kiln's arithmetic;
- ``kiln in-process``: ``CnnJob`` with its worker in this process (``LocalContext``: no Ray, no Redis);
- ``kiln Ray job N worker(s)``: the same ``CnnJob`` with N ``CnnWorker`` actors of 1 CPU (DDP over gloo
  for N > 1) on a local Ray instance (``LocalContext(uses_ray=True)``) started with the worker niceness of
  kiln's own Ray head (``RAY_worker_niceness=0``; ``--ray-worker-niceness 15`` gives Ray's default, at
  which the actors get a fraction of the CPU of the other rows' processes on a busy machine), held-out
  evaluation after every epoch and a safetensors checkpoint at the end, as in a submitted job with the
  default ``--checkpoint-interval`` of 60 s.

Columns: ``images/s`` = training images x (epochs - 1) / time from the end of epoch 1 to the end of the
last epoch (steady state: everything before, including the first epoch's warm-up, is start-up); ``ratio``
= that over the plain loop's; ``start-up s`` = wall time to the end of epoch 1 minus one steady epoch
(kiln: scanning and decoding the dataset, starting actors, joining the process group, building the model);
``total s`` = the whole run (kiln: with the final evaluation and model files); ``in-loop/s`` = kiln's own
images/s in its training loop alone (without the held-out evaluation and checkpoint after each epoch), over
the same epochs 2.. as images/s; ``CPU s/1k`` = CPU seconds per 1,000 training images (process CPU time
measured around each epoch's loop, inside the worker for kiln, summed over workers; median over epochs
2..): unlike wall time it does not move with other people's load, so it tells "slower code" from "less CPU
given"; ``threads`` = torch's intra-op threads per worker, as the worker reports them; ``accuracy`` =
held-out accuracy (the same held-out split for all rows); ``overhead`` = 1 - images/s / in-loop/s (per run, then the
median): the share of kiln's steady wall time spent outside its training loop (the epoch's call, held-out evaluation, reports,
checkpoints).
Each figure is the median over --repeats runs, the rows interleaved so that a busy moment of a shared
machine does not land on one row only.

    python -m bench.cnn_vs_plain_torch [--image-size 28] [--epochs 8] [--batch-size 64] [--workers 1,2] [--repeats 3] [--tile K]
                                       [--ray-worker-niceness 0]
    python -m bench.cnn_vs_plain_torch --quality [--seeds 1,...,10]    # the default recipe on digits
    python -m bench.cnn_vs_plain_torch --predict                       # kiln predict on 1,797 PNG files

Data: scikit-learn's digits (1,797 images), resized to --image-size (28: MNIST-shaped) for the speed rows;
10% held out (seed 1). ``--tile K`` repeats the training images K times (epochs K times longer, so the
per-epoch evaluation and checkpoint weigh as they do on a real dataset) and keeps the same held-out set. Every row trains LeNet-5 on 1 CPU thread (per worker).
"""
from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from shared.specs import build_spec  # noqa: E402
from workers.cnn.datasets import scan  # noqa: E402
from workers.cnn.job import CnnJob  # noqa: E402
from workers.cnn.models import build_model  # noqa: E402
from workers.cnn.precheck import resolve_cnn_spec  # noqa: E402
from workers.cnn.prepare import load_split, prepare_local  # noqa: E402
from workers.cnn.recipes import shift_pixels  # noqa: E402
from workers.contract import LocalContext, run_trainer  # noqa: E402


def cnn_spec(params: dict, workers: int = 1, seed: int = 1):
    spec, _ = resolve_cnn_spec(build_spec({"kind": "cnn", "name": "bench", "seed": seed,
                                           "params": {"dataset": "digits", **params},
                                           "resources": {"workers": workers}}))
    return spec


def plain_loop(spec, data_dir: Path, window_shift: bool = False) -> dict:
    """The peer: what a user writes by hand with the same recipe (``window_shift``: with kiln's shift
    function instead of the hand-written one). Returns timings and accuracy."""
    from workers.cnn.augment import random_translate  # noqa: PLC0415

    torch.set_num_threads(1)
    p = spec.params
    t0 = time.perf_counter()
    x, y = load_split(data_dir, "train")
    hx, hy = load_split(data_dir, "heldout")
    mean = float(x.mean()) / 255
    std = float(x.std()) / 255
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - mean) / std
    yt = torch.from_numpy(y)
    ht = (torch.from_numpy(hx).permute(0, 3, 1, 2).float() / 255 - mean) / std
    torch.manual_seed(spec.seed)
    h, w = x.shape[1:3]
    model = build_model({"arch": p.arch, "in_channels": 1, "num_classes": 10, "image_size": [h, w]})
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9, nesterov=True, weight_decay=p.weight_decay)
    steps = len(xt) // p.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=steps * p.epochs, pct_start=0.25,
                                                cycle_momentum=False)
    s = shift_pixels(min(h, w))
    ends, cpus = [], []
    for epoch in range(p.epochs):
        c0 = time.process_time()
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(steps):
            idx = perm[i * p.batch_size:(i + 1) * p.batch_size]
            if window_shift:
                xb = random_translate(xt[idx], s, torch.default_generator)
            else:
                xb = F.pad(xt[idx], (s, s, s, s))
                # per-sample shift: crop each padded image at its own random offset
                oy, ox = torch.randint(0, 2 * s + 1, (2, len(idx)))
                rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
                cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
                xb = xb[torch.arange(len(idx))[:, None, None, None], torch.zeros(1, 1, 1, 1, dtype=torch.long), rows,
                        cols]
            loss = F.cross_entropy(model(xb), yt[idx], label_smoothing=p.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        ends.append(time.perf_counter())
        cpus.append(time.process_time() - c0)
    model.eval()
    with torch.no_grad():
        acc = float((model(ht).argmax(1).numpy() == hy).mean())
    images = steps * p.batch_size
    return {"ends": ends, "t0": t0, "end": time.perf_counter(), "images": images, "accuracy": acc,
            "cpu_1k": float(np.median([1000 * c / images for c in cpus[1:]])), "threads": torch.get_num_threads()}


def kiln_job(spec, root: Path, uses_ray: bool) -> dict:
    ends = []
    t0 = time.perf_counter()
    ctx = LocalContext(spec, root, uses_ray=uses_ray,
                       on_report=lambda m: ends.append(time.perf_counter()) if "val_accuracy" in m else None)
    result = run_trainer(CnnJob(ctx))
    n = int(np.load(root / "data" / "train_idx.npy").shape[0])
    images = (n // spec.params.batch_size) * spec.params.batch_size
    placement = next(r["placement"] for r in ctx.reports if "placement" in r)
    return {"ends": ends, "t0": t0, "end": time.perf_counter(), "images": images,
            "accuracy": result.metrics["test_accuracy"],
            # the loop's own rate over the same epochs as the wall rate (2..): images / loop seconds
            "loop_ips": len(result.history[1:]) * images / sum(images / h["images_per_s"] for h in result.history[1:]),
            "cpu_1k": float(np.median([h["cpu_s_per_1k_images"] for h in result.history[1:]])),
            "threads": max(p["threads"] for p in placement), "nice": max(p["nice"] for p in placement)}


def summarise(run: dict) -> dict:
    ends = run["ends"]
    steady = (ends[-1] - ends[0]) / (len(ends) - 1)
    loop_ips = run.get("loop_ips", run["images"] / steady)
    return {"ips": run["images"] / steady, "startup": ends[0] - run["t0"] - steady,
            "total": run["end"] - run["t0"], "accuracy": run["accuracy"], "loop_ips": loop_ips,
            "overhead": 1 - run["images"] / steady / loop_ips, "cpu_1k": run["cpu_1k"],
            "threads": run["threads"], "nice": run.get("nice", os.nice(0))}


def median_row(runs: list[dict]) -> dict:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def tiled_digits(folder: Path, copies: int) -> tuple[str, str]:
    """digits' 90% training split repeated ``copies`` times (longer epochs of the same images) as
    train.npz, and the 10% held out (seed 1, as the job splits) as test.npz."""
    from workers.cnn.formats import read_digits  # noqa: PLC0415

    x, y, _ = read_digits()
    perm = np.random.default_rng(1).permutation(len(y))
    n_test = round(0.1 * len(y))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    np.savez(folder / "train.npz", x=np.tile(x[train], (copies, 1, 1, 1)), y=np.tile(y[train], copies))
    np.savez(folder / "test.npz", x=x[test], y=y[test])
    return str(folder / "train.npz"), str(folder / "test.npz")


def speed(args) -> None:
    # the plain loop's recipe (random shifts only; the default LeNet-5 recipe adds rotations and scalings)
    params = {"image_size": args.image_size, "epochs": args.epochs, "batch_size": args.batch_size, "augment": ["shift"]}
    names = ["plain PyTorch", "plain PyTorch, window shift", "kiln in-process"] + [f"kiln Ray job {n} worker(s)" for n in args.workers]
    runs: dict[str, list] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        if args.tile > 1:
            params["dataset"], params["test"] = tiled_digits(Path(tmp), args.tile)
        spec = cnn_spec(params, seed=args.seed)
        data = Path(tmp) / "data"
        meta = prepare_local(data, scan(spec.params.dataset, image_size=args.image_size, test=spec.params.test),
                             val_split=0.1, seed=1)
        print(f"LeNet-5 on digits at {args.image_size}x{args.image_size} ({meta['n_train']} training images"
              f"{f': the 1,617 x {args.tile}' if args.tile > 1 else ''}, {meta['n_heldout']} held out), batch "
              f"{spec.params.batch_size}, {spec.params.epochs} epochs, recipe {spec.params.optimizer} lr "
              f"{spec.params.lr} augment {spec.params.augment}, seed {args.seed}; median of {args.repeats} runs, "
              "rows interleaved\n")
        plain_loop(spec, data)  # warm-up (first-call costs of torch's kernels)
        import ray

        os.environ["RAY_worker_niceness"] = str(args.ray_worker_niceness)  # read by the raylet ray.init starts
        ray.init(address="local", num_cpus=max(2, max(args.workers)), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        kiln_job(cnn_spec({**params, "epochs": 2}), Path(tmp) / "warm", uses_ray=True)  # Ray's worker processes
        for r in range(args.repeats):
            runs["plain PyTorch"].append(summarise(plain_loop(spec, data)))
            runs["plain PyTorch, window shift"].append(summarise(plain_loop(spec, data, window_shift=True)))
            runs["kiln in-process"].append(summarise(kiln_job(spec, Path(tmp) / f"inproc{r}", uses_ray=False)))
            for n in args.workers:
                runs[f"kiln Ray job {n} worker(s)"].append(summarise(kiln_job(
                    cnn_spec(params, workers=n, seed=args.seed), Path(tmp) / f"ray{n}-{r}", uses_ray=True)))
        ray.shutdown()
    rows = [(n, median_row(runs[n])) for n in names]
    base = rows[0][1]["ips"]
    plain_loop_ips, plain_cpu = rows[0][1]["loop_ips"], rows[0][1]["cpu_1k"]
    print(f"{'':28} {'images/s':>9} {'ratio':>6} {'in-loop/s':>9} {'ratio':>6} {'CPU s/1k':>8} {'ratio':>6} "
          f"{'threads':>7} {'nice':>4} {'start-up s':>10} {'total s':>8} {'accuracy':>9} {'overhead':>8}")
    for name, r in rows:
        overhead = f"{r['overhead']:8.1%}" if name.startswith("kiln") else f"{'':8}"
        print(f"{name:28} {r['ips']:9.0f} {r['ips'] / base:6.2f} {r['loop_ips']:9.0f} {r['loop_ips'] / plain_loop_ips:6.2f} "
              f"{r['cpu_1k']:8.3f} {r['cpu_1k'] / plain_cpu:6.2f} {r['threads']:7.0f} {r['nice']:4.0f} "
              f"{r['startup']:10.2f} {r['total']:8.2f} {r['accuracy']:9.4f} {overhead}")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; CPU s/1k ratio > 1: kiln's code spends more CPU per "
          "image than the plain loop; images/s ratio < CPU ratio's inverse: the row got less CPU")
    window = rows[1][1]["ips"]
    print("against the plain loop with kiln's window shift: " + ", ".join(
        f"{name} {r['ips'] / window:.2f}x" for name, r in rows if name.startswith("kiln")))
    ray_rows = [(name, r) for name, r in rows if name.startswith("kiln Ray")]
    for name, r in ray_rows[1:]:
        print(f"\n{name} / {ray_rows[0][0]}: {r['ips'] / ray_rows[0][1]['ips']:.2f}x images/s")


def quality(args) -> None:
    """The default recipe (`kiln submit cnn digits`) over several seeds: held-out accuracy, training time
    (wall and CPU, with the load average when each seed ended)."""
    print("`kiln submit cnn digits` defaults (the job in-process), 10% held out (split by seed), one CPU thread")
    print(f"recipe: {cnn_spec({}).params.model_dump(exclude={'dataset', 'format', 'test', 'weights', 'val_split'})}\n")
    print(f"{'seed':>4} {'accuracy':>9} {'errors':>7} {'train s':>8} {'train CPU s':>11} {'job s':>7} {'load':>5}")
    accs, train_wall, train_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            spec = cnn_spec({}, seed=seed)
            t0 = time.perf_counter()
            result = run_trainer(CnnJob(LocalContext(spec, Path(tmp) / f"s{seed}")))
            acc = result.metrics["test_accuracy"]
            accs.append(acc)
            images = (1617 // spec.params.batch_size) * spec.params.batch_size  # per epoch (whole batches)
            train_wall.append(sum(images / h["images_per_s"] for h in result.history))
            train_cpu.append(sum(images * h["cpu_s_per_1k_images"] / 1000 for h in result.history))
            print(f"{seed:4d} {acc:9.4f} {round((1 - acc) * 180):7d} {train_wall[-1]:8.1f} {train_cpu[-1]:11.1f} "
                  f"{time.perf_counter() - t0:7.1f} {os.getloadavg()[0]:5.1f}", flush=True)
    print(f"\nmean {np.mean(accs):.4f}, min {np.min(accs):.4f}, max {np.max(accs):.4f} over {len(accs)} seeds; "
          f"training {np.median(train_wall):.1f} s wall, {np.median(train_cpu):.1f} s CPU (medians)")


def prediction(args) -> None:
    """``kiln predict``'s work on every digits image as a PNG file: load the model, decode, classify."""
    from PIL import Image  # noqa: PLC0415

    from workers.cnn.formats import read_digits  # noqa: PLC0415
    from workers.cnn.inference import Classifier, image_files  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        run_trainer(CnnJob(LocalContext(cnn_spec({"epochs": 1}), Path(tmp) / "job")))
        x, y, _ = read_digits()
        for i in range(len(x)):
            Image.fromarray(x[i, ..., 0]).save(Path(tmp) / f"{i:04d}-{y[i]}.png")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            clf = Classifier.load(Path(tmp) / "job" / "model")
            rows = clf.predict(image_files([tmp]), top=3)
            times.append(time.perf_counter() - t0)
    print(f"{len(rows)} PNG files (8x8, resized to 16x16), LeNet-5, top 3, batches of 512, one process:")
    print(f"load + decode + classify: median {np.median(times):.2f} s of 3 ({len(rows) / np.median(times):.0f} images/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tile", type=int, default=1, help="repeat the training images K times (longer epochs)")
    ap.add_argument("--seed", type=int, default=1, help="the seed of every speed row (initial weights, batches)")
    ap.add_argument("--predict", action="store_true", help="time predictions on every digits image as a PNG")
    ap.add_argument("--quality", action="store_true", help="the default recipe on digits over --seeds")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=list(range(1, 11)))
    ap.add_argument("--ray-worker-niceness", type=int, default=0,
                    help="the niceness of Ray's worker processes (0: as kiln's Ray head; 15: Ray's default)")
    args = ap.parse_args()
    print(f"$ python -m bench.cnn_vs_plain_torch {shlex.join(sys.argv[1:])}")
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}\n")
    quality(args) if args.quality else prediction(args) if args.predict else speed(args)


if __name__ == "__main__":
    main()
