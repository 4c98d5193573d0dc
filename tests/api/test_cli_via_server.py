"""The CLI's main commands print the same through a real `kiln serve` (KILN_URL + a token of the same
user) as they do reading and writing the stores themselves: stdout, stderr and exit code, byte for byte
(new job ids aside). Reads run on one state from both sides; each write runs once per side on objects of
its own. The remote side has no store at all (unreachable Redis, absent database file)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.api.conftest import KILN, create_tokens, register_word2vec, server_env
from tests.conftest import write_corpus

NEW_ID = re.compile(r"job-[0-9a-f]{8}")


def run(env, *args):
    out = subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout, out.stderr


def same(here, there, *, ids: bool = False):
    """Equal, or equal once job ids are blanked (``ids``: each side made jobs of its own)."""
    if ids:
        here, there = (tuple(NEW_ID.sub("job-ID", x) if isinstance(x, str) else x for x in r) for r in (here, there))
    assert there == here


@pytest.fixture(scope="module")
def sides(api, tmp_path_factory):
    """(local env, remote env, a queued job id, a registered model ref, a corpus path)."""
    folder = tmp_path_factory.mktemp("cli-via-server")
    token = create_tokens(api.settings, tester=True)["tester"]  # the local side's user, as an admin
    local = server_env(api.settings)
    remote = {**local, "KILN_URL": api.url, "KILN_TOKEN": token,
              "KILN_REDIS_URL": "redis://127.0.0.1:1/0", "KILN_DB_URL": f"sqlite:///{folder / 'absent.db'}"}
    corpus = write_corpus(folder / "corpus.txt", sentences=200)
    job = api.post("/api/jobs", token=token, json={"name": "cmp", "params": {"corpus": [str(corpus)],
                                                                             "min_count": 1}}).json()
    ref = register_word2vec(api.settings, "cmp-vecs")
    yield local, remote, job["id"], ref, corpus
    assert not (folder / "absent.db").exists()  # the remote side never opened a database


READS = [  # test_thin_cli.py compares the --json forms of jobs, status, logs and models list/show
    ["jobs"], ["jobs", "--state", "queued", "--limit", "1", "--json"], ["status", "{job}"], ["logs", "{job}"],
    ["models", "list"], ["models", "list", "--filter", "metric.vocab_size>10", "--order-by", "metric.vocab_size",
                        "--desc"],
    ["models", "list", "--kind", "cnn"], ["models", "show", "{ref}"],
    ["similar", "{ref}", "cat1", "--top", "4"], ["similar", "{ref}", "cat1", "--json"],
    ["similar", "{ref}", "no-such-word"], ["analogy", "{ref}", "cat1", "car1", "sun1", "--json"],
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_read_prints_the_same_through_the_server(sides, args):
    local, remote, job, ref, _ = sides
    args = [a.format(job=job, ref=ref) for a in args]
    same(run(local, *args), run(remote, *args))


def test_a_similarity_on_a_rounding_edge_prints_the_same_through_the_server(api, sides):
    """The server once sent similarities rounded to 6 decimals and the client printed those to 4: a cosine
    of 0.1234498 printed 0.1234 directly and 0.1235 (0.123450 -> 0.1235) through the server (CI, 12-06,
    `analogy` in tests/test_word2vec_cli.py). The API now sends the cosine as computed."""
    import numpy as np

    local, remote, *_ = sides
    x = np.float32(0.12344980239868164)  # cos(a, b) as kiln computes it: this float32, just under 0.12345
    vectors = np.array([[1, 0], [x, np.sqrt(np.float32(1) - x * x)], [0, 1]], dtype=np.float32)
    ref = register_word2vec(api.settings, "edge-vecs", given=(["a", "b", "c"], vectors))
    here = run(local, "similar", ref, "a", "--top", "1")
    assert here == (0, "  0.1234  b\n", "")
    same(here, run(remote, "similar", ref, "a", "--top", "1"))
    for args in (["similar", ref, "a", "--json"], ["analogy", ref, "a", "b", "c"], ["analogy", ref, "a", "b", "c", "--json"]):
        same(run(local, *args), run(remote, *args))


def test_submit_through_the_server_stores_the_job_the_direct_path_would(sides):
    """A successful direct submit needs Ray here (it starts the stack), so the stored job is compared
    instead: the one submitted through the server reads the same as one submitted by the JobService.
    Refusals come before any service is needed, so those are compared as printed."""
    local, remote, _, _, corpus = sides
    for args in (["submit", "word2vec", str(corpus), "--min-count", "1", "--name", "cmp-sub"],
                 ["submit", "word2vec", str(corpus), "--min-count", "1", "--json"]):
        code, out, err = run(remote, *args)
        assert code == 0 and err == "", err
        new = NEW_ID.search(out).group(0)
        if "--json" in args:
            assert json.loads(out) == {"id": new, "job_id": new, "state": "QUEUED", "model": None, "error": None}
        else:
            assert out == f"{new}\n"
        there = json.loads(run(local, "status", new, "--json")[1])
        assert there["user"] == "tester" and there["state"] == "QUEUED"
        assert there["name"] == ("cmp-sub" if "--name" in args else "word2vec-corpus")
    for args in (["submit", "word2vec", str(corpus), "--dim", "0"], ["submit", "word2vec", str(corpus), "--min-count", "0"],
                 ["submit", "word2vec", "/nonexistent/corpus.txt"], ["submit", "word2vec", str(corpus), "--min-count", "999"]):
        here, there = run(local, *args), run(remote, *args)
        same(here, there)
        assert here[0] == 2 and len(here[2].splitlines()) == 1, here


def test_cancel_prints_the_same_through_the_server_and_retry_acts_as_the_user(api, sides):
    local, remote, queued, _, corpus = sides
    mine = {side: json.loads(run(remote, "submit", "word2vec", str(corpus), "--min-count", "1", "--json")[1])["id"]
            for side in ("here", "there")}
    for args in (["cancel", "{id}"], ["cancel", "{id}"], ["cancel", "{id}", "--json"], ["cancel", "job-0000beef"]):
        here = run(local, *[a.format(id=mine["here"]) for a in args])
        there = run(remote, *[a.format(id=mine["there"]) for a in args])
        if "--json" in args:  # the job object: equal but for its id and times
            h, t = json.loads(here[1]), json.loads(there[1])
            for v in (h, t):
                for k in ("id", "submitted_at", "finished_at", "heartbeat"):
                    v.pop(k)
            assert (here[0], h) == (there[0], t)
            continue
        same(here, there, ids=True)
    # retry: the direct path starts the stack first (Ray), so the remote answers are checked on their own
    code, out, err = run(remote, "retry", mine["there"])
    new = NEW_ID.search(out).group(0)
    assert (code, out, err) == (0, f"{new}\n", "") and new != mine["there"]
    assert json.loads(run(local, "status", new, "--json")[1])["state"] == "QUEUED"
    assert run(remote, "retry", queued) == (2, "", f"error: {queued} is QUEUED; only FAILED or CANCELLED jobs can be "
                                                   "retried\n")
    assert run(remote, "retry", "job-0000beef") == run(local, "status", "job-0000beef")


def test_alias_and_tag_print_the_same_through_the_server(sides):
    local, remote, _, ref, _ = sides
    name = ref.split(":")[0]
    steps = [  # (what each side's run starts from, the command)
        (None, ["models", "alias", ref, "prod"]),
        (["models", "alias", ref, "prod"], ["models", "alias", name, "prod", "--delete"]),
        (None, ["models", "alias", name, "gone", "--delete"]),
        (None, ["models", "tag", ref, "team=nlp", "stage=a"]),
        (["models", "tag", ref, "stage=a"], ["models", "tag", ref, "--delete", "stage"]),
        (None, ["models", "tag", "nope:1", "team=x"]),
        (None, ["models", "alias", "nope:1", "prod"]),
    ]
    for setup, args in steps:
        results = []
        for env in (local, remote):
            if setup:
                assert run(local, *setup)[0] == 0
            results.append((run(env, *args), run(local, "models", "show", ref, "--json")))
        (here, after_here), (there, after_there) = results
        same(here, there)
        assert after_there == after_here  # and the same change


def test_with_the_embedded_stack_s_server_submit_goes_through_it_and_still_warns(api, sides, tmp_path):
    """$KILN_HOME/server.json (what `kiln up` writes) names a live server: `kiln submit` uses it, with the
    local path's warning about the files a directory leaves out."""
    import os

    local, _, _, _, _ = sides
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.json").write_text(json.dumps({"url": api.url, "pid": api.proc.pid}))
    token = create_tokens(api.settings, tester=True)["tester"]
    (home / "api_token").write_text(token + "\n")
    os.chmod(home / "api_token", 0o600)
    embedded = {**local, "KILN_HOME": str(home), "KILN_REDIS_URL": "redis://127.0.0.1:1/0",
                "KILN_DB_URL": f"sqlite:///{tmp_path / 'absent.db'}"}
    d = tmp_path / "mixed"
    d.mkdir()
    write_corpus(d / "a.txt", 200)
    (d / "empty.txt").write_text("")
    code, out, err = run(embedded, "submit", "word2vec", str(d), "--min-count", "1")
    assert code == 0, err
    assert err.startswith("warning: the corpus skips 1 file(s) and reads 1: 1 empty")
    job = json.loads(run(local, "status", out.strip(), "--json")[1])
    assert job["user"] == "tester" and job["state"] == "QUEUED"
    assert run(embedded, "submit", "word2vec", str(d), "--dim", "0")[2].startswith("warning: ")
    assert not (tmp_path / "absent.db").exists()


