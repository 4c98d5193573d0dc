"""Every `kiln models` command, `kiln similar/analogy`, `kiln db` and the Python API, end to end against
registered word2vec models with real files, on SQLite and on PostgreSQL.

Versions are registered through the registry API (as the dispatcher does) with small real models
written by ``Word2VecModel.save``; no Ray job is needed. Commands run in process through ``cli.main.main``
(the same parsing, error mapping and exit codes as the console script); a few run as real processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.registry import Database
from shared.config import Settings
from shared.states import JobState
from workers.word2vec.model import Word2VecModel

KILN = str(Path(sys.executable).parent / "kiln")
WORDS = ["king", "queen", "man", "woman", "cat", "dog", "paris", "france"]


def _vectors(royal_pair: tuple[str, str]) -> np.ndarray:
    """8 words in 8 dims: each word its own axis, the two words of ``royal_pair`` nearly the same."""
    v = np.eye(len(WORDS), dtype=np.float32) + 0.01
    a, b = (WORDS.index(w) for w in royal_pair)
    v[b] = v[a] * 0.9 + v[b] * 0.1
    return v


class Kiln:
    """One KILN_HOME with its registry; ``run(...)`` is ``kiln ...`` in process: (exit code, stdout, stderr)."""

    def __init__(self, home: Path, db_url: str, capsys, monkeypatch):
        self.home, self.db_url, self.capsys = home, db_url, capsys
        self.artifacts = home / "artifacts"
        self.env = {"KILN_HOME": str(home), "KILN_DB_URL": db_url, "KILN_ARTIFACTS": str(self.artifacts),
                    "KILN_REDIS_URL": "redis://127.0.0.1:1/0", "RAY_ADDRESS": "127.0.0.1:1", "KILN_USER": "tester"}
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        self.settings = Settings(kiln_home=home, redis_url=None, db_url=db_url, artifacts=str(self.artifacts),
                                 ray_address=None, user="tester")
        self.db = Database(db_url)
        self._clear()

    @staticmethod
    def _clear() -> None:
        from cli import context
        from shared.config import get_settings

        if context.backends.cache_info().currsize:
            b = context.backends()
            if "db" in b.__dict__:
                b.db.close()
        context.backends.cache_clear()
        get_settings.cache_clear()

    def close(self) -> None:
        self._clear()
        self.db.close()

    def run(self, *args: str) -> tuple[int, str, str]:
        from cli.main import main

        self.capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str):
        code, out, err = self.run(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    def error(self, code: int, *args: str) -> str:
        """Run a command that must fail: one line on stderr, this exit code, no traceback."""
        got, out, err = self.run(*args)
        assert got == code, (got, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return lines[0]

    def register(self, name="news", royal=("king", "queen"), *, job_id=None, tags=None, acc=0.5, dim=8,
                 kind="word2vec", trained_from=None):
        """A real model's files in the artifact store, its job record and the version, as the dispatcher writes them."""
        job_id = job_id or f"job-{name}-{len(list(self.artifacts.glob('jobs/*')))}"
        folder = self.artifacts / "jobs" / job_id / "model"
        files = Word2VecModel(WORDS, _vectors(royal)).save(folder)
        corpus = [str(self.home / "corpus" / "a.txt")]
        spec = {"kind": kind, "name": name, "params": {"corpus": corpus, "dim": dim, "epochs": 2}}
        self.db.jobs.create(job_id=job_id, name=name, kind=kind, user="tester", spec_json=json.dumps(spec),
                            priority=0, max_retries=1)
        with self.db.session() as s:
            for state in (JobState.STARTING, JobState.RUNNING):
                self.db.jobs.transition(job_id, state, session=s)
            mv = self.db.models.register_version(
                name=name, kind=kind, params={"dim": dim, "sg": True, "corpus": corpus, "max_vocab": None},
                metrics={"analogy_accuracy": acc}, history=[{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}],
                artifacts={k: Path(p).as_uri() for k, p in files.items()}, tags=tags,
                lineage={"dataset_fingerprint": "sha256:" + "ab" * 32, "kiln_version": "0.2.0",
                         "git_commit": "c0ffee", "trained_from": trained_from}, job_id=job_id, session=s)
            self.db.jobs.transition(job_id, JobState.SUCCEEDED, session=s,
                                    result={"model": {"name": mv.name, "version": mv.version}})
        return mv


@pytest.fixture
def kiln(tmp_path, db_url, capsys, monkeypatch):
    k = Kiln(tmp_path / "home", db_url, capsys, monkeypatch)
    yield k
    k.close()


