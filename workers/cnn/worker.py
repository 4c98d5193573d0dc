"""CnnWorker: one data-parallel trainer. A Ray actor on its placement-group bundle in a job, or a plain
object in this process (tests, benchmarks); the job drives both alike.

With several workers each is one rank of a torch.distributed process group (gloo on CPU, NCCL on GPU)
and trains a DistributedDataParallel copy of the model on its slice of every global batch. With one
worker the same loop runs without DDP. Rank 0 evaluates, writes checkpoints and the final weights.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import torch

from workers.cnn import checkpoint as ckpt_io
from workers.cnn import prepare
from workers.cnn.loop import (DeviceData, LoopState, TrainConfig, make_optimizer, predict, steps_per_epoch,
                              train_epoch_steps)
from workers.cnn.models import build_model, load_weights_file
from workers.contract import Checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class CnnWorker:
    def __init__(self, rank: int, world: int, threads: int, use_gpu: bool):
        self.rank, self.world, self.use_gpu = rank, world, use_gpu
        torch.set_num_threads(max(1, threads))
        # Ray sets CUDA_VISIBLE_DEVICES to the worker's GPU(s): the first visible one is ours
        self.device = torch.device("cuda", 0) if use_gpu and torch.cuda.is_available() else torch.device("cpu")
        self.model = self.ddp = self.opt = None
        self.train_data = self.heldout = None
        self.state = LoopState()

    # -- where it runs ------------------------------------------------------------------------------
    def address(self) -> tuple[str, int, str, str]:
        """(this node's IP, a free port for the process group if this is rank 0, the device, the Ray node id)."""
        ip, node = "127.0.0.1", ""
        try:
            import ray  # noqa: PLC0415 - inside a Ray actor: the node's address as Ray sees it

            if ray.is_initialized():
                ip, node = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return ip, free_port(), str(self.device), node

    def pid(self) -> int:
        import os  # noqa: PLC0415

        return os.getpid()

    def runtime(self) -> dict:
        """What this worker trains with: torch's intra-op and inter-op threads and the process's niceness
        (Ray starts its workers at niceness 15 unless the cluster sets RAY_worker_niceness: a busy node
        then gives them a fraction of the CPU that other processes get)."""
        import os  # noqa: PLC0415

        return {"pid": os.getpid(), "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(), "nice": os.nice(0)}

    # -- data preparation (a shard of an image folder) -----------------------------------------------
    def decode_rows(self, images_path: str, files: list[str], start: int, stop: int, shape: list[int]) -> int:
        return prepare.decode_rows(Path(images_path), files, range(start, stop), tuple(shape))

    # -- set up ------------------------------------------------------------------------------------
    def setup(self, data_dir: str, model_args: dict, cfg: dict, master: tuple[str, int] | None,
              resume_dir: str | None, weights: str | None) -> dict:
        """Join the process group, load the prepared data onto the device, build the model and optimizer,
        and restore a checkpoint if one is given. Returns {"epoch", "step", "history", "weights"}."""
        self.cfg = TrainConfig(**{**cfg, "augment": tuple(cfg["augment"])})
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=f"tcp://{master[0]}:{master[1]}", rank=self.rank,
                                    world_size=self.world)
        meta = prepare.load_meta(Path(data_dir))
        x, y = prepare.load_split(Path(data_dir), "train")
        self.train_data = DeviceData.from_numpy(x, y, meta["mean"], meta["std"], self.device)
        if self.rank == 0:
            hx, hy = prepare.load_split(Path(data_dir), "heldout")
            self.heldout = DeviceData.from_numpy(hx, hy, meta["mean"], meta["std"], self.device)
        torch.manual_seed(self.cfg.seed)  # the same initial weights on every rank
        self.model = build_model(model_args).to(self.device)
        if self.cfg.fast_paths(self.device)[1]:
            self.model = self.model.to(memory_format=torch.channels_last)
        loaded = None
        if weights and not resume_dir:
            loaded = load_weights_file(self.model, weights)
        self.opt = make_optimizer(self.model, self.cfg)
        if resume_dir:
            self.state = ckpt_io.load(Checkpoint(Path(resume_dir)), self.model, self.opt)
        self.ddp = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

            self.ddp = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return {"epoch": self.state.epoch, "step": self.state.step, "history": self.state.history,
                "weights": loaded, "steps_per_epoch": steps_per_epoch(len(self.train_data), self.cfg.batch_size)}

    # -- training --------------------------------------------------------------------------------------
    def run_epoch(self, evaluate: bool = False) -> dict:
        """One epoch (all ranks call it together). Returns the loss averaged over ranks, the images all
        ranks trained on, the seconds it took, the CPU seconds all ranks' processes spent on it and those of
        their training threads alone ("thread_cpu_seconds": the rest is Ray's and torch's other threads); with
        ``evaluate``, rank 0 adds "finite" (are the weights finite) and "evaluation" (``evaluate()``) in
        the same call (one round trip per epoch for a Ray actor)."""
        *_, result = self.epoch_stream(None, evaluate)
        return result

    def epoch_stream(self, report_every_s: float | None, evaluate: bool = False):
        """``run_epoch`` as a generator (a Ray streaming-generator method in a job): rank 0 yields
        {"progress": (steps done, steps)} at most every ``report_every_s`` seconds while it trains, then
        every rank yields ``run_epoch``'s result. The driver reads progress from the stream, so the actor
        needs no second thread (a threaded actor's training thread took ~7% more CPU per image)."""
        t0, c0, th0 = time.perf_counter(), time.process_time(), time.thread_time()
        steps = train_epoch_steps(self.ddp, self.opt, self.train_data, self.cfg, self.state, rank=self.rank,
                                  world=self.world)
        last = t0
        while True:
            try:
                done, total = next(steps)
            except StopIteration as end:
                out = end.value
                break
            if report_every_s is not None and self.rank == 0 and time.perf_counter() - last >= report_every_s:
                last = time.perf_counter()
                yield {"progress": (done, total)}
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        cpu = time.process_time() - c0  # this process's CPU time (all its threads): robust to others' load
        thread_cpu = time.thread_time() - th0  # the training thread's alone (the rest: Ray's threads, torch's)
        loss = torch.tensor([out["loss"], float(out["images"]), cpu, thread_cpu], dtype=torch.float64)
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            dist.all_reduce(loss)
            loss[0] /= self.world
        result = {"epoch": self.state.epoch, "loss": float(loss[0]), "images": int(loss[1]),
                  "seconds": time.perf_counter() - t0, "cpu_seconds": float(loss[2]),
                  "thread_cpu_seconds": float(loss[3])}
        if evaluate and self.rank == 0:
            result["finite"] = self.weights_finite()
            result["evaluation"] = self.evaluate(with_preds=False) if result["finite"] else None
        yield result

    def evaluate(self, with_preds: bool = True) -> dict:
        """Rank 0: accuracy on the held-out images, and the predictions with ``with_preds`` (the final
        report's confusion matrix; the per-epoch evaluation sends back the accuracy alone)."""
        preds, _ = predict(self.model, self.heldout, fast_paths=self.cfg.fast_paths(self.device))
        y = self.heldout.y.cpu().numpy()
        out = {"accuracy": float((preds == y).mean())}
        if with_preds:
            out["preds"] = preds.astype(np.int64).tolist()
        return out

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def record_history(self, entry: dict) -> None:
        self.state.history.append(dict(entry))

    def save_checkpoint(self, folder: str, meta: dict) -> str:
        """Rank 0: a whole checkpoint (weights, optimizer, loop state) in ``folder``."""
        ckpt_io.save(Path(folder), self.model, self.opt, self.state, meta)
        return folder

    def save_weights(self, path: str) -> str:
        from safetensors.torch import save_file  # noqa: PLC0415

        save_file(ckpt_io.model_tensors(self.model), path)
        return path

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            if dist.is_initialized():
                dist.destroy_process_group()
