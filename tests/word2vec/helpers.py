"""Small builders the word2vec tests share."""
from __future__ import annotations

from shared.specs import Word2VecParams


def params(**kw) -> Word2VecParams:
    """Word2VecParams for tests: small vectors, few epochs, every word kept unless overridden."""
    base = dict(corpus=["unused"], dim=16, epochs=2, min_count=1)
    base.update(kw)
    return Word2VecParams(**base)
