"""Subsampling's keep table, NumPy only: shared by the numba CPU kernel (kernel.py) and the Triton GPU
backend (gpu_backend.py), which must import on a GPU machine without numba."""
from __future__ import annotations

import numpy as np


def sample_ints(counts: np.ndarray, sample: float) -> np.ndarray:
    """Per-word keep thresholds (int64 in [0, 2**32]) from gensim's subsampling formula.

    A word with count ``v`` is kept with probability ``(sqrt(v / t) + 1) * t / v`` (capped at 1), where
    ``t = sample * total``. A word is kept when its threshold >= a uniform 32-bit random draw.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.full(len(counts), 2**32, dtype=np.int64)
    t = sample * counts.sum()
    prob = np.minimum((np.sqrt(counts / t) + 1.0) * t / counts, 1.0)
    return np.round(prob * 2**32).astype(np.int64)
