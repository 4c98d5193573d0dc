"""The numba kernel and the trainer loop: determinism, progress, checkpoints and resume, row access."""
from __future__ import annotations

import numpy as np
import pytest

from tests.word2vec.helpers import params
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import encode_shard
from workers.word2vec.kernel import cum_table, init_vectors, sample_ints
from workers.word2vec.trainer import (Word2VecTrainer, load_state, rows_to_average, save_state,
                                      state_from_bytes, state_to_bytes)
from workers.word2vec.vocab import Vocab, count_shard


@pytest.fixture
def encoded(small_corpus):
    shards = plan_shards([small_corpus], target_bytes=20000)
    vocab = Vocab.build(count_shard(plan_shards([small_corpus])[0]), min_count=1)
    return vocab, [encode_shard(s, vocab) for s in shards]


def test_tables_follow_gensim():
    counts = np.array([100, 10, 1])
    cum = cum_table(counts, 0.75)
    w = counts ** 0.75
    assert cum[-1] == 2**31 - 1
    assert np.allclose(np.diff(np.r_[0, cum]) / cum[-1], w / w.sum(), atol=1e-6)
    t = 1e-3 * counts.sum()
    keep = sample_ints(counts, 1e-3) / 2**32
    assert np.allclose(keep, np.minimum((np.sqrt(counts / t) + 1) * t / counts, 1.0))
    syn0, syn1 = init_vectors(5, 10, 1)
    assert syn0.dtype == np.float32 and np.abs(syn0).max() <= 0.05 and not syn1.any()


@pytest.mark.parametrize("sg", [True, False])
def test_same_seed_same_vectors(encoded, sg):
    vocab, arrays = encoded
    p = params(sg=sg)
    a = Word2VecTrainer(p, vocab, seed=7).train(arrays).vectors
    b = Word2VecTrainer(p, vocab, seed=7).train(arrays).vectors
    c = Word2VecTrainer(p, vocab, seed=8).train(arrays).vectors
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all()


@pytest.mark.parametrize("sg", [True, False])
def test_training_lowers_the_loss_and_reports_progress(encoded, sg):
    vocab, arrays = encoded
    seen = []
    tr = Word2VecTrainer(params(sg=sg, epochs=4), vocab, seed=1, chunk_words=2000)
    tr.train(arrays, progress=seen.append, progress_every_s=0.0)
    assert seen[-1]["fraction"] == pytest.approx(1.0)
    assert {"fraction", "words_per_s", "epoch", "loss", "eta_s"} <= set(seen[0])
    fractions = [s["fraction"] for s in seen]
    assert fractions == sorted(fractions)
    assert seen[-1]["loss"] < seen[0]["loss"]


def test_progress_is_rate_limited(encoded):
    vocab, arrays = encoded
    seen = []
    Word2VecTrainer(params(), vocab, chunk_words=500).train(arrays, progress=seen.append, progress_every_s=60)
    assert len(seen) == 1  # only the final report


def test_resume_from_checkpoint_gives_the_uninterrupted_result(encoded, tmp_path):
    vocab, arrays = encoded
    p = params(epochs=3)
    full = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000).train(arrays).vectors
    states = []
    Word2VecTrainer(p, vocab, seed=3, chunk_words=1000).train(arrays, checkpoint=states.append,
                                                             checkpoint_every_s=0.0)
    mid = states[len(states) // 2]
    assert 0 < mid["meta"]["words_done"]
    path = save_state(mid, tmp_path / "ckpt.safetensors")
    for state in (load_state(path), state_from_bytes(state_to_bytes(mid))):
        assert state["meta"] == mid["meta"] and np.array_equal(state["syn0"], mid["syn0"])
        resumed = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000).train(arrays, resume=state).vectors
        assert np.array_equal(resumed, full)


def test_train_chunk_and_row_access(encoded):
    vocab, arrays = encoded
    tr = Word2VecTrainer(params(), vocab, seed=1)
    before = tr.syn0.copy()
    words, loss = tr.train_chunk(arrays[0], 0.025, 0.02)
    assert words == int((arrays[0] >= 0).sum()) and loss > 0
    assert not np.array_equal(before, tr.syn0)
    idx = np.array([0, 3])
    s0, s1 = tr.get_rows(idx)
    tr.set_rows(idx, s0 * 0 + 1, s1 * 0 + 2)
    assert (tr.syn0[idx] == 1).all() and (tr.syn1neg[idx] == 2).all()
    rows = [set(rows_to_average(np.ones(100), r, hot_rows=10, cold_slices=4).tolist()) for r in range(4)]
    assert all(set(range(10)) <= r for r in rows) and set().union(*rows) == set(range(100))


def test_threaded_variant_trains(encoded):
    vocab, arrays = encoded
    m = Word2VecTrainer(params(), vocab, seed=1, threads=2, chunk_words=2000).train(arrays)
    assert np.isfinite(m.vectors).all() and m.vectors.std() > 0.01
