"""The vocabulary: word counts per shard (map), merged (reduce), then cut by min_count / max_vocab_size.

``count_shard`` runs once per shard (on one of the job's workers: an actor call each); ``merge_counts``
adds the results; ``Vocab.build`` keeps the words that reach ``min_count``, most frequent first (ties
broken by the word itself, so the order is deterministic), at most ``max_vocab_size`` of them. A Vocab
travels as plain JSON.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from shared.errors import TrainingError
from workers.word2vec.corpus import ReadStats, Shard, read_sentences


@dataclass
class ShardCounts:
    """Token counts of one shard (or of several, merged) and what the reader saw (``stats``)."""

    counts: dict[str, int] = field(default_factory=dict)
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def raw_words(self) -> int:
        """Every token read, in or out of the final vocabulary."""
        return self.stats.tokens


def count_shard(
    shard: Shard,
    *,
    lowercase: bool = False,
    token_pattern: str | None = None,
    max_sentence_length: int = 10000,
) -> ShardCounts:
    """Count every token of ``shard`` (tokenised as ``read_sentences`` does)."""
    counter: Counter[str] = Counter()
    stats = ReadStats()
    update = counter.update  # Counter.update on a list runs in C
    for sentence in read_sentences(
        shard, lowercase=lowercase, token_pattern=token_pattern,
        max_sentence_length=max_sentence_length, stats=stats,
    ):
        update(sentence)
    return ShardCounts(dict(counter), stats)


def merge_counts(parts: list[ShardCounts]) -> ShardCounts:
    """Add several shards' counts (the reduce step)."""
    total: Counter[str] = Counter()
    stats = ReadStats()
    for part in parts:
        total.update(part.counts)
        stats.add(part.stats)
    return ShardCounts(dict(total), stats)


@dataclass
class Vocab:
    """Words kept for training, most frequent first.

    ``words[i]`` has id ``i`` and count ``counts[i]``; ``index`` maps word -> id; ``total_words`` is the sum
    of the kept counts; ``raw_words`` every token of the corpus (kept or not).
    """

    words: list[str]
    counts: np.ndarray
    raw_words: int = 0
    min_count: int = 1
    max_vocab_size: int | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if len(self.words) != len(self.counts):
            raise ValueError("words and counts differ in length")
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total_words(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def build(cls, counts: ShardCounts | dict[str, int], *, min_count: int = 5,
              max_vocab_size: int | None = None) -> "Vocab":
        """Keep the words counted at least ``min_count`` times, at most ``max_vocab_size`` most frequent.

        Raises TrainingError when no word reaches ``min_count``.
        """
        if isinstance(counts, ShardCounts):
            table, raw = counts.counts, counts.raw_words
        else:
            table, raw = counts, sum(counts.values())
        kept = [(w, c) for w, c in table.items() if c >= min_count]
        if not kept:
            most = max(table.values(), default=0)
            raise TrainingError(
                f"no word occurs at least min_count={min_count} times "
                f"(the most frequent occurs {most} times); lower min_count or add text"
            )
        kept.sort(key=lambda wc: (-wc[1], wc[0]))
        if max_vocab_size is not None:
            kept = kept[:max_vocab_size]
        return cls([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64),
                   raw_words=raw, min_count=min_count, max_vocab_size=max_vocab_size)

    def to_json(self) -> str:
        """Plain JSON: words, counts and the settings that made them."""
        return json.dumps({
            "words": self.words, "counts": self.counts.tolist(), "raw_words": self.raw_words,
            "min_count": self.min_count, "max_vocab_size": self.max_vocab_size,
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Vocab":
        d = json.loads(text)
        return cls(d["words"], np.array(d["counts"], dtype=np.int64), raw_words=d.get("raw_words", 0),
                   min_count=d.get("min_count", 1), max_vocab_size=d.get("max_vocab_size"))
