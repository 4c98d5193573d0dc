"""A quick check at submit time that the corpus can give a vocabulary at all.

Small corpora are counted in full (well under a second for a few MB), so a corpus where no word
reaches min_count is refused before anything is stored. Larger ones are left to the job, which
fails with the same message from Vocab.build.
"""
from __future__ import annotations

import os

from shared.errors import InvalidParameter, TrainingError
from shared.specs import Word2VecParams
from workers.word2vec.corpus import Shard, read_sentences
from workers.word2vec.vocab import Vocab, count_shard, merge_counts

PRECHECK_MAX_BYTES = 16 << 20
"""Corpora up to this size on disk are counted in full at submit time."""


PATTERN_SAMPLE_BYTES = 1 << 20
"""For corpora too large to count at submit, ``--token-pattern`` is tried on this much of each file."""


def check_min_count(params: Word2VecParams) -> None:
    """Raise InvalidParameter if the (small) corpus has no word reaching min_count, or (any corpus) if
    ``--token-pattern`` takes too long on its text (CorpusError, one line)."""
    sizes = [os.path.getsize(p) for p in params.corpus]
    if sum(sizes) > PRECHECK_MAX_BYTES:
        if params.token_pattern:
            for p, size in zip(params.corpus, sizes):
                end = None if p.endswith((".gz", ".bz2")) else min(size, PATTERN_SAMPLE_BYTES)
                sample = Shard(p, 0, end)
                for _ in read_sentences(sample, lowercase=params.lowercase, token_pattern=params.token_pattern):
                    pass
        return
    parts = [count_shard(Shard(p), lowercase=params.lowercase, token_pattern=params.token_pattern,
                         max_sentence_length=params.max_sentence_length)
             for p in params.corpus]
    try:
        Vocab.build(merge_counts(parts), min_count=params.min_count, max_vocab_size=params.max_vocab_size)
    except TrainingError as e:
        raise InvalidParameter(f"corpus: {e}") from None


def check_eval_files(params: Word2VecParams) -> None:
    """Raise InvalidParameter if an evaluation file is not in its format (checked on a one-word model,
    since the format errors do not depend on the vocabulary)."""
    import numpy as np  # noqa: PLC0415

    from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: PLC0415
    from workers.word2vec.model import Word2VecModel  # noqa: PLC0415

    probe = Word2VecModel(["_"], np.ones((1, 1), dtype=np.float32))
    if params.eval_analogies:
        analogy_accuracy(probe, params.eval_analogies)
    if params.eval_similarity:
        similarity_spearman(probe, params.eval_similarity)
