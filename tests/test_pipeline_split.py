"""How a job's encoded corpus is divided among data-parallel workers, at sentence starts."""
import numpy as np

from workers.word2vec.encode import next_sentence_start as sentence_start
from workers.word2vec.job import split_stream


def test_sentence_start():
    ids = np.array([5, 6, -1, 7, -1, 8, 9, 10, -1], dtype=np.int32)
    assert [sentence_start(ids, x) for x in range(len(ids) + 1)] == [0, 3, 3, 3, 5, 5, 9, 9, 9, 9]


def test_pieces_tile_the_stream_at_sentence_starts():
    rng = np.random.default_rng(0)
    shards = []
    for n in (7, 50, 1, 33):
        ids = rng.integers(0, 9, n).astype(np.int32)
        ids[rng.random(n) < 0.2] = -1
        ids[-1] = -1
        shards.append(ids)
    for workers in (1, 2, 3, 5, 8):
        parts = split_stream([len(s) for s in shards], workers)
        assert len(parts) == workers
        got = [[] for _ in shards]
        for part in parts:
            for i, lo, hi in part:
                a, b = sentence_start(shards[i], lo), sentence_start(shards[i], hi)
                got[i].extend(shards[i][a:b].tolist())
        assert got == [s.tolist() for s in shards]  # every token exactly once, in order
