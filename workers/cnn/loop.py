"""The one training loop for CNN classifiers (jobs, tests and benchmarks all call it).

Plain PyTorch: no Ray, no Redis. A data-parallel caller passes a DistributedDataParallel model and its
rank/world size; each rank then takes its slice of every global batch (``batch_size`` is the global
batch, so the same spec trains the same way on 1 or N workers). On GPU: bf16 autocast, channels-last,
the dataset held on the device; on CPU: plain fp32.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from workers.cnn import augment as aug


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run. ``lr`` is the peak of the one-cycle schedule (per global batch)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.004
    optimizer: str = "adamw"            # "sgd" (Nesterov momentum) or "adamw"
    weight_decay: float = 5e-4
    momentum: float = 0.9
    label_smoothing: float = 0.1
    augment: tuple[str, ...] = ("shift",)
    shift_px: int = 1                   # largest shift of the "shift" augmentation, in pixels
    warmup: float = 0.25                # fraction of the steps spent rising to the peak lr
    seed: int = 1
    bf16: bool | None = None            # bf16 autocast (None: on CUDA only)
    channels_last: bool | None = None   # channels-last images and weights (None: on CUDA only)

    def fast_paths(self, device: torch.device) -> tuple[bool, bool]:
        """(bf16 autocast, channels-last) on ``device``: the GPU paths, which tests also force on CPU."""
        cuda = device.type == "cuda"
        return (cuda if self.bf16 is None else self.bf16,
                cuda if self.channels_last is None else self.channels_last)


@dataclass
class DeviceData:
    """A split held as uint8 (N, C, H, W) plus labels on the training device, with the normalisation."""

    x: torch.Tensor
    y: torch.Tensor
    mean: torch.Tensor   # (1, C, 1, 1), in [0, 1] pixel units
    std: torch.Tensor

    @classmethod
    def from_numpy(cls, x_nhwc: np.ndarray, y: np.ndarray, mean, std, device: torch.device) -> "DeviceData":
        x = torch.from_numpy(np.ascontiguousarray(x_nhwc)).permute(0, 3, 1, 2)
        # GPU: keep NHWC memory (channels-last), on the device when it takes at most half of the free
        # memory, else pinned in host memory and copied a batch at a time; CPU: NCHW, which its
        # convolutions prefer.
        if device.type == "cuda":
            fits = x.numel() <= torch.cuda.mem_get_info(device)[0] // 2
            x = x.to(device) if fits else x.pin_memory()
        else:
            x = x.contiguous()
        c = x.shape[1]
        return cls(x, torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device),
                   torch.tensor(mean, dtype=torch.float32, device=device).view(1, c, 1, 1),
                   torch.tensor(std, dtype=torch.float32, device=device).view(1, c, 1, 1))

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Normalised float images for the indices ``idx`` (on the labels' device)."""
        if self.x.device != self.y.device:  # a dataset too big for the GPU: gather on the host, then copy
            xb = self.x[idx.cpu()].to(self.y.device, non_blocking=True)
        else:
            xb = self.x[idx]
        return (xb.float().div_(255.0) - self.mean) / self.std


@dataclass
class LoopState:
    """Where a run is: epochs done, optimizer steps taken, per-epoch history (restored from a checkpoint)."""

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)


def autocast_for(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Whole global batches per epoch (the last partial batch is dropped so every rank steps together)."""
    return max(1, n // min(batch_size, n))


def one_cycle_lr(step: int, total: int, peak: float, warmup: float) -> float:
    """The one-cycle schedule: cosine rise from peak/25 to ``peak`` over ``warmup`` of the steps, then cosine
    decay to peak/1e4."""
    rise = max(1, int(total * warmup))
    if step < rise:
        lo, hi, t = peak / 25, peak, step / rise
    else:
        lo, hi, t = peak, peak / 1e4, (step - rise) / max(1, total - rise)
    return hi + (lo - hi) * (1 + math.cos(math.pi * min(1.0, t))) / 2


def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, data: DeviceData, cfg: TrainConfig,
                state: LoopState, *, rank: int = 0, world: int = 1, on_step=None) -> dict:
    """One epoch over ``data`` (rank ``rank``'s slice of each global batch); advances ``state``.

    ``on_step(done_steps, total_steps)`` is called every few steps (progress reports). Returns
    {"loss": mean training loss on this rank, "images": images this rank trained on, "seconds": ...}."""
    steps = train_epoch_steps(model, opt, data, cfg, state, rank=rank, world=world)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as end:
            return end.value
        if on_step is not None:
            on_step(done, total)


def train_epoch_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, data: DeviceData, cfg: TrainConfig,
                      state: LoopState, *, rank: int = 0, world: int = 1, every: int = 10):
    """``train_epoch`` as a generator: yields (steps done, steps) every ``every`` steps and returns
    ``train_epoch``'s result (so a caller can hand progress out between steps without a second thread)."""
    device = data.x.device
    n = len(data)
    gbs = min(cfg.batch_size, n)
    per = max(1, gbs // world)
    steps = steps_per_epoch(n, cfg.batch_size)
    total = steps * cfg.epochs
    # The same permutation on every rank (seeded by epoch); augmentation random per rank.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.epoch))
    perm = perm.to(device)
    gen = torch.Generator().manual_seed((cfg.seed * 7919 + state.epoch) * 131 + rank)
    bf16, channels_last = cfg.fast_paths(device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    t0 = time.perf_counter()
    for s in range(steps):
        lr = one_cycle_lr(state.step, total, cfg.lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = perm[s * gbs + rank * per: s * gbs + (rank + 1) * per]
        xb = aug.apply(data.batch(idx), cfg.augment, shift_px=cfg.shift_px, gen=gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, bf16):
            loss = F.cross_entropy(model(xb), data.y[idx], label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        state.step += 1
        if (s + 1) % every == 0:
            yield s + 1, steps
    state.epoch += 1
    return {"loss": float(loss_sum) / steps, "images": steps * per, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def predict(model: torch.nn.Module, data: DeviceData, batch_size: int = 1024,
            fast_paths: tuple[bool, bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, softmax probabilities) for every image of ``data``, in eval mode; ``fast_paths`` =
    (bf16 autocast, channels-last) as ``TrainConfig.fast_paths`` gives them (default: on CUDA only)."""
    model.eval()
    device = data.x.device
    bf16, channels_last = fast_paths if fast_paths is not None else TrainConfig().fast_paths(device)
    preds, probs = [], []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=device)
        xb = data.batch(idx)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, bf16):
            p = torch.softmax(model(xb).float(), dim=1)
        preds.append(p.argmax(1).cpu().numpy())
        probs.append(p.cpu().numpy())
    return np.concatenate(preds), np.concatenate(probs)
