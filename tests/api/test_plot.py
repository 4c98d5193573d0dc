"""kiln plot: real pictures from a job's reported progress and from registered models (word2vec and CNN)."""
from __future__ import annotations

import subprocess

import pytest

from services.backends import Backends
from services.jobs import JobService
from tests.api.conftest import KILN, register_cnn, register_word2vec, server_env
from tests.conftest import write_corpus

PNG = b"\x89PNG\r\n\x1a\n"


def kiln(settings, *args):
    return subprocess.run([KILN, *args], env=server_env(settings), capture_output=True, text=True, timeout=120)


def test_plot_a_job_s_curves_and_a_model_s_pictures(settings, tmp_path):
    svc = JobService(Backends(settings))
    job = svc.submit(svc.validate({"name": "plotted", "params": {"corpus": [str(write_corpus(tmp_path / "c.txt", 200))],
                                                                 "min_count": 1}}))
    for step in range(5):  # what a runner reports while training
        svc.b.status.report(job["id"], progress=step / 5, loss=2.0 - step * 0.3, throughput=1000 + step * 10)

    out = tmp_path / "loss.png"
    r = kiln(settings, "plot", job["id"], "--what", "loss", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(PNG)
    assert kiln(settings, "plot", job["id"], "--what", "throughput", "-o", str(tmp_path / "t.png")).returncode == 0

    again = kiln(settings, "plot", job["id"], "--what", "loss", "-o", str(out))
    assert again.returncode == 2 and "exists; add --force" in again.stderr

    ref = register_word2vec(settings, "vecs")
    r = kiln(settings, "plot", ref, "--what", "embeddings", "-o", str(tmp_path / "e.png"), "--words", "20")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "e.png").read_bytes().startswith(PNG)
    wrong = kiln(settings, "plot", ref, "--what", "confusion", "-o", str(tmp_path / "c.png"))
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1 and "CNN" in wrong.stderr

    cnn = register_cnn(settings)
    for what in ("confusion", "filters"):
        r = kiln(settings, "plot", cnn, "--what", what, "-o", str(tmp_path / f"{what}.png"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"{what}.png").read_bytes().startswith(PNG)

    missing = kiln(settings, "plot", "job-0000dead", "--what", "loss", "-o", str(tmp_path / "m.png"))
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and not (tmp_path / "m.png").exists()


@pytest.mark.timeout(120)
def test_the_api_serves_the_same_pictures(api, tmp_path):
    ref = register_word2vec(api.settings, "mapped")
    r = api.get(f"/api/plot/{ref}", params={"what": "embeddings", "words": 20}, token=api.tokens["alice"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.startswith(PNG)
    bad = api.get(f"/api/plot/{ref}", params={"what": "teapot"}, token=api.tokens["alice"])
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_PARAMETER_VALUE"
