"""The training contract: what a runner gives a trainer, and what the trainer gives back.

Shaped like Ray Train's: the runner hands a trainer an explicit ``ScalingConfig`` (workers, CPUs/threads
and GPUs per worker, the backend chosen by name, the placement group reserved for the whole job), a
``TrainContext`` (the spec with its dataset and hyperparameters, the resume checkpoint, ``report`` and
``log``), and the trainer returns a ``TrainResult`` (artifacts, final metrics, params, lineage, history).

A trainer never writes job state: it calls ``ctx.report(metrics, checkpoint=...)``; the runner turns
reports into live status and persisted checkpoints, and the dispatcher alone records job state.

Every trainer is a class with the steps ``prepare`` (data), ``place`` (workers on the placement group),
``train`` (the one loop; checkpoints through ``report``) and ``finalize`` (model files, evaluation,
result), driven in that order by ``run_trainer``. Each step can be called alone by a test.

This module imports neither Ray nor Redis: a test or a benchmark can drive a trainer with
``LocalContext`` (no Ray, no Redis, files under a folder).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from shared.errors import TrainingError

CHECKPOINT_META = "meta.json"
"""Every checkpoint folder holds this JSON file (written last): its presence marks a whole checkpoint."""


@dataclass(frozen=True)
class ScalingConfig:
    """How many workers, with what resources, trained by which backend, placed how.

    ``backend`` is chosen by name by the runner (for example "numba" or "triton-cuda" for word2vec,
    "torch-cpu" / "torch-cuda" for CNNs); ``threads_per_worker`` is what a worker trains on
    (its reserved CPUs). ``placement_strategy`` is "PACK" (fill a node first) or "SPREAD".
    """

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: str = "cpu"
    placement_strategy: str = "PACK"

    @property
    def threads_per_worker(self) -> int:
        return max(1, int(self.cpus_per_worker))

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    def bundles(self) -> list[dict[str, float]]:
        """One placement-group bundle per worker."""
        b = {"CPU": float(self.cpus_per_worker)}
        if self.gpus_per_worker:
            b["GPU"] = float(self.gpus_per_worker)
        return [dict(b) for _ in range(self.workers)]

    @classmethod
    def from_resources(cls, resources, *, backend: str) -> "ScalingConfig":
        """From a spec's ``Resources`` (workers, cpus_per_worker, gpus_per_worker, placement)."""
        strategy = str(getattr(resources, "placement", "pack")).upper()
        return cls(workers=resources.workers, cpus_per_worker=resources.cpus_per_worker,
                   gpus_per_worker=resources.gpus_per_worker, backend=backend, placement_strategy=strategy)


@dataclass(frozen=True)
class Checkpoint:
    """A folder of safetensors/.npy files plus ``meta.json`` (never pickle), like Ray Train's Checkpoint."""

    path: Path

    def exists(self) -> bool:
        return (Path(self.path) / CHECKPOINT_META).is_file()

    def meta(self) -> dict:
        return json.loads((Path(self.path) / CHECKPOINT_META).read_text())

    @staticmethod
    def write_meta(folder: Path, meta: dict) -> None:
        """Write ``meta.json`` last and atomically (after the arrays), marking the checkpoint whole."""
        tmp = Path(folder) / (CHECKPOINT_META + ".tmp")
        tmp.write_text(json.dumps(meta))
        tmp.replace(Path(folder) / CHECKPOINT_META)


@dataclass
class TrainResult:
    """What a trainer returns: artifact URIs by name, final metrics (finite floats), params (typed JSON
    values), lineage (job id, dataset fingerprint, kiln version / commit) and per-epoch history."""

    artifacts: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, Any]
    lineage: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        check_metrics_finite(self.metrics, where="final metrics")
        return {"artifacts": self.artifacts, "metrics": self.metrics, "params": self.params,
                "lineage": self.lineage, "history": self.history}


class TrainContext(Protocol):
    """What a trainer gets. ``spec`` is the validated JobSpec (dataset handle = ``spec.params``)."""

    job_id: str
    attempt: int
    spec: Any
    scaling: ScalingConfig
    resume: Checkpoint | None
    placement_group: Any  # a Ray PlacementGroup, or None outside Ray
    uses_ray: bool  # True: workers are Ray actors (ray.remote(...).options(**worker_options(rank)));
    #                 False: the trainer runs its workers in this process (tests, benchmarks)
    namespace: str | None  # the Ray namespace to name the job's actors in (the runner's), None outside a job

    def report(self, metrics: dict, checkpoint: Checkpoint | None = None) -> None: ...

    def log(self, message: str, level: str = "INFO") -> None: ...

    def job_dir(self, *parts: str) -> Path: ...

    def new_checkpoint_dir(self) -> Path: ...

    def uri(self, path: Path) -> str: ...

    def worker_options(self, rank: int) -> dict: ...


class Trainer(Protocol):
    """Every trainer: built from a context, then its steps in order (see ``run_trainer``)."""

    def prepare(self) -> None: ...

    def place(self) -> None: ...

    def train(self) -> None: ...

    def finalize(self) -> TrainResult: ...

    def close(self) -> None: ...


def run_trainer(trainer: Trainer) -> TrainResult:
    """Drive a trainer's steps in order; always ``close`` it (workers released) whatever happens."""
    try:
        trainer.prepare()
        trainer.place()
        trainer.train()
        return trainer.finalize()
    finally:
        trainer.close()


# -- divergence --------------------------------------------------------------------------------------

