"""The CLI as a thin HTTP client: with KILN_URL + KILN_TOKEN, `kiln jobs`, `kiln status`, `kiln logs [-f]`,
`kiln watch`, `kiln models list --json` and `kiln models show` print exactly what they print when they
read the stores themselves (same --json, same table, same errors and exit codes), and import neither
redis, SQLAlchemy, Ray, torch nor pydantic; `kiln cancel` / `kiln retry` act as the token's user (owners
only). `kiln predict`, `eval`, `plot`, `models compare/lineage/describe/delete/export` import no numpy,
PIL, torch or matplotlib either; `tokens`, `db`, `gc`, `models gc` (store administration, never through
a server) refuse in one line when KILN_URL is set and their store is not named."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.api.conftest import KILN, register_word2vec, server_env
from tests.conftest import write_corpus

HEAVY = ("redis", "sqlalchemy", "ray", "torch", "pydantic", "numpy", "alembic")


def run(env, *args):
    return subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def envs(api, tmp_path):
    local = server_env(api.settings)
    remote = {**local, "KILN_URL": api.url, "KILN_TOKEN": api.tokens["alice"],
              # the remote client must not need the stores at all
              "KILN_REDIS_URL": "redis://127.0.0.1:1/0", "KILN_DB_URL": f"sqlite:///{tmp_path / 'absent.db'}"}
    return local, remote


def test_read_commands_print_the_same_over_http(api, envs, tmp_path):
    local, remote = envs
    corpus = write_corpus(tmp_path / "c.txt", sentences=200)
    job = api.post("/api/jobs", token=api.tokens["alice"],
                   json={"name": "thin", "params": {"corpus": [str(corpus)], "min_count": 1}}).json()
    for args in (["jobs", "--json"], ["jobs"], ["jobs", "--state", "queued", "--limit", "1", "--json"],
                 ["status", job["id"], "--json"], ["status", job["id"]],
                 ["status", "job-0000beef"], ["jobs", "--state", "HAPPY"], ["jobs", "--limit", "-1"]):
        here, there = run(local, *args), run(remote, *args)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), \
            (args, here, there)
    assert run(remote, "status", "job-0000beef").returncode == 1

    done = api.post("/api/jobs", token=api.tokens["alice"],
                    json={"name": "thin-logs", "params": {"corpus": [str(corpus)], "min_count": 1}}).json()
    api.post(f"/api/jobs/{done['id']}/cancel", token=api.tokens["alice"])
    for args in (["logs", job["id"]], ["logs", done["id"], "--json"], ["logs", "-f", done["id"]],
                 ["logs", "-f", done["id"], "--json"], ["logs", "job-0000beef"], ["logs", "-f", "job-0000beef"]):
        here, there = run(local, *args), run(remote, *args)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), \
            (args, here, there)
    assert "cancelled by user" in run(remote, "logs", "-f", done["id"]).stdout

    ref = register_word2vec(api.settings, "thin-vecs")
    api.post(f"/api/models/{ref}/aliases", token=api.tokens["alice"], json={"alias": "prod"})
    for args in (["models", "list", "--json"], ["models", "list", "--json", "--all-versions", "--limit", "3"],
                 ["models", "list", "--json", "--filter", "metric.vocab_size>10", "--order-by", "name", "--desc"],
                 ["models", "list", "--json", "--filter", "metric.vocab_size>ten"], ["models", "list", "--json", "--kind", "cnn"],
                 ["models", "show", ref, "--json"], ["models", "show", "thin-vecs@prod"], ["models", "show", "nope:3"],
                 ["models", "show", "bad name!"]):
        here, there = run(local, *args), run(remote, *args)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), \
            (args, here, there)
    assert not (tmp_path / "absent.db").exists()  # the client never opened a database


@pytest.mark.parametrize("args", [["jobs", "--json"], ["status", "job-0000beef", "--json"], ["models", "list", "--json"],
                                  ["models", "show", "nothing", "--json"], ["logs", "-f", "job-0000beef"],
                                  ["watch", "job-0000beef"], ["cancel", "job-0000beef"], ["retry", "job-0000beef"]])
def test_the_http_path_imports_no_store_client(api, envs, args):
    _, remote = envs
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli.main", *args], env=remote,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr[-500:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "cli" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("args", [
    ["predict", "nothing", "{img}"], ["predict", "{cnn}", "{img}", "--json"], ["predict", "{cnn}", "{folder}", "--top", "2"],
    ["models", "compare", "{cnn}", "nothing:1"], ["models", "lineage", "{cnn}"], ["models", "describe", "{cnn}", "x"],
    ["models", "delete", "nothing:1", "--yes"], ["plot", "{cnn}", "--what", "confusion", "-o", "{out}"],
    ["plot", "job-0000beef", "--what", "loss", "-o", "{out}"], ["eval", "nothing", "{folder}"], ["eval", "{cnn}", "digits"],
    ["models", "export", "{cnn}", "--format", "onnx", "-o", "{out}"]],
    ids=lambda a: " ".join(a[:2]))
def test_model_commands_over_http_import_no_store_client_nor_torch_nor_matplotlib(api, envs, args, tmp_path):
    """predict (the images uploaded), compare, lineage, describe, delete, plot (the PNG drawn by the
    server), eval and export (the file written by the server) run on the standard library: no numpy, PIL, torch or matplotlib in the client either."""
    from tests.api.conftest import register_cnn
    from tests.api.test_cli_via_server import write_images

    _, remote = envs
    cnn = register_cnn(api.settings, "thin-cnn")
    img = write_images(tmp_path / "imgs", 3)[0]
    args = [a.format(img=img, cnn=cnn, folder=tmp_path / "imgs", out=tmp_path / "p.png") for a in args]
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli.main", *args], env=remote,
                         capture_output=True, text=True, timeout=120)
    expected = 1 if "nothing" in args or "nothing:1" in args or "job-0000beef" in args else 0
    if args[0] == "eval" and expected == 0:  # digits' classes (0-9) are not the model's (a, b, c)
        expected = 2
    assert out.returncode == (2 if args[:2] == ["models", "delete"] else expected), out.stderr[-500:]  # alice: no admin
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "cli" in imported and not imported & {*HEAVY, "PIL", "matplotlib"}, sorted(imported & {*HEAVY, "PIL", "matplotlib"})
    if args[0] == "plot" and out.returncode == 0:
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_wrong_token_and_unreachable_server_are_one_line(api, envs):
    _, remote = envs
    bad = run({**remote, "KILN_TOKEN": "kiln_wrong"}, "jobs")
    assert bad.returncode == 2 and bad.stderr == "error: unknown or revoked token\n"
    gone = run({**remote, "KILN_URL": "http://127.0.0.1:1"}, "jobs")
    assert gone.returncode == 3 and gone.stderr.startswith("error: cannot reach the kiln server at http://127.0.0.1:1")
    assert len(gone.stderr.splitlines()) == 1


def test_logs_follow_streams_live_over_http_until_the_job_ends(api, envs, tmp_path):
    _, remote = envs
    corpus = write_corpus(tmp_path / "c.txt", sentences=200)
    job = api.post("/api/jobs", token=api.tokens["alice"],
                   json={"name": "live-logs", "params": {"corpus": [str(corpus)], "min_count": 1}}).json()
    proc = subprocess.Popen([KILN, "logs", "-f", job["id"]], env=remote, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the stream is open and delivered what was there
        assert "submitted by alice" in first
        api.post(f"/api/jobs/{job['id']}/cancel", token=api.tokens["alice"])
        rest, err = proc.communicate(timeout=60)  # ends by itself once the job is terminal
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "cancelled by user" in rest


def test_cancel_retry_and_watch_over_http_as_the_token_s_user(api, envs, tmp_path):
    local, remote = envs
    as_bob = {**remote, "KILN_TOKEN": api.tokens["bob"]}
    corpus = write_corpus(tmp_path / "c.txt", sentences=200)
    job = api.post("/api/jobs", token=api.tokens["alice"],
                   json={"name": "acted-on", "params": {"corpus": [str(corpus)], "min_count": 1}}).json()

    denied = run(as_bob, "cancel", job["id"])
    assert denied.returncode == 2 and denied.stdout == ""
    assert denied.stderr == f"error: {job['id']} belongs to alice; only its owner or an admin may cancel it\n"
    assert run(local, "status", job["id"], "--json").stdout.count('"QUEUED"') == 1

    done = run(remote, "cancel", job["id"])
    assert (done.returncode, done.stdout) == (0, f"{job['id']} CANCELLED\n")
    again = run(remote, "cancel", job["id"])
    assert again.stdout == f"{job['id']} was already CANCELLED; nothing to cancel\n"

    watched, watched_here = run(remote, "watch", job["id"]), run(local, "watch", job["id"])
    assert (watched.returncode, watched.stdout) == (watched_here.returncode, watched_here.stdout) and watched.returncode == 1

    assert run(as_bob, "retry", job["id"]).returncode == 2
    retried = run(remote, "retry", job["id"], "--json")
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["id"]
    assert api.get(f"/api/jobs/{new_id}", token=api.tokens["alice"]).json()["user"] == "alice"
    api.post(f"/api/jobs/{new_id}/cancel", token=api.tokens["alice"])


def test_submit_over_http_as_the_token_s_user(api, envs, tmp_path):
    local, remote = envs
    write_corpus(tmp_path / "rel.txt", sentences=200)
    r = subprocess.run([KILN, "submit", "word2vec", "rel.txt", "--min-count", "1", "--json"], env=remote, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"id", "job_id", "state", "model", "error"} and out["state"] == "QUEUED"
    job = api.get(f"/api/jobs/{out['id']}", token=api.tokens["alice"]).json()
    assert job["user"] == "alice" and job["name"] == "word2vec-rel"
    api.post(f"/api/jobs/{out['id']}/cancel", token=api.tokens["alice"])

    bad = subprocess.run([KILN, "submit", "word2vec", "rel.txt", "--dim", "0"], env=remote, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "dim" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1
    # over HTTP a relative path would name a file in the server's folder: the API refuses it
    r = api.post("/api/jobs", token=api.tokens["alice"], json={"name": "rel", "params": {"corpus": ["rel.txt"]}})
    assert r.status_code == 400 and "absolute path" in r.json()["error"]["message"]


def test_the_plain_http_reader_takes_lengths_and_chunks_and_refuses_the_rest():
    from cli.http_client import _parse_answer

    assert _parse_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}") == (200, b"{}")
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
    assert _parse_answer(chunked) == (404, b"abcde")
    for bad in (b"", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}"):
        with pytest.raises(OSError):
            _parse_answer(bad)


def test_a_cut_chunked_answer_is_a_lost_server_not_a_traceback():
    from cli.http_client import _parse_answer

    for cut in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nabc",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        with pytest.raises(OSError):
            _parse_answer(cut)


@pytest.mark.parametrize("args", [["tokens", "list"], ["tokens", "create", "--user", "eve"], ["tokens", "revoke", "1"],
                                  ["db", "current"], ["db", "upgrade"], ["gc", "--dry-run"], ["models", "gc", "--json"]],
                         ids=" ".join)
def test_store_administration_with_kiln_url_names_its_store_or_says_why_not(api, envs, args, tmp_path):
    """tokens, db, gc and models gc work on the stores themselves (never through the server). With only
    KILN_URL (+ token) set they refuse in one line instead of acting on a fresh local registry the server
    never reads; with the store named but unreachable, the store's one-line error (exit 3)."""
    _, remote = envs
    home = tmp_path / "client-home"
    bare = {k: v for k, v in remote.items() if k not in ("KILN_DB_URL", "KILN_ARTIFACTS", "KILN_REDIS_URL")}
    bare["KILN_HOME"] = str(home)
    out = run(bare, *args)
    store = "KILN_DB_URL and KILN_ARTIFACTS" if "gc" in args else "KILN_DB_URL"
    message = (f"kiln {' '.join(args[:2]) if args[:2] == ['models', 'gc'] else args[0]} works on the stores directly, "
               f"not through the server at {api.url}: run it where the server runs, or set {store} to the server's")
    expected = (json.dumps({"error": {"code": "BAD_REQUEST", "message": message}}) if "--json" in args
                else f"error: {message}") + "\n"
    assert (out.returncode, out.stdout, out.stderr) == (2, "", expected)
    assert not home.exists()  # no registry made on the client

    unreachable = {**bare, "KILN_DB_URL": "postgresql://kiln:secret@127.0.0.1:1/kiln", "KILN_ARTIFACTS": str(tmp_path / "a")}
    out = run(unreachable, *args)
    assert out.returncode == 3 and out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert "cannot reach the database" in out.stderr and "secret" not in out.stderr
