"""What a new user hits in the first hour (issue 10), reproduced through the `kiln` command as they run it:
real jobs on the local Ray cluster whose corpus is deleted or whose worker is SIGKILLed, real pipes and
unreadable directories, a config.toml with a typo, no terminal, and --json errors a script can parse."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from services.registry import Database
from tests.conftest import write_corpus
from tests.test_cli import KILN, one_line_error, run

LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (INFO|WARNING|ERROR)\s")
"""Every line `kiln logs` prints: the date, the time, the level, one message (never a traceback line)."""


def wait_for(predicate, what: str, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def status(job: str, env) -> dict:
    r = run(["status", job, "--json"], env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_failed_in_one_line(job: str, env, needle: str) -> dict:
    """`kiln watch` exits 1, the job's error is one line holding ``needle``, and in `kiln logs` every line is
    dated, none is a traceback, and the ERROR lines (the runner's, then the dispatcher's verdict) hold it."""
    watched = run(["watch", job], env)
    assert watched.returncode == 1, (watched.stdout, watched.stderr)
    final = status(job, env)
    assert final["state"] == "FAILED", final
    assert needle in final["error"] and "\n" not in final["error"] and "Traceback" not in final["error"], final
    logs = run(["logs", job], env).stdout.splitlines()
    assert logs and all(LOG_LINE.match(line) for line in logs), logs
    errors = [line for line in logs if " ERROR " in line]
    assert 1 <= len(errors) <= 2 and all(needle in line for line in errors), logs
    return final


def _hold_every_cpu():
    """A placement group that holds every CPU of every node of the test cluster (so a job stays QUEUED)."""
    import ray

    bundles = [{"CPU": n["Resources"]["CPU"]} for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    pg = ray.util.placement_group(bundles, strategy="STRICT_SPREAD")
    ray.get(pg.ready(), timeout=60)
    return pg


@pytest.mark.timeout(400)
def test_a_corpus_deleted_after_submit_fails_the_job_with_one_line(env, cluster_settings, dispatcher, tmp_path):
    import ray

    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    corpus = write_corpus(tmp_path / "gone.txt", 300)
    pg = _hold_every_cpu()
    try:
        r = run(["submit", "word2vec", str(corpus), "--dim", "8", "--epochs", "1", "--min-count", "2",
                 "--max-retries", "2"], env)
        assert r.returncode == 0, r.stderr
        job = r.stdout.strip()
        wait_for(lambda: status(job, env)["reason"], "the job to wait for capacity")
        corpus.unlink()
    finally:
        ray.util.remove_placement_group(pg)
    final = assert_failed_in_one_line(job, env, f"corpus: {corpus} no longer exists")
    assert final["attempt"] == 1  # a missing file is the user's to fix: never retried
    assert "FileNotFoundError" not in final["error"]


@pytest.mark.timeout(400)
def test_a_killed_worker_fails_the_job_with_one_line(env, cluster_settings, dispatcher, tmp_path):
    import ray

    from workers.word2vec.job import Word2VecJob

    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    corpus = write_corpus(tmp_path / "c.txt", 2000)
    r = run(["submit", "word2vec", str(corpus), "--dim", "8", "--epochs", "1000", "--min-count", "2",
             "--max-retries", "0"], env)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    # `kiln logs` tells each phase and each epoch while the job runs (it showed nothing for 40 s before)
    logged = wait_for(lambda: (lambda out: out if re.search(r" epoch 2/1000: loss \d", out) else None)(
        run(["logs", job], env).stdout), "the second epoch's log line")
    for phase in ("preparing data", "counting words", "vocabulary:", "encoding", "training skip-gram"):
        assert phase in logged, logged
    worker = ray.get_actor(Word2VecJob.worker_name(job, 1, 0), namespace=cluster_settings.namespace)
    pid = ray.get(worker.__ray_call__.remote(lambda _self: os.getpid()), timeout=60)
    os.kill(pid, signal.SIGKILL)
    final = assert_failed_in_one_line(job, env, "died")
    assert final["attempt"] == 1


@pytest.mark.timeout(400)
def test_binary_bytes_a_worker_finds_fail_the_job_with_one_line(env, cluster_settings, dispatcher, tmp_path):
    """17 MB, text at both ends, NUL bytes after the first 1.2 MB: the submit checks (the ends, and the first
    MB of a corpus over 16 MB) pass; the worker's reader stops at the NULs, and its error reaches the job and
    the log as one line, not as the Ray task's traceback."""
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    text = write_corpus(tmp_path / "t.txt", 20000).read_bytes()  # about 1.2 MB
    corpus = tmp_path / "middle.txt"
    with corpus.open("wb") as f:
        f.write(text + b"\x00" * 4096)
        for _ in range(14):
            f.write(text)
    r = run(["submit", "word2vec", str(corpus), "--dim", "8", "--epochs", "1", "--min-count", "2",
             "--max-retries", "2"], env)
    assert r.returncode == 0, r.stderr
    final = assert_failed_in_one_line(r.stdout.strip(), env, "binary data (a NUL byte) at byte")
    assert final["attempt"] == 1 and "RayTaskError" not in final["error"]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RED = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:31|91|38;5;(?:1|9|196))m")


