"""word2vec features end to end through the CLI: a 2-worker data-parallel job with evaluation files,
spec files, `kiln eval`, `kiln analogy`, and every export format read back by gensim / safetensors."""
from __future__ import annotations

import json

import numpy as np
import pytest

# each test that uses env runs twice: directly and through a real `kiln serve` (tests/cli_sides.py)
from tests.cli_sides import cli_side, direct_only, env, settings, through_server  # noqa: F401
from tests.conftest import write_corpus
from tests.test_cli import one_line_error, run

TOPICS = ("cat", "car", "sun", "law", "sea")


def eval_files(tmp_path):
    qw = tmp_path / "questions.txt"
    lines = [": same-topic"]
    for a, b in zip(TOPICS, TOPICS[1:]):
        lines += [f"{a}1 {a}2 {b}1 {b}2", f"{a}3 {a}4 {b}3 {b}4"]
    qw.write_text("\n".join(lines) + "\n")
    ws = tmp_path / "pairs.tsv"
    rows = ["# word1\tword2\tscore"]
    for t in TOPICS:
        rows += [f"{t}{i}\t{t}{i + 1}\t9.0" for i in range(0, 10, 2)]
    for a, b in zip(TOPICS, TOPICS[1:]):
        rows += [f"{a}{i}\t{b}{i}\t1.0" for i in range(0, 10, 2)]
    ws.write_text("\n".join(rows) + "\n")
    return qw, ws


@direct_only  # trains a real 2-worker model on Ray (minutes): not doubled
@pytest.mark.timeout(400)
def test_two_workers_eval_export_query(env, cluster_settings, dispatcher, tmp_path):
    env = {**env, "RAY_ADDRESS": cluster_settings.ray_address}
    write_corpus(tmp_path / "corpus.txt", sentences=6000)  # the spec names it relative to itself
    qw, ws = eval_files(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
kind: word2vec
name: two-workers
params:
  corpus: [corpus.txt]
  dim: 24
  epochs: 3
  min_count: 2
  eval_analogies: {qw.name}
  eval_similarity: {ws.name}
resources:
  workers: 2
  cpus_per_worker: 1
""")
    r = run(["submit", "-f", str(spec), "--follow", "--json"], env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "SUCCEEDED", out
    shown = json.loads(run(["models", "show", "two-workers", "--json"], env).stdout)
    m = shown["metrics"]
    assert m["worker0_words_per_s"] > 0 and m["worker1_words_per_s"] > 0
    assert shown["params"]["workers"] == 2  # params are typed
    # the averaged model learned the topics: same-topic pairs score far above cross-topic pairs
    assert m["similarity_spearman"] > 0.5, m
    assert "analogy_accuracy" in m

    r = run(["eval", "two-workers", "--similarity", str(ws), "--analogies", str(qw), "--json"], env)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["similarity"]["pairs"] == 45 and ev["metrics"]["similarity_spearman"] == pytest.approx(
        m["similarity_spearman"], abs=1e-6)

    near = json.loads(run(["analogy", "two-workers", "cat1", "cat2", "car1", "--top", "3", "--json"], env).stdout)
    assert len(near) == 3 and all(n["word"] not in ("cat1", "cat2", "car1") for n in near)
    assert "zebra" in one_line_error(run(["analogy", "two-workers", "cat1", "zebra", "car1"], env), 1)

    # exports: gensim reads the text and binary files with the same vectors; safetensors carries the words
    from gensim.models import KeyedVectors
    from safetensors import safe_open

    paths = {fmt: tmp_path / f"out.{fmt}" for fmt in ("word2vec-text", "word2vec-binary", "safetensors")}
    for fmt, path in paths.items():
        r = run(["models", "export", "two-workers:1", "--format", fmt, "-o", str(path)], env)
        assert r.returncode == 0, r.stderr
    kt = KeyedVectors.load_word2vec_format(str(paths["word2vec-text"]), binary=False)
    kb = KeyedVectors.load_word2vec_format(str(paths["word2vec-binary"]), binary=True)
    assert kt.index_to_key == kb.index_to_key
    np.testing.assert_allclose(kt.vectors, kb.vectors, atol=1e-5)
    with safe_open(str(paths["safetensors"]), framework="numpy") as f:
        words = json.loads(f.metadata()["words"])
        vectors = f.get_tensor("vectors")
    assert words == kb.index_to_key
    np.testing.assert_allclose(vectors, kb.vectors, atol=1e-6)

    # through a real `kiln serve` over these stores, the commands above print the same (training not doubled)
    with through_server(cluster_settings, env, tmp_path) as remote:
        for args in (["models", "show", "two-workers", "--json"], ["models", "show", "two-workers"],
                     ["eval", "two-workers", "--similarity", str(ws), "--analogies", str(qw), "--json"],
                     ["eval", "two-workers", "--similarity", str(ws)],
                     ["analogy", "two-workers", "cat1", "cat2", "car1", "--top", "3", "--json"],
                     ["analogy", "two-workers", "cat1", "cat2", "car1"],
                     ["analogy", "two-workers", "cat1", "zebra", "car1"],
                     ["models", "export", "two-workers:1", "--format", "word2vec-text", "-o", "-"]):
            here, there = run(args, env), run(args, remote)
            assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), args


def test_bad_eval_file_is_refused_at_submit(env, tmp_path, redis_client):
    corpus = write_corpus(tmp_path / "c.txt", 300)
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not an analogy file\nat all\n")
    r = run(["submit", "word2vec", str(corpus), "--eval-analogies", str(bad)], env)
    assert "analogy" in one_line_error(r, 2)
    r = run(["submit", "word2vec", str(corpus), "--eval-similarity", str(bad)], env)
    assert "word pair" in one_line_error(r, 2)
    assert redis_client.keys("kiln:*") == []


def test_bad_spec_file(env, tmp_path):
    f = tmp_path / "spec.yaml"
    f.write_text("kind: word2vec\nname: x\nparams: {corpus: [nope.txt]}\n")
    assert "no such file" in one_line_error(run(["submit", "-f", str(f)], env), 2)
    f.write_text("kind: [unclosed\n")
    assert "not a valid spec file" in one_line_error(run(["submit", "-f", str(f)], env), 2)
    f.write_text("kind: word2vec\nname: x\nparams: {corpus: [c.txt]}\nbogus: 1\n")
    write_corpus(tmp_path / "c.txt", 100)
    assert "bogus" in one_line_error(run(["submit", "-f", str(f)], env), 2)
