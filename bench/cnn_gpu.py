"""kiln's CNN worker against a plain PyTorch loop on one GPU: LeNet-5 (MNIST-shaped) and ResNet-20
(CIFAR-shaped), one run, images/s side by side.

Prepared for a GPU machine where there is no Ray, Redis, SQL or pydantic: it imports numpy, torch and
kiln's CNN modules (workers/cnn: loop, worker, models, augment, prepare, datasets) only. Per model:

- ``plain fp32``: a hand-written loop with the whole training split on the device as normalised floats,
  SGD with Nesterov momentum, torch's OneCycleLR, label smoothing, and kiln's augmentation function for the
  model's recipe (shift for LeNet-5; crop and flip for the ResNet), so both sides do the same arithmetic;
- ``plain bf16 + channels-last``: the same loop under bf16 autocast with channels-last images and weights;
- ``kiln worker``: ``CnnWorker`` (the object a kiln job runs as a Ray actor) in this process, on data
  prepared the way a job prepares it (``prepare_local``: uint8 rows, normalised per batch on the device),
  bf16 autocast + channels-last (kiln's CUDA defaults), the held-out evaluation and finite-weights check
  after every epoch and a checkpoint after the last one, as in a job.

images/s = training images x (epochs - 1) / seconds from the end of epoch 1 to the end of the last one
(CUDA synchronised at each epoch end: the first epoch, with cuDNN's autotuning and the allocator's growth,
is start-up). The ratio is kiln's over the plain bf16 + channels-last loop (the issue's target: >= 0.9).

    python bench/cnn_gpu.py                       # on the GPU machine: 60,000 / 50,000 synthetic images
    python bench/cnn_gpu.py --device cpu --train 1024 --epochs 2 --models lenet5   # a smoke run anywhere

The data is synthetic (no downloads on the GPU machine): each class is a fixed random pattern plus noise,
learnable, so the held-out accuracy printed beside the speed shows the run trained (not a quality figure).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from workers.cnn import augment as aug  # noqa: E402
from workers.cnn.datasets import scan  # noqa: E402
from workers.cnn.models import build_model  # noqa: E402
from workers.cnn.prepare import load_meta, load_split, prepare_local  # noqa: E402
from workers.cnn.recipes import shift_pixels  # noqa: E402
from workers.cnn.worker import CnnWorker  # noqa: E402

MODELS = {  # model -> (image shape H, W, C; model arguments; recipe)
    "lenet5": ((28, 28, 1), {"arch": "lenet5"}, {"augment": ["shift"], "lr": 0.1}),
    "resnet20": ((32, 32, 3), {"arch": "resnet", "depth": 20}, {"augment": ["crop", "flip"], "lr": 0.1}),
}


def synthetic_npz(path: Path, n: int, shape: tuple[int, int, int], classes: int = 10, seed: int = 0) -> None:
    """``n`` uint8 images (N, H, W, C): class k = its own random pattern at half brightness plus noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 128, (classes, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, n)
    x = patterns[y] + rng.integers(0, 128, (n, *shape), dtype=np.uint8)
    np.savez(path, x=x, y=y)


