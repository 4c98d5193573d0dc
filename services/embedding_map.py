"""A 2-D map of a word2vec model's most frequent words (PCA), for the web page and `kiln plot`.

Rows of a kiln vocabulary are in descending frequency, so the first ``n`` rows are the most frequent
words. The map is the projection of their unit vectors on the first two principal components.
"""
from __future__ import annotations

MAX_WORDS = 2000
"""Most words one map shows (the page draws every label)."""


def embedding_map(model, n: int = 200) -> dict:
    """``{"words": [...], "x": [...], "y": [...], "explained": [pc1, pc2]}`` for the ``n`` most frequent
    words of ``model`` (a Word2VecModel); ``explained`` is each component's share of the variance."""
    import numpy as np  # noqa: PLC0415

    n = max(2, min(int(n), MAX_WORDS, len(model.words)))
    vecs = np.asarray(model.unit_vectors[:n], dtype=np.float64)
    centred = vecs - vecs.mean(axis=0, keepdims=True)
    # SVD of the centred rows: the right singular vectors are the principal axes.
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    total = float((s ** 2).sum()) or 1.0
    explained = [float(s[i] ** 2 / total) if i < len(s) else 0.0 for i in range(2)]
    if xy.shape[1] < 2:  # a 1-dimensional model: the second axis is flat
        xy = np.hstack([xy, np.zeros((xy.shape[0], 1))])
    return {"words": list(model.words[:n]), "x": [round(float(v), 5) for v in xy[:, 0]],
            "y": [round(float(v), 5) for v in xy[:, 1]], "explained": explained}
