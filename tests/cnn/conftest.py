"""Small real datasets written by the tests (IDX, CIFAR batches, NPZ, image folders) from sklearn's digits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.cnn import idx
from workers.cnn.formats import read_digits


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = read_digits()
    return x, y


def write_pngs(folder: Path, x: np.ndarray, y: np.ndarray, classes=None, per_class: int | None = None) -> Path:
    """An image folder: one sub-folder per class of PNGs."""
    from PIL import Image

    counts: dict[int, int] = {}
    for i, (img, label) in enumerate(zip(x, y)):
        if per_class is not None and counts.get(int(label), 0) >= per_class:
            continue
        counts[int(label)] = counts.get(int(label), 0) + 1
        d = folder / (classes[label] if classes else str(label))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(d / f"{i:05d}.png")
    return folder


def write_mnist_dir(folder: Path, gz: bool = True) -> Path:
    """The four MNIST files (digits as 8x8 IDX): train = the first 1500, t10k = the rest."""
    x, y = digits()
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    idx.write(folder / f"train-images-idx3-ubyte{ext}", x[:1500, ..., 0])
    idx.write(folder / f"train-labels-idx1-ubyte{ext}", y[:1500])
    idx.write(folder / f"t10k-images-idx3-ubyte{ext}", x[1500:, ..., 0])
    idx.write(folder / f"t10k-labels-idx1-ubyte{ext}", y[1500:])
    return folder


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    return write_mnist_dir(tmp_path / "mnist")


@pytest.fixture
def png_digits(tmp_path) -> Path:
    x, y = digits()
    return write_pngs(tmp_path / "pngs", x[:300], y[:300], classes=[f"d{i}" for i in range(10)])
