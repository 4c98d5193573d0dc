"""The HTTP API against a real `kiln serve` process, real Redis, real SQLite and real tokens.

Bad requests get the right status code and one line ({"error": {"code", "message"}}), and leave
nothing behind: no job row in SQL, nothing in the Redis queue.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import redis
import requests

from services.api.auth import VERIFIED_S
from services.registry import Database
from shared import keys
from tests.api.conftest import (KILN, create_tokens, make_settings, register_cnn, register_word2vec, running_server,
                               server_env)
from tests.conftest import write_corpus

pytestmark = pytest.mark.timeout(120)


def spec(corpus, **over) -> dict:
    return {"kind": "word2vec", "name": over.pop("name", "api"),
            "params": {"corpus": [str(corpus)], "dim": 8, "epochs": 1, "min_count": 1, **over.pop("params", {})},
            **over}


def stored(api) -> tuple[int, int]:
    """(job rows in SQL, jobs in the Redis queue)."""
    with Database(api.settings.db_url) as db:
        rows = len(db.jobs.list())
    return rows, redis.Redis.from_url(api.settings.redis_url).zcard(keys.QUEUE)


def one_line_error(resp: requests.Response, status: int, code: str | None = None) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"code", "message"}
    assert err["message"] and "\n" not in err["message"] and "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err["message"]


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.txt", sentences=300)


# -- authentication --------------------------------------------------------------------------------
def test_missing_wrong_or_revoked_token_is_401(api):
    before = stored(api)
    msg = one_line_error(api.get("/api/jobs"), 401, "UNAUTHENTICATED")
    assert "bearer token" in msg
    assert api.get("/api/jobs").headers["www-authenticate"] == "Bearer"
    one_line_error(api.get("/api/jobs", token="kiln_not-a-real-token"), 401, "UNAUTHENTICATED")
    one_line_error(requests.get(api.url + "/api/jobs", headers={"Authorization": "Basic abc"}), 401)
    one_line_error(api.post("/api/jobs", json={"name": "x"}), 401)
    assert stored(api) == before
    assert api.get("/api/jobs", token=api.tokens["alice"]).status_code == 200


def test_tokens_cli_prints_the_token_alone_on_its_last_line_and_stores_only_a_hash(api):
    env = server_env(api.settings)
    out = subprocess.run([KILN, "tokens", "create", "--user", "carol"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("kiln_") and " " not in token and len(token) > 40
    assert token.encode() not in (api.settings.kiln_home / "registry.db").read_bytes()
    assert api.get("/api/jobs", token=token).status_code == 200

    listed = subprocess.run([KILN, "tokens", "list", "--user", "carol", "--json"], env=env, capture_output=True,
                            text=True)
    rows = json.loads(listed.stdout)
    assert [r["user"] for r in rows] == ["carol"] and rows[0]["active"] and token not in listed.stdout

    revoked = subprocess.run([KILN, "tokens", "revoke", "--user", "carol"], env=env, capture_output=True, text=True)
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout
    # the server takes a token it found active as active for at most VERIFIED_S (1 s) more
    deadline = time.monotonic() + VERIFIED_S + 5
    while api.get("/api/jobs", token=token).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    one_line_error(api.get("/api/jobs", token=token), 401, "UNAUTHENTICATED")

    bad = subprocess.run([KILN, "tokens", "create", "--user", "no/slash"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --user:") and len(bad.stderr.splitlines()) == 1


# -- jobs: owners ------------------------------------------------------------------------------------
def test_a_job_belongs_to_its_token_user_and_only_the_owner_or_an_admin_may_act_on_it(api, corpus):
    alice, bob, root = api.tokens["alice"], api.tokens["bob"], api.tokens["root"]
    r = api.post("/api/jobs", token=alice, json=spec(corpus))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["user"] == "alice" and job["state"] == "QUEUED" and job["id"].startswith("job-")
    # the same object as `kiln status --json`
    assert api.get(f"/api/jobs/{job['id']}", token=bob).json()["id"] == job["id"]
    assert [j["id"] for j in api.get("/api/jobs?user=alice", token=bob).json()] == [job["id"]]
    assert api.get("/api/jobs?user=bob", token=bob).json() == []

    msg = one_line_error(api.post(f"/api/jobs/{job['id']}/cancel", token=bob), 403, "PERMISSION_DENIED")
    assert "belongs to alice" in msg
    assert api.get(f"/api/jobs/{job['id']}", token=alice).json()["state"] == "QUEUED"
    cancelled = api.post(f"/api/jobs/{job['id']}/cancel", token=alice)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"

    one_line_error(api.post(f"/api/jobs/{job['id']}/retry", token=bob), 403, "PERMISSION_DENIED")
    again = api.post(f"/api/jobs/{job['id']}/retry", token=root)
    assert again.status_code == 201 and again.json()["id"] != job["id"]
    assert again.json()["user"] == "root"  # a retry is a new job of whoever asked for it
    assert api.post(f"/api/jobs/{again.json()['id']}/cancel", token=root).json()["state"] == "CANCELLED"

    # a retry of a live job is refused with the job service's own rule
    live = api.post("/api/jobs", token=alice, json=spec(corpus)).json()
    msg = one_line_error(api.post(f"/api/jobs/{live['id']}/retry", token=alice), 400, "INVALID_PARAMETER_VALUE")
    assert "only FAILED or CANCELLED" in msg
    api.post(f"/api/jobs/{live['id']}/cancel", token=alice)


def test_a_spec_naming_another_user_is_refused(api, corpus):
    before = stored(api)
    msg = one_line_error(api.post("/api/jobs", token=api.tokens["bob"], json={**spec(corpus), "user": "alice"}), 400)
    assert msg.startswith("user:")
    assert stored(api) == before


def test_unknown_job_is_404(api):
    one_line_error(api.get("/api/jobs/job-00000000", token=api.tokens["alice"]), 404, "RESOURCE_DOES_NOT_EXIST")
    one_line_error(api.post("/api/jobs/job-00000000/cancel", token=api.tokens["alice"]), 404)


# -- bad input: right status, one line, nothing stored ------------------------------------------------
@pytest.mark.parametrize("body, status, code, says", [
    (b"{not json", 400, "MALFORMED_JSON", "not valid JSON"),
    (b"", 400, "MALFORMED_JSON", "JSON object"),
    (b"[1, 2]", 400, "INVALID_PARAMETER_VALUE", "JSON object"),
    (b'"word2vec"', 400, "INVALID_PARAMETER_VALUE", "JSON object"),
])
def test_malformed_or_wrong_type_body(api, body, status, code, says):
    before = stored(api)
    r = api.post("/api/jobs", token=api.tokens["alice"], data=body, headers={"Content-Type": "application/json"})
    assert says in one_line_error(r, status, code)
    assert stored(api) == before


@pytest.mark.parametrize("change, says", [
    ({"params": {"dim": "abc"}}, "dim"),
    ({"params": {"epochs": 0}}, "epochs"),
    ({"priority": [1]}, "priority"),
    ({"params": {"corpus": ["/no/such/corpus.txt"]}}, "no such file"),
    ({"kind": "gpt"}, "kind"),
    ({"surprise": 1}, "surprise"),
])
def test_invalid_spec_is_400_with_the_cli_s_message(api, corpus, change, says):
    before = stored(api)
    body = spec(corpus)
    for k, v in change.items():
        body[k] = {**body[k], **v} if isinstance(v, dict) and isinstance(body.get(k), dict) else v
    r = api.post("/api/jobs", token=api.tokens["alice"], json=body)
    assert says in one_line_error(r, 400)
    assert stored(api) == before


def test_oversized_body_is_413_declared_or_streamed(api, corpus):
    before = stored(api)
    big = json.dumps({**spec(corpus), "pad": "x" * (2 << 20)}).encode()
    one_line_error(api.post("/api/jobs", token=api.tokens["alice"], data=big), 413, "PAYLOAD_TOO_LARGE")

    # chunked (no Content-Length): counted as it arrives
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    r = api.post("/api/jobs", token=api.tokens["alice"], data=chunks())
    one_line_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert stored(api) == before


def test_unknown_route_and_wrong_method(api):
    assert "no such route" in one_line_error(api.get("/api/nothing-here", token=api.tokens["alice"]), 404,
                                             "ROUTE_NOT_FOUND")
    one_line_error(api.delete("/api/jobs", token=api.tokens["alice"]), 405, "METHOD_NOT_ALLOWED")
    one_line_error(api.get("/api/jobs?limit=minus", token=api.tokens["alice"]), 400, "INVALID_PARAMETER_VALUE")
    one_line_error(api.get("/api/jobs?state=HAPPY", token=api.tokens["alice"]), 400, "INVALID_PARAMETER_VALUE")


def test_openapi_document(api):
    doc = api.get("/api/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}/cancel", "/api/models", "/api/models/{ref}/similar"} <= set(doc["paths"])


# -- logs ---------------------------------------------------------------------------------------------
def test_logs_as_json_and_as_a_live_stream_that_ends_with_the_job(api, corpus):
    alice = api.tokens["alice"]
    job = api.post("/api/jobs", token=alice, json=spec(corpus)).json()
    entries = api.get(f"/api/jobs/{job['id']}/logs", token=alice).json()
    assert "submitted by alice" in entries[0]["msg"]
    with requests.get(f"{api.url}/api/jobs/{job['id']}/logs?follow=true", stream=True, timeout=30,
                      headers={"Authorization": f"Bearer {alice}"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        first = next(line for line in lines if line.startswith("data:"))
        assert "submitted by alice" in json.loads(first[5:])["msg"]
        api.post(f"/api/jobs/{job['id']}/cancel", token=alice)  # the stream must now end by itself
        rest = list(lines)
    assert "event: end" in rest and 'data: {"state": "CANCELLED"}' in rest
    assert any("cancelled by user" in line for line in rest)


# -- models -------------------------------------------------------------------------------------------
def test_models_queries_aliases_tags_and_admin_only_delete(api):
    alice, root = api.tokens["alice"], api.tokens["root"]
    ref = register_word2vec(api.settings, "vecs")
    listed = api.get("/api/models", token=alice).json()
    assert [(m["name"], m["version"], m["kind"]) for m in listed] == [("vecs", 1, "word2vec")]
    shown = api.get(f"/api/models/{ref}", token=alice).json()
    assert shown["params"] == {"dim": 8} and "artifacts" in shown

    near = api.get(f"/api/models/{ref}/similar", params={"word": "cat1", "top": 5}, token=alice).json()
    assert len(near) == 5 and all(n["word"].startswith("cat") for n in near) and set(near[0]) == {"word", "similarity"}
    one_line_error(api.get(f"/api/models/{ref}/similar", params={"word": "zebra"}, token=alice), 404)
    one_line_error(api.get("/api/models/../../etc/similar", params={"word": "a"}, token=alice), 404)
    one_line_error(api.get("/api/models/bad name!/similar", params={"word": "a"}, token=alice), 400)
    ana = api.get(f"/api/models/{ref}/analogy", params={"a": "cat1", "b": "car1", "c": "cat2"}, token=alice).json()
    assert ana[0]["word"].startswith("car")

    m = api.get(f"/api/models/{ref}/map", params={"n": 30}, token=alice).json()
    assert len(m["words"]) == len(m["x"]) == len(m["y"]) == 30 and m["explained"][0] > 0.3

    r = api.post(f"/api/models/{ref}/aliases", token=alice, json={"alias": "production"})
    assert r.status_code == 200 and r.json()["aliases"] == ["production"]
    assert api.get("/api/models/vecs@production", token=alice).json()["version"] == 1
    one_line_error(api.post(f"/api/models/{ref}/aliases", token=alice, json={"alias": 3}), 400)
    assert api.post(f"/api/models/{ref}/tags", token=alice, json={"tags": {"team": "search"}}).status_code == 200
    assert api.get(f"/api/models/{ref}", token=alice).json()["tags"]["team"] == "search"

    register_word2vec(api.settings, "vecs")
    cmp = api.get("/api/compare", params=[("ref", "vecs:1"), ("ref", "vecs:2")], token=alice).json()
    assert [m["version"] for m in cmp["models"]] == [1, 2]

    one_line_error(api.delete("/api/models/vecs:2", token=alice), 403, "PERMISSION_DENIED")
    assert api.get("/api/models/vecs:2", token=alice).status_code == 200
    gone = api.delete("/api/models/vecs:2", token=root)
    assert gone.status_code == 200 and gone.json()["model"] == {"name": "vecs", "version": 2}
    one_line_error(api.get("/api/models/vecs:2", token=alice), 404)


# -- binding ------------------------------------------------------------------------------------------
def test_beyond_loopback_without_tokens_is_refused_and_loopback_without_tokens_is_open(tmp_path, redis_url):
    settings = make_settings(tmp_path / "home", redis_url, user="solo")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([KILN, "serve", "--host", "0.0.0.0", "--port", str(port)], env=server_env(settings),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "refusing to listen beyond loopback without API tokens" in out.stderr

    with running_server(settings) as server:  # loopback, no token anywhere: the local user, as an admin
        assert server.get("/api/jobs").json() == []
        create_tokens(settings, solo=False)
        # within a few seconds of the first token, the door closes
        import time
        deadline = time.monotonic() + 10
        while server.get("/api/jobs").status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.2)


# -- predict (CNN) ------------------------------------------------------------------------------------
def _png(size=(20, 20), value=200) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def test_predict_an_uploaded_image(api):
    alice = api.tokens["alice"]
    ref = register_cnn(api.settings, "digits-api")
    r = api.post(f"/api/models/{ref}/predict?top=2", token=alice, files={"image": ("seven.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["model"] == {"name": "digits-api", "version": 1} and p["name"] == "seven.png"
    assert p["label"] in ("a", "b", "c") and len(p["top"]) == 2 and p["top"][0]["label"] == p["label"]
    # the same pixels through the in-process classifier give the same answer
    again = api.post(f"/api/models/{ref}/predict?top=2", token=alice, files={"image": ("x.png", _png(), "image/png")})
    assert again.json()["top"] == p["top"]

    assert "not a readable image" in one_line_error(
        api.post(f"/api/models/{ref}/predict", token=alice, files={"image": ("a.png", b"GIF89a-not-really", "image/png")}),
        400, "INVALID_PARAMETER_VALUE")
    one_line_error(api.post(f"/api/models/{ref}/predict", token=alice, files={"image": ("big.png", b"0" * (11 << 20))}),
                   413, "PAYLOAD_TOO_LARGE")
    one_line_error(api.post(f"/api/models/{ref}/predict", token=alice, files={"image": ("huge.png", _png((9000, 9000)))}),
                   413, "PAYLOAD_TOO_LARGE")
    one_line_error(api.post(f"/api/models/{ref}/predict", token=alice, data=b"{}"), 400)  # no image field
    one_line_error(api.post(f"/api/models/{ref}/predict", files={"image": ("a.png", _png())}), 401)
    w2v = register_word2vec(api.settings, "not-a-cnn")
    assert "cnn" in one_line_error(api.post(f"/api/models/{w2v}/predict", token=alice,
                                            files={"image": ("a.png", _png())}), 400)


# -- data roots ---------------------------------------------------------------------------------------
def test_data_roots_keep_jobs_inside_them(tmp_path, redis_url):
    settings = make_settings(tmp_path / "home", redis_url)
    data, outside = tmp_path / "data", tmp_path / "private"
    data.mkdir()
    outside.mkdir()
    inside = write_corpus(data / "corpus.txt", sentences=200)
    secret = write_corpus(outside / "secret.txt", sentences=200)
    (data / "link.txt").symlink_to(secret)
    tokens = create_tokens(settings, alice=False)
    with running_server(settings, args=("--data-root", str(data))) as server:
        before = stored(server)
        missing = outside / "no-such-file.txt"  # refused like an existing one: no oracle for what exists
        for path in (secret, data / ".." / "private" / "secret.txt", data / "link.txt", outside / "*.txt", missing):
            r = server.post("/api/jobs", token=tokens["alice"], json=spec(path))
            assert f"only under {data}" in one_line_error(r, 403, "PERMISSION_DENIED"), path
        r = server.post("/api/jobs", token=tokens["alice"], json=spec(inside, params={"eval_similarity": str(secret)}))
        one_line_error(r, 403, "PERMISSION_DENIED")
        assert stored(server) == before
        # a glob inside the root that matches the link is refused once validation has expanded it
        one_line_error(server.post("/api/jobs", token=tokens["alice"], json=spec(data / "*.txt")), 403)
        assert stored(server) == before
        assert server.post("/api/jobs", token=tokens["alice"], json=spec(data / "c*.txt")).status_code == 201
        assert server.post("/api/jobs", token=tokens["alice"], json=spec(inside)).status_code == 201
