"""The PyTorch HogBatch kernel runs on CPU, lowers the loss, and matches the window semantics."""
from __future__ import annotations

import numpy as np
import pytest

from tests.word2vec.helpers import params
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import encode_shard
from workers.word2vec.gpu_kernel import make_windows
from workers.word2vec.trainer import RoundPlan, Word2VecTrainer
from workers.word2vec.vocab import Vocab, count_shard


def test_windows_stay_inside_sentences():
    ids = np.array([0, 1, 2, -1, 3, 4, -1, 5, -1], dtype=np.int32)
    keep = np.full(6, 2**32)
    c, x, pos, words = make_windows(ids, 0, len(ids), keep=keep, sample=False, window=2,
                                    rng=np.random.default_rng(0))
    assert words == 6 and c.tolist() == [0, 1, 2, 3, 4]  # the lone word 5 has no context
    sentence = {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    for centre, row in zip(c.tolist(), x.tolist()):
        assert all(sentence[w] == sentence[centre] and w != centre for w in row if w >= 0)
    assert pos.tolist() == [0, 1, 2, 4, 5]


@pytest.mark.parametrize("sg", [True, False])
def test_torch_kernel_on_cpu_lowers_the_loss(small_corpus, sg):
    shard = plan_shards([small_corpus])[0]
    vocab = Vocab.build(count_shard(shard), min_count=1)
    ids = encode_shard(shard, vocab)
    tr = Word2VecTrainer(params(sg=sg, epochs=4), vocab, seed=1, backend="torch-cpu",
                         batch_centres=64)  # a 24-word vocabulary: small batches, few summed updates per row
    assert tr.attach([ids]) == int((ids >= 0).sum())
    losses = []
    while not tr.finished:  # one round per epoch (a round never spans two)
        out = tr.train_round(RoundPlan(words=10**9))
        assert out["words"] == int((ids >= 0).sum())
        losses.append(out["loss"])
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    assert np.isfinite(tr.syn0).all() and tr.nonfinite() == []
    assert tr.model().vectors.shape == (len(vocab), 16)