@pytest.mark.timeout(400)
def test_follow_on_a_terminal_shows_the_phase_in_80_columns_and_no_red(env, cluster_settings, dispatcher, tmp_path):
    """`kiln submit --follow` on a real terminal (a pty, 80 columns): the phase while data is prepared (never
    `RUNNING 0.0%`), lines that fit, a normal run not drawn red, and the outcome."""
    import pty
    import select

    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address, "COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    corpus = write_corpus(tmp_path / "c.txt", 3000)
    master, slave = pty.openpty()
    proc = subprocess.Popen([KILN, "submit", "word2vec", str(corpus), "--name", "tty", "--dim", "8", "--epochs",
                             "20", "--min-count", "2", "--follow"], env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the pty closed: the command ended
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(60) == 0, out[-2000:]
    text = out.decode("utf-8", "replace")
    assert not RED.search(text), "a normal run drawn red"
    plain = ANSI.sub("", text)
    lines = [line for chunk in plain.split("\n") for line in chunk.split("\r") if line.strip()]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(p in plain for p in ("scanning corpus", "counting", "encoding", "preparing data")), plain[-2000:]
    bare = [line for line in lines if re.search(r"(STARTING|RUNNING) .*\d+%\s*$", line)]
    assert not bare, bare  # a running job always says what it is doing, never a bare "RUNNING 0%"
    assert "registered model tty version 1" in plain or "SUCCEEDED" in plain, plain[-1000:]


def test_pipes_are_refused_at_once_and_left_unread(env, tmp_path, small_corpus):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["bash", "-c", f"cat {small_corpus} > {fifo}"],  # blocks until someone reads
                              start_new_session=True)
    try:
        line = one_line_error(run(["submit", "word2vec", str(fifo)], env, timeout=60), 2)
        assert f"{fifo} is a named pipe" in line and "write it to a regular file first" in line
        assert writer.poll() is None  # nothing was read from it
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # bash and the child it forked for the redirection
        writer.wait()
    # bash's process substitution is a pipe too (/dev/fd/63): named as such, not reported "empty"
    # ($! is the substitution's cat, left blocked on its unread pipe: killed, so the test leaves no process)
    r = subprocess.run(["bash", "-c", f'"{KILN}" submit word2vec <(cat "{small_corpus}"); rc=$?; kill $! 2>/dev/null; '
                                      'exit $rc'], env=env, capture_output=True, text=True, timeout=60)
    line = one_line_error(r, 2)
    assert "is a named pipe" in line and "empty" not in line


def test_a_catastrophic_token_pattern_is_refused_in_bounded_time(env, tmp_path):
    corpus = tmp_path / "aaa.txt"
    for pattern, needle in (("(a+)+b", "no word occurs"),  # the issue's: ends (no token matches), one line
                            ("(a|aa)+b", "--token-pattern")):  # 40 a's: too slow for any engine that backtracks
        corpus.write_text("a" * 40 + "!\n")
        t0 = time.monotonic()
        r = run(["submit", "word2vec", str(corpus), "--min-count", "1", "--token-pattern", pattern], env, timeout=120)
        assert needle in one_line_error(r, 2)
        assert time.monotonic() - t0 < 60  # it used to hang for good


