"""`kiln submit cnn`, `kiln predict`, `kiln eval MODEL DATASET` and `kiln models export` as a user runs them
(subprocesses) against real Redis, SQLite and a local Ray cluster; bad input is one line, nothing stored."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.registry import Database
# each test that uses env runs twice: directly and through a real `kiln serve` (tests/cli_sides.py)
from tests.cli_sides import cli_side, direct_only, env, settings, through_server  # noqa: F401
from tests.cnn.conftest import digits, write_pngs

KILN = str(Path(sys.executable).parent / "kiln")
pytestmark = pytest.mark.timeout(400)


def run(args, env, timeout=300, cwd=None):
    return subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    x, y = digits()
    (tmp / "one").mkdir()
    np.savez(tmp / "one" / "single.npz", x=x[:20], y=np.zeros(20, dtype=np.int64))
    (tmp / "magic").mkdir()
    (tmp / "magic" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 16)
    (tmp / "magic" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    mixed = write_pngs(tmp / "mixed", x[:20], y[:20])
    from PIL import Image

    Image.new("L", (9, 9)).save(mixed / "3" / "odd.png")
    (tmp / "junk.safetensors").write_text("not safetensors")
    return {"single": tmp / "one" / "single.npz", "magic": tmp / "magic", "mixed": mixed,
            "junk": tmp / "junk.safetensors"}


@pytest.mark.parametrize("args,needle", [
    (["nope"], "dataset: nope: no such file or directory"),
    (["digits", "--arch", "vgg-nope"], "--arch: unknown architecture 'vgg-nope'"),
    (["digits", "--image-size", "0"], "--image-size must be at least 1"),
    (["digits", "--augment", "rotate"], "--augment: unknown augmentation 'rotate'"),
    (["digits", "--arch", "resnet", "--depth", "10"], "--depth: a CIFAR ResNet has depth 6n+2"),
    (["digits", "--weights", "none.safetensors"], "--weights: none.safetensors: no such file"),
    (["digits", "--weights", "{junk}"], "not a readable safetensors file"),
    (["digits", "--arch", "alexnet"], "--arch alexnet cannot take 8x8x1 images"),
    (["{single}"], "has a single class"),
    (["{magic}"], "wrong magic number"),
    (["{mixed}"], "different sizes; give --image-size"),
])
def test_bad_submit_is_one_line_exit_2_and_stores_nothing(args, needle, env, tmp_path, settings):
    paths = _bad_inputs(tmp_path)
    args = [a.format(**paths) for a in args]
    line = one_line_error(run(["submit", "cnn", *args], env), 2)
    assert needle in line, line
    assert not Path(settings.db_url.removeprefix("sqlite:///")).exists() or Database(settings.db_url).jobs.list() == []


def test_bad_submit_names_relative_paths_as_the_direct_path_does(env, tmp_path):
    """A dataset or weights file is named as given, a file found inside a dataset folder in full (through a
    server, which is sent absolute paths, too)."""
    _bad_inputs(tmp_path)
    for args, line in ((["one/single.npz"], "dataset: one/single.npz has a single class (0)"),
                       (["mixed/"], "dataset: mixed/ holds images of different sizes"),
                       (["./magic"], f"{tmp_path}/magic/train-images-idx3-ubyte: not an IDX file"),
                       (["digits", "--weights", "junk.safetensors"], "--weights: junk.safetensors: not a readable")):
        assert one_line_error(run(["submit", "cnn", *args], env, cwd=tmp_path), 2).startswith(f"error: {line}")


@direct_only  # trains a real CNN on Ray (minutes): not doubled
def test_cnn_end_to_end(env, cluster_settings, dispatcher, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    r = run(["submit", "cnn", "digits", "--name", "digits-cnn", "--epochs", "6", "--follow", "--json"], env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "SUCCEEDED" and out["model"] == {"name": "digits-cnn", "version": 1}, out
    assert "dataset: scikit-learn digits: 1797 training images, 16x16x1, 10 classes" not in r.stderr  # --json: quiet
    status = json.loads(run(["status", out["id"], "--json"], env).stdout)
    assert status["epoch"] in (6, "6") and status["throughput_unit"] == "images/s"
    shown = json.loads(run(["models", "show", "digits-cnn", "--json"], env).stdout)
    assert shown["kind"] == "cnn" and shown["params"]["arch"] == "lenet5" and shown["params"]["epochs"] == 6
    assert shown["params"]["augment"] == ["shift", "affine"] and shown["params"]["lr"] == 0.1
    assert shown["metrics"]["test_accuracy"] > 0.9 and "test_accuracy.7" in shown["metrics"]
    assert shown["lineage"]["dataset_fingerprint"].startswith("sha256:")
    assert {"weights", "card", "evaluation", "model"} <= set(shown["artifacts"])

    x, y = digits()
    pngs = write_pngs(tmp_path / "pngs", x[-30:], y[-30:])
    r = run(["predict", "digits-cnn", str(pngs), "--top", "3", "--json"], env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 30 and set(rows[0]) == {"path", "label", "score", "top"} and len(rows[0]["top"]) == 3
    assert np.mean([row["label"] == Path(row["path"]).parent.name for row in rows]) > 0.85
    human = run(["predict", "digits-cnn", str(next(pngs.rglob("*.png")))], env)
    assert human.returncode == 0 and len(human.stdout.splitlines()) == 1

    np.savez(tmp_path / "held.npz", x=x[-200:], y=y[-200:])
    ev = json.loads(run(["eval", "digits-cnn", str(tmp_path / "held.npz"), "--json"], env).stdout)
    assert ev["count"] == 200 and np.array(ev["confusion"]).sum() == 200 and ev["accuracy"] > 0.9
    assert run(["eval", "digits-cnn", str(tmp_path / "held.npz")], env).returncode == 0

    onnx_path = tmp_path / "digits.onnx"
    r = run(["models", "export", "digits-cnn", "--format", "onnx", "-o", str(onnx_path)], env)
    assert r.returncode == 0, r.stderr
    from workers.cnn.inference import Classifier

    clf = Classifier.load(Path(shown["artifacts"]["card"].removeprefix("file://")).parent)
    batch = clf.preprocess([str(p) for p in sorted(pngs.rglob("*.png"))])
    got = ort.InferenceSession(str(onnx_path)).run(None, {"image": batch.numpy()})[0]
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(got, clf.module(batch).numpy(), rtol=1e-4, atol=1e-4)
    ts = tmp_path / "digits.pt"
    assert run(["models", "export", "digits-cnn", "--format", "torchscript", "-o", str(ts)], env).returncode == 0
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(str(ts))(batch).numpy(), clf.module(batch).numpy(), atol=1e-5)

    # wrong kind of model, wrong kind of file: one line each
    db = Database(cluster_settings.db_url)
    vec = tmp_path / "w2v"
    vec.mkdir()
    (vec / "vectors.txt").write_text("1 2\nhello 0.1 0.2\n")
    db.models.register_version(name="words", kind="word2vec", params={}, metrics={}, lineage={},
                               artifacts={"vectors": vec.joinpath("vectors.txt").as_uri()})
    assert "words:1 is a word2vec model" in one_line_error(run(["predict", "words", str(pngs)], env), 2)
    assert "not word2vec" in one_line_error(run(["similar", "digits-cnn", "seven"], env), 2)
    (tmp_path / "notes.png").write_text("not an image")
    assert "not a readable image" in one_line_error(run(["predict", "digits-cnn", str(tmp_path / "notes.png")], env), 2)
    assert "give a DATASET to evaluate the cnn model" in one_line_error(run(["eval", "digits-cnn"], env), 2)
    assert "no such file" in one_line_error(run(["eval", "digits-cnn", str(tmp_path / "nope.npz")], env), 2)
    np.savez(tmp_path / "letters.npz", x=x[:20], y=np.arange(20) % 12 + 20)  # classes "20".."31": not the model's
    assert "is not one of digits-cnn:1's classes" in one_line_error(
        run(["eval", "digits-cnn", str(tmp_path / "letters.npz")], env), 2)
    assert "a cnn model exports as onnx" in one_line_error(
        run(["models", "export", "digits-cnn", "--format", "word2vec-text", "-o", str(tmp_path / "v.txt")], env), 2)

    # through a real `kiln serve` over these stores, the commands above print the same (training not doubled)
    one_png = str(next(pngs.rglob("*.png")))
    with through_server(cluster_settings, env, tmp_path) as remote:
        for args in (["status", out["id"]], ["status", out["id"], "--json"], ["models", "show", "digits-cnn"],
                     ["models", "show", "digits-cnn", "--json"],
                     ["predict", "digits-cnn", str(pngs), "--top", "3", "--json"],
                     ["predict", "digits-cnn", one_png], ["eval", "digits-cnn", str(tmp_path / "held.npz"), "--json"],
                     ["eval", "digits-cnn", str(tmp_path / "held.npz")], ["predict", "words", str(pngs)],
                     ["similar", "digits-cnn", "seven"], ["predict", "digits-cnn", str(tmp_path / "notes.png")],
                     ["eval", "digits-cnn"], ["eval", "digits-cnn", str(tmp_path / "nope.npz")],
                     ["eval", "digits-cnn", str(tmp_path / "letters.npz")],
                     ["models", "export", "digits-cnn", "--format", "word2vec-text", "-o", str(tmp_path / "v.txt")]):
            here, there = run(args, env), run(args, remote)
            assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), args
