"""The GPU training kernel (Triton): skip-gram and CBOW with negative sampling, the C tool's update in place.

One program walks its own stretch of the encoded corpus (``ids``: int32 word ids, each sentence closed by
-1, already on the device) the way the CPU kernel (kernel.py) walks a chunk:

- subsampling: a word is kept when its keep threshold (``subsample.sample_ints``, the CPU kernel's table) is >= a
  32-bit random draw; the window is formed over the kept words of a sentence, as on CPU;
- the dynamic window: per centre word ``b`` uniform in [0, window), effective window ``window - b``;
- negatives from the unigram^ns_exponent alias table (``kernel.alias_table``), drawn on the device; a
  negative equal to the centre word is dropped, as on CPU;
- the learning rate falls linearly over the program's stretch from ``lr_start`` to ``lr_end``; every
  program covers the same fraction of the launch at the same time, so with ``lr_start``/``lr_end`` those of
  the slice a launch covers (global progress), the rate follows global progress as the CPU chunks do;
- sentence ends (-1) are respected (a window never crosses one); the ends of a program's stretch count as
  sentence ends (the C tool does the same at its threads' file offsets).

Skip-gram shares the negatives of a window (HogBatch, as kernel.train_sg): input vectors are the context
words' rows of ``syn0``, outputs the centre's and the negatives' rows of ``syn1neg``; CBOW averages (or sums)
the context rows and draws negatives per centre. Lanes run over the dimension (``BLOCK_D``, the next power
of two >= dim, masked); dot products are ``tl.sum``; every weight update is a ``tl.atomic_add`` (plain
read-modify-write loses updates on hot rows when thousands of programs write at once and costs quality).

The kept words of the current sentence live in registers as a ring of ``RING`` slots (the next power of
two >= 2 * window + 1): a centre is trained as soon as ``window`` kept words follow it, or at the
sentence's end; a slot packs (corpus position << 24) | word id, so a vocabulary holds at most 2**24 words.
Random numbers: one xorshift32 stream per program, seeded from (seed, program); the negatives of a centre
are hashes of that stream's state and their slot.

This module imports numpy, torch and triton only (no Ray, Redis or pydantic). Under Triton's interpreter
(``TRITON_INTERPRET=1`` set before this module is imported) the same kernel runs on torch CPU tensors.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import triton
import triton.language as tl

MAX_EXP = tl.constexpr(6.0)


def interpreted() -> bool:
    """Whether the kernel runs under Triton's interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _w2v_kernel(syn0, syn1, ids, bounds, seeds, keep, neg_thr, neg_alias, loss_out, pairs_out,
                vocab, lr_start, lr_end, window, negative,
                D: tl.constexpr, BLOCK_D: tl.constexpr, RING: tl.constexpr, K1: tl.constexpr,
                SG: tl.constexpr, CBOW_MEAN: tl.constexpr, SAMPLE: tl.constexpr,
                SG_LOOP: tl.constexpr):
    pid = tl.program_id(0)
    lo = tl.load(bounds + pid)
    hi = tl.load(bounds + pid + 1)
    lr_step = (lr_end - lr_start) / tl.maximum(hi - lo, 1).to(tl.float32)  # per corpus position
    x = tl.load(seeds + pid).to(tl.uint32)
    ar = tl.arange(0, RING)
    kk = tl.arange(0, K1)
    dd = tl.arange(0, BLOCK_D)
    dm = dd < D
    ring = tl.zeros([RING], dtype=tl.int64)          # (corpus position << 24) | word id, in each slot
    ring_i = tl.full([RING], -1, dtype=tl.int32)     # its index among the sentence's kept words
    sgn = tl.where(kk == 0, 1.0, -1.0)               # label +1 for the centre, -1 for negatives
    n_kept = lo.to(tl.int32) * 0
    next_c = n_kept
    loss = tl.sum(tl.zeros([K1], dtype=tl.float32))
    pairs = lo * 0
    p = lo
    while p <= hi:  # the step at p == hi closes the last sentence
        tok = tl.load(ids + p, mask=p < hi, other=-1).to(tl.int64)
        is_end = tok < 0
        kept = tok >= 0
        if SAMPLE:
            x ^= x << 13
            x ^= x >> 17
            x ^= x << 5
            kthr = tl.load(keep + tl.where(kept, tok, 0))
            kept = kept & (kthr >= x.to(tl.int64))
        if kept:
            put = ar == n_kept % RING
            ring = tl.where(put, (p << 24) | tok, ring)
            ring_i = tl.where(put, n_kept, ring_i)
            n_kept += 1
        limit = tl.where(is_end, n_kept, n_kept - window)
        while next_c < limit:
            packed = tl.sum(tl.where(ar == next_c % RING, ring, 0))
            w = packed & 0xFFFFFF
            pos = packed >> 24
            alpha = lr_start + (pos - lo).to(tl.float32) * lr_step
            x ^= x << 13
            x ^= x >> 17
            x ^= x << 5
            reach = window - (x.to(tl.int64) % window).to(tl.int32)
            cm = (ring_i >= tl.maximum(next_c - reach, 0)) & (ring_i <= next_c + reach) & (ring_i != next_c)
            nctx = tl.sum(cm.to(tl.int32))
            if nctx > 0:
                # negatives: two 32-bit hashes (lowbias32) of (stream, slot) per slot, all slots at once
                h = x ^ (kk.to(tl.uint32) * 0x9E3779B9)
                h ^= h >> 16
                h *= 0x7FEB352D
                h ^= h >> 15
                h *= 0x846CA68B
                h ^= h >> 16
                col = h.to(tl.int64) % vocab
                h2 = h * 0x2C1B3C6D  # the alias table's accept draw
                h2 ^= h2 >> 15
                nmask = (kk >= 1) & (kk <= negative)
                thr = tl.load(neg_thr + col, mask=nmask, other=0)
                alias_w = tl.load(neg_alias + col, mask=nmask, other=0).to(tl.int64)
                tgt = tl.where(kk == 0, w, tl.where(h2.to(tl.int64) < thr, col, alias_w))
                tval = (kk == 0) | ((kk <= negative) & (tgt != w))
                cmask = cm[:, None] & dm[None, :]
                crow = syn0 + (ring & 0xFFFFFF)[:, None] * D + dd[None, :]
                ctx = tl.load(crow, mask=cmask, other=0.0)                       # [RING, BLOCK_D]
                if SG:
                    omask = tval[:, None] & dm[None, :]
                    orow = syn1 + tgt[:, None] * D + dd[None, :]
                    out = tl.load(orow, mask=omask, other=0.0)                     # [K1, BLOCK_D]
                    if SG_LOOP:  # one output row at a time: [RING, BLOCK_D] live, not [RING, K1, BLOCK_D]
                        err = tl.zeros([RING, BLOCK_D], dtype=tl.float32)
                        t = 0
                        while t <= negative:
                            at = kk == t
                            tw = tl.sum(tl.where(at, tgt, 0))
                            tvd = (dd * 0 + tl.sum(tl.where(at & tval, 1, 0))) > 0    # [BLOCK_D], all alike
                            s = tl.sum(tl.where(at, sgn, 0.0))
                            orow1 = syn1 + tw * D + dd
                            out1 = tl.sum(tl.where(at[:, None], out, 0.0), axis=0)   # [BLOCK_D]
                            z = tl.sum(ctx * out1[None, :], axis=1) * s                # [RING]
                            z = tl.minimum(tl.maximum(z, -MAX_EXP), MAX_EXP - 1e-3)
                            ez = tl.exp(z)
                            ok = cm & (tl.sum(tl.where(at & tval, 1, 0)) > 0)
                            g = tl.where(ok, s * alpha / (1.0 + ez), 0.0)
                            loss += tl.sum(tl.where(ok, tl.log(1.0 + 1.0 / ez), 0.0))  # softplus(-z)
                            err += g[:, None] * out1[None, :]
                            tl.atomic_add(orow1, tl.sum(g[:, None] * ctx, axis=0), mask=dm & tvd)
                            t += 1
                    else:  # the window as one block: scores [RING, K1] of every (context, target) pair
                        z = tl.sum(ctx[:, None, :] * out[None, :, :], axis=2) * sgn[None, :]
                        z = tl.minimum(tl.maximum(z, -MAX_EXP), MAX_EXP - 1e-3)
                        ez = tl.exp(z)
                        ok = cm[:, None] & tval[None, :]
                        g = tl.where(ok, sgn[None, :] * alpha / (1.0 + ez), 0.0)   # [RING, K1]
                        loss += tl.sum(tl.where(ok, tl.log(1.0 + 1.0 / ez), 0.0))
                        err = tl.sum(g[:, :, None] * out[None, :, :], axis=1)        # [RING, BLOCK_D]
                        tl.atomic_add(orow, tl.sum(g[:, :, None] * ctx[:, None, :], axis=0), mask=omask)
                    tl.atomic_add(crow, err, mask=cmask)
                    pairs += nctx
                else:
                    h = tl.sum(ctx, axis=0)                                        # [BLOCK_D]
                    if CBOW_MEAN:
                        h = h / nctx.to(tl.float32)
                    omask = tval[:, None] & dm[None, :]
                    orow = syn1 + tgt[:, None] * D + dd[None, :]
                    out = tl.load(orow, mask=omask, other=0.0)                     # [K1, BLOCK_D]
                    z = tl.sum(out * h[None, :], axis=1) * sgn
                    zc = tl.minimum(tl.maximum(z, -MAX_EXP), MAX_EXP)
                    ez = tl.exp(zc)
                    q = tl.where(z >= MAX_EXP, 0.0, tl.where(z <= -MAX_EXP, 1.0, 1.0 / (1.0 + ez)))
                    lz = tl.where(z >= MAX_EXP, 0.0, tl.where(z <= -MAX_EXP, -z, tl.log(1.0 + 1.0 / ez)))
                    loss += tl.sum(tl.where(tval, lz, 0.0))
                    g = tl.where(tval, sgn * q * alpha, 0.0)
                    err = tl.sum(g[:, None] * out, axis=0)
                    tl.atomic_add(orow, g[:, None] * h[None, :], mask=omask)
                    tl.atomic_add(crow, err[None, :] + tl.zeros([RING, BLOCK_D], dtype=tl.float32), mask=cmask)
                    pairs += 1
            next_c += 1
        if is_end:
            n_kept = n_kept * 0
            next_c = next_c * 0
            ring_i = tl.full([RING], -1, dtype=tl.int32)
        p += 1
    tl.store(loss_out + pid, loss)
    tl.store(pairs_out + pid, pairs)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def program_seeds(seed: int, programs: int) -> np.ndarray:
    """A nonzero 32-bit xorshift seed per program (splitmix64 of (seed, program)), int64 for the device."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
             + np.arange(1, programs + 1, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
        z ^= z >> np.uint64(31)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(29)
    s = (z & np.uint64(0xFFFFFFFF)).astype(np.int64)
    s[s == 0] = 0x9E3779B9
    return s


def program_bounds(lo: int, hi: int, programs: int) -> np.ndarray:
    """``programs + 1`` cut points splitting [lo, hi) into equal stretches (int64)."""
    return np.linspace(lo, hi, programs + 1).round().astype(np.int64)


def train_slice(syn0: torch.Tensor, syn1neg: torch.Tensor, ids: torch.Tensor, lo: int, hi: int, *,
                keep: torch.Tensor, neg_threshold: torch.Tensor, neg_alias: torch.Tensor, sample: bool,
                sg: bool, window: int, negative: int, cbow_mean: bool, lr_start: float, lr_end: float,
                seed: int, programs: int, num_warps: int | None = None,
                sg_loop: bool = False) -> tuple[float, int]:
    """One launch: ``programs`` programs train ``ids[lo:hi]`` in place in ``syn0``/``syn1neg`` (all tensors on
    one device; float32 weights, int32 ids, int64 keep/threshold, int32 alias). Returns (loss sum, pairs
    trained for skip-gram or centres for CBOW); reading them back is the launch's one synchronisation."""
    if window < 1 or negative < 0:
        raise ValueError("window must be >= 1 and negative >= 0")
    vocab, dim = syn0.shape
    if vocab >= 1 << 24 or hi >= 1 << 39:
        raise ValueError(f"the kernel packs a word id in 24 bits and a position in 39: vocabulary {vocab:,} "
                         f"(< 16,777,216) and slice end {hi:,} (< 2**39) must fit")
    programs = max(1, min(int(programs), max(hi - lo, 1)))
    dev = syn0.device
    bounds = torch.from_numpy(program_bounds(lo, hi, programs)).to(dev)
    seeds = torch.from_numpy(program_seeds(seed, programs)).to(dev)
    loss = torch.zeros(programs, dtype=torch.float32, device=dev)
    pairs = torch.zeros(programs, dtype=torch.int64, device=dev)
    block_d = _pow2(dim)
    if num_warps is None:
        num_warps = 1 if block_d <= 128 else min(4, block_d // 128)
    _w2v_kernel[(programs,)](
        syn0, syn1neg, ids, bounds, seeds, keep, neg_threshold, neg_alias, loss, pairs,
        vocab, float(lr_start), float(lr_end), int(window), int(negative),
        D=dim, BLOCK_D=block_d, RING=_pow2(2 * window + 1), K1=_pow2(negative + 1),
        SG=bool(sg), CBOW_MEAN=bool(cbow_mean), SAMPLE=bool(sample), SG_LOOP=bool(sg_loop), num_warps=num_warps)
    return float(loss.double().sum().item()), int(pairs.sum().item())
