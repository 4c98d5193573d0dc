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