@pytest.fixture
def news(kiln):
    """news:1 (king~queen, acc 0.3), news:2 (king~cat, acc 0.6, team=nlp), other:1 (acc 0.9)."""
    kiln.register(acc=0.3)
    kiln.register(royal=("king", "cat"), acc=0.6, tags={"team": "nlp"}, trained_from="news:1")
    kiln.register(name="other", acc=0.9, dim=16, tags={"team": "search"})
    return kiln


# -- list -------------------------------------------------------------------------------------------------
def test_list_searches_with_filters_order_limit_and_typed_json(news):
    rows = news.json("models", "list")
    assert [(r["name"], r["version"]) for r in rows] == [("news", 2), ("other", 1)]
    r = rows[0]
    assert set(r) == {"name", "version", "kind", "created_at", "params", "metrics", "tags", "aliases", "job_id"}
    assert r["params"] == {"dim": 8, "sg": True, "corpus": [str(news.home / "corpus" / "a.txt")], "max_vocab": None}
    assert r["metrics"] == {"analogy_accuracy": 0.6, "loss": 1.5} and r["tags"] == {"team": "nlp"}
    assert r["job_id"].startswith("job-news") and r["created_at"].endswith("+00:00")

    def refs(*args):
        return [f"{r['name']}:{r['version']}" for r in news.json("models", "list", *args)]

    assert refs("--all-versions") == ["news:2", "news:1", "other:1"]
    assert refs("--all-versions", "--filter", "metric.analogy_accuracy>=0.5", "--filter", "param.dim<16",
                "--order-by", "metric.analogy_accuracy", "--desc") == ["news:2"]
    assert refs("--all-versions", "--order-by", "metric.analogy_accuracy", "--desc", "--limit", "2") == \
        ["other:1", "news:2"]
    assert refs("--all-versions", "--order-by", "created_at") == ["news:1", "news:2", "other:1"]
    assert refs("--filter", "tag.team!=nlp") == ["other:1"]
    assert refs("--name", "n*", "--all-versions") == ["news:2", "news:1"]
    assert refs("--kind", "cnn") == []
    code, out, _ = news.run("models", "list", "--filter", "metric.analogy_accuracy > 0.5")
    assert code == 0 and "news" in out and "other" in out and "analogy_accuracy=0.6" in out


@pytest.mark.parametrize("args,needle", [
    (["--filter", "metric.acc >> 1"], "bad filter"),
    (["--filter", "metrics.acc>1"], "bad filter"),
    (["--filter", "tag.team<nlp"], "tags compare with = or != only"),
    (["--order-by", "size"], "--order-by: unknown field 'size'"),
    (["--limit", "0"], "--limit"),
    (["--name", "../x"], "--name: bad pattern"),
    (["--kind", "svm"], "--kind"),
])
def test_bad_list_options_are_one_line_exit_2(news, args, needle):
    assert needle in news.error(2, "models", "list", *args)


# -- show, aliases, tags, descriptions ----------------------------------------------------------------------
def test_show_alias_tag_and_describe(news):
    assert news.run("models", "alias", "news:1", "production")[0] == 0
    d = news.json("models", "show", "news@production")
    assert (d["name"], d["version"], d["aliases"]) == ("news", 1, ["production"])
    assert d["history"] == {"loss": [{"step": 1, "value": 2.0}, {"step": 2, "value": 1.5}]}
    folder = news.artifacts / "jobs" / d["job_id"] / "model"
    assert d["artifact_sizes"] == {"text": (folder / "vectors.txt").stat().st_size,
                                   "vectors": (folder / "vectors.safetensors").stat().st_size,
                                   "vocab": (folder / "vocab.json").stat().st_size}
    assert d["lineage"]["dataset_fingerprint"] == "sha256:" + "ab" * 32 and len(d["uid"]) == 32
    code, out, _ = news.run("models", "alias", "news:2", "production")  # moves it
    assert code == 0 and "news@production -> version 2" in out
    assert news.json("models", "show", "news@production")["version"] == 2
    assert news.json("models", "show", "news:1")["aliases"] == []
    assert news.run("models", "alias", "news", "production", "--delete")[0] == 0
    assert "has no alias 'production'" in news.error(1, "models", "show", "news@production")
    assert "reserved" in news.error(2, "models", "alias", "news:1", "latest")
    assert "bad alias" in news.error(2, "models", "alias", "news:1", "../prod")

    assert news.run("models", "tag", "news:1", "stage=candidate", "owner=ada")[0] == 0
    assert news.run("models", "tag", "news", "team=ranking")[0] == 0  # the model: every version shows it
    assert news.json("models", "show", "news:1")["tags"] == {"owner": "ada", "stage": "candidate", "team": "ranking"}
    assert news.json("models", "show", "news:2")["tags"] == {"team": "nlp"}  # its own tag wins
    assert news.run("models", "tag", "news:1", "--delete", "owner")[0] == 0
    assert "owner" not in news.json("models", "show", "news:1")["tags"]
    assert "has no tag 'owner'" in news.error(1, "models", "tag", "news:1", "--delete", "owner")
    assert "KEY=VALUE" in news.error(2, "models", "tag", "news:1", "novalue")
    assert "bad tag key" in news.error(2, "models", "tag", "news:1", "a b=c")

    assert news.run("models", "describe", "news:1", "first try")[0] == 0
    assert news.run("models", "describe", "news", "news vectors")[0] == 0
    assert news.json("models", "show", "news:1")["description"] == "first try"
    assert news.json("models", "show", "news:2")["description"] == "news vectors"
    code, out, _ = news.run("models", "show", "news:1")
    assert code == 0
    for needle in ("news:1", "first try", "params:", "history (by epoch):", "artifacts:", "vectors.safetensors",
                   "lineage:", "stage"):
        assert needle in out


