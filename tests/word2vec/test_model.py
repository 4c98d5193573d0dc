"""Model files, word2vec text/binary export read back by gensim, queries and their errors."""
from __future__ import annotations

import numpy as np
import pytest

from shared.errors import NotFound
from workers.word2vec.model import Word2VecModel


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "caf\u00e9", "x"]
    return Word2VecModel(words, rng.standard_normal((6, 8)).astype(np.float32), counts=np.arange(6, 0, -1))


def test_save_load_round_trip(model, tmp_path):
    files = model.save(tmp_path / "m")
    assert set(files) == {"vectors", "vocab", "text"}
    back = Word2VecModel.load(tmp_path / "m")
    assert back.words == model.words and np.array_equal(back.vectors, model.vectors)
    assert back.counts.tolist() == model.counts.tolist()
    with pytest.raises(NotFound):
        Word2VecModel.load(tmp_path / "nothing")


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_the_exports(model, tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    path = tmp_path / ("v.bin" if binary else "v.txt")
    (model.export_binary if binary else model.export_text)(path)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == model.words
    assert np.array_equal(kv.vectors, model.vectors)  # 9 significant digits round-trip float32 exactly


def test_queries_match_gensim(model):
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(8)
    kv.add_vectors(model.words, model.vectors)
    ours = model.most_similar("king", topn=3)
    theirs = kv.most_similar("king", topn=3)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    ours = model.analogy("man", "king", "woman", topn=2)
    theirs = kv.most_similar(positive=["king", "woman"], negative=["man"], topn=2)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    assert model.similarity("king", "queen") == pytest.approx(float(kv.similarity("king", "queen")), abs=1e-5)


def test_unknown_word_is_not_found(model):
    with pytest.raises(NotFound, match="'prince' is not in") as e:
        model.most_similar("prince")
    assert e.value.code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(NotFound):
        model.analogy("man", "king", "prince")