def recipe_config(name: str, shape, batch: int, epochs: int) -> dict:
    _, _, recipe = MODELS[name]
    return {"epochs": epochs, "batch_size": batch, "lr": recipe["lr"], "optimizer": "sgd", "weight_decay": 5e-4,
            "label_smoothing": 0.1, "augment": recipe["augment"], "shift_px": shift_pixels(min(shape[:2])), "seed": 1}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain(data: Path, model_args: dict, cfg: dict, device: torch.device, fast: bool) -> dict:
    """The hand-written loop; ``fast``: bf16 autocast + channels-last. Returns epoch end times and accuracy."""
    x, y = load_split(data, "train")
    hx, hy = load_split(data, "heldout")
    meta = load_meta(data)
    mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
    xt = (torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float() / 255 - mean) / std
    ht = (torch.from_numpy(hx).to(device).permute(0, 3, 1, 2).float() / 255 - mean) / std
    fmt = torch.channels_last if fast else torch.contiguous_format
    xt, ht = xt.contiguous(memory_format=fmt), ht.contiguous(memory_format=fmt)
    yt = torch.from_numpy(y).to(device)
    torch.manual_seed(1)
    model = build_model(model_args).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True,
                          weight_decay=cfg["weight_decay"])
    bs = cfg["batch_size"]
    steps = len(xt) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps * cfg["epochs"],
                                                pct_start=0.25, cycle_momentum=False)
    gen = torch.Generator().manual_seed(1)
    def amp():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)

    sync(device)
    t0, ends = time.perf_counter(), []
    for _ in range(cfg["epochs"]):
        model.train()
        perm = torch.randperm(len(xt), device=device)
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            xb = aug.apply(xt[idx], tuple(cfg["augment"]), shift_px=cfg["shift_px"], gen=gen).contiguous(memory_format=fmt)
            with amp():
                loss = F.cross_entropy(model(xb), yt[idx], label_smoothing=cfg["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        sync(device)
        ends.append(time.perf_counter())
    model.eval()
    with torch.no_grad(), amp():
        preds = torch.cat([model(ht[i:i + 1024]).argmax(1) for i in range(0, len(ht), 1024)])
    return {"t0": t0, "ends": ends, "images": steps * bs, "accuracy": float((preds.cpu().numpy() == hy).mean()),
            "finite": math.isfinite(float(loss.detach()))}


def kiln(data: Path, model_args: dict, cfg: dict, device: torch.device, folder: Path) -> dict:
    """kiln's worker as a job drives it (without the Ray call around each epoch)."""
    worker = CnnWorker(0, 1, os.cpu_count() or 1, device.type == "cuda")  # CUDA: the first visible GPU
    worker.setup(str(data), model_args, cfg, None, None, None)
    sync(device)
    t0, ends, acc, finite = time.perf_counter(), [], float("nan"), True
    for _ in range(cfg["epochs"]):
        r = worker.run_epoch(True)
        ends.append(time.perf_counter())
        finite = finite and r["finite"] and math.isfinite(r["loss"])
        acc = r["evaluation"]["accuracy"] if r["evaluation"] else float("nan")
    try:  # a job's last checkpoint (safetensors, which a bare GPU machine may lack: then it is left out)
        import safetensors.torch  # noqa: F401, PLC0415
    except ImportError:
        print("note: safetensors not installed; the kiln row writes no checkpoint")
    else:
        folder.mkdir(parents=True)
        worker.save_checkpoint(str(folder), {"model_args": model_args, "config": cfg})
    n = len(worker.train_data)
    return {"t0": t0, "ends": ends, "images": (n // cfg["batch_size"]) * cfg["batch_size"], "accuracy": acc,
            "finite": finite, "end": time.perf_counter()}


def ips(run: dict) -> float:
    e = run["ends"]
    return run["images"] * (len(e) - 1) / (e[-1] - e[0]) if len(e) > 1 else run["images"] / (e[0] - run["t0"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="lenet5,resnet20")
    ap.add_argument("--train", type=int, default=0, help="synthetic images per model (0: 60,000 / 50,000)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"# {name}; torch {torch.__version__}; batch {args.batch_size}, {args.epochs} epochs, "
          f"median of {args.repeats} runs, rows interleaved")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            shape, margs, _ = MODELS[model]
            n = args.train or (60_000 if model == "lenet5" else 50_000)
            npz = Path(tmp) / f"{model}.npz"
            synthetic_npz(npz, n, shape)
            data = Path(tmp) / f"{model}-data"
            meta = prepare_local(data, scan(str(npz), "npz"), val_split=0.1, seed=1)
            model_args = {**margs, "in_channels": shape[2], "num_classes": 10, "image_size": list(shape[:2])}
            cfg = recipe_config(model, shape, args.batch_size, args.epochs)
            rows: dict[str, list] = {"plain fp32": [], "plain bf16 + channels-last": [], "kiln worker": []}
            for r in range(args.repeats):
                rows["plain fp32"].append(plain(data, model_args, cfg, device, fast=False))
                rows["plain bf16 + channels-last"].append(plain(data, model_args, cfg, device, fast=True))
                rows["kiln worker"].append(kiln(data, model_args, cfg, device, Path(tmp) / f"{model}-ck{r}"))
            print(f"\n{model}: {meta['n_train']} training images {shape[0]}x{shape[1]}x{shape[2]}, "
                  f"{meta['n_heldout']} held out, augment {cfg['augment']}")
            print(f"{'':28} {'images/s':>10} {'vs bf16':>8} {'epoch 1 s':>9} {'accuracy':>9}")
            ref = float(np.median([ips(x) for x in rows["plain bf16 + channels-last"]]))
            for label, runs in rows.items():
                speed = float(np.median([ips(x) for x in runs]))
                first = float(np.median([x["ends"][0] - x["t0"] for x in runs]))
                acc = float(np.median([x["accuracy"] for x in runs]))
                ok = ok and all(x["finite"] for x in runs)
                print(f"{label:28} {speed:10.0f} {speed / ref:8.2f} {first:9.2f} {acc:9.4f}")
    if not ok:
        print("a run produced non-finite weights or loss")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