def test_submit_cnn_through_the_server(sides):
    """`kiln submit cnn` with KILN_URL stores the job through the server as the token's user (the dataset
    is checked on the server's side), and a refusal prints what the direct path prints."""
    local, remote, *_ = sides
    code, out, err = run(remote, "submit", "cnn", "digits", "--epochs", "2", "--name", "cmp-cnn", "--json")
    assert code == 0 and err == "", err
    new = json.loads(out)["id"]
    there = json.loads(run(local, "status", new, "--json")[1])
    assert (there["user"], there["state"], there["name"]) == ("tester", "QUEUED", "cmp-cnn")
    for bad in (["--image-size", "0"], ["--arch", "no-such-net"]):
        here = run(local, "submit", "cnn", "digits", *bad)
        assert here[0] == 2 and here[2].count("\n") == 1, here
        same(here, run(remote, "submit", "cnn", "digits", *bad))


# -- predict, models compare / lineage / describe / delete, plot ---------------------------------------
def run_no_tty(env, *args):
    out = subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout, out.stderr


def write_images(folder, n: int, *, start: int = 0):
    """``n`` small PNGs of random pixels (grey and colour, several sizes): different predictions each."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    paths = []
    for i in range(start, start + n):
        shape = (12 + i % 9, 16 + i % 5) + ((3,) if i % 3 == 0 else ())
        path = folder / f"img{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def cnn(api, sides):
    from tests.api.conftest import register_cnn

    return register_cnn(api.settings, "cmp-cnn")


def test_predict_prints_the_same_through_the_server(sides, cnn, tmp_path):
    """The images are uploaded, decoded and classified by the server: the same labels, scores, paths
    (as given: relative, folders expanded) and refusals as the local path."""
    local, remote, _, w2v, _ = sides
    images = write_images(tmp_path / "imgs" / "deep", 7)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")  # a folder lists its image files only
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    odd = tmp_path / 'we"ird\\näme.png'  # quoted and escaped in the upload's Content-Disposition
    odd.write_text("not a png either")
    cases = [
        ["predict", cnn, str(images[0])], ["predict", cnn, str(images[1]), str(images[2]), "--top", "2"],
        ["predict", cnn, str(tmp_path / "imgs"), "--json"], ["predict", cnn, str(tmp_path / "imgs"), "--top", "9"],
        ["predict", cnn, str(images[0]), str(tmp_path / "imgs"), "--top", "3", "--json"],
        ["predict", cnn, str(images[0]), str(bad)], ["predict", cnn, str(bad), "--json"],
        ["predict", w2v, str(images[0])], ["predict", "nope:1", str(images[0])],
        ["predict", cnn, str(tmp_path / "missing.png")], ["predict", cnn, str(tmp_path / "empty")],
        ["predict", "nope:1", str(bad)], ["predict", cnn, str(images[0]), "--top", "0"],
        ["predict", cnn, str(images[0]), str(odd)],
    ]
    for args in cases:
        here = run(local, *args)
        same(here, run(remote, *args))
        assert here[0] == 0 or (here[1] == "" and len(here[2].splitlines()) == 1), (args, here)
    assert run(remote, "predict", cnn, str(bad))[2] == f"error: {bad}: not a readable image\n"
    assert run(remote, "predict", cnn, str(odd))[2] == f"error: {odd}: not a readable image\n"
    assert "word2vec model; kiln predict needs a cnn" in run(remote, "predict", w2v, str(images[0]))[2]
    rows = json.loads(run(remote, "predict", cnn, str(tmp_path / "imgs"), "--json")[1])
    assert [r["path"] for r in rows] == [str(p) for p in images]

    # relative paths are printed as given, like the local path prints them
    here = subprocess.run([KILN, "predict", cnn, "imgs", "--json"], env=local, cwd=tmp_path, capture_output=True, text=True)
    there = subprocess.run([KILN, "predict", cnn, "imgs", "--json"], env=remote, cwd=tmp_path, capture_output=True, text=True)
    assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr)
    assert json.loads(there.stdout)[0]["path"] == "imgs/deep/img00000.png"


def test_predict_sends_thousands_of_images_in_batches(sides, cnn, tmp_path):
    """2,500 images: more than one request may carry (the server takes 1,000 files a request), so the
    answer proves the client batches; the output equals the local path's, bad file last included."""
    local, remote, *_ = sides
    write_images(tmp_path / "many", 2500)
    args = ["predict", cnn, str(tmp_path / "many"), "--json", "--top", "2"]
    here, there = run_no_tty(local, *args), run_no_tty(remote, *args)
    assert here[0] == 0, here[2]
    same(here, there)
    assert len(json.loads(there[1])) == 2500
    (tmp_path / "many" / "zzz.png").write_bytes(b"\x89PNG but cut")
    bad = ["predict", cnn, str(tmp_path / "many")]
    here, there = run_no_tty(local, *bad), run_no_tty(remote, *bad)
    same(here, there)
    assert here == (2, "", f"error: {tmp_path / 'many' / 'zzz.png'}: not a readable image\n")


