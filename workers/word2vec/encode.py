"""Encoding a shard into word ids, once, so that every epoch reads a compact int32 array.

Layout: the ids of one sentence, then ``SENTENCE_END`` (-1), then the next sentence, ... — every sentence
(also the last) ends with -1. Out-of-vocabulary tokens are dropped; a sentence left empty is dropped.
Arrays are stored with ``np.save`` and read back with ``allow_pickle=False``.
"""
from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from workers.word2vec.corpus import ReadStats, Shard, read_sentences
from workers.word2vec.vocab import Vocab

SENTENCE_END = -1
"""The id that closes each sentence in an encoded array."""


def encode_shard(
    shard: Shard,
    vocab: Vocab,
    *,
    lowercase: bool = False,
    token_pattern: str | None = None,
    max_sentence_length: int = 10000,
    stats: ReadStats | None = None,
) -> np.ndarray:
    """The shard's in-vocabulary word ids as int32, each sentence closed by -1 (see module docstring)."""
    get = vocab.index.get
    out = array("i")
    for sentence in read_sentences(
        shard, lowercase=lowercase, token_pattern=token_pattern,
        max_sentence_length=max_sentence_length, stats=stats,
    ):
        ids = [i for i in map(get, sentence) if i is not None]
        if ids:
            out.extend(ids)
            out.append(SENTENCE_END)
    return np.frombuffer(out, dtype=np.int32).copy() if len(out) else np.empty(0, dtype=np.int32)


def next_sentence_start(ids: np.ndarray, x: int) -> int:
    """The first position >= ``x`` where a sentence starts: 0, just after a -1, or ``len(ids)``.

    The one sentence-boundary rule of kiln: data-parallel shares, training chunks and thread pieces are all
    cut here, so that no sentence (and no context window) is ever split."""
    n = len(ids)
    if x <= 0:
        return 0
    if x >= n:
        return n
    probe = x - 1  # x starts a sentence if the separator sits just before it
    while probe < n:
        hits = np.flatnonzero(ids[probe:probe + 65536] == SENTENCE_END)
        if hits.size:
            return probe + int(hits[0]) + 1
        probe += 65536
    return n


def count_words(encoded: np.ndarray) -> int:
    """Word tokens in an encoded array (separators excluded)."""
    return int(np.count_nonzero(encoded >= 0))


def save_encoded(path: str | Path, encoded: np.ndarray) -> Path:
    """Write an encoded array as .npy; returns the path written."""
    path = Path(path)
    np.save(path, np.ascontiguousarray(encoded, dtype=np.int32), allow_pickle=False)
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")


def load_encoded(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """Read an encoded array written by ``save_encoded`` (memory-mapped if ``mmap``)."""
    arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    if arr.dtype != np.int32 or arr.ndim != 1:
        raise ValueError(f"{path}: not an encoded word-id array (dtype {arr.dtype}, shape {arr.shape})")
    return arr