def test_every_command_takes_name_version_and_alias(news, tmp_path):
    news.run("models", "alias", "news:1", "production")
    for ref, version in (("news", 2), ("news:1", 1), ("news@production", 1), ("news@latest", 2)):
        assert news.json("models", "show", ref)["version"] == version
        assert news.json("models", "lineage", ref)["model"]["version"] == version
        nearest = news.json("similar", ref, "king", "--top", "1")[0]["word"]
        assert nearest == ("queen" if version == 1 else "cat")
        assert news.run("analogy", ref, "man", "king", "woman", "--top", "1")[0] == 0
        out = tmp_path / f"{ref.replace('@', '_').replace(':', '_')}.txt"
        assert news.run("models", "export", ref, "-o", str(out))[0] == 0
        assert out.read_text().splitlines()[0] == "8 8"
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("king\tqueen\t9.0\nking\tcat\t1.0\nman\twoman\t8.0\ncat\tdog\t7.0\n")
    d = news.json("eval", "news@production", "--similarity", str(pairs))
    assert d["model"] == "news:1" and "similarity_spearman" in d["metrics"]
    recorded = news.json("models", "show", "news:1")["metrics"]
    assert recorded["similarity_spearman"] == d["metrics"]["similarity_spearman"]
    assert "similarity_spearman" not in news.json("models", "show", "news:2")["metrics"]
    for bad in ("news:0", "news:x", "news@", "news\n", "news@production\n", "news:1\n", "../news", "a/b",
                "news@pro duction", "a..b"):
        assert news.error(2, "models", "show", bad)
    assert "no model named 'nope'" in news.error(1, "similar", "nope", "king")
    assert "has no version 7" in news.error(1, "models", "show", "news:7")
    assert "has no alias 'staging'" in news.error(1, "models", "export", "news@staging", "-o", str(tmp_path / "x"))


def test_compare_marks_differences(news):
    d = news.json("models", "compare", "news:1", "news:2", "other")
    assert d["models"] == [{"name": "news", "version": 1}, {"name": "news", "version": 2},
                           {"name": "other", "version": 1}]
    assert d["params"]["dim"] == {"values": [8, 8, 16], "differ": True}
    assert d["params"]["sg"] == {"values": [True, True, True], "differ": False}
    assert d["metrics"]["analogy_accuracy"] == {"values": [0.3, 0.6, 0.9], "differ": True}
    assert d["tags"]["team"] == {"values": [None, "nlp", "search"], "differ": True}
    code, out, _ = news.run("models", "compare", "news:1", "news:2")
    lines = {line.split()[1]: line for line in out.splitlines()[1:] if line.strip()}
    assert code == 0 and lines["metric.analogy_accuracy"].startswith("*") and "param.sg" not in lines
    assert "param.sg" in news.run("models", "compare", "news:1", "news:2", "--all")[1]
    assert "at least two" in news.error(2, "models", "compare", "news:1")