def test_compare_lineage_and_describe_print_the_same_through_the_server(sides, cnn):
    local, remote, _, w2v, _ = sides
    for args in (["models", "compare", w2v, cnn], ["models", "compare", w2v, cnn, "--all", "--json"],
                 ["models", "compare", w2v], ["models", "compare", w2v, "nope:2"],
                 ["models", "lineage", w2v], ["models", "lineage", cnn, "--json"], ["models", "lineage", "nope:1"],
                 ["models", "lineage", "bad name!"]):
        here = run(local, *args)
        same(here, run(remote, *args))
        assert here[0] in (0, 1, 2) and (here[0] == 0 or len(here[2].splitlines()) == 1), (args, here)
    name = w2v.split(":")[0]
    for args in (["models", "describe", w2v, "the small one"], ["models", "describe", name, "all of them"],
                 ["models", "describe", w2v, ""], ["models", "describe", "nope:1", "x"]):
        results = []
        for env in (local, remote):
            results.append((run(env, *args), run(local, "models", "show", w2v, "--json")))
            run(local, "models", "describe", w2v, "reset")
        (here, after_here), (there, after_there) = results
        same(here, there)
        assert after_there == after_here
    assert json.loads(run(local, "models", "show", w2v, "--json")[1])["description"] == "reset"


