"""The `kiln` command as a user runs it (a subprocess), against real Redis, SQLite and Ray."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.registry import Database
from tests.conftest import write_corpus

KILN = str(Path(sys.executable).parent / "kiln")


def run(args, env, timeout=240):
    return subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (["nope.txt"], "no such file"),
    (["{corpus}", "--dim", "0"], "dim"),
    (["{corpus}", "--epochs", "-1"], "epochs"),
    (["{corpus}", "--window", "0"], "window"),
    (["{corpus}", "--dim", "abc"], "'abc' is not a valid integer"),
    (["{corpus}", "--min-count", "100000"], "min_count=100000"),
    (["{empty}"], "is empty"),
    (["{emptydir}"], "holds no files"),
    (["{binary}"], "binary"),
])
def test_bad_submit_is_one_line_exit_2_and_stores_nothing(args, needle, env, tmp_path, settings, redis_client):
    paths = {"corpus": write_corpus(tmp_path / "c.txt", 200), "empty": tmp_path / "e.txt",
             "emptydir": tmp_path / "d", "binary": tmp_path / "b.bin"}
    paths["empty"].write_text("")
    paths["emptydir"].mkdir()
    paths["binary"].write_bytes(b"\x00\x01\x02" * 100)
    r = run(["submit", "word2vec", *[a.format(**paths) for a in args]], env)
    assert needle in one_line_error(r, 2)
    assert redis_client.keys("kiln:*") == []
    if Path(settings.db_url.removeprefix("sqlite:///")).exists():
        assert Database(settings.db_url).jobs.list() == []


@pytest.mark.parametrize("args", [["status", "job-nope"], ["logs", "job-nope"], ["cancel", "job-nope"],
                                  ["models", "show", "nope"], ["similar", "nope", "word"],
                                  ["models", "export", "nope", "-o", "x.txt"]])
def test_unknown_ids_are_exit_1(args, env):
    assert "nope" in one_line_error(run(args, env), 1)


def test_usage_errors_are_exit_2(env):
    one_line_error(run(["submit"], env), 2)
    one_line_error(run(["jobs", "--state", "SLEEPING"], env), 2)
    one_line_error(run(["models", "show", "bad name!"], env), 2)


def test_read_commands_work_with_nothing_running(env):
    r = run(["jobs", "--json"], env)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = run(["models", "list", "--json"], env)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_read_commands_import_neither_torch_nor_ray(env):
    code = ("import sys; from cli.main import kiln; "
            "sys.argv=['kiln','jobs','--json']\n"
            "try:\n    kiln.main(standalone_mode=False)\nexcept SystemExit: pass\n"
            "from cli.models import list_cmd, show\n"
            "bad = [m for m in ('torch', 'ray', 'numba', 'gensim') if m in sys.modules]\n"
            "print('loaded:', bad)")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "loaded: []" in r.stdout, r.stdout


@pytest.mark.timeout(400)
def test_cli_end_to_end(env, cluster_settings, dispatcher, tmp_path):
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    corpus = write_corpus(tmp_path / "corpus.txt")
    r = run(["submit", "word2vec", str(corpus), "--name", "cli-model", "--dim", "16", "--epochs", "2",
             "--min-count", "2", "--follow", "--json"], env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"job_id", "state", "model", "error"}
    assert out["state"] == "SUCCEEDED" and out["model"] == {"name": "cli-model", "version": 1} and out["error"] is None
    job = out["job_id"]

    jobs = json.loads(run(["jobs", "--json"], env).stdout)
    assert [j["id"] for j in jobs] == [job]
    status = json.loads(run(["status", job, "--json"], env).stdout)
    assert {"id", "name", "kind", "state", "progress", "attempt", "submitted_at", "started_at", "finished_at",
            "error", "metrics"} <= set(status)
    assert status["state"] == "SUCCEEDED" and status["progress"] == 1.0 and status["metrics"]["vocab_size"] > 0
    human = run(["status", job], env)
    assert human.returncode == 0 and "SUCCEEDED" in human.stdout
    logs = run(["logs", job], env)
    assert "registered model cli-model version 1" in logs.stdout
    followed = run(["logs", job, "-f"], env, timeout=30)  # a finished job: prints everything, then returns
    assert followed.returncode == 0 and followed.stdout == logs.stdout

    listed = json.loads(run(["models", "list", "--json"], env).stdout)
    assert [(m["name"], m["version"], m["kind"]) for m in listed] == [("cli-model", 1, "word2vec")]
    assert {"name", "version", "kind", "created_at", "metrics"} == set(listed[0])
    shown = json.loads(run(["models", "show", "cli-model:1", "--json"], env).stdout)
    assert shown["lineage"]["job_id"] == job and shown["lineage"]["dataset_fingerprint"]
    assert shown["params"]["dim"] == "16" and shown["artifacts"]["vectors"].startswith("file://")

    dest = tmp_path / "vectors.txt"
    r = run(["models", "export", "cli-model", "--format", "word2vec-text", "-o", str(dest)], env)
    assert r.returncode == 0, r.stderr
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(dest), binary=False)
    assert kv.vector_size == 16 and "cat3" in kv.key_to_index

    near = json.loads(run(["similar", "cli-model", "cat3", "--top", "5", "--json"], env).stdout)
    assert len(near) == 5 and sum(n["word"].startswith("cat") for n in near) >= 4
    cache = cluster_settings.kiln_home / "cache" / "cli-model-1"
    assert (cache / "unit.npy").is_file()  # the second query reads the cached, normalised vectors
    assert json.loads(run(["similar", "cli-model", "cat3", "--top", "5", "--json"], env).stdout) == near
    assert "not in the model's vocabulary" in one_line_error(run(["similar", "cli-model", "zebra"], env), 1)
    r = run(["models", "export", "cli-model", "-o", str(tmp_path / "no" / "such" / "dir.txt")], env)
    one_line_error(r, 2)
    watched = run(["watch", job], env)
    assert watched.returncode == 0 and "SUCCEEDED: registered model cli-model version 1" in watched.stdout
    assert "only FAILED or CANCELLED" in one_line_error(run(["retry", job], env), 2)
    # cancelling a finished job changes nothing
    r = run(["cancel", job], env)
    assert r.returncode == 0 and "already SUCCEEDED" in r.stdout