def test_lineage_names_job_data_code_and_parent(news):
    d = news.json("models", "lineage", "news:2")
    job = d["job"]
    assert (job["id"], job["attempt"], job["user"], job["state"]) == (d["job_id"], 1, "tester", "SUCCEEDED")
    assert job["spec"]["params"]["dim"] == 8
    assert d["data"] == {"paths": [str(news.home / "corpus" / "a.txt")], "fingerprint": "sha256:" + "ab" * 32}
    assert (d["kiln_version"], d["git_commit"]) == ("0.2.0", "c0ffee")
    assert d["trained_from"] == {"name": "news", "version": 1}
    code, out, _ = news.run("models", "lineage", "news:2")
    assert code == 0 and "trained from news:1" in out and "c0ffee" in out and "attempt 1, by tester" in out


# -- delete, gc ----------------------------------------------------------------------------------------------
def test_delete_refuses_while_aliased_then_removes_the_version_and_its_files(news):
    news.run("models", "alias", "news:1", "production")
    folder = news.artifacts / "jobs" / news.json("models", "show", "news:1")["job_id"] / "model"
    assert "news:1 is news@production" in news.error(2, "models", "delete", "news:1", "--yes")
    assert (folder / "vectors.safetensors").is_file() and news.json("models", "show", "news:1")
    assert "name the version to delete" in news.error(2, "models", "delete", "news", "--yes")
    d = news.json("models", "delete", "news@production", "--yes", "--force")
    assert d["model"] == {"name": "news", "version": 1} and len(d["removed"]) == 3 and d["freed_bytes"] > 0
    assert not folder.exists()
    assert "has no version 1" in news.error(1, "models", "show", "news:1")
    assert [r["version"] for r in news.json("models", "list", "--all-versions", "--name", "news")] == [2]
    assert news.json("models", "show", "news:2")["lineage"]["trained_from"] == "news:1"  # history is kept


def test_gc_removes_only_unreferenced_model_files_of_finished_jobs(news):
    stray = news.artifacts / "jobs" / "job-gone" / "model"  # a finished job whose version was deleted by hand
    Word2VecModel(WORDS, _vectors(("king", "queen"))).save(stray)
    running = news.artifacts / "jobs" / "job-running" / "model"  # a job about to register: left alone
    Word2VecModel(WORDS, _vectors(("king", "queen"))).save(running)
    news.db.jobs.create(job_id="job-running", name="news", kind="word2vec", user="t", spec_json="{}", priority=0,
                        max_retries=0)
    assert news.json("similar", "news:1", "king", "--top", "1")  # a live cache
    for stale in ("news-9-" + "0" * 32, "news-1"):  # a deleted version's; kiln 0.1's (no uid)
        (news.home / "cache" / stale).mkdir(parents=True)
    before = news.json("models", "gc", "--dry-run")
    assert sorted(Path(p).name for p in before["removed"]) == ["vectors.safetensors", "vectors.txt", "vocab.json"]
    assert stray.is_dir()
    d = news.json("models", "gc")
    assert d["removed"] == before["removed"] and d["freed_bytes"] > 0 and d["caches"] == 2
    assert [p.name for p in (news.home / "cache").iterdir()] == [f"news-1-{news.db.models.get_version('news', 1).uid}"]
    assert not stray.exists() and (running / "vectors.safetensors").is_file()
    for ref in ("news:1", "news:2", "other:1"):  # every registered version still loads
        assert news.json("similar", ref, "king", "--top", "1")
    assert news.json("models", "gc")["removed"] == []


def test_the_query_cache_never_answers_for_a_deleted_version(news):
    # issue 9.11: similar M:2; delete M:2; a new job registers M:2 again; similar M:2 must use the new vectors
    assert news.json("similar", "news:2", "king", "--top", "1")[0]["word"] == "cat"
    news.run("models", "delete", "news:2", "--yes")
    again = news.register(royal=("king", "dog"))
    assert again.version == 2
    assert news.json("similar", "news:2", "king", "--top", "1")[0]["word"] == "dog"
    caches = sorted(p.name for p in (news.home / "cache").iterdir())
    assert caches == [f"news-2-{again.uid}"]  # the deleted version's cache went with it


