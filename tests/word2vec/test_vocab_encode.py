"""Vocabulary map-reduce, cut-offs, deterministic ties, JSON round trip; encoding with -1 sentence ends."""
from __future__ import annotations

import numpy as np
import pytest

from shared.errors import TrainingError
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import count_words, encode_shard, load_encoded, save_encoded
from workers.word2vec.vocab import Vocab, count_shard, merge_counts


def test_counts_merge_across_shards(small_corpus):
    whole = count_shard(plan_shards([small_corpus])[0])
    parts = merge_counts([count_shard(s) for s in plan_shards([small_corpus], target_bytes=5000)])
    assert parts.counts == whole.counts and parts.raw_words == whole.raw_words > 10000


def test_min_count_max_vocab_and_ties():
    counts = {"b": 3, "a": 3, "c": 5, "d": 1, "e": 3}
    v = Vocab.build(counts, min_count=2)
    assert v.words == ["c", "a", "b", "e"]  # by count, ties by word
    assert v.counts.tolist() == [5, 3, 3, 3] and v.total_words == 14 and v.raw_words == 15
    assert v.index["b"] == 2
    assert Vocab.build(counts, min_count=2, max_vocab_size=2).words == ["c", "a"]
    back = Vocab.from_json(v.to_json())
    assert back.words == v.words and back.counts.tolist() == v.counts.tolist() and back.raw_words == 15


def test_no_word_reaching_min_count_is_a_training_error():
    with pytest.raises(TrainingError, match="min_count=10") as e:
        Vocab.build({"a": 3, "b": 2}, min_count=10)
    assert e.value.code == "TRAINING_FAILED" and "\n" not in str(e.value)


def test_encode_drops_oov_and_closes_sentences(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("a b zz c\nzz zz\n\nc a\n")
    v = Vocab.build({"a": 2, "b": 1, "c": 2}, min_count=1)
    ids = encode_shard(plan_shards([path])[0], v)
    assert ids.dtype == np.int32
    assert ids.tolist() == [0, 2, 1, -1, 1, 0, -1]  # a=0 c=1 b=2; the all-OOV line vanishes
    assert count_words(ids) == 5
    saved = save_encoded(tmp_path / "e", ids)
    assert load_encoded(saved).tolist() == ids.tolist()
