"""Shards tile files exactly at whitespace; the reader streams lines, long lines, gz/bz2, bad bytes."""
from __future__ import annotations

import bz2
import gzip

import numpy as np

from workers.word2vec import corpus
from workers.word2vec.corpus import ReadStats, Shard, plan_shards, read_sentences


def _all_tokens(shards, **kw):
    return [t for s in shards for sent in read_sentences(s, **kw) for t in sent]


def test_shards_cover_every_byte_once_and_cut_at_whitespace(tmp_path):
    rng = np.random.default_rng(1)
    words = ["w%d" % rng.integers(1000) for _ in range(20000)]
    lines = [" ".join(words[i:i + rng.integers(1, 40)]) for i in range(0, 20000, 25)]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n")
    data = path.read_bytes()
    shards = plan_shards([path], target_bytes=997)
    assert len(shards) > 10
    assert shards[0].start == 0 and shards[-1].end == len(data)
    for a, b in zip(shards, shards[1:]):
        assert a.end == b.start  # contiguous: every byte in exactly one shard
        assert data[a.end - 1:a.end] in (b" ", b"\n", b"\t")
    assert _all_tokens(shards) == _all_tokens([Shard(str(path), 0, len(data))]) == data.decode().split()


def test_text8_style_single_line_is_sharded_and_chunked(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "BLOCK_BYTES", 64)  # force many blocks: bounded memory path
    monkeypatch.setattr(corpus, "NEWLINE_SEARCH_BYTES", 50)
    words = [f"t{i % 97}" for i in range(5003)]
    path = tmp_path / "text8"
    path.write_text(" ".join(words))  # one long line, no newline at all
    shards = plan_shards([path], target_bytes=4000)
    assert len(shards) > 3
    stats = ReadStats()
    sents = [s for sh in shards for s in read_sentences(sh, max_sentence_length=100, stats=stats)]
    assert [t for s in sents for t in s] == words
    assert all(len(s) <= 100 for s in sents)
    # within one shard the line is cut into full sentences of exactly max_sentence_length
    one = list(read_sentences(Shard(str(path), 0, path.stat().st_size), max_sentence_length=100))
    assert [len(s) for s in one] == [100] * 50 + [3]
    assert stats.tokens == len(words)


def test_gz_and_bz2_are_whole_file_shards(tmp_path):
    text = "alpha beta gamma\ndelta  epsilon\n\nzeta\n" * 50
    gz, bz = tmp_path / "a.txt.gz", tmp_path / "b.txt.bz2"
    gz.write_bytes(gzip.compress(text.encode()))
    bz.write_bytes(bz2.compress(text.encode()))
    shards = plan_shards([gz, bz], target_bytes=10)
    assert [(s.compressed, s.start, s.end) for s in shards] == [(True, 0, None), (True, 0, None)]
    for s in shards:
        sents = list(read_sentences(s))
        assert len(sents) == 150 and sents[:3] == [["alpha", "beta", "gamma"], ["delta", "epsilon"], ["zeta"]]


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xc3\xa9 ok\nbad\xff\xfeword fine\n")
    stats = ReadStats()
    sents = list(read_sentences(Shard(str(path), 0, path.stat().st_size), stats=stats))
    assert sents == [["caf\u00e9", "ok"], ["bad\ufffd\ufffdword", "fine"]]
    assert stats.undecodable_bytes == 2 and stats.lines == 2 and stats.tokens == 4


def test_lowercase_and_token_pattern(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("Hello, World! It's 2024.\n")
    sh = plan_shards([path])[0]
    assert list(read_sentences(sh, lowercase=True, token_pattern=r"[a-z]+")) == [["hello", "world", "it", "s"]]
    assert list(read_sentences(sh)) == [["Hello,", "World!", "It's", "2024."]]
