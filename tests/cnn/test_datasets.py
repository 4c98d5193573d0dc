"""Dataset formats, auto detection and the bad inputs each one must refuse with one clear line."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from shared.errors import InvalidParameter
from tests.cnn.conftest import digits, write_mnist_dir, write_pngs
from workers.cnn import idx
from workers.cnn.datasets import detect, read_split, scan
from workers.cnn.prepare import load_split, prepare_local


def test_idx_folder_plain_and_gz_is_detected_and_read(tmp_path):
    x, y = digits()
    for gz in (True, False):
        d = write_mnist_dir(tmp_path / f"mnist-{gz}", gz=gz)
        info = scan(str(d))
        assert info.format == "idx" and info.train.count == 1500 and info.test.count == len(y) - 1500
        assert info.description == "MNIST-style IDX: 1500 training + 297 test images, 8x8x1, 10 classes"
        tx, ty = read_split(info.train, info.shape)
        assert tx.shape == (1500, 8, 8, 1) and np.array_equal(tx, x[:1500]) and np.array_equal(ty, y[:1500])


def test_single_idx_file_finds_its_labels(mnist_dir):
    info = scan(str(mnist_dir / "train-images-idx3-ubyte.gz"))
    assert info.format == "idx" and info.test is None and info.train.count == 1500


def test_idx_wrong_magic(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(InvalidParameter, match="wrong magic number"):
        scan(str(bad), "idx")


def test_idx_truncated_body_plain_and_gz(tmp_path):
    x, y = digits()
    for name, opener in (("a-images-idx3-ubyte", open), ("b-images-idx3-ubyte.gz", gzip.open)):
        full = tmp_path / ("full-" + name)
        idx.write(full, x[:100, ..., 0])
        raw = opener(full, "rb").read()
        with opener(tmp_path / name, "wb") as f:
            f.write(raw[:-10])
        idx.write(tmp_path / name.replace("images", "labels").replace("idx3", "idx1"), y[:100])
        with pytest.raises(InvalidParameter, match="truncated IDX body"):
            scan(str(tmp_path / name))


def test_image_and_label_counts_differ(tmp_path):
    x, y = digits()
    idx.write(tmp_path / "train-images-idx3-ubyte", x[:100, ..., 0])
    idx.write(tmp_path / "train-labels-idx1-ubyte", y[:99])
    with pytest.raises(InvalidParameter, match="holds 100 images but train-labels-idx1-ubyte holds 99 labels"):
        scan(str(tmp_path))


def test_single_class_is_refused(tmp_path):
    x, _ = digits()
    np.savez(tmp_path / "one.npz", x=x[:50], y=np.zeros(50, dtype=np.int64))
    with pytest.raises(InvalidParameter, match="single class"):
        scan(str(tmp_path / "one.npz"))


def test_npz_layouts_and_pickle_refused(tmp_path):
    x, y = digits()
    np.savez(tmp_path / "nchw.npz", x=x[:60].transpose(0, 3, 1, 2).astype(np.float32) / 255, y=y[:60],
             classes=np.array([f"c{i}" for i in range(10)]))
    info = scan(str(tmp_path / "nchw.npz"))
    assert info.format == "npz" and info.shape == (8, 8, 1) and info.classes[0] == "c0"
    got, _ = read_split(info.train, info.shape)
    assert np.abs(got.astype(int) - x[:60].astype(int)).max() <= 1
    np.savez(tmp_path / "obj.npz", x=np.array([x[0], "a"], dtype=object), y=y[:2])
    with pytest.raises(InvalidParameter, match="without pickle"):
        scan(str(tmp_path / "obj.npz"))
    np.savez(tmp_path / "mismatch.npz", x=x[:10], y=y[:9])
    with pytest.raises(InvalidParameter, match="'x' holds 10 images but 'y' holds 9 labels"):
        scan(str(tmp_path / "mismatch.npz"))


def test_cifar_batches(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar"
    d.mkdir()
    for name, n in (("data_batch_1.bin", 40), ("data_batch_2.bin", 30), ("test_batch.bin", 20)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        pix = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        np.concatenate([labels[:, None], pix], axis=1).tofile(d / name)
    (d / "batches.meta.txt").write_text("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                   "horse", "ship", "truck"]) + "\n")
    info = scan(str(d))
    assert info.format == "cifar" and info.train.count == 70 and info.test.count == 20 and info.shape == (32, 32, 3)
    assert info.classes[9] == "truck"
    x, y = read_split(info.train, info.shape)
    raw = np.fromfile(d / "data_batch_1.bin", dtype=np.uint8).reshape(-1, 3073)
    assert np.array_equal(x[0], raw[0, 1:].reshape(3, 32, 32).transpose(1, 2, 0)) and y[1] == 1
    (d / "data_batch_3.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidParameter, match="not a whole number of CIFAR records"):
        scan(str(d))


def test_image_folder_sizes_colour_and_bad_files(tmp_path, png_digits):
    info = scan(str(png_digits))
    assert info.format == "folder" and info.shape == (8, 8, 1) and info.classes == [f"d{i}" for i in range(10)]
    assert info.description.startswith("image folder: 300 training images")
    from PIL import Image

    Image.new("RGB", (12, 10), (255, 0, 0)).save(png_digits / "d3" / "big.png")
    with pytest.raises(InvalidParameter, match="different sizes; give --image-size"):
        scan(str(png_digits))
    info = scan(str(png_digits), image_size=16)
    assert info.shape == (16, 16, 3)  # one colour image makes the set RGB
    (png_digits / "d4" / "notes.png").write_text("not an image")
    (png_digits / "d5" / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(InvalidParameter, match=r"not a readable image \(and 1 more bad files\)"):
        scan(str(png_digits), image_size=16)


def test_auto_detection_errors(tmp_path):
    with pytest.raises(InvalidParameter, match="no such file"):
        detect(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameter, match="no IDX files, CIFAR batches or class sub-folders"):
        detect(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidParameter, match="not a recognised dataset"):
        detect(str(tmp_path / "notes.txt"))


def test_prepare_splits_normalises_and_fingerprints(tmp_path, png_digits):
    info = scan(str(png_digits))
    meta = prepare_local(tmp_path / "data", info, val_split=0.2, seed=3)
    assert meta["n_train"] == 240 and meta["n_heldout"] == 60 and meta["fingerprint"].startswith("sha256:")
    x, y = load_split(tmp_path / "data", "train")
    assert x.dtype == np.uint8 and x.shape == (240, 8, 8, 1)
    assert meta["mean"][0] == pytest.approx(x.mean() / 255, rel=1e-6)
    again = prepare_local(tmp_path / "data2", info, val_split=0.2, seed=3)
    assert again["fingerprint"] == meta["fingerprint"]  # same images, same fingerprint
    hx, hy = load_split(tmp_path / "data2", "heldout")
    assert np.array_equal(hy, load_split(tmp_path / "data", "heldout")[1])  # seeded split
    ref_x, ref_y = digits()
    assert (np.sort(np.concatenate([y, hy])) == np.sort(ref_y[:300])).all()


def test_separate_test_set_and_cifar100_fine_labels(tmp_path):
    x, y = digits()
    np.savez(tmp_path / "train.npz", x=x[:1000], y=y[:1000])
    np.savez(tmp_path / "test.npz", x=x[1000:1200], y=y[1000:1200])
    info = scan(str(tmp_path / "train.npz"), test=str(tmp_path / "test.npz"))
    assert info.train.count == 1000 and info.test.count == 200
    np.savez(tmp_path / "big.npz", x=np.zeros((20, 12, 12), np.uint8), y=np.arange(20) % 2)
    assert scan(str(tmp_path / "train.npz"), test=str(tmp_path / "big.npz")).test.count == 20  # resized to 8x8
    np.savez(tmp_path / "wide.npz", x=np.zeros((20, 8, 10), np.uint8), y=np.arange(20) % 2)
    with pytest.raises(InvalidParameter, match="--test: .* holds 8x8x1 images, the training set 8x10x1"):
        scan(str(tmp_path / "wide.npz"), test=str(tmp_path / "train.npz"))
    rec = np.zeros((30, 3074), np.uint8)
    rec[:, 0], rec[:, 1] = np.arange(30) % 3, np.arange(30) % 7  # coarse, fine
    rec.tofile(tmp_path / "train.bin")
    info = scan(str(tmp_path / "train.bin"))
    assert info.format == "cifar" and len(info.classes) == 7
    assert list(read_split(info.train, info.shape)[1][:8]) == [0, 1, 2, 3, 4, 5, 6, 0]
