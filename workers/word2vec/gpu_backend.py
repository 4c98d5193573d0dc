"""The host side of the GPU word2vec kernel (``triton_kernel.py``): the weights, the sampling tables and the
whole encoded corpus held on one device, the memory check, and one launch per chunk of the corpus.

``Word2VecTrainer`` (backend "triton-cuda", or "triton-cpu" under Triton's interpreter for tests) calls
``attach`` with its encoded arrays (they are copied to the device once and stay there for every epoch) and
``train_chunk`` per chunk; a chunk is large (``GPU_CHUNK_WORDS``) and one launch trains it with many
programs, each walking its own stretch. Imports numpy, torch and triton (and kiln's error class) only.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from shared.errors import TrainingError
from workers.word2vec.subsample import sample_ints
from workers.word2vec.triton_kernel import interpreted, train_slice

GPU_CHUNK_WORDS = 1 << 24
"""Tokens per launch in a job (about 16.8M): few, large launches; each program walks thousands of words."""
MIN_TOKENS_PER_PROGRAM = 1024
"""A program's stretch is at least this long (its ends cut windows short, like a sentence end)."""
MAX_PROGRAMS = 16384
"""Programs per launch on a GPU (one warp each): enough to fill an H100/H200; the issue's atomic kernel kept
gensim's quality from 2,048 to 32,768 warps."""
INTERPRETED_PROGRAMS = 4


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def device_bytes(vocab_size: int, dim: int, corpus_tokens: int) -> dict[str, int]:
    """Bytes the kernel keeps on the device: the two weight matrices, the encoded corpus, the tables."""
    return {"weights": 2 * vocab_size * dim * 4, "corpus": corpus_tokens * 4, "tables": vocab_size * (8 + 8 + 4)}


def check_fits(vocab_size: int, dim: int, corpus_tokens: int, *, free_bytes: int, device: str) -> None:
    """TrainingError naming the sizes when the model and corpus do not fit in ``free_bytes``."""
    need = device_bytes(vocab_size, dim, corpus_tokens)
    total = sum(need.values())
    if total > free_bytes:
        raise TrainingError(
            f"word2vec does not fit on {device}: vocabulary {vocab_size:,} x dim {dim} needs 2 float32 matrices of "
            f"{_size(need['weights'] // 2)} each, the encoded corpus of {corpus_tokens:,} tokens {_size(need['corpus'])} "
            f"and the tables {_size(need['tables'])}: {_size(total)} in all, but the device has {_size(free_bytes)} free "
            "(use a smaller --dim, a higher --min-count or --max-vocab-size, or more GPU workers: each holds its "
            "share of the corpus)")


def free_bytes(device: torch.device) -> int:
    """Free memory on ``device`` (CUDA: what the driver reports; CPU: available physical memory)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def alias_table_py(counts: np.ndarray, ns_exponent: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """kernel.alias_table without numba: Vose's alias method in plain Python (about a second per million
    words), the same table the numba build gives; a test pins them equal."""
    w = np.asarray(counts, dtype=np.float64) ** ns_exponent
    scaled = (w / w.sum() * len(w)).tolist()
    n = len(scaled)
    threshold = [0] * n
    alias = list(range(n))
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, l = small.pop(), large.pop()
        threshold[s] = int(scaled[s] * 4294967296.0)
        alias[s] = l
        scaled[l] = (scaled[l] + scaled[s]) - 1.0
        (small if scaled[l] < 1.0 else large).append(l)
    for i in large + small:
        threshold[i] = 4294967296
    return np.array(threshold, dtype=np.int64), np.array(alias, dtype=np.int32)


def host_tables(counts: np.ndarray, *, ns_exponent: float, sample: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep thresholds, alias thresholds, alias words) for the kernel: the numba alias build when numba is
    there, else the plain one above."""
    try:
        from workers.word2vec.kernel import alias_table
    except Exception:  # noqa: BLE001 - numba missing, or one that refuses this NumPy
        return (sample_ints(counts, sample), *alias_table_py(counts, ns_exponent))
    return (sample_ints(counts, sample), *alias_table(counts, ns_exponent))


