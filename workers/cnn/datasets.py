"""Finding out what a dataset is (``scan``: cheap, at submit) and reading its images (``read_split``).

Formats: ``idx`` (MNIST-style IDX images + labels, .gz too, or a directory holding the four MNIST
files), ``cifar`` (CIFAR-10/100 binary batches: a directory of data_batch_*.bin/test_batch.bin, or
train.bin/test.bin, or one .bin file), ``folder`` (one sub-folder per class), ``npz`` (arrays x, y
and optionally classes), ``digits`` (scikit-learn's 8x8 digits). ``auto`` recognises each of these.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import InvalidParameter
from workers.cnn import formats
from workers.cnn.folder import list_folder, looks_like_folder, scan_headers

FORMATS = ("auto", "idx", "cifar", "folder", "npz", "digits")
FORMAT_NAMES = {"idx": "MNIST-style IDX", "cifar": "CIFAR binary batches", "folder": "image folder",
                "npz": "NPZ arrays", "digits": "scikit-learn digits"}


@dataclass(frozen=True)
class Split:
    """One part (train or test) of a dataset: where its images come from and how many there are."""

    kind: str                       # a format name
    files: tuple[str, ...] = ()     # idx: (images, labels); cifar: batches; npz: (file,); folder: images
    labels: tuple[int, ...] = ()    # folder only: the class of each file
    count: int = 0


@dataclass(frozen=True)
class DatasetInfo:
    """What ``scan`` found: the format, a one-line description, the splits, image shape and class names."""

    format: str
    path: str
    train: Split
    test: Split | None
    shape: tuple[int, int, int]          # (H, W, C) the model sees (after --image-size)
    native_size: tuple[int, int] | None  # (H, W) as stored, None for a folder of mixed sizes
    classes: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        h, w, c = self.shape
        test = f" + {self.test.count} test" if self.test else ""
        return (f"{FORMAT_NAMES[self.format]}: {self.train.count} training{test} images, {h}x{w}x{c}, "
                f"{len(self.classes)} classes")


def detect(path: str) -> str:
    """The format of ``path`` (InvalidParameter if none fits)."""
    if path == "digits":
        return "digits"
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidParameter(f"dataset: {path}: no such file or directory (or give `digits` for the built-in set)")
    if p.is_dir():
        names = {f.name for f in p.iterdir()}
        if any("idx3-ubyte" in n for n in names):
            return "idx"
        if any(n.startswith("data_batch_") and n.endswith(".bin") for n in names) or "train.bin" in names:
            return "cifar"
        if looks_like_folder(p):
            return "folder"
        raise InvalidParameter(f"dataset: {path}: a directory with no IDX files, CIFAR batches or class "
                               "sub-folders of images")
    if p.suffix == ".npz":
        return "npz"
    if p.suffix == ".bin":
        return "cifar"
    try:
        with (gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")) as f:
            head = f.read(4)
    except OSError as e:
        raise InvalidParameter(f"dataset: {path}: cannot be read ({e})") from None
    if len(head) == 4 and head[:3] == b"\x00\x00\x08":
        return "idx"
    raise InvalidParameter(f"dataset: {path}: not a recognised dataset (IDX, CIFAR .bin, .npz, an image folder "
                           "or `digits`); give --format")


def scan(path: str, fmt: str = "auto", *, image_size: int | None = None, test: str | None = None) -> DatasetInfo:
    """Check a dataset without decoding its images (headers, counts, labels); InvalidParameter on a problem."""
    if fmt not in FORMATS:
        raise InvalidParameter(f"--format: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    fmt = detect(path) if fmt == "auto" else fmt
    if fmt != "digits" and not Path(path).expanduser().exists():
        raise InvalidParameter(f"dataset: {path}: no such file or directory")
    train, own_test, native, colour, classes, labels = _SCANNERS[fmt](Path(path).expanduser().absolute()
                                                                      if fmt != "digits" else Path("digits"))
    shape = _shape(native, colour, image_size, path)
    test_split = own_test
    if test is not None:
        # test images are resized (and converted) to what the model sees, as predictions are
        t = scan(test, "auto", image_size=shape[0] if shape[0] == shape[1] else None)
        if t.shape[:2] != shape[:2]:
            raise InvalidParameter(f"--test: {test} holds {'x'.join(map(str, t.shape))} images, the training set "
                                   f"{'x'.join(map(str, shape))} (give --image-size to resize both)")
        if len(t.classes) > len(classes):
            raise InvalidParameter(f"--test: {test} has {len(t.classes)} classes, the training set {len(classes)}")
        test_split = t.train
    if len(classes) < 2 or len(np.unique(labels)) < 2:
        raise InvalidParameter(f"dataset: {path} has a single class ({classes[0] if classes else 'none'}); "
                               "a classifier needs at least 2")
    return DatasetInfo(fmt, str(path), train, test_split, shape, native, classes)


def _shape(native, colour: bool, image_size: int | None, path: str) -> tuple[int, int, int]:
    c = 3 if colour else 1
    if image_size is not None:
        return image_size, image_size, c
    if native is None:
        raise InvalidParameter(f"dataset: {path} holds images of different sizes; give --image-size N to resize "
                               "them all to NxN")
    return native[0], native[1], c


def _class_names(labels: np.ndarray, names: list[str] | None, where: str) -> list[str]:
    k = int(labels.max(initial=0)) + 1
    if names is not None:
        if len(names) < k:
            raise InvalidParameter(f"{where}: labels go up to {k - 1} but only {len(names)} class names are given")
        return names[:k] if len(names) > k else names
    return [str(i) for i in range(k)]


# -- one scanner per format: (train, test, native (H, W) | None, colour, classes, labels) --------------

def _scan_idx(p: Path):
    if p.is_dir():
        def find(prefix, kind):
            hits = sorted(f for f in p.iterdir() if f.name.startswith(prefix) and kind in f.name)
            return hits[0] if hits else None

        images, labels = find("train", "idx3"), find("train", "idx1")
        if images is None or labels is None:
            raise InvalidParameter(f"dataset: {p}: an MNIST directory needs train-images-idx3-ubyte and "
                                   "train-labels-idx1-ubyte (.gz too)")
        test_images, test_labels = find("t10k", "idx3") or find("test", "idx3"), find("t10k", "idx1") or find("test", "idx1")
    else:
        images, labels = p, formats.idx_labels_for(p)
        test_images = test_labels = None
    n, shape, y = formats.check_idx_pair(images, labels)
    train = Split("idx", (str(images), str(labels)), count=n)
    test = None
    if test_images is not None and test_labels is not None:
        tn, tshape, _ = formats.check_idx_pair(test_images, test_labels)
        if tshape != shape:
            raise InvalidParameter(f"{test_images}: {tshape} images, the training set has {shape}")
        test = Split("idx", (str(test_images), str(test_labels)), count=tn)
    return train, test, shape[:2], shape[2] == 3, _class_names(y, None, str(labels)), y


def _scan_cifar(p: Path):
    if p.is_dir():
        train_files, test_files = formats.cifar_files(p)
        if not train_files:
            raise InvalidParameter(f"dataset: {p}: no CIFAR training batches (data_batch_*.bin or train.bin)")
        meta_dir = p
    else:
        train_files, test_files, meta_dir = [p], [], p.parent
    y = formats.cifar_labels(train_files)
    classes = formats.cifar_class_names(meta_dir, int(y.max()) + 1)
    train = Split("cifar", tuple(map(str, train_files)), count=len(y))
    test = Split("cifar", tuple(map(str, test_files)), count=len(formats.cifar_labels(test_files))) if test_files else None
    return train, test, (32, 32), True, classes, y


def _scan_npz(p: Path):
    x, y, names = formats.read_npz(p)
    return Split("npz", (str(p),), count=len(y)), None, x.shape[1:3], x.shape[3] == 3, _class_names(y, names, str(p)), y


def _scan_digits(_p: Path):
    x, y, names = formats.read_digits()
    return Split("digits", count=len(y)), None, (8, 8), False, names, y


def _scan_folder(p: Path):
    listing = list_folder(p)
    if not listing.files:
        raise InvalidParameter(f"dataset: {p}: no image files in its sub-folders")
    sizes, colour = scan_headers(listing.files)
    native = next(iter(sizes)) if len(sizes) == 1 else None
    split = Split("folder", tuple(listing.files), tuple(listing.labels), count=len(listing.files))
    return split, None, native, colour, listing.classes, np.asarray(listing.labels)


_SCANNERS = {"idx": _scan_idx, "cifar": _scan_cifar, "npz": _scan_npz, "digits": _scan_digits, "folder": _scan_folder}


def read_split(split: Split, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The images (uint8 N,H,W,C resized to ``shape``) and labels of an array-format split (not folders)."""
    if split.kind == "idx":
        x, y = formats.read_idx_pair(Path(split.files[0]), Path(split.files[1]))
    elif split.kind == "cifar":
        x, y = formats.read_cifar([Path(f) for f in split.files])
    elif split.kind == "npz":
        x, y, _ = formats.read_npz(Path(split.files[0]))
    elif split.kind == "digits":
        x, y, _ = formats.read_digits()
    else:
        raise ValueError(f"read_split does not read {split.kind} splits")
    return conform(x, shape), y


def conform(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Images converted to ``shape``'s channels and resized (bilinear, as Pillow does for files)."""
    h, w, c = shape
    if x.shape[3] != c:
        x = np.repeat(x, 3, axis=3) if c == 3 else np.round(x @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    if x.shape[1:3] == (h, w):
        return np.ascontiguousarray(x)
    from PIL import Image  # noqa: PLC0415

    out = np.empty((len(x), h, w, c), dtype=np.uint8)
    for i, img in enumerate(x):
        im = Image.fromarray(img[..., 0] if c == 1 else img).resize((w, h), Image.BILINEAR)
        out[i] = np.asarray(im).reshape(h, w, c)
    return out
