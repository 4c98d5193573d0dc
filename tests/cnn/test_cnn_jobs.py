"""CNN jobs on a real local Ray cluster through the dispatcher: a 2-worker DDP job, and a job whose worker
is SIGKILLed after its first epoch checkpoint, retried, resuming from that epoch."""
from __future__ import annotations

import os
import signal
import time

import pytest
import ray

from services.backends import Backends
from services.jobs import JobService
from services.models import ModelService
from workers.cnn.job import CnnJob

pytestmark = pytest.mark.timeout(400)


def cnn(name: str, **over) -> dict:
    return {"kind": "cnn", "name": name, "params": {"dataset": "digits", **over.pop("params", {})}, **over}


@pytest.fixture
def svc(cluster_settings, dispatcher):
    return JobService(Backends(cluster_settings))


def logs(svc, job_id: str) -> list[str]:
    return [e["msg"] for e in svc.logs(job_id)]


def wait_until(what, predicate, timeout_s: float = 180):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_two_worker_ddp_job_trains_on_both_bundles(svc):
    view = svc.submit(svc.validate(cnn("ddp", params={"epochs": 4}, resources={"workers": 2})))
    final = svc.wait(view["id"], timeout_s=300)
    lines = logs(svc, view["id"])
    assert final["state"] == "SUCCEEDED", (final["error"], lines[-4:])
    assert any("2 worker(s) x 1 thread(s), backend torch-cpu" in m for m in lines)
    status = svc.b.status.get(view["id"])
    assert [p["worker"] for p in status["placement"]] == [0, 1]  # both ranks reported where they ran
    mv = ModelService(svc.b).show("ddp:1")
    assert mv["params"]["workers"] == 2 and mv["metrics"]["test_accuracy"] > 0.8
    assert mv["lineage"]["dataset_fingerprint"].startswith("sha256:")
    assert [h["step"] for h in mv["history"]["val_accuracy"]] == [1, 2, 3, 4]


def test_ddp_workers_train_the_same_model_as_one_worker(ray_cluster, tmp_path):
    """Two DDP ranks, each on half of every global batch, end with the weights one worker gets from the
    whole batches (gradients are averaged over the ranks): the data-parallel run is the same training."""
    from safetensors.torch import load_file
    import torch

    from shared.specs import build_spec
    from workers.cnn.precheck import resolve_cnn_spec
    from workers.contract import LocalContext, run_trainer

    weights = {}
    for workers in (1, 2):
        spec, _ = resolve_cnn_spec(build_spec(cnn("same", params={"epochs": 2, "augment": [], "batch_size": 256},
                                                  resources={"workers": workers})))
        result = run_trainer(CnnJob(LocalContext(spec, tmp_path / f"w{workers}", uses_ray=True)))
        assert result.params["workers"] == workers
        weights[workers] = load_file(str(tmp_path / f"w{workers}" / "model" / "model.safetensors"))
    for name, w in weights[1].items():
        torch.testing.assert_close(weights[2][name], w, rtol=1e-3, atol=1e-4)


def test_killed_worker_job_is_retried_and_resumes_from_its_epoch_checkpoint(svc, cluster_settings):
    view = svc.submit(svc.validate(cnn("resume", params={"epochs": 40}, max_retries=2,
                                       checkpoint_interval_s=0.5)))
    job = view["id"]
    wait_until("the first epoch checkpoint", lambda: any("checkpoint saved" in m for m in logs(svc, job)))
    live = svc.get(job)
    assert live["state"] == "RUNNING" and live["epoch"] and int(live["epoch"]) < 40
    worker = ray.get_actor(CnnJob.worker_name(job, 1, 0), namespace=cluster_settings.namespace)
    os.kill(ray.get(worker.pid.remote(), timeout=60), signal.SIGKILL)  # the real process, mid-training
    final = svc.wait(job, timeout_s=300)
    lines = logs(svc, job)
    assert final["state"] == "SUCCEEDED", (final["error"], lines[-4:])
    assert final["attempt"] == 2
    resumed = [m for m in lines if "resuming from the checkpoint of epoch" in m]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 1, lines
    assert any("reusing the images decoded by an earlier attempt" in m for m in lines)
    assert final["metrics"]["test_accuracy"] > 0.95


def test_large_image_folders_are_decoded_once_in_shards_on_the_workers(ray_cluster, tmp_path, monkeypatch):
    from shared.specs import build_spec
    from tests.cnn.conftest import digits, write_pngs
    from workers.cnn import prepare
    from workers.cnn.folder import decode
    from workers.cnn.precheck import resolve_cnn_spec
    from workers.contract import LocalContext

    import numpy as np

    x, y = digits()
    folder = write_pngs(tmp_path / "pngs", x[:200], y[:200])
    monkeypatch.setattr(prepare, "PARALLEL_DECODE_MIN", 100)  # 200 files: both workers take a shard
    spec, _ = resolve_cnn_spec(build_spec(cnn("folder", params={"dataset": str(folder), "epochs": 1,
                                                                "arch": "mlp"}, resources={"workers": 2})))
    job = CnnJob(LocalContext(spec, tmp_path / "job", uses_ray=True))
    calls = []
    real_call = None
    try:
        job._start_workers()
        real_call = job.workers.call
        job.workers.call = lambda rank, method, *a: (calls.append((rank, method)), real_call(rank, method, *a))[1]
        job._start_workers = lambda: None  # keep the instrumented workers
        job.prepare()
    finally:
        job.close()
    assert sorted(r for r, m in calls if m == "decode_rows") == [0, 1]
    images = np.load(tmp_path / "job" / "data" / "images.npy")
    files = prepare.folder_files(job.info)
    assert len(images) == 200 and all(np.array_equal(images[i], decode(f, (8, 8), 1)) for i, f in enumerate(files))
