"""The routes `kiln predict`, `eval`, `models describe/delete/export` use, asked directly over HTTP:
batch prediction (many images in one multipart request, the same answers as one at a time), the
evaluate route's path checks, describe, the delete pre-check (admin), and export."""
from __future__ import annotations

import io

import numpy as np
import pytest

from tests.api.conftest import register_cnn, register_word2vec
from tests.api.test_api import one_line_error


def _png(seed: int, size=(20, 20)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def cnn(api):
    return register_cnn(api.settings, "routes-cnn")


def test_batch_predict_answers_each_image_in_order_as_the_single_route_does(api, cnn):
    alice = api.tokens["alice"]
    files = [("image", (f"im{i}.png", _png(i), "image/png")) for i in range(12)]
    r = api.post(f"/api/models/{cnn}/batch/predict?top=2", token=alice, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "routes-cnn", "version": 1}
    assert [p["name"] for p in body["predictions"]] == [f"im{i}.png" for i in range(12)]
    for i, p in enumerate(body["predictions"]):
        one = api.post(f"/api/models/{cnn}/predict?top=2", token=alice, files={"image": ("x.png", _png(i))}).json()
        assert (p["label"], p["score"], p["top"]) == (one["label"], one["score"], one["top"])
    assert len({p["score"] for p in body["predictions"]}) > 1  # different images, different answers


def test_batch_predict_refusals_are_one_line(api, cnn):
    alice = api.tokens["alice"]
    url = f"/api/models/{cnn}/batch/predict"
    bad = [("image", ("a.png", _png(1))), ("image", ("b.png", b"not an image")), ("image", ("c.png", b""))]
    assert one_line_error(api.post(url, token=alice, files=bad), 400) == "b.png: not a readable image"
    assert one_line_error(api.post(url, token=alice, files=[("image", ("e.png", b""))]), 400) == "e.png: not a readable image"
    one_line_error(api.post(url, token=alice, data={"other": "x"}), 400, "INVALID_PARAMETER_VALUE")
    too_many = [("image", (f"{i}.png", b"x")) for i in range(1001)]
    one_line_error(api.post(url, token=alice, files=too_many), 400)
    one_line_error(api.post(url, token=alice, files=[("image", ("big.png", b"0" * (11 << 20)))]), 413, "PAYLOAD_TOO_LARGE")
    one_line_error(api.post(url, files=[("image", ("a.png", _png(1)))]), 401)
    w2v = register_word2vec(api.settings, "routes-w2v")
    assert one_line_error(api.post(f"/api/models/{w2v}/batch/predict", token=alice, files=[("image", ("a.png", _png(1)))]),
                          400) == f"{w2v} is a word2vec model; kiln predict needs a cnn (image classifier) model"
    one_line_error(api.post("/api/models/nope:1/batch/predict", token=alice, files=[("image", ("a.png", _png(1)))]), 404)


def test_evaluate_describe_deletable_and_export_routes(api, cnn, tmp_path):
    alice, root = api.tokens["alice"], api.tokens["root"]
    assert "absolute path" in one_line_error(
        api.post(f"/api/models/{cnn}/evaluate", token=alice, json={"dataset": "relative/ds"}), 400)
    one_line_error(api.post(f"/api/models/{cnn}/evaluate", token=alice, json={"dataset": 3}), 400)
    assert one_line_error(api.post(f"/api/models/{cnn}/evaluate", token=alice, json={}), 400).startswith(
        f"give a DATASET to evaluate the cnn model {cnn}")
    one_line_error(api.post(f"/api/models/{cnn}/evaluate", token=alice, json={"dataset": str(tmp_path / "none")}), 400)

    r = api.post(f"/api/models/{cnn}/description", token=alice, json={"description": "small"})
    assert r.status_code == 200 and api.get(f"/api/models/{cnn}", token=alice).json()["description"] == "small"
    one_line_error(api.post(f"/api/models/{cnn}/description", token=alice, json={"description": 1}), 400)

    one_line_error(api.get(f"/api/models/{cnn}/deletable", token=alice), 403, "PERMISSION_DENIED")
    assert api.get(f"/api/models/{cnn}/deletable", token=root).json() == {"name": "routes-cnn", "version": 1,
                                                                         "ref": "routes-cnn:1"}
    assert "name the version" in one_line_error(api.get("/api/models/routes-cnn/deletable", token=root), 400)

    r = api.get(f"/api/models/{cnn}/export?format=safetensors", token=alice)
    assert r.status_code == 200 and r.headers["x-kiln-model-kind"] == "cnn" and len(r.content) > 1000
    one_line_error(api.get(f"/api/models/{cnn}/export?format=word2vec-text", token=alice), 400)
    one_line_error(api.get(f"/api/models/{cnn}/export?format=zip", token=alice), 400)
    exports = [p for p in api.settings.kiln_home.iterdir() if p.name.startswith(".export-")]
    assert exports == []  # each export's folder is removed once sent (or refused)
