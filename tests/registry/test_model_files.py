"""Deleting a version's files removes only files inside a job's folder of the artifact store."""
from __future__ import annotations

from services.model_files import remove_artifacts, size_of


def test_only_files_under_jobs_folders_of_the_store_are_removed(tmp_path):
    root = tmp_path / "artifacts"
    model = root / "jobs" / "job-1" / "model"
    model.mkdir(parents=True)
    (model / "vectors.safetensors").write_bytes(b"x" * 100)
    (model / "vocab.json").write_bytes(b"y" * 10)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    shared = root / "jobs" / "job-2" / "model" / "shared.bin"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"z")
    uris = [(model / "vectors.safetensors").as_uri(), str(model / "vocab.json"), outside.as_uri(), root.as_uri(),
            (root / "jobs").as_uri(), (root / "jobs" / "job-1" / ".." / ".." / ".." / "precious.txt").as_uri(),
            shared.as_uri(), "s3://bucket/jobs/job-1/model/x"]
    assert size_of(model.as_uri()) == 110 and size_of((model / "gone").as_uri()) is None
    out = remove_artifacts(uris, root, still_used={shared.as_uri()})
    assert sorted(out.files) == sorted([str(model / "vectors.safetensors"), str(model / "vocab.json")])
    assert out.bytes == 110 and not model.exists()  # the emptied model folder goes too
    assert outside.read_text() == "keep me" and shared.exists() and (root / "jobs" / "job-1").is_dir()
    assert set(out.kept) == set(uris[2:])
