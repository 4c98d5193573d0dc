"""CnnJob: CNN image classifiers on the training contract (workers/contract.py).

Steps, in the order ``run_trainer`` calls them:

- ``prepare``: scan the dataset again (it may have changed since submit), start the job's workers (each on
  its own placement-group bundle, ``ctx.worker_options``), and decode the images once into uint8 arrays
  beside the job (image folders in shards across the workers); a retried attempt reuses them;
- ``place``: rank 0 opens a free port, every worker joins the torch.distributed group (gloo on CPU, NCCL
  on GPU), loads the prepared arrays onto its device, builds the model (DDP when there are several
  workers) and restores the last epoch checkpoint if the job is resuming;
- ``train``: epochs of the one loop (workers/cnn/loop.py); live status every half second (epoch,
  images/s, loss, ETA) and after each epoch the held-out accuracy; a checkpoint at the end of an epoch
  once ``spec.checkpoint_interval_s`` (``--checkpoint-interval``) has passed since the last one (or since
  training began), and always after the last epoch: at most one per interval, at epoch boundaries;
- ``finalize``: model weights (safetensors) + model card + evaluation (accuracy, per-class accuracy,
  confusion matrix), and the ``TrainResult``.

Why not Ray Train's TorchTrainer: it reserves its own placement group for its workers, and kiln's
dispatcher has already reserved the job's CPUs/GPUs in the job's group; a second reservation would wait
for resources the job itself holds. So the workers are plain Ray actors on the job's bundles, set up the
way TorchTrainer sets up its workers (rank 0's address and a free port, init_process_group, DDP).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from shared.errors import TrainingError
from workers.cnn import prepare
from workers.cnn.card import CARD, WEIGHTS, write_card
from workers.cnn.datasets import scan
from workers.cnn.evaluate import classification_report, report_metrics
from workers.cnn.recipes import shift_pixels
from workers.cnn.worker import CnnWorker
from workers.contract import Checkpoint, TrainResult
from workers.lineage import kiln_lineage

REPORT_EVERY_S = 0.5
WORKER_RUNTIME_ENV = {"env_vars": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}}
"""The worker processes' glibc malloc settings (read at process start). With glibc's defaults a training
step's activation buffers (over 128 KiB) were mmapped and unmapped, or the heap trimmed, every step, and
faulted in again: 10,000-117,000 minor page faults per 150 LeNet-5 steps, depending on the process's history,
and the same loop ran 4-25% slower in one process than in another. Fixed thresholds keep those pages
(measured: a handful of faults per 150 steps; docs/BENCHMARKS.md, CNN)."""
EVALUATION = "evaluation.json"


class _Workers:
    """The job's workers, called alike whether they are Ray actors or plain objects in this process."""

    def __init__(self, handles: list, remote: bool):
        self.handles, self.remote = handles, remote

    def __len__(self) -> int:
        return len(self.handles)

    def call(self, rank: int, method: str, *args):
        fn = getattr(self.handles[rank], method)
        return fn.remote(*args) if self.remote else fn(*args)

    def get(self, refs):
        if not self.remote:
            return refs
        import ray  # noqa: PLC0415

        return ray.get(refs)

    def each(self, method: str, *args) -> list:
        return self.get([self.call(k, method, *args) for k in range(len(self.handles))])