class GpuWord2Vec:
    """``syn0``/``syn1neg``, the subsampling and negative tables and the attached corpus on ``device``.

    ``programs``: programs per launch (default: one per ``MIN_TOKENS_PER_PROGRAM`` tokens, at most
    ``MAX_PROGRAMS``; 4 under the interpreter); ``capacity_bytes``: the memory the check allows (default:
    the device's free memory); ``sg_loop``: skip-gram scores one output row at a time instead of the whole
    window block. The two make the same updates (a test checks it). Default: the row loop on a GPU (ptxas for
    sm_90, d100 w5 n5, one warp: 255 registers and 8 bytes of stack, against 255 registers and 624 bytes of
    spilled stack for the block; unmeasured on a GPU, see docs/BENCHMARKS.md), the block under the
    interpreter (three times faster there).
    """

    def __init__(self, syn0: np.ndarray, syn1neg: np.ndarray, *, keep: np.ndarray, neg_threshold: np.ndarray,
                 neg_alias: np.ndarray, sample: bool, sg: bool, window: int, negative: int, cbow_mean: bool = True,
                 device: str | torch.device = "cuda", programs: int | None = None,
                 capacity_bytes: int | None = None, num_warps: int | None = None, sg_loop: bool | None = None):
        self.device = torch.device(device)
        if self.device.type == "cpu" and not interpreted():
            raise ValueError("the triton-cpu backend runs under Triton's interpreter: set TRITON_INTERPRET=1 "
                             "before kiln imports triton")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("the triton-cuda backend needs a CUDA device, and torch sees none on this node")
        self.capacity_bytes = capacity_bytes
        vocab_size, dim = syn0.shape
        if vocab_size >= 1 << 24:
            raise TrainingError(f"the GPU kernel holds at most 16,777,215 words, and the vocabulary has {vocab_size:,} "
                                "(raise --min-count or set --max-vocab)")
        cap = capacity_bytes if capacity_bytes is not None else free_bytes(self.device)
        check_fits(vocab_size, dim, 0, free_bytes=cap, device=str(self.device))
        put = lambda a, dt: torch.from_numpy(np.ascontiguousarray(a, dtype=dt)).to(self.device)  # noqa: E731
        self.syn0 = put(syn0, np.float32)
        self.syn1neg = put(syn1neg, np.float32)
        self.keep = put(keep, np.int64)
        self.neg_threshold = put(neg_threshold, np.int64)
        self.neg_alias = put(neg_alias, np.int32)
        self.sample, self.sg, self.window, self.negative = bool(sample), bool(sg), int(window), int(negative)
        self.cbow_mean = bool(cbow_mean)
        self.programs, self.num_warps = programs, num_warps
        self.sg_loop = self.device.type == "cuda" if sg_loop is None else bool(sg_loop)
        self._corpus: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    # ------------------------------------------------------------ data

    def attach(self, arrays: list[np.ndarray]) -> None:
        """Copy the encoded arrays to the device (after checking that they and the weights fit)."""
        self._corpus.clear()
        vocab_size, dim = self.syn0.shape
        tokens = sum(len(a) for a in arrays)
        cap = self.capacity_bytes if self.capacity_bytes is not None else free_bytes(self.device)
        if self.capacity_bytes is None:
            cap += sum(device_bytes(vocab_size, dim, 0).values())  # the weights are on the device already
        check_fits(vocab_size, dim, tokens, free_bytes=cap, device=str(self.device))
        for a in arrays:
            self._corpus[id(a)] = (a, self._ids_on_device(a))

    def _ids_on_device(self, a: np.ndarray) -> torch.Tensor:
        # torch wants writable memory: a read-only memmap (an encoded shard) is copied on the host first
        return torch.from_numpy(np.require(a, np.int32, ["C", "W"])).to(self.device)

    def programs_for(self, tokens: int) -> int:
        if self.programs:
            return max(1, int(self.programs))
        if self.device.type == "cpu":
            return INTERPRETED_PROGRAMS
        return int(min(MAX_PROGRAMS, max(1, tokens // MIN_TOKENS_PER_PROGRAM)))

    def train_chunk(self, ids: np.ndarray, start: int, end: int, lr_start: float, lr_end: float,
                    seed: int) -> tuple[int, float, int]:
        """Train on ``ids[start:end]`` (one launch); returns (words read, loss sum, pairs or centres trained)."""
        held = self._corpus.get(id(ids))
        if held is not None and held[0] is ids:
            dev, lo, hi = held[1], start, end
        else:  # not attached: this slice alone goes to the device
            dev, lo, hi = self._ids_on_device(ids[start:end]), 0, end - start
        words = int(np.count_nonzero(np.asarray(ids[start:end]) >= 0))
        if hi <= lo:
            return words, 0.0, 0
        loss, pairs = train_slice(self.syn0, self.syn1neg, dev, lo, hi, keep=self.keep, neg_threshold=self.neg_threshold,
                                  neg_alias=self.neg_alias, sample=self.sample, sg=self.sg, window=self.window,
                                  negative=self.negative, cbow_mean=self.cbow_mean, lr_start=lr_start, lr_end=lr_end,
                                  seed=seed, programs=self.programs_for(hi - lo), num_warps=self.num_warps,
                                  sg_loop=self.sg_loop)
        return words, loss, pairs

    # ------------------------------------------------------------ weights

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (syn0, syn1neg) as float32 numpy arrays on the host."""
        return self.syn0.cpu().numpy().copy(), self.syn1neg.cpu().numpy().copy()

    def get_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        return self.syn0[i].cpu().numpy(), self.syn1neg[i].cpu().numpy()

    def set_rows(self, idx: np.ndarray, syn0_rows: np.ndarray, syn1_rows: np.ndarray) -> None:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        self.syn0[i] = torch.from_numpy(np.asarray(syn0_rows, dtype=np.float32)).to(self.device)
        self.syn1neg[i] = torch.from_numpy(np.asarray(syn1_rows, dtype=np.float32)).to(self.device)

    def nonfinite(self) -> list[str]:
        """Names of the weight tensors holding NaN or inf (checked on the device, one sync)."""
        flags = torch.stack([torch.isfinite(self.syn0).all(), torch.isfinite(self.syn1neg).all()]).tolist()
        return [name for name, ok in zip(("syn0", "syn1neg"), flags) if not ok]