# -- the schema ------------------------------------------------------------------------------------------------
def test_db_current_and_an_old_schema_says_to_upgrade(fresh_url, tmp_path, capsys, monkeypatch):
    from services.registry import upgrade

    upgrade(fresh_url, "0001")
    k = Kiln.__new__(Kiln)  # no Database(): it would refuse the old schema, which is the point
    k.capsys = capsys
    for key, value in {"KILN_HOME": str(tmp_path / "h"), "KILN_DB_URL": fresh_url,
                       "KILN_REDIS_URL": "redis://127.0.0.1:1/0"}.items():
        monkeypatch.setenv(key, value)
    Kiln._clear()
    try:
        msg = k.error(1, "models", "list")
        assert "at schema revision 0001" in msg and "run `kiln db upgrade`" in msg
        code, out, _ = k.run("db", "current")
        assert code == 0 and "0001" in out and "run `kiln db upgrade`" in out
        Kiln._clear()
        assert k.run("db", "upgrade")[0] == 0
        Kiln._clear()
        d = json.loads(k.run("db", "current", "--json")[1])
        assert d["up_to_date"] is True and d["current"] == d["head"]
        assert json.loads(k.run("models", "list", "--json")[1]) == []
    finally:
        Kiln._clear()


# -- the Python API ----------------------------------------------------------------------------------------------
def test_load_model_returns_ready_vectors(news):
    from services.models import load_model, model_service

    news.run("models", "alias", "news:1", "production")
    from services.registry import load_model as registry_load_model

    kv = load_model("news@production", news.settings)
    assert kv.most_similar("king", topn=1)[0][0] == "queen"
    assert registry_load_model("news", news.settings).most_similar("king", topn=1)[0][0] == "cat"
    assert len(kv.analogy("man", "king", "woman", topn=2)) == 2
    svc = model_service(news.settings)
    rows = svc.list(svc.query(filters=["metric.analogy_accuracy>0.5"], order_by="metric.analogy_accuracy",
                              descending=True))
    assert [(r["name"], r["version"]) for r in rows] == [("other", 1), ("news", 2)]
    assert svc.compare(["news:1", "news:2"])["metrics"]["analogy_accuracy"]["differ"] is True


# -- as real processes -------------------------------------------------------------------------------------------
def test_real_processes_print_one_line_and_the_exit_code(news):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KILN_")}, **news.env}
    r = subprocess.run([KILN, "models", "list", "--filter", "metric.acc>>1"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: bad filter") and len(r.stderr.splitlines()) == 1
    r = subprocess.run([KILN, "models", "show", "news\n"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bad model name" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([KILN, "models", "list", "--all-versions", "--json"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and [x["version"] for x in json.loads(r.stdout)] == [2, 1, 1]


# -- CNN versions (workers/cnn) ----------------------------------------------------------------------------------
def test_cnn_versions_load_as_eval_mode_classifiers_and_delete_with_their_folder(kiln):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from services.models import load_model
    from workers.cnn.card import CARD, WEIGHTS, write_card
    from workers.cnn.models import build_model

    args = {"arch": "softmax", "in_channels": 1, "num_classes": 3, "image_size": [4, 4]}
    folder = kiln.artifacts / "jobs" / "job-cnn" / "model"
    folder.mkdir(parents=True)
    save_file(build_model(args).state_dict(), str(folder / WEIGHTS))
    write_card(folder, model_args=args, classes=["a", "b", "c"], shape=[4, 4, 1], mean=[0.5], std=[0.25],
               metrics={"accuracy": 0.5}, params={"arch": "softmax"}, dataset={"description": "tiny"})
    # the artifacts a cnn job returns: the folder itself and files in it
    kiln.db.models.register_version(name="digits", kind="cnn", params={"arch": "softmax", "epochs": 1},
                                    metrics={"accuracy": 0.5}, lineage={}, job_id="job-cnn",
                                    artifacts={"model": folder.as_uri(), "weights": (folder / WEIGHTS).as_uri(),
                                               "card": (folder / CARD).as_uri()})
    kiln.run("models", "alias", "digits:1", "production")
    clf = load_model("digits@production", kiln.settings)
    assert isinstance(clf.module, torch.nn.Module) and not clf.module.training
    x = clf.preprocess([np.zeros((4, 4, 1), dtype=np.uint8)])
    assert tuple(clf.probabilities(x).shape) == (1, 3) and clf.classes == ["a", "b", "c"]
    assert [r["name"] for r in kiln.json("models", "list", "--kind", "cnn")] == ["digits"]
    assert kiln.json("models", "show", "digits")["artifact_sizes"]["model"] > 0
    assert "is a cnn model, not word2vec" in kiln.error(2, "similar", "digits", "king")
    d = kiln.json("models", "delete", "digits:1", "--yes", "--force")
    assert d["freed_bytes"] > 0 and not folder.exists() and (kiln.artifacts / "jobs").is_dir()