def check_metrics_finite(metrics: dict, *, where: str) -> None:
    """TrainingError naming the first non-finite number in ``metrics``."""
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
            raise TrainingError(f"training diverged: {k} is {v} in the {where}; nothing was registered")


def check_finite(*, round_index: int, lr: float, loss: float | None = None,
                 arrays: dict[str, np.ndarray] | None = None, nonfinite: list[str] | tuple = ()) -> None:
    """Raise TrainingError if ``loss`` or any array holds NaN/inf, naming the round and the learning rate.

    ``nonfinite``: names of arrays already found non-finite where they live (e.g. a worker's weights,
    checked on the worker rather than shipped here)."""
    bad = None
    if loss is not None and not math.isfinite(loss):
        bad = f"loss is {loss}"
    for name, a in (arrays or {}).items():
        if bad is None and not np.isfinite(a).all():
            bad = f"{name} holds non-finite values"
    if bad is None and nonfinite:
        bad = f"{', '.join(nonfinite)} hold{'s' if len(nonfinite) == 1 else ''} non-finite values"
    if bad:
        raise TrainingError(f"training diverged at round {round_index} (learning rate {lr:.6g}): {bad}; "
                            "nothing was registered (try a lower --lr)")


# -- a context without Ray or Redis (tests, benchmarks, GPU checks) -------------------------------

class LocalContext:
    """A TrainContext for driving a trainer without Redis: files under ``root``, reports kept in a list
    (and passed to ``on_report``), log lines in a list, checkpoints persisted to ``root/checkpoint`` like the
    runner does. ``uses_ray``: False (default) runs the workers in this process; True makes them Ray actors
    on the Ray instance this process is connected to (a benchmark of the job path without Redis)."""

    def __init__(self, spec, root: Path, *, scaling: ScalingConfig | None = None, job_id: str = "local",
                 attempt: int = 1, on_report: Callable[[dict], None] | None = None, resume: bool = True,
                 uses_ray: bool = False):
        self.spec, self.job_id, self.attempt, self.uses_ray = spec, job_id, attempt, uses_ray
        self.namespace = None
        self.root = Path(root)
        if scaling is None:  # as the runner does: the backend the job kind's trainer names
            from workers.trainers import trainer_class  # noqa: PLC0415

            scaling = ScalingConfig.from_resources(spec.resources, backend=trainer_class(spec.kind).backend(spec))
        self.scaling = scaling
        self.placement_group = None
        self.reports: list[dict] = []
        self.logs: list[str] = []
        self._on_report = on_report
        ckpt = Checkpoint(self.root / "checkpoint")
        self.resume = ckpt if resume and ckpt.exists() else None

    def report(self, metrics: dict, checkpoint: Checkpoint | None = None) -> None:
        check_metrics_finite({k: v for k, v in metrics.items() if k == "loss"}, where="report")
        self.reports.append(dict(metrics))
        if checkpoint is not None:
            try:
                persist_checkpoint(checkpoint, self.root / "checkpoint")
                self.log(checkpoint_saved_message(metrics))
            except OSError as e:
                self.log(f"could not write the checkpoint ({e}); training goes on", level="WARNING")
        if self._on_report:
            self._on_report(metrics)

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append(f"{level} {message}")

    def job_dir(self, *parts: str) -> Path:
        d = self.root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def new_checkpoint_dir(self) -> Path:
        return new_checkpoint_dir(self.root)

    def uri(self, path: Path) -> str:
        return Path(path).absolute().as_uri()

    def worker_options(self, rank: int) -> dict:
        return {"num_cpus": self.scaling.cpus_per_worker, "num_gpus": self.scaling.gpus_per_worker}


def checkpoint_saved_message(metrics: dict) -> str:
    """The log line a context writes once a checkpoint is persisted (tests wait on it)."""
    at = metrics.get("progress")
    return "checkpoint saved" + (f" at {at:.1%}" if isinstance(at, (int, float)) else "")


def new_checkpoint_dir(root: Path) -> Path:
    """A fresh folder beside the job's checkpoint for a trainer to write the next checkpoint into."""
    d = Path(root) / f".checkpoint.new-{time.time_ns()}"
    d.mkdir(parents=True)
    return d


def persist_checkpoint(checkpoint: Checkpoint, dest: Path) -> Checkpoint:
    """Make ``checkpoint`` the job's latest: ``dest`` is a symlink swapped atomically (os.replace) onto the
    new folder, so a reader (a resumed attempt) always finds a whole checkpoint, the old one until the new
    one is in place. Older checkpoint folders are removed afterwards. Raises OSError on failure (retryable:
    the trainer keeps training and the next checkpoint tries again), leaving the previous checkpoint as it
    was and nothing of the new one behind; something else than a checkpoint at ``dest`` is never replaced."""
    import os  # noqa: PLC0415

    src, dest = Path(checkpoint.path), Path(dest)
    if not Checkpoint(src).exists():
        raise ValueError(f"{src} is not a whole checkpoint (no {CHECKPOINT_META})")
    if dest.exists() and not dest.is_symlink() and not dest.is_dir():
        shutil.rmtree(src, ignore_errors=True)
        raise FileExistsError(f"{dest} is in the way (a file, not a checkpoint)")
    final = dest.with_name(f"{dest.name}-{time.time_ns()}")
    try:
        src.rename(final)
        if dest.is_dir() and not dest.is_symlink():  # a folder left by an older layout
            shutil.rmtree(dest)
        link = dest.with_name(f".{dest.name}.link-{time.time_ns()}")
        os.symlink(final.name, link)
        os.replace(link, dest)
    except OSError:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    for old in dest.parent.glob(f"{dest.name}-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return Checkpoint(dest)
