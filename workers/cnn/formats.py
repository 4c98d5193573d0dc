"""Readers for the array-shaped dataset formats: IDX pairs, CIFAR binary batches, NPZ and sklearn digits.

Each reader returns ``(x, y, classes)``: ``x`` uint8 of shape (N, H, W, C), ``y`` int64 class indices,
``classes`` the class names. Bad files raise InvalidParameter with one line naming the file.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from shared.errors import InvalidParameter
from workers.cnn import idx

CIFAR_PIXELS = 3 * 32 * 32


# -- IDX ------------------------------------------------------------------------------------------

def idx_labels_for(images: Path) -> Path:
    """The labels file beside an IDX images file (``...-images-idx3-ubyte`` -> ``...-labels-idx1-ubyte``)."""
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    cand = images.with_name(name)
    if name == images.name or not cand.is_file():
        raise InvalidParameter(f"{images}: no labels file beside it (expected {cand.name})")
    return cand


def check_idx_pair(images: Path, labels: Path) -> tuple[int, tuple[int, int, int], np.ndarray]:
    """(count, (H, W, C), labels) of an IDX images/labels pair, checking headers, lengths and counts."""
    dims = idx.check_size(images)
    if len(dims) not in (3, 4):
        raise InvalidParameter(f"{images}: an IDX images file has 3 or 4 dimensions, this one has {len(dims)}")
    y = idx.read(labels)
    if y.ndim != 1:
        raise InvalidParameter(f"{labels}: an IDX labels file has 1 dimension, this one has {y.ndim}")
    if len(y) != dims[0]:
        raise InvalidParameter(f"{images.name} holds {dims[0]} images but {labels.name} holds {len(y)} labels")
    shape = (dims[1], dims[2], dims[3] if len(dims) == 4 else 1)
    return dims[0], shape, y


def read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = idx.read(images)
    y = idx.read(labels).astype(np.int64)
    if len(x) != len(y):
        raise InvalidParameter(f"{images.name} holds {len(x)} images but {labels.name} holds {len(y)} labels")
    return (x[..., None] if x.ndim == 3 else x), y


# -- CIFAR binary batches -------------------------------------------------------------------------

def cifar_record_size(path: Path) -> int:
    """3073 (CIFAR-10: label + pixels) or 3074 (CIFAR-100: coarse + fine label + pixels)."""
    size = path.stat().st_size
    for rec in (CIFAR_PIXELS + 1, CIFAR_PIXELS + 2):
        if size and size % rec == 0:
            return rec
    raise InvalidParameter(f"{path}: {size} bytes is not a whole number of CIFAR records (3073 or 3074 bytes each)")


def read_cifar(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 binary batches -> (x NHWC uint8, y); CIFAR-100 uses the fine label."""
    xs, ys = [], []
    rec = cifar_record_size(files[0])
    for f in files:
        if cifar_record_size(f) != rec:
            raise InvalidParameter(f"{f}: mixes CIFAR-10 and CIFAR-100 records with {files[0].name}")
        raw = np.fromfile(f, dtype=np.uint8).reshape(-1, rec)
        ys.append(raw[:, rec - CIFAR_PIXELS - 1].astype(np.int64))
        xs.append(raw[:, rec - CIFAR_PIXELS:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def cifar_labels(files: list[Path]) -> np.ndarray:
    """The (fine) labels of CIFAR batches, checking every file's length."""
    rec = cifar_record_size(files[0])
    out = []
    for f in files:
        if cifar_record_size(f) != rec:
            raise InvalidParameter(f"{f}: mixes CIFAR-10 and CIFAR-100 records with {files[0].name}")
        out.append(np.fromfile(f, dtype=np.uint8).reshape(-1, rec)[:, rec - CIFAR_PIXELS - 1])
    return np.concatenate(out)


def cifar_class_names(folder: Path, n_classes: int) -> list[str]:
    """Names from ``batches.meta.txt`` (CIFAR-10) or ``fine_label_names.txt`` (CIFAR-100) when present."""
    for meta in ("batches.meta.txt", "fine_label_names.txt"):
        p = folder / meta
        if p.is_file():
            names = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip()]
            if len(names) >= n_classes:
                return names
    return [str(i) for i in range(n_classes)]


def cifar_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(train batches, test batches) of a CIFAR binary folder."""
    train = sorted(folder.glob("data_batch_*.bin"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    train += [p for p in (folder / "train.bin",) if p.is_file()]
    test = [p for p in (folder / "test_batch.bin", folder / "test.bin") if p.is_file()]
    return train, test


# -- NPZ --------------------------------------------------------------------------------------------

def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """``x`` (N,H,W), (N,H,W,C) or (N,C,H,W); uint8, or floats in [0, 1]), ``y`` integer labels, optional
    ``classes`` (strings). Loaded with allow_pickle=False: an object array is refused."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"x", "y"} - set(z.files)
            if missing:
                raise InvalidParameter(f"{path}: an NPZ dataset needs arrays 'x' and 'y' (missing {', '.join(sorted(missing))}; "
                                       f"it has {', '.join(z.files) or 'none'})")
            x, y = z["x"], z["y"]
            classes = [str(c) for c in z["classes"]] if "classes" in z.files else None
    except ValueError as e:  # object arrays need pickle
        raise InvalidParameter(f"{path}: cannot be read without pickle ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise InvalidParameter(f"{path}: not a readable NPZ file ({e})") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InvalidParameter(f"{path}: 'y' must be a 1-D array of integer labels (got {y.dtype} {y.shape})")
    if len(x) != len(y):
        raise InvalidParameter(f"{path}: 'x' holds {len(x)} images but 'y' holds {len(y)} labels")
    if y.min(initial=0) < 0:
        raise InvalidParameter(f"{path}: 'y' holds negative labels")
    return to_nhwc_uint8(x, str(path)), y.astype(np.int64), classes


def to_nhwc_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Images as uint8 NHWC: grayscale (N,H,W) gets a channel axis, (N,C,H,W) with C in 1/3 is transposed,
    floats in [0, 1] are scaled to 0..255."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise InvalidParameter(f"{where}: images must be (N,H,W), (N,H,W,C) or (N,C,H,W); got shape {x.shape}")
    if x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.shape[-1] not in (1, 3):
        raise InvalidParameter(f"{where}: images need 1 or 3 channels; got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
            raise InvalidParameter(f"{where}: float images must hold finite values in [0, 1]")
        return np.ascontiguousarray(np.round(x * 255).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer) and x.min(initial=0) >= 0 and x.max(initial=0) <= 255:
        return np.ascontiguousarray(x.astype(np.uint8))
    raise InvalidParameter(f"{where}: images must be uint8, integers in 0..255 or floats in [0, 1] (got {x.dtype})")


# -- scikit-learn digits (the built-in demo) -------------------------------------------------------

def read_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 1,797 8x8 digits, pixel values 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 - only this dataset needs sklearn

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return x, d.target.astype(np.int64), [str(i) for i in range(10)]
