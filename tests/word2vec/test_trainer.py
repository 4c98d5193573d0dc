"""The numba kernel and the trainer's one step: determinism, independence from round sizes, threads,
state round trips and divergence detection, row access."""
from __future__ import annotations

import numpy as np
import pytest

from tests.word2vec.helpers import params
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import encode_shard
from workers.word2vec.kernel import cum_table, init_vectors, sample_ints
from workers.word2vec.trainer import RoundPlan, Word2VecTrainer, rows_to_merge
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


def test_vectors_do_not_depend_on_round_sizes(encoded):
    """On one thread the chunks, their seeds and their learning rates follow the position alone, so a job
    may cut the work into rounds as it likes (and resume between any two)."""
    vocab, arrays = encoded
    p = params(epochs=3)
    big = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000).train(arrays, round_words=10**9).vectors
    small = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000).train(arrays, round_words=700).vectors
    assert np.array_equal(big, small)


def test_state_round_trip_continues_exactly(encoded):
    vocab, arrays = encoded
    p = params(epochs=3)
    full = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000)
    full.train(arrays)
    first = Word2VecTrainer(p, vocab, seed=3, chunk_words=1000)
    first.attach(arrays)
    for _ in range(5):
        first.train_round(RoundPlan(words=3000))
    state = first.state_dict()
    assert 0 < state["meta"]["words_done"] < full.words_done
    second = Word2VecTrainer(p, vocab, seed=99, chunk_words=1000)  # the seed comes from the state
    second.attach(arrays)
    second.load_state_dict(state)
    while not second.finished:
        second.train_round(RoundPlan(words=5000))
    assert np.array_equal(second.syn0, full.syn0) and second.words_done == full.words_done
    with pytest.raises(ValueError, match="does not fit"):
        Word2VecTrainer(params(dim=8), vocab).load_state_dict(state)


@pytest.mark.parametrize("sg", [True, False])
def test_rounds_lower_the_loss_and_stop_at_epoch_ends(encoded, sg):
    vocab, arrays = encoded
    tr = Word2VecTrainer(params(sg=sg, epochs=4), vocab, seed=1, chunk_words=2000)
    per_epoch = tr.attach(arrays)
    losses = []
    while not tr.finished:
        out = tr.train_round(RoundPlan(words=10**9))
        assert out["words"] == per_epoch and out["lr"] > 0
        losses.append(out["loss"] / out["pairs"])
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_threads_train_in_shared_weights(encoded):
    vocab, arrays = encoded
    tr = Word2VecTrainer(params(), vocab, seed=1, threads=2, chunk_words=500)
    per_epoch = tr.attach(arrays)
    out = tr.train_round(RoundPlan(words=per_epoch // 2))
    assert per_epoch // 2 <= out["words"] < per_epoch // 2 + 2 * 600  # whole chunks, claimed by both threads
    m = tr.train(arrays)
    assert np.isfinite(m.vectors).all() and m.vectors.std() > 0.01 and tr.words_done == 2 * per_epoch
    tr.close()


def test_nonfinite_weights_are_named_and_rows_can_be_set(encoded):
    vocab, arrays = encoded
    tr = Word2VecTrainer(params(), vocab, seed=1)
    idx = np.array([0, 3])
    s0, s1 = tr.get_rows(idx)
    tr.set_rows(idx, s0 * 0 + 1, s1 * 0 + 2)
    assert (tr.syn0[idx] == 1).all() and (tr.syn1neg[idx] == 2).all() and tr.nonfinite() == []
    tr.set_rows(idx, s0 * np.nan, s1)
    assert tr.nonfinite() == ["syn0"]
    rows = [set(rows_to_merge(np.ones(100), r, hot_rows=10, cold_slices=4).tolist()) for r in range(4)]
    assert all(set(range(10)) <= r for r in rows) and set().union(*rows) == set(range(100))
