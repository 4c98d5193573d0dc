"""analogy_accuracy and similarity_spearman agree with gensim on the same vectors; bad files are refused."""
from __future__ import annotations

import numpy as np
import pytest

from shared.errors import InvalidParameter
from tests.word2vec.helpers import params
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import encode_shard
from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman, spearman
from workers.word2vec.model import Word2VecModel
from workers.word2vec.trainer import Word2VecTrainer
from workers.word2vec.vocab import Vocab, count_shard

gensim_models = pytest.importorskip("gensim.models")


@pytest.fixture(scope="module")
def wiki_model(wiki_text):
    shard = plan_shards([wiki_text])[0]
    vocab = Vocab.build(count_shard(shard), min_count=5)
    return Word2VecTrainer(params(dim=50, epochs=2, min_count=5), vocab, seed=1).train([encode_shard(shard, vocab)])


def _keyed(model: Word2VecModel):
    kv = gensim_models.KeyedVectors(model.dim)
    kv.add_vectors(model.words, model.vectors)
    return kv


@pytest.mark.parametrize("restrict", [30000, 2000])
def test_analogies_agree_with_gensim(wiki_model, restrict):
    from bench.corpora import questions_words

    ours = analogy_accuracy(wiki_model, questions_words(), restrict_vocab=restrict)
    score, sections = _keyed(wiki_model).evaluate_word_analogies(str(questions_words()), restrict_vocab=restrict)
    total = sections[-1]
    assert ours["total"] == len(total["correct"]) + len(total["incorrect"]) > 300
    assert ours["correct"] == len(total["correct"]) > 0
    assert ours["accuracy"] == pytest.approx(score)
    theirs = {s["section"]: len(s["correct"]) for s in sections[:-1]}
    assert {s["section"]: s["correct"] for s in ours["sections"]} == theirs


def test_similarity_agrees_with_gensim(wiki_model):
    from bench.corpora import wordsim353

    ours = similarity_spearman(wiki_model, wordsim353())
    pearson, spear, oov_pct = _keyed(wiki_model).evaluate_word_pairs(str(wordsim353()))
    # float32 cosines computed in another order can swap near-equal ranks: agree to 1e-3
    assert ours["spearman"] == pytest.approx(spear.statistic, abs=1e-3)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-4)
    assert ours["oov_ratio"] * 100 == pytest.approx(oov_pct)
    assert ours["pairs"] > 200


def test_spearman_handles_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 50), rng.random(50)
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_wrong_format_files_are_invalid_parameters(tmp_path):
    model = Word2VecModel(["a", "b", "c", "d"], np.eye(4, dtype=np.float32))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# a comment\na\tb\t1.0\nb\tc\t2.0\n")
    questions = tmp_path / "q.txt"
    questions.write_text(": sec\na b c d\n")
    headers_only = tmp_path / "h.txt"
    headers_only.write_text(": one\n: two\n")
    with pytest.raises(InvalidParameter, match="not a questions-words analogy file") as e:
        analogy_accuracy(model, pairs)
    assert "\n" not in str(e.value) and e.value.code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(InvalidParameter, match="no analogy question"):
        analogy_accuracy(model, headers_only)
    with pytest.raises(InvalidParameter, match="no word pair"):
        similarity_spearman(model, questions)
    with pytest.raises(InvalidParameter, match="cannot be read"):
        similarity_spearman(model, tmp_path / "missing.tsv")
    assert analogy_accuracy(model, questions)["total"] == 1
    assert similarity_spearman(model, pairs)["pairs"] == 2