def test_delete_through_the_server_needs_an_admin_and_refuses_while_aliased(api, sides):
    local, remote, *_ = sides
    as_alice = {**remote, "KILN_TOKEN": api.tokens["alice"]}
    refs = {side: register_word2vec(api.settings, "cmp-del") for side in ("here", "there")}
    denied = run(as_alice, "models", "delete", refs["there"], "--yes")
    assert denied == (2, "", "error: deleting a model version needs an admin token (alice is not an admin)\n")
    assert run_no_tty(as_alice, "models", "delete", refs["there"]) == denied  # refused before any question
    for args in (["models", "delete", "cmp-del", "--yes"], ["models", "delete", "nope:1", "--yes"],
                 ["models", "delete", "cmp-del@none", "--yes"]):
        same(run(local, *args), run(remote, *args))
    for side, env in (("here", local), ("there", remote)):
        run(local, "models", "alias", refs[side], "keep")
        assert run(env, "models", "delete", refs[side], "--yes")[0] == 2
        run(local, "models", "alias", "cmp-del", "keep", "--delete")
    run(local, "models", "alias", refs["there"], "keep")  # the same refusal, in --json too (its code kept)
    for args in (["models", "delete", refs["there"], "--yes"], ["models", "delete", refs["there"], "--yes", "--json"]):
        here = run(local, *args)
        assert here[0] == 2 and ("RESOURCE_IN_USE" in here[2]) == ("--json" in args), here
        same(here, run(remote, *args))
    run(local, "models", "alias", "cmp-del", "keep", "--delete")
    no_tty = [run_no_tty(env, "models", "delete", refs[side]) for side, env in (("here", local), ("there", remote))]
    assert no_tty[0][0] == 2 and no_tty[1] == (2, "", no_tty[0][2].replace(refs["here"], refs["there"]))
    done = {side: run(env, "models", "delete", refs[side], "--yes")
            for side, env in (("here", local), ("there", remote))}
    assert done["there"] == (0, done["here"][1].replace(refs["here"], refs["there"]), "")
    assert done["there"][1].startswith(f"deleted {refs['there']} (")
    assert run(local, "models", "show", refs["there"])[0] == 1


