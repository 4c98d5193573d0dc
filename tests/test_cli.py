"""The `kiln` command as a user runs it (a subprocess), against real Redis, SQLite and Ray."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from services.registry import Database
# each test that uses env runs twice: directly and through a real `kiln serve` (tests/cli_sides.py)
from tests.cli_sides import cli_side, direct_only, env, settings, through_server  # noqa: F401
from tests.conftest import write_corpus

KILN = str(Path(sys.executable).parent / "kiln")


def run(args, env, timeout=240, cwd=None):
    return subprocess.run([KILN, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


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
    (["{corpus}", "--min-count", "0"], "--min-count must be at least 1"),
    (["{corpus}", "--lr", "nan"], "--lr must be a finite number"),
    (["{corpus}", "--placement", "everywhere"], "'everywhere' is not one of 'pack', 'spread'"),
    (["{corpus}", "--timeout", "soon"], "'soon' is not a duration"),
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


def test_bad_submit_names_relative_paths_as_the_direct_path_does(env, tmp_path):
    """A path missing, or a corpus directory, is named as given; a corpus or evaluation file read, in full
    (through a server, which is sent absolute paths, too)."""
    write_corpus(tmp_path / "c.txt", 200)
    (tmp_path / "e.txt").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "bad.txt").write_text("this is not an analogy file\n")
    for args, line in ((["nope.txt"], "corpus: nope.txt: no such file or directory"),
                       (["d/"], "corpus: the directory d/ holds no files"),
                       (["e.txt"], f"corpus: {tmp_path}/e.txt is empty"),
                       (["c.txt", "--eval-analogies", "bad.txt"], f"{tmp_path}/bad.txt: line 1 is a question before")):
        assert one_line_error(run(["submit", "word2vec", *args], env, cwd=tmp_path), 2).startswith(f"error: {line}")


@pytest.mark.parametrize("args", [["status", "job-nope"], ["logs", "job-nope"], ["cancel", "job-nope"], ["retry", "job-nope"],
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


@direct_only  # the in-process import check of the direct path; the thin client's is tests/api/test_thin_cli.py
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


@direct_only  # trains a real model on Ray (minutes): not doubled; tests/api/test_cli_via_server.py compares the paths
@pytest.mark.timeout(400)
def test_cli_end_to_end(env, cluster_settings, dispatcher, tmp_path):
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    corpus = write_corpus(tmp_path / "corpus.txt")
    # the knobs that only the spec had before are flags now (generated from the spec)
    r = run(["submit", "word2vec", str(corpus), "--name", "cli-model", "--dim", "16", "--epochs", "2",
             "--min-count", "2", "--ns-exponent", "0.5", "--max-sentence-length", "500", "--checkpoint-interval", "2s",
             "--timeout", "10m", "--placement", "spread", "--follow", "--json"], env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"id", "job_id", "state", "model", "error"} and out["id"] == out["job_id"]
    assert out["state"] == "SUCCEEDED" and out["model"] == {"name": "cli-model", "version": 1} and out["error"] is None
    job = out["id"]
    spec = Database(cluster_settings.db_url).jobs.get(job).spec
    assert spec["params"]["ns_exponent"] == 0.5 and spec["params"]["max_sentence_length"] == 500
    assert spec["checkpoint_interval_s"] == 2.0 and spec["timeout_s"] == 600.0
    assert spec["resources"]["placement"] == "spread"
    assert spec["params"]["window"] == 5 and spec["params"]["sg"] is True  # flags not given: the spec's defaults

    jobs = json.loads(run(["jobs", "--json"], env).stdout)
    assert [j["id"] for j in jobs] == [job]
    status = json.loads(run(["status", job, "--json"], env).stdout)
    assert {"id", "name", "kind", "state", "progress", "attempt", "submitted_at", "started_at", "finished_at",
            "heartbeat", "error", "metrics", "model", "placement", "live", "throughput"} <= set(status)
    assert status["state"] == "SUCCEEDED" and status["progress"] == 1.0 and status["metrics"]["vocab_size"] > 0
    assert status["model"] == {"name": "cli-model", "version": 1} and jobs[0]["model"] == status["model"]
    assert [p["worker"] for p in status["placement"]] == [0] and status["placement"][0]["node_id"]
    for when in ("submitted_at", "started_at", "finished_at", "heartbeat"):
        datetime.fromisoformat(status[when])  # ISO 8601, the heartbeat too
    assert isinstance(status["attempt"], int) and isinstance(status["progress"], float)
    human = run(["status", job], env)
    assert human.returncode == 0 and "SUCCEEDED" in human.stdout
    logs = run(["logs", job], env)
    assert "registered model cli-model version 1" in logs.stdout
    followed = run(["logs", job, "-f"], env, timeout=30)  # a finished job: prints everything, then returns
    assert followed.returncode == 0 and followed.stdout == logs.stdout
    lines = [json.loads(line) for line in run(["logs", job, "--json"], env).stdout.splitlines()]
    assert len(lines) == len(logs.stdout.splitlines()) and set(lines[0]) == {"time", "level", "message"}
    assert lines[-1]["message"] == "registered model cli-model version 1"
    datetime.fromisoformat(lines[0]["time"])

    listed = json.loads(run(["models", "list", "--json"], env).stdout)
    assert [(m["name"], m["version"], m["kind"]) for m in listed] == [("cli-model", 1, "word2vec")]
    assert {"name", "version", "kind", "created_at", "metrics"} <= set(listed[0])
    shown = json.loads(run(["models", "show", "cli-model:1", "--json"], env).stdout)
    assert shown["lineage"]["job_id"] == job and shown["lineage"]["dataset_fingerprint"]
    assert shown["params"]["dim"] in (16, "16") and shown["artifacts"]["vectors"].startswith("file://")

    dest = tmp_path / "vectors.txt"
    r = run(["models", "export", "cli-model", "--format", "word2vec-text", "-o", str(dest)], env)
    assert r.returncode == 0, r.stderr
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(dest), binary=False)
    assert kv.vector_size == 16 and "cat3" in kv.key_to_index

    near = json.loads(run(["similar", "cli-model", "cat3", "--top", "5", "--json"], env).stdout)
    assert len(near) == 5 and sum(n["word"].startswith("cat") for n in near) >= 4
    (cache,) = (cluster_settings.kiln_home / "cache").glob("cli-model-1-*")  # keyed by the version's uid too
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

    # through a real `kiln serve` over these stores, every command above prints the same (training not doubled)
    with through_server(cluster_settings, env, tmp_path) as remote:
        for args in (["jobs"], ["jobs", "--json"], ["status", job], ["status", job, "--json"], ["logs", job],
                     ["logs", job, "--json"], ["logs", job, "-f"], ["watch", job], ["models", "list"],
                     ["models", "list", "--json"], ["models", "show", "cli-model:1"],
                     ["models", "show", "cli-model", "--json"], ["similar", "cli-model", "cat3", "--top", "5"],
                     ["similar", "cli-model", "cat3", "--top", "5", "--json"], ["similar", "cli-model", "zebra"],
                     ["models", "export", "cli-model", "--format", "word2vec-text", "-o", "-"],
                     ["models", "export", "cli-model", "-o", str(tmp_path / "no" / "such" / "dir.txt")],
                     ["retry", job], ["cancel", job], ["cancel", job, "--json"]):
            here, there = run(args, env), run(args, remote)
            assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), args


def test_submit_options_are_the_specs_fields():
    """Every field of the word2vec spec is reachable as a flag whose default is the spec's own."""
    import click

    from cli.submit import word2vec_command
    from shared.specs import JobSpec, Resources, Word2VecParams

    cmd = word2vec_command()
    by_name = {p.name: p for p in cmd.params if isinstance(p, click.Option)}
    expected = (set(Word2VecParams.model_fields) - {"corpus"}) | set(Resources.model_fields) | (
        set(JobSpec.model_fields) - {"kind", "params", "resources", "user"})
    assert expected <= set(by_name), expected - set(by_name)
    assert all(by_name[f].default is None for f in expected - {"name"})  # unset flags take the spec's defaults
    flags = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    assert {"--ns-exponent", "--cbow-mean", "--cbow-sum", "--max-sentence-length", "--checkpoint-interval",
            "--placement", "--timeout", "--max-vocab", "--sg", "--cbow"} <= flags
    assert "[default: 5]" in by_name["window"].help and "[default: 0.75]" in by_name["ns_exponent"].help


def test_spec_file_mistakes(env, tmp_path, redis_client):
    corpus = write_corpus(tmp_path / "c.txt", 200)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kind: word2vec\nname: m\nparams:\n  corpus: [{corpus}\n  dim: 3: 4\n")
    assert "bad.yaml, line 5: not a valid spec file" in one_line_error(run(["submit", "-f", str(bad)], env), 2)
    other = tmp_path / "other.yaml"
    other.write_text(f"kind: word2vec\nname: m\nuser: someone-else\nparams:\n  corpus: [{corpus}]\n")
    assert "user: a spec cannot name its submitter" in one_line_error(run(["submit", "-f", str(other)], env), 2)
    both = run(["submit", "-f", str(other), "word2vec", str(corpus)], env)
    assert "either -f SPEC_FILE or a job kind" in one_line_error(both, 2)
    assert redis_client.keys("kiln:*") == []
