"""KILN_ARTIFACTS as a URL: s3:// against a real S3-compatible server (moto's, on loopback, started
here) and file://; and a whole job on the embedded stack whose model lives in S3 and is queried back."""
from __future__ import annotations

import json
import os
import socket

import pytest

from shared.artifacts import ArtifactStore, fetch
from shared.errors import InvalidParameter, NotFound
from tests.test_cli import run

BUCKET = "kiln-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, with one bucket; fsspec pointed at it."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import boto3
    import fsspec

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
    yield endpoint
    fsspec.config.conf["s3"].pop("endpoint_url", None)
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_s3_store_uploads_what_jobs_write_and_downloads_it_back(s3_endpoint, tmp_path):
    import boto3

    store = ArtifactStore(f"s3://{BUCKET}/unit", staging=tmp_path / "staging")
    folder = store.job_dir("job-1", "model")
    assert folder.is_relative_to(tmp_path / "staging")  # jobs write locally...
    (folder / "vectors.bin").write_bytes(b"\x00\x01vectors")
    (folder / "vocab.json").write_text('["a"]')
    uri = store.uri(folder / "vectors.bin")  # ...and the store uploads what they register
    store.uri(folder / "vocab.json")
    assert uri == f"s3://{BUCKET}/unit/jobs/job-1/model/vectors.bin"
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(Bucket=BUCKET, Key="unit/jobs/job-1/model/vectors.bin")
    assert head["ContentLength"] == len(b"\x00\x01vectors")

    local = ArtifactStore.local_path(uri)
    assert local.read_bytes() == b"\x00\x01vectors" and not local.is_relative_to(tmp_path)
    whole = fetch(f"s3://{BUCKET}/unit/jobs/job-1/model")  # a model folder, as the query commands load it
    assert sorted(p.name for p in whole.iterdir()) == ["vectors.bin", "vocab.json"]
    with pytest.raises(NotFound):
        ArtifactStore.local_path(f"s3://{BUCKET}/unit/jobs/job-1/model/missing.bin")


def test_file_url_store(tmp_path):
    store = ArtifactStore((tmp_path / "arts").as_uri())
    assert store.root == tmp_path / "arts" and store.url is None
    f = store.job_dir("job-2", "model") / "w.safetensors"
    f.write_bytes(b"w")
    uri = store.uri(f)
    assert uri == f.as_uri() and ArtifactStore.local_path(uri) == f


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(InvalidParameter, match="unknown URL scheme nope://"):
        ArtifactStore("nope://bucket/x")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_job_with_its_model_in_s3(s3_endpoint, tmp_path, small_corpus):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS", "RAY_AUTH"))}
    env.update(KILN_HOME=str(home), KILN_ARTIFACTS=f"s3://{BUCKET}/e2e", FSSPEC_S3_ENDPOINT_URL=s3_endpoint)
    try:
        r = run(["submit", "word2vec", str(small_corpus), "--name", "in-s3", "--dim", "16", "--epochs", "1",
                 "--min-count", "2", "--follow", "--json"], env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        shown = json.loads(run(["models", "show", "in-s3", "--json"], env).stdout)
        uris = list(shown["artifacts"].values())
        assert uris and all(u.startswith(f"s3://{BUCKET}/e2e/jobs/") for u in uris), uris
        similar = run(["similar", "in-s3", "cat1", "--json"], env)
        assert similar.returncode == 0, similar.stderr
        assert len(json.loads(similar.stdout)) > 0
    finally:
        run(["down", "--force"], env)
