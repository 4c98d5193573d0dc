"""The compiled CPU training kernel: skip-gram and CBOW with negative sampling (numba, no GIL).

Semantics follow gensim / the C tool: frequent-word subsampling (gensim's ``sample`` formula, applied to a
sentence before windows are formed), a dynamic window (per centre word a reduced window ``b`` drawn
uniformly from [0, window) and the effective window ``window - b``), negatives drawn from unigram^ns_exponent
(an alias table: O(1) per draw, exact),
and a learning rate falling linearly over the chunk from ``lr_start`` to ``lr_end``. The sigmoid and the
loss come from 1000-entry tables over [-6, 6] (scores outside are clamped to the edge), as in the C tool.

Skip-gram shares negatives across each window (HogBatch, Ji et al. 2016): for a centre word ``w`` one set
of negatives is drawn, and every context word's input vector is scored against the same output rows
``[w, n1..nk]``. The output rows are read once into a small buffer, their gradient is accumulated over the
window and written back once, so the inner work is a (contexts x (k+1)) block of dot products. As in
gensim the input vector is the context word's and the predicted output the centre's. CBOW draws negatives
per centre word (its window is one averaged input already).

Input arrays: ``syn0`` (vocab x dim float32, updated in place), ``syn1neg`` (same shape, in place),
``ids`` (int32 word ids, each sentence closed by -1, see ``encode.py``). Everything is deterministic for
a given ``seed`` when run on one thread.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from workers.word2vec.subsample import sample_ints  # noqa: F401  (the keep table; re-exported for callers)

MAX_EXP = 6.0
TABLE_SIZE = 1000
_MASK48 = 0xFFFFFFFFFFFF
_LCG_MUL = 25214903917  # the C tool's / gensim's linear congruential generator


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(1 - sigmoid(z), softplus(-z) = -log sigmoid(z)) sampled at the centres of TABLE_SIZE bins on [-6, 6]."""
    z = (np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE * 2 * MAX_EXP - MAX_EXP
    one_minus_sig = 1.0 / (1.0 + np.exp(z))
    neg_log_sig = np.log1p(np.exp(-z))
    return one_minus_sig.astype(np.float32), neg_log_sig.astype(np.float32)


ONE_MINUS_SIGMOID, NEG_LOG_SIGMOID = _tables()


def init_vectors(vocab_size: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """gensim-style initial weights: syn0 uniform in [-0.5/dim, 0.5/dim), syn1neg zeros (both float32)."""
    rng = np.random.default_rng(seed)
    syn0 = ((rng.random((vocab_size, dim), dtype=np.float32) - np.float32(0.5)) / np.float32(dim))
    return np.ascontiguousarray(syn0, dtype=np.float32), np.zeros((vocab_size, dim), dtype=np.float32)


def cum_table(counts: np.ndarray, ns_exponent: float = 0.75, domain: int = 2**31 - 1) -> np.ndarray:
    """Cumulative unigram^ns_exponent table (int64, last entry == domain), as gensim's; the torch kernel
    draws negatives from it with searchsorted."""
    w = np.asarray(counts, dtype=np.float64) ** ns_exponent
    cum = np.cumsum(w) / w.sum()
    table = np.round(cum * domain).astype(np.int64)
    table[-1] = domain
    return table


@njit(cache=True)
def _alias_build(prob):
    """Vose's alias method: (threshold int64 in [0, 2**32], alias int32) so that drawing a uniform column
    ``i`` and keeping it when a 32-bit draw < threshold[i] (else taking alias[i]) samples ``prob`` exactly."""
    n = prob.shape[0]
    scaled = prob * n
    threshold = np.empty(n, np.int64)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        l = large[nl]
        threshold[s] = int(scaled[s] * 4294967296.0)
        alias[s] = l
        scaled[l] = (scaled[l] + scaled[s]) - 1.0
        if scaled[l] < 1.0:
            small[ns] = l
            ns += 1
        else:
            large[nl] = l
            nl += 1
    for k in range(nl):
        threshold[large[k]] = 4294967296
    for k in range(ns):  # rounding leftovers
        threshold[small[k]] = 4294967296
    return threshold, alias


def alias_table(counts: np.ndarray, ns_exponent: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Negative-sampling distribution unigram^ns_exponent as an alias table (O(1) draws, 12 bytes a word)."""
    w = np.asarray(counts, dtype=np.float64) ** ns_exponent
    return _alias_build(w / w.sum())


@njit(inline="always")
def _draw(threshold, alias, state):
    """One negative from the alias table; returns (word, new rng state)."""
    i = (state >> 16) % threshold.shape[0]
    state = _next(state)
    if (state >> 16) < threshold[i]:
        t = i
    else:
        t = alias[i]
    return t, _next(state)


@njit(inline="always")
def _next(state):
    return (state * _LCG_MUL + 11) & _MASK48


@njit(nogil=True, cache=True)
def _subsample_sentence(ids, p, end, sample, keep, sent, pos, state):
    """Copy the sentence starting at ``p`` (up to -1 or ``end``) into ``sent``, dropping subsampled words.

    Returns (kept length, index after the sentence, words read, rng state)."""
    n = 0
    words = 0
    while p < end and ids[p] >= 0:
        w = ids[p]
        words += 1
        if sample:
            r = state >> 16
            state = _next(state)
            if keep[w] < r:
                p += 1
                continue
        sent[n] = w
        pos[n] = p
        n += 1
        p += 1
    return n, p + 1, words, state


@njit(nogil=True, fastmath=True, cache=True)
def train_sg(syn0, syn1neg, ids, start, end, neg_threshold, neg_alias, keep, sample, window, negative,
             lr_start, lr_end, seed, one_minus_sig, neg_log_sig):
    """Skip-gram over ``ids[start:end]``; returns (words read, loss sum, pairs trained)."""
    dim = syn0.shape[1]
    state = (seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK48
    span = max(end - start, 1)
    sent = np.empty(end - start + 1, np.int32)
    pos = np.empty(end - start + 1, np.int64)
    ctx = np.empty(2 * window, np.int64)
    tgt = np.empty(negative + 1, np.int64)
    out = np.empty((negative + 1, dim), np.float32)    # output rows of the window, read once
    gout = np.empty((negative + 1, dim), np.float32)   # their gradient, written once
    gmat = np.empty((2 * window, negative + 1), np.float32)  # scores, then gradients, of the window
    sgn = -np.ones(negative + 1, np.float32)  # +1 for the centre (label 1), -1 for negatives
    sgn[0] = 1.0
    neu1e = np.empty(dim, np.float32)
    scale = TABLE_SIZE / (2.0 * MAX_EXP)
    words = 0
    pairs = 0
    loss = 0.0
    p = start
    while p < end:
        n, p, nw, state = _subsample_sentence(ids, p, end, sample, keep, sent, pos, state)
        words += nw
        for i in range(n):
            alpha = np.float32(lr_start + (lr_end - lr_start) * ((pos[i] - start) / span))
            b = (state >> 16) % window
            state = _next(state)
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            nc = 0
            for j in range(lo, hi):
                if j != i:
                    ctx[nc] = sent[j]
                    nc += 1
            if nc == 0:
                continue
            w = sent[i]
            tgt[0] = w
            nt = 1
            for _ in range(negative):
                t, state = _draw(neg_threshold, neg_alias, state)
                if t != w:
                    tgt[nt] = t
                    nt += 1
            for t in range(nt):
                row = syn1neg[tgt[t]]
                o = out[t]
                go = gout[t]
                for d in range(dim):
                    o[d] = row[d]
                for d in range(dim):
                    go[d] = 0.0
            # scores of every (context, target) pair of the window first: independent dot products
            for c in range(nc):
                l1 = syn0[ctx[c]]
                for t in range(nt):
                    o = out[t]
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += l1[d] * o[d]
                    gmat[c, t] = f
            for c in range(nc):
                for t in range(nt):
                    z = gmat[c, t] * sgn[t]  # score of the right answer
                    z = min(max(z, -MAX_EXP), MAX_EXP - 1e-3)
                    k = int((z + MAX_EXP) * scale)
                    loss += neg_log_sig[k]
                    gmat[c, t] = sgn[t] * one_minus_sig[k] * alpha
            for c in range(nc):
                l1 = syn0[ctx[c]]
                for d in range(dim):
                    neu1e[d] = 0.0
                for t in range(nt):
                    g = gmat[c, t]
                    o = out[t]
                    go = gout[t]
                    for d in range(dim):
                        neu1e[d] += g * o[d]
                        go[d] += g * l1[d]
                for d in range(dim):
                    l1[d] += neu1e[d]
            pairs += nc
            for t in range(nt):
                row = syn1neg[tgt[t]]
                go = gout[t]
                for d in range(dim):
                    row[d] += go[d]
    return words, loss, pairs


@njit(nogil=True, fastmath=True, cache=True)
def train_cbow(syn0, syn1neg, ids, start, end, neg_threshold, neg_alias, keep, sample, window, negative, cbow_mean,
               lr_start, lr_end, seed, one_minus_sig, neg_log_sig):
    """CBOW over ``ids[start:end]``; returns (words read, loss sum, centre words trained)."""
    dim = syn0.shape[1]
    state = (seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK48
    span = max(end - start, 1)
    sent = np.empty(end - start + 1, np.int32)
    pos = np.empty(end - start + 1, np.int64)
    neu1 = np.empty(dim, np.float32)
    neu1e = np.empty(dim, np.float32)
    scale = TABLE_SIZE / (2.0 * MAX_EXP)
    words = 0
    trained = 0
    loss = 0.0
    p = start
    while p < end:
        n, p, nw, state = _subsample_sentence(ids, p, end, sample, keep, sent, pos, state)
        words += nw
        for i in range(n):
            alpha = np.float32(lr_start + (lr_end - lr_start) * ((pos[i] - start) / span))
            b = (state >> 16) % window
            state = _next(state)
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            count = 0
            for d in range(dim):
                neu1[d] = 0.0
                neu1e[d] = 0.0
            for j in range(lo, hi):
                if j != i:
                    l1 = syn0[sent[j]]
                    for d in range(dim):
                        neu1[d] += l1[d]
                    count += 1
            if count == 0:
                continue
            if cbow_mean:
                inv = np.float32(1.0 / count)
                for d in range(dim):
                    neu1[d] *= inv
            w = sent[i]
            for t in range(negative + 1):
                if t == 0:
                    target = w
                else:
                    target, state = _draw(neg_threshold, neg_alias, state)
                    if target == w:
                        continue
                row = syn1neg[target]
                f = np.float32(0.0)
                for d in range(dim):
                    f += neu1[d] * row[d]
                z = f if t == 0 else -f
                if z >= MAX_EXP:
                    continue
                elif z <= -MAX_EXP:
                    q = 1.0
                    loss -= z
                else:
                    k = int((z + MAX_EXP) * scale)
                    q = one_minus_sig[k]
                    loss += neg_log_sig[k]
                g = np.float32(q * alpha if t == 0 else -q * alpha)
                for d in range(dim):
                    neu1e[d] += g * row[d]
                    row[d] += g * neu1[d]
            for j in range(lo, hi):
                if j != i:
                    l1 = syn0[sent[j]]
                    for d in range(dim):
                        l1[d] += neu1e[d]
            trained += 1
    return words, loss, trained


class KernelTables:
    """What the kernel needs besides the weights: negative-sampling and subsampling tables."""

    def __init__(self, counts: np.ndarray, *, ns_exponent: float, sample: float):
        self.cum = cum_table(counts, ns_exponent)  # for the torch kernel's searchsorted
        self.neg_threshold, self.neg_alias = alias_table(counts, ns_exponent)
        self.keep = sample_ints(counts, sample)
        self.sample = sample > 0


def train_range(syn0: np.ndarray, syn1neg: np.ndarray, ids: np.ndarray, start: int, end: int,
                tables: KernelTables, *, sg: bool, window: int, negative: int, cbow_mean: bool,
                lr_start: float, lr_end: float, seed: int) -> tuple[int, float, int]:
    """Train on ``ids[start:end]`` in place; returns (words read, loss sum, pairs or centres trained)."""
    if syn0.dtype != np.float32 or syn1neg.dtype != np.float32 or ids.dtype != np.int32:
        raise TypeError("syn0/syn1neg must be float32 and ids int32")
    seed = int(seed) & _MASK48
    if sg:
        return train_sg(syn0, syn1neg, ids, start, end, tables.neg_threshold, tables.neg_alias, tables.keep, tables.sample, window,
                        negative, lr_start, lr_end, seed, ONE_MINUS_SIGMOID, NEG_LOG_SIGMOID)
    return train_cbow(syn0, syn1neg, ids, start, end, tables.neg_threshold, tables.neg_alias, tables.keep, tables.sample, window,
                      negative, cbow_mean, lr_start, lr_end, seed, ONE_MINUS_SIGMOID, NEG_LOG_SIGMOID)