class CnnJob:
    """A CNN job's trainer (see the module docstring); ``ctx`` is a workers.contract.TrainContext."""

    def __init__(self, ctx):
        self.ctx, self.spec, self.p = ctx, ctx.spec, ctx.spec.params
        self.scaling = ctx.scaling
        self.workers: _Workers | None = None
        self.info = None
        self.meta: dict = {}
        self.data_dir: Path | None = None
        self.state: dict = {"epoch": 0, "step": 0, "history": []}
        self.train_s = 0.0
        self.images = 0
        self.last_loss = float("nan")

    @staticmethod
    def backend(spec) -> str:
        return "torch-cuda" if spec.resources.gpus_per_worker > 0 else "torch-cpu"

    @staticmethod
    def worker_name(job_id: str, attempt: int, rank: int) -> str:
        """The Ray actor name of a job's worker (in the runner's namespace)."""
        return f"cnn-{job_id}-a{attempt}-{rank}"

    # -- the model's arguments and the loop's configuration ------------------------------------------
    def model_args(self) -> dict:
        h, w, c = self.meta["shape"]
        args = {"arch": self.p.arch, "in_channels": c, "num_classes": len(self.meta["classes"]), "image_size": [h, w]}
        if self.p.depth is not None:
            args["depth"] = self.p.depth
        if self.p.width is not None:
            args["width"] = self.p.width
        return args

    def train_config(self) -> dict:
        p = self.p
        return {"epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr, "optimizer": p.optimizer,
                "weight_decay": p.weight_decay, "label_smoothing": p.label_smoothing, "augment": list(p.augment),
                "shift_px": shift_pixels(min(self.meta["shape"][:2])), "seed": self.spec.seed}

    # -- prepare -----------------------------------------------------------------------------------
    def _start_workers(self) -> None:
        ctx, n = self.ctx, self.scaling.workers
        args = (n, self.scaling.threads_per_worker, self.scaling.use_gpu)
        if getattr(ctx, "uses_ray", False):
            import ray  # noqa: PLC0415

            actor = ray.remote(CnnWorker)
            ns = getattr(ctx, "namespace", None)  # a job's workers are named in the runner's namespace

            def named(k: int) -> dict:
                return {"name": self.worker_name(ctx.job_id, ctx.attempt, k), "namespace": ns} if ns else {}

            # one thread per actor: progress comes out of the epoch's stream (CnnWorker.epoch_stream)
            handles = [actor.options(**ctx.worker_options(k), max_restarts=0, runtime_env=WORKER_RUNTIME_ENV,
                                     **named(k)).remote(k, *args)
                       for k in range(n)]
            self.workers = _Workers(handles, remote=True)
        else:
            if n > 1:
                raise TrainingError("several workers need Ray (a context with uses_ray)")
            self.workers = _Workers([CnnWorker(0, *args)], remote=False)

    def prepare(self) -> None:
        """The images decoded once into ``<job>/data`` (reused by a retried attempt)."""
        ctx, p = self.ctx, self.p
        ctx.report({"phase": "preparing data", "epochs": p.epochs, "throughput_unit": "images/s"})
        self.info = info = scan(p.dataset, p.format, image_size=p.image_size, test=p.test)
        ctx.log(f"attempt {ctx.attempt}: dataset: {info.description}; {self.scaling.workers} worker(s) x "
                f"{self.scaling.threads_per_worker} thread(s), backend {self.scaling.backend}")
        self._start_workers()
        self.data_dir = ctx.job_dir("data")
        if prepare.is_prepared(self.data_dir):
            ctx.log("reusing the images decoded by an earlier attempt")
        else:
            t0 = time.time()
            if info.format == "folder":
                files = prepare.folder_files(info)
                path = prepare.allocate(self.data_dir, info)
                w = len(self.workers) if len(files) >= prepare.PARALLEL_DECODE_MIN else 1
                cuts = [round(len(files) * k / w) for k in range(w + 1)]
                self.workers.get([self.workers.call(k, "decode_rows", str(path), files, cuts[k], cuts[k + 1],
                                                    list(info.shape)) for k in range(w)])
            else:
                prepare.write_arrays(self.data_dir, info)
            prepare.finish(self.data_dir, info, val_split=p.val_split, seed=self.spec.seed)
            ctx.log(f"decoded {info.train.count + (info.test.count if info.test else 0)} images in {time.time() - t0:.1f} s")
        self.meta = prepare.load_meta(self.data_dir)

    # -- place -------------------------------------------------------------------------------------
    def place(self) -> None:
        ctx, w = self.ctx, self.workers
        addresses = w.each("address")
        resume = str(Path(ctx.resume.path).resolve()) if ctx.resume is not None else None
        infos = w.each("setup", str(self.data_dir), self.model_args(), self.train_config(), addresses[0][:2],
                       resume, self.p.weights)
        self.state = {"epoch": infos[0]["epoch"], "step": infos[0]["step"], "history": list(infos[0]["history"])}
        if infos[0]["weights"]:
            copied, skipped = infos[0]["weights"]
            ctx.log(f"--weights: copied {copied} tensors, skipped {skipped} (names or shapes differ)")
        if resume:
            ctx.log(f"resuming from the checkpoint of epoch {self.state['epoch']}")
        runtimes = w.each("runtime")
        niced = sorted({rt["nice"] for rt in runtimes if rt["nice"] > 0})
        if niced:
            ctx.log(f"the workers run at niceness {', '.join(map(str, niced))} (Ray's worker_niceness): on a busy node "
                    "they get less CPU than other processes; kiln's own Ray head sets RAY_worker_niceness=0",
                    level="WARNING")
        ctx.report({"phase": "training", "placement": [
            {"worker": k, "node_id": a[3], "node_ip": a[0], "device": a[2], "threads": rt["threads"], "nice": rt["nice"]}
            for k, (a, rt) in enumerate(zip(addresses, runtimes))]})

    # -- train -------------------------------------------------------------------------------------
    def train(self) -> None:
        ctx, w, p = self.ctx, self.workers, self.p
        epochs = p.epochs
        last_checkpoint = time.monotonic()
        for epoch in range(self.state["epoch"], epochs):
            t0 = time.perf_counter()
            r = self._epoch_streaming(epoch, t0) if w.remote else w.call(0, "run_epoch", True)
            bad = None if math.isfinite(r["loss"]) else f"the loss is {r['loss']}"
            if bad is None and not r["finite"]:
                bad = "the weights hold non-finite values"
            if bad:
                raise TrainingError(f"training diverged at epoch {epoch + 1} (peak learning rate {p.lr:g}): {bad}; "
                                    "nothing was registered (try a lower --lr)")
            ev = r["evaluation"]
            seconds = time.perf_counter() - t0
            self.train_s += r["seconds"]
            self.images += r["images"]
            self.last_loss = r["loss"]
            entry = {"epoch": epoch + 1, "loss": r["loss"], "val_accuracy": ev["accuracy"],
                     "images_per_s": r["images"] / max(r["seconds"], 1e-9),
                     "cpu_s_per_1k_images": 1000 * r["cpu_seconds"] / max(r["images"], 1)}
            self.state["history"].append(entry)
            w.call(0, "record_history", entry)  # not waited for: the actor runs its calls in order
            done = epoch + 1
            checkpoint = None
            if done == epochs or time.monotonic() - last_checkpoint >= self.spec.checkpoint_interval_s:
                folder = ctx.new_checkpoint_dir()
                w.get(w.call(0, "save_checkpoint", str(folder), {"model_args": self.model_args(),
                                                                  "config": self.train_config()}))
                checkpoint, last_checkpoint = Checkpoint(folder), time.monotonic()
            eta = (epochs - done) * seconds
            ctx.report({"progress": done / epochs, "epoch": done, "epochs": epochs, "loss": r["loss"],
                        "throughput": entry["images_per_s"], "throughput_unit": "images/s", "eta_s": eta,
                        "val_accuracy": ev["accuracy"]}, checkpoint=checkpoint)
            ctx.log(f"epoch {done}/{epochs}: loss {r['loss']:.4f}, held-out accuracy {ev['accuracy']:.4f}, "
                    f"{entry['images_per_s']:.0f} images/s")

    def _epoch_streaming(self, epoch: int, t0: float) -> dict:
        """One epoch on every actor, reporting progress, images/s and ETA from rank 0's stream; rank 0's
        result (every rank's stream is read to its end, so a failed rank raises here)."""
        import ray  # noqa: PLC0415

        epochs, w = self.p.epochs, self.workers
        streams = [h.epoch_stream.options(num_returns="streaming").remote(REPORT_EVERY_S, True) for h in w.handles]
        result = None
        for ref in streams[0]:
            item = ray.get(ref)
            if "progress" not in item:
                result = item
                continue
            done, total = item["progress"]
            el = time.perf_counter() - t0
            frac = done / total
            self.ctx.report({"progress": (epoch + frac) / epochs, "epoch": epoch + 1, "epochs": epochs,
                             "throughput": done * self.p.batch_size / max(el, 1e-9), "throughput_unit": "images/s",
                             "eta_s": el / max(frac, 1e-9) * (epochs - epoch - frac)})
        for stream in streams[1:]:
            ray.get(list(stream))
        return result

    # -- finalize ----------------------------------------------------------------------------------
    def finalize(self) -> TrainResult:
        ctx, w, p = self.ctx, self.workers, self.p
        model_dir = ctx.job_dir("model")
        w.get(w.call(0, "save_weights", str(Path(model_dir) / WEIGHTS)))
        ev = w.get(w.call(0, "evaluate"))
        y = np.load(self.data_dir / "labels.npy")[np.load(self.data_dir / "heldout_idx.npy")]
        report = classification_report(y, np.asarray(ev["preds"]), self.meta["classes"])
        report["heldout"] = self.meta["heldout"]
        (Path(model_dir) / EVALUATION).write_text(json.dumps(report))
        metrics = {**report_metrics(report), "final_loss": self.last_loss}
        if self.train_s > 0:
            metrics["images_per_s"] = self.images / self.train_s
        params = {**p.model_dump(), "workers": self.scaling.workers, "backend": self.scaling.backend,
                  "seed": self.spec.seed}
        write_card(model_dir, model_args=self.model_args(), classes=self.meta["classes"], shape=self.meta["shape"],
                   mean=self.meta["mean"], std=self.meta["std"], metrics=metrics, params=params,
                   dataset={"description": self.meta["description"], "heldout": self.meta["heldout"],
                            "fingerprint": self.meta["fingerprint"]})
        ctx.report({"phase": "finished", "progress": 1.0, "eta_s": 0})
        ctx.log(f"test accuracy {report['accuracy']:.4f} on {report['count']} {self.meta['heldout']} images")
        lineage = {"job_id": ctx.job_id, "dataset_fingerprint": self.meta["fingerprint"], **kiln_lineage()}
        history = [{k: float(v) if k != "epoch" else int(v) for k, v in e.items()} for e in self.state["history"]]
        return TrainResult(artifacts={"model": ctx.uri(model_dir), "weights": ctx.uri(Path(model_dir) / WEIGHTS),
                                      "card": ctx.uri(Path(model_dir) / CARD),
                                      "evaluation": ctx.uri(Path(model_dir) / EVALUATION)},
                           metrics=metrics, params=params, lineage=lineage, history=history)

    def close(self) -> None:
        if self.workers is None:
            return
        if self.workers.remote:
            import ray  # noqa: PLC0415

            for h in self.workers.handles:
                try:
                    ray.kill(h, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        else:
            for h in self.workers.handles:
                h.close()
        self.workers = None