def test_plot_writes_the_same_png_through_the_server(sides, cnn, tmp_path):
    local, remote, job, w2v, _ = sides
    for what, target in (("confusion", cnn), ("filters", cnn), ("embeddings", w2v), ("loss", job)):
        files = {side: tmp_path / f"{what}-{side}.png" for side in ("here", "there")}
        here = run(local, "plot", target, "--what", what, "-o", str(files["here"]), "--words", "20")
        there = run(remote, "plot", target, "--what", what, "-o", str(files["there"]), "--words", "20")
        same((here[0], here[1], here[2].replace("-here.png", ".png")),
             (there[0], there[1], there[2].replace("-there.png", ".png")))
        if here[0] == 0:
            assert files["there"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert files["there"].read_bytes() == files["here"].read_bytes()
    existing = tmp_path / "confusion-here.png"
    for args in (["plot", cnn, "--what", "confusion", "-o", str(existing)],  # exists, no --force
                 ["plot", w2v, "--what", "confusion", "-o", str(tmp_path / "x.png")],
                 ["plot", "job-0000beef", "--what", "loss", "-o", str(tmp_path / "x.png")],
                 ["plot", "nope:1", "--what", "loss", "-o", str(tmp_path / "x.png")],
                 ["plot", cnn, "--what", "confusion", "-o", str(tmp_path / "no-dir" / "x.png")]):
        here = run(local, *args)
        same(here, run(remote, *args))
        assert here[0] != 0 and len(here[2].splitlines()) == 1, (args, here)


def test_eval_prints_the_same_through_the_server(sides, cnn, tmp_path):
    """`kiln eval` runs on the server's side, on its files: a cnn on a dataset, a word2vec on analogy and
    similarity files (recorded as metrics); relative paths are sent absolute and named as given."""
    local, remote, _, w2v, _ = sides
    for c in ("a", "b", "c"):
        write_images(tmp_path / "ds" / c, 4, start=ord(c))
    write_images(tmp_path / "other" / "a", 2)
    write_images(tmp_path / "other" / "zebra", 2)
    (tmp_path / "q.txt").write_text(": topics\ncat0 cat1 car0 car1\ncat0 cat2 sun0 sun2\ncar3 car4 sun3 sun4\n")
    (tmp_path / "sim.txt").write_text("cat0 cat1 9.0\ncat0 car0 1.0\nsun0 sun1 8.5\ncar1 sun1 0.5\n")
    for args in (["eval", cnn, "{d}/ds"], ["eval", cnn, "{d}/ds", "--json"], ["eval", cnn, "{d}/other"],
                 ["eval", cnn, "{d}/missing"], ["eval", cnn, "{d}/ds", "--format", "npz"], ["eval", cnn, "{d}/ds", "--format", "nope"],
                 ["eval", w2v, "{d}/ds"], ["eval", "nope:1", "{d}/ds"], ["eval", cnn], ["eval", w2v], ["eval", "nope:1"],
                 ["eval", w2v, "--analogies", "{d}/q.txt", "--similarity", "{d}/sim.txt"],
                 ["eval", w2v, "--analogies", "{d}/q.txt", "--json"], ["eval", w2v, "--similarity", "{d}/missing.txt"],
                 ["eval", cnn, "ds"], ["eval", cnn, "missing"], ["eval", w2v, "--analogies", "q.txt"],
                 ["eval", w2v, "--analogies", "nothing.txt"]):
        args = [a.format(d=tmp_path) for a in args]
        here = subprocess.run([KILN, *args], env=local, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        there = subprocess.run([KILN, *args], env=remote, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), args
        assert here.returncode == 0 or (here.stdout == "" and len(here.stderr.splitlines()) == 1), (args, here)
    assert "accuracy" in run(remote, "eval", cnn, str(tmp_path / "ds"))[1]
    metrics = json.loads(run(local, "models", "show", w2v, "--json")[1])["metrics"]
    assert "analogy_accuracy" in metrics and "similarity_spearman" in metrics


def test_eval_through_a_server_with_data_roots_reads_only_inside_them(api, sides, cnn, tmp_path):
    from tests.api.conftest import running_server

    _, remote, *_ = sides
    for c in ("a", "b", "c"):
        write_images(tmp_path / "data" / "ds" / c, 2)
        write_images(tmp_path / "private" / c, 2)
    with running_server(api.settings, args=("--data-root", str(tmp_path / "data"))) as rooted:
        env = {**remote, "KILN_URL": rooted.url}
        assert run(env, "eval", cnn, str(tmp_path / "data" / "ds"))[0] == 0
        refused = run(env, "eval", cnn, str(tmp_path / "private"))
        assert refused == (2, "", f"error: {tmp_path / 'private'}: this server reads job data only under "
                                  f"{tmp_path / 'data'}\n")
        assert run(env, "eval", cnn, str(tmp_path / "data" / ".." / "private"))[0] == 2


def test_export_writes_the_same_file_through_the_server(sides, cnn, tmp_path):
    """The server writes the export; the client streams it into -o (or standard output), refusing the
    same destinations as the local path (existing file without --force, a folder, a link, no folder)."""
    local, remote, _, w2v, _ = sides
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "link.txt").symlink_to(tmp_path / "target.txt")
    for ref, fmt in ((w2v, "word2vec-text"), (w2v, "word2vec-binary"), (w2v, "safetensors"), (w2v, "onnx"),
                     (cnn, "onnx"), (cnn, "safetensors"), (cnn, "torchscript"), (cnn, "word2vec-text"),
                     ("nope:1", "safetensors")):
        files = {side: tmp_path / f"{fmt}-{ref.replace(':', '_')}-{side}.out" for side in ("here", "there")}
        here = run(local, "models", "export", ref, "--format", fmt, "-o", str(files["here"]))
        there = run(remote, "models", "export", ref, "--format", fmt, "-o", str(files["there"]))
        same((here[0], here[1], here[2].replace("-here.out", "")), (there[0], there[1], there[2].replace("-there.out", "")))
        assert here[0] == 0 or len(here[2].splitlines()) == 1, (ref, fmt, here)
        if here[0] == 0:
            assert files["there"].stat().st_size > 0
            if fmt == "safetensors":  # its JSON header's key order varies from one write to the next
                assert _safetensors(files["there"]) == _safetensors(files["here"]), (ref, fmt)
            elif fmt != "torchscript":  # a TorchScript archive records where it was traced
                assert files["there"].read_bytes() == files["here"].read_bytes(), (ref, fmt)
    existing = tmp_path / "word2vec-text-cmp-vecs_1-here.out"
    for args in (["models", "export", w2v, "-o", "-"], ["models", "export", w2v, "-o", str(existing)],
                 ["models", "export", w2v, "-o", str(tmp_path / "a-dir")],
                 ["models", "export", w2v, "-o", str(tmp_path / "link.txt")],
                 ["models", "export", w2v, "-o", str(tmp_path / "no-dir" / "x.txt")],
                 ["models", "export", "nope:1", "-o", str(existing)]):
        here = run(local, *args)
        same(here, run(remote, *args))
        assert here[0] == 0 or (here[1] == "" and len(here[2].splitlines()) == 1), (args, here)
    assert run(remote, "models", "export", w2v, "-o", "-")[1].startswith("60 8\n")
    forced = run(remote, "models", "export", w2v, "--format", "word2vec-binary", "-o", str(existing), "--force")
    assert forced == (0, "", f"wrote {existing}\n") and existing.read_bytes().startswith(b"60 8\n")
    assert not (tmp_path / "target.txt").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def _safetensors(path):
    """(header as a dict, tensor bytes) of a safetensors file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    return {k: v for k, v in header.items()}, {k: json.loads(v) if k == "card" else v for k, v in meta.items()}, raw[8 + n:]


def test_predict_splits_large_images_by_size(sides, cnn, tmp_path):
    """60 photos of ~190 KiB (11+ MiB in all: over the server's 10 MiB per request) go in several requests;
    the answers equal the local path's."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    assert sum(p.stat().st_size for p in folder.iterdir()) > 11 << 20
    local, remote, *_ = sides
    args = ["predict", cnn, str(folder), "--json", "--top", "3"]
    here = run(local, *args)
    assert here[0] == 0, here[2]
    same(here, run(remote, *args))


def test_with_the_embedded_stack_s_server_model_commands_go_through_it(api, sides, cnn, tmp_path):
    """$KILN_HOME/server.json names a live server and no KILN_URL is set: predict, eval, plot, compare and
    export go through it (the stores named in the environment are unreachable and never opened)."""
    import os

    local, _, _, w2v, _ = sides
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.json").write_text(json.dumps({"url": api.url, "pid": api.proc.pid}))
    (home / "api_token").write_text(create_tokens(api.settings, tester=True)["tester"] + "\n")
    os.chmod(home / "api_token", 0o600)
    embedded = {**local, "KILN_HOME": str(home), "KILN_REDIS_URL": "redis://127.0.0.1:1/0",
                "KILN_DB_URL": f"sqlite:///{tmp_path / 'absent.db'}"}
    images = write_images(tmp_path / "imgs", 3)
    for c in ("a", "b", "c"):
        write_images(tmp_path / "ds" / c, 2)
    for args in (["predict", cnn, str(tmp_path / "imgs"), "--json"], ["eval", cnn, str(tmp_path / "ds")],
                 ["models", "compare", w2v, cnn], ["models", "lineage", cnn]):
        same(run(local, *args), run(embedded, *args))
    assert run(embedded, "plot", cnn, "--what", "confusion", "-o", str(tmp_path / "c.png"))[0] == 0
    assert run(embedded, "models", "export", w2v, "-o", str(tmp_path / "v.txt"))[0] == 0
    assert (tmp_path / "v.txt").read_text().startswith("60 8\n") and images
    assert not (tmp_path / "absent.db").exists()
