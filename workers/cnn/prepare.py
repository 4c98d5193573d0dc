"""Decode a dataset once into compact uint8 arrays that the trainers memory-map.

Layout of a prepared folder (written by one job attempt, reused by the next):
  images.npy   uint8 (N, H, W, C): every image, training set first, then the separate test set if any
  labels.npy   int64 (N,)
  data.json    classes, shape, the train/held-out row indices' files, normalisation, fingerprint (written last:
               its presence marks the folder whole)
  train_idx.npy / heldout_idx.npy  int64 row indices into images.npy

Image folders are decoded in shards, one per worker, each filling its own rows of the shared
``images.npy`` (``decode_rows``); array formats are read in one go.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from workers.cnn.datasets import DatasetInfo, read_split
from workers.cnn.folder import decode_into

DATA_META = "data.json"
PARALLEL_DECODE_MIN = 2000
"""Folders with at least this many images are decoded in parallel on the job's workers."""


def is_prepared(folder: Path) -> bool:
    return (Path(folder) / DATA_META).is_file()


def load_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / DATA_META).read_text())


def folder_files(info: DatasetInfo) -> list[str]:
    """Every image file of a folder dataset, in row order (training files, then test files)."""
    return list(info.train.files) + (list(info.test.files) if info.test else [])


def allocate(folder: Path, info: DatasetInfo) -> Path:
    """Create ``images.npy`` (uint8, rows for every image) for workers to fill; returns its path."""
    n = info.train.count + (info.test.count if info.test else 0)
    path = Path(folder) / "images.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *info.shape)).flush()
    return path


def decode_rows(images_path: Path, files: list[str], rows: range, shape: tuple[int, int, int]) -> int:
    """Decode ``files[r]`` into row r of ``images_path`` for r in ``rows`` (one worker's shard).

    Rows are written with pwrite at their byte offsets, not through a shared memory map: workers on
    other nodes write the same file over a shared filesystem, where page-sized write-backs of two
    mappings could overwrite each other's rows at a shard boundary."""
    import os  # noqa: PLC0415

    header = np.load(images_path, mmap_mode="r")
    offset, row_bytes = header.offset, int(np.prod(header.shape[1:]))
    del header
    fd = os.open(images_path, os.O_WRONLY)
    try:
        n = decode_into(files, lambda r, image: os.pwrite(fd, np.ascontiguousarray(image).tobytes(),
                                                          offset + r * row_bytes), rows, shape[:2], shape[2])
        os.fsync(fd)
    finally:
        os.close(fd)
    return n


def write_arrays(folder: Path, info: DatasetInfo) -> None:
    """Array formats: read train (and test) splits and write ``images.npy`` / ``labels.npy``."""
    x, y = read_split(info.train, info.shape)
    if info.test is not None:
        tx, ty = read_split(info.test, info.shape)
        x, y = np.concatenate([x, tx]), np.concatenate([y, ty])
    np.save(Path(folder) / "images.npy", x, allow_pickle=False)
    np.save(Path(folder) / "labels.npy", y.astype(np.int64), allow_pickle=False)


def finish(folder: Path, info: DatasetInfo, *, val_split: float, seed: int) -> dict:
    """Split, normalise, fingerprint; write ``data.json`` last. Returns the metadata."""
    folder = Path(folder)
    if info.format == "folder":
        labels = np.asarray(list(info.train.labels) + (list(info.test.labels) if info.test else []), dtype=np.int64)
        np.save(folder / "labels.npy", labels, allow_pickle=False)
    x = np.load(folder / "images.npy", mmap_mode="r")
    y = np.load(folder / "labels.npy", allow_pickle=False)
    n_train = info.train.count
    if info.test is not None:
        train_idx, heldout_idx = np.arange(n_train), np.arange(n_train, len(y))
        heldout = "test set"
    else:
        perm = np.random.default_rng(seed).permutation(n_train)
        n_val = max(1, round(n_train * val_split))
        heldout_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        heldout = f"held-out split ({val_split:g} of the data, seed {seed})"
    np.save(folder / "train_idx.npy", train_idx.astype(np.int64), allow_pickle=False)
    np.save(folder / "heldout_idx.npy", heldout_idx.astype(np.int64), allow_pickle=False)
    mean, std = channel_stats(x, train_idx)
    meta = {"classes": info.classes, "shape": list(info.shape), "format": info.format,
            "description": info.description, "heldout": heldout, "n_train": int(len(train_idx)),
            "n_heldout": int(len(heldout_idx)), "mean": mean, "std": std,
            "fingerprint": fingerprint(x, y, info.classes)}
    tmp = folder / (DATA_META + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / DATA_META)
    return meta


def channel_stats(x: np.ndarray, rows: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (pixel units 0..1) over ``x[rows]``, in chunks."""
    c = x.shape[3]
    s, ss, n = np.zeros(c), np.zeros(c), 0
    for start in range(0, len(rows), chunk):
        block = np.asarray(x[rows[start:start + chunk]], dtype=np.float64).reshape(-1, c) / 255.0
        s += block.sum(0)
        ss += (block ** 2).sum(0)
        n += len(block)
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean ** 2, 0.0))
    return [float(m) for m in mean], [float(max(v, 1e-3)) for v in std]


def fingerprint(x: np.ndarray, y: np.ndarray, classes: list[str], chunk: int = 8192) -> str:
    """sha256 over the decoded images, labels and class names: what the model was trained on."""
    h = hashlib.sha256()
    h.update(json.dumps(classes).encode() + repr(tuple(x.shape)).encode())
    for start in range(0, len(x), chunk):
        h.update(np.ascontiguousarray(x[start:start + chunk]).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return "sha256:" + h.hexdigest()


def load_split(folder: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of ``which`` ("train" or "heldout"): the rows copied out of the memory-mapped array
    (a contiguous range is read in one sweep)."""
    x = np.load(Path(folder) / "images.npy", mmap_mode="r")
    y = np.load(Path(folder) / "labels.npy", allow_pickle=False)
    idx = np.load(Path(folder) / f"{which}_idx.npy", allow_pickle=False)
    contiguous = len(idx) and idx[-1] - idx[0] + 1 == len(idx)
    return (np.array(x[idx[0]:idx[-1] + 1]) if contiguous else x[idx]), y[idx]


def prepare_local(folder: Path, info: DatasetInfo, *, val_split: float, seed: int) -> dict:
    """Prepare in this process (one worker, tests, benchmarks)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if info.format == "folder":
        files = folder_files(info)
        path = allocate(folder, info)
        decode_rows(path, files, range(len(files)), info.shape)
    else:
        write_arrays(folder, info)
    return finish(folder, info, val_split=val_split, seed=seed)