def test_a_huge_file_with_a_text_head_and_a_nul_tail_is_refused_at_once(env, tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.write(b"plain words at the head of the file\n" * 1000)
        f.truncate(2 << 30)  # 2 GB, sparse: the tail reads as NUL bytes
    t0 = time.monotonic()
    line = one_line_error(run(["submit", "word2vec", str(big)], env, timeout=120), 2)
    assert "looks like a binary file" in line and time.monotonic() - t0 < 60


def test_a_missing_evaluation_file_is_named_by_its_flag(env, small_corpus, tmp_path):
    r = run(["submit", "word2vec", str(small_corpus), "--eval-analogies", str(tmp_path / "nope.txt")], env)
    assert one_line_error(r, 2).startswith(f"error: --eval-analogies: {tmp_path / 'nope.txt'}: no such file")
    r = run(["submit", "word2vec", str(small_corpus), "--eval-similarity", str(tmp_path / "nope.tsv")], env)
    assert one_line_error(r, 2).startswith("error: --eval-similarity: ")


def test_a_mixed_directory_says_what_it_skips(env, tmp_path, redis_client):
    d = tmp_path / "mixed"
    d.mkdir()
    write_corpus(d / "a.txt", 200)
    (d / "empty.txt").write_text("")
    (d / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    os.mkfifo(d / "pipe")
    # the check stops before anything is stored (no Ray at RAY_ADDRESS): the warning came first
    r = run(["submit", "word2vec", str(d), "--min-count", "2"], env, timeout=120)
    assert r.returncode == 3, r.stderr
    warning, error = r.stderr.strip().splitlines()
    assert warning.startswith("warning: the corpus skips 3 file(s) and reads 1: ")
    assert "1 looks like a binary file, not text" in warning and "1 empty" in warning and "1 a named pipe" in warning
    assert error.startswith("error: cannot reach Ray")
    assert redis_client.keys("kiln:*") == []
    only_pipes = tmp_path / "pipes"
    only_pipes.mkdir()
    os.mkfifo(only_pipes / "p")
    assert "holds no readable text files (1 left out: a named pipe)" in one_line_error(
        run(["submit", "word2vec", str(only_pipes)], env), 2)


def _as_unprivileged(args, env):
    """Run kiln as a user that file modes apply to: as root, with the capabilities that bypass them dropped."""
    cmd = [KILN, *args]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_an_unreadable_directory_is_not_called_empty(env, tmp_path):
    top = tmp_path / "corpus"
    (top / "locked").mkdir(parents=True)
    write_corpus(top / "locked" / "a.txt", 100)
    (top / "locked").chmod(0)
    try:
        line = one_line_error(_as_unprivileged(["submit", "word2vec", str(top)], env), 2)
        assert "permission denied" in line and str(top / "locked") in line and "holds no files" not in line
        top.chmod(0)
        line = one_line_error(_as_unprivileged(["submit", "word2vec", str(top)], env), 2)
        assert "permission denied (the directory cannot be listed)" in line
    finally:
        top.chmod(0o755)
        (top / "locked").chmod(0o755)


@pytest.mark.parametrize("text,needle", [
    ('[kiln]\nredis_urll = "redis://127.0.0.1:1/0"\n', "unknown setting 'redis_urll' in [kiln]"),
    ('[kilm]\nredis_url = "redis://127.0.0.1:1/0"\n', "unknown table 'kilm'"),
    ("max_running_jobs = 2\n", "unknown key 'max_running_jobs': settings go in a [kiln] table"),
    ("[kiln]\nmax_running_jobs = \"two\"\n", "max_running_jobs must be a whole number"),
    ("[kiln]\nmax_running_jobs = -1\n", "max_running_jobs must be a whole number >= 0"),
    ("[kiln]\nuser = 3\n", "user must be a string"),
    ("[kiln\n", "not valid TOML"),
])
def test_a_config_file_kiln_does_not_understand_is_an_error(env, settings, text, needle):
    settings.kiln_home.mkdir(parents=True, exist_ok=True)
    (settings.kiln_home / "config.toml").write_text(text)
    env = {k: v for k, v in env.items() if k not in ("KILN_REDIS_URL", "KILN_USER")}
    line = one_line_error(run(["jobs"], env), 2)
    assert needle in line and "config.toml" in line


def test_a_negative_cap_in_the_environment_is_an_error(env):
    assert "KILN_MAX_RUNNING_JOBS must be a whole number >= 0" in one_line_error(
        run(["jobs"], {**env, "KILN_MAX_RUNNING_JOBS": "-1"}), 2)


def test_models_delete_without_a_terminal_says_yes_is_needed(env, settings):
    Database(settings.db_url).models.register_version(name="keep", kind="word2vec", params={"dim": 4}, metrics={},
                                                      artifacts={}, lineage={})
    r = subprocess.run([KILN, "models", "delete", "keep:1"], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert "no terminal to confirm the delete of keep:1: add --yes" in one_line_error(r, 2)
    assert [v.version for v in Database(settings.db_url).models.list_versions()] == [1]  # nothing deleted


@pytest.mark.parametrize("args,code,exit_code", [
    (["models", "show", "nope", "--json"], "RESOURCE_DOES_NOT_EXIST", 1),
    (["status", "job-nope", "--json"], "RESOURCE_DOES_NOT_EXIST", 1),
    (["jobs", "--state", "SLEEPING", "--json"], "INVALID_PARAMETER_VALUE", 2),
    (["submit", "word2vec", "nope.txt", "--json"], "INVALID_PARAMETER_VALUE", 2),
    (["models", "list", "--filter", "metric.x>>1", "--json"], "INVALID_PARAMETER_VALUE", 2),
])
def test_errors_under_json_are_json_on_stderr_with_the_same_exit_code(env, args, code, exit_code):
    r = run(args, env)
    assert r.returncode == exit_code and r.stdout == "", (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    err = json.loads(line)["error"]
    assert err["code"] == code and err["message"] and "Traceback" not in r.stderr
    plain = run([a for a in args if a != "--json"], env)  # the same error without --json: the same line
    assert one_line_error(plain, exit_code) == f"error: {err['message']}"


def test_errors_under_json_cover_an_unreachable_service(env, small_corpus, tmp_path):
    r = run(["submit", "word2vec", str(small_corpus), "--min-count", "2", "--json"],
            {**env, "KILN_REDIS_URL": "redis://127.0.0.1:1/0", "KILN_HOME": str(tmp_path / "h")}, timeout=120)
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stderr)["error"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.timeout(400)
def test_a_changed_job_cap_is_shown_then_applied_by_kiln_up(env, cluster_settings, dispatcher, tmp_path):
    """The dispatcher started with no cap; KILN_MAX_RUNNING_JOBS=1 set afterwards: `kiln doctor` says which
    cap is in force and how to apply the new one; `kiln up` applies it to the running dispatcher."""
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address, "KILN_MAX_RUNNING_JOBS": "1"}

    def doctor() -> dict:
        r = run(["doctor", "--json"], env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    report = wait_for(lambda: (lambda d: d if d["in_use"]["caps"] is not None else None)(doctor()),
                      "the dispatcher to publish its caps")
    assert report["settings"]["KILN_MAX_RUNNING_JOBS"] == 1
    assert report["in_use"]["caps"] == {"max_running_jobs": None, "max_running_per_user": None}
    assert any("the dispatcher applies KILN_MAX_RUNNING_JOBS=no cap" in w and "`kiln up` applies" in w
               for w in report["warnings"]), report["warnings"]
    try:
        r = run(["up"], env)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: doctor()["in_use"]["caps"]["max_running_jobs"] == 1, "the new cap in force")
        assert not [w for w in doctor()["warnings"] if "dispatcher applies" in w]
        corpus = write_corpus(tmp_path / "c.txt", 2000)
        jobs = []
        for _ in range(2):  # two 1-CPU jobs on a 3-CPU cluster: only the cap keeps the second waiting
            r = run(["submit", "word2vec", str(corpus), "--dim", "8", "--epochs", "1000", "--min-count", "2"], env)
            assert r.returncode == 0, r.stderr
            jobs.append(r.stdout.strip())
        wait_for(lambda: status(jobs[0], env)["state"] == "RUNNING", "the first job to run")
        waiting = wait_for(lambda: status(jobs[1], env)["reason"], "the second job's reason")
        assert "the cap (KILN_MAX_RUNNING_JOBS) is 1" in waiting and status(jobs[1], env)["state"] == "QUEUED"
        for job in jobs:
            assert run(["cancel", job], env).returncode == 0
    finally:
        run(["down", "--force"], env)  # stops the local HTTP server `kiln up` started


def test_models_json_is_typed(env, settings):
    """Params keep their types (numbers, booleans, lists, null) and counts are integers, not 8839.0."""
    Database(settings.db_url).models.register_version(
        name="typed", kind="word2vec", artifacts={}, lineage={},
        params={"dim": 100, "lr": 0.025, "lowercase": False, "corpus": ["/data/a.txt"], "max_vocab_size": None},
        metrics={"vocab_size": 8839.0, "corpus_words": 461988.0, "analogy_accuracy": 0.5, "words_per_s": 1.0e5})
    shown = json.loads(run(["models", "show", "typed", "--json"], env).stdout)
    (listed,) = json.loads(run(["models", "list", "--json"], env).stdout)
    for d in (shown, listed):
        assert d["params"] == {"dim": 100, "lr": 0.025, "lowercase": False, "corpus": ["/data/a.txt"],
                               "max_vocab_size": None}
        m = d["metrics"]
        assert type(m["vocab_size"]) is int and type(m["corpus_words"]) is int and m["vocab_size"] == 8839
        assert type(m["analogy_accuracy"]) is float and type(m["words_per_s"]) is float


def test_the_readme_spec_file_example_is_valid(env, tmp_path, redis_client):
    """The spec file the README documents, with its relative paths, passes every check of `kiln submit -f`
    (it stops only at Ray, which this test does not run); the same keys with a typo are refused."""
    import gzip
    import shutil
    from pathlib import Path

    import bench.corpora as corpora

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### A job spec as a file"):]
    example = section[section.index("```yaml\n") + 8:section.index("\n```", section.index("```yaml"))]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "extra").mkdir()
    write_corpus(tmp_path / "corpus" / "a.txt", 3000)
    with gzip.open(tmp_path / "extra" / "b.txt.gz", "wt") as f:
        f.write(write_corpus(tmp_path / "b.txt", 500).read_text())
    shutil.copy(corpora.questions_words(), tmp_path / "questions-words.txt")
    shutil.copy(corpora.wordsim353(), tmp_path / "wordsim353.tsv")
    spec = tmp_path / "news.yaml"
    spec.write_text(example)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([KILN, "submit", "-f", "../news.yaml"], cwd=elsewhere, env=env, capture_output=True,
                       text=True, timeout=120)
    assert "cannot reach Ray" in one_line_error(r, 3)  # every check passed; only Ray is missing here
    spec.write_text(example.replace("min_count: 5", "min_cuont: 5"))
    assert "min_cuont" in one_line_error(run(["submit", "-f", str(spec)], env), 2)
    assert redis_client.keys("kiln:*") == []


def test_models_list_order_is_the_documented_one_and_model_tags_show(env, settings):
    """`kiln models list` sorts by name (as its --help and the README say); --order-by created_at --desc is
    newest first; a tag set on the model shows on its versions, in the table and in JSON."""
    db = Database(settings.db_url)
    for name in ("zeta", "alpha", "mid"):  # registered in this order: zeta is the oldest
        db.models.register_version(name=name, kind="word2vec", params={}, metrics={}, artifacts={}, lineage={})
    assert "(default: name)" in run(["models", "list", "--help"], env).stdout
    by_name = json.loads(run(["models", "list", "--json"], env).stdout)
    assert [m["name"] for m in by_name] == ["alpha", "mid", "zeta"]
    newest = json.loads(run(["models", "list", "--order-by", "created_at", "--desc", "--json"], env).stdout)
    assert [m["name"] for m in newest] == ["mid", "alpha", "zeta"]
    assert run(["models", "tag", "zeta", "team=nlp"], env).returncode == 0  # on the model, not a version
    assert json.loads(run(["models", "show", "zeta:1", "--json"], env).stdout)["tags"] == {"team": "nlp"}
    shown = run(["models", "show", "zeta"], env).stdout
    assert re.search(r"tags:\n\s+team\s+nlp", shown), shown


def test_a_cnn_spec_files_paths_are_relative_to_it(env, tmp_path, redis_client):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.random((40, 8, 8), dtype=np.float32), y=np.arange(40) % 4)
    spec = tmp_path / "digits.yaml"
    spec.write_text("kind: cnn\nname: tiny\nparams:\n  dataset: images.npz\n  arch: softmax\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([KILN, "submit", "-f", str(spec)], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=120)
    assert "cannot reach Ray" in one_line_error(r, 3)  # the dataset was found beside the spec file
    assert redis_client.keys("kiln:*") == []
