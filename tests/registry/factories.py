"""Short calls with plausible defaults for the registry tests; keyword overrides replace them."""
from __future__ import annotations


def register(db, name="w2v", kind="word2vec", **overrides):
    """A register_version call with plausible defaults; keyword overrides replace them."""
    args = dict(
        name=name, kind=kind,
        params={"dim": 100, "window": 5, "sg": True, "model": "skipgram"},
        metrics={"analogy_accuracy": 0.5, "loss": 1.25},
        artifacts={"vectors": "file:///tmp/vectors.bin", "vocab": "file:///tmp/vocab.json"},
        lineage={"dataset_fingerprint": "sha256:abc", "kiln_version": "0.1.0", "git_commit": "deadbeef"},
    )
    args.update(overrides)
    return db.models.register_version(**args)


def create_job(db, job_id="job-1", *, max_retries=2, user="ada", **overrides):
    args = dict(job_id=job_id, name="w2v", kind="word2vec", user=user, spec_json='{"kind": "word2vec"}',
                priority=0, max_retries=max_retries)
    args.update(overrides)
    return db.jobs.create(**args)
