"""``Word2VecTrainer``: the weights of one worker and the loop that trains them, step by step.

A Ray actor (or a test, or the benchmark) drives it either chunk by chunk with ``train_chunk`` (the caller
owns the learning-rate schedule, e.g. a global one shared by data-parallel workers) or whole with
``train`` (epochs over encoded arrays, progress callbacks, checkpoints, resume).

Chunks are cut at sentence ends every ``chunk_words`` tokens; each chunk's random seed is derived from
(seed, epoch, array, offset), so a single-threaded run resumed from a checkpoint ends with exactly the
vectors of an uninterrupted run.

Checkpoints are ``state_dict()``s: {"syn0", "syn1neg": float32 arrays, "meta": plain JSON-able dict};
``save_state``/``load_state`` write them as one safetensors file (metadata holds the JSON), never pickle.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors.numpy import load, load_file, save, save_file

from shared.errors import TrainingError
from shared.specs import Word2VecParams
from workers.word2vec.encode import count_words
from workers.word2vec.kernel import KernelTables, init_vectors, train_range, train_range_threaded
from workers.word2vec.model import Word2VecModel
from workers.word2vec.vocab import Vocab

STATE_FORMAT = "kiln.word2vec.state/1"


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 steps), so neighbouring chunks get unrelated streams."""
    x = 0x243F6A8885A308D3
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
        x = x * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x & 0x7FFFFFFFFFFFFFFF


def lr_at(params: Word2VecParams, fraction: float) -> float:
    """The learning rate after ``fraction`` (0..1) of all words x epochs: linear from lr to min_lr."""
    f = min(max(fraction, 0.0), 1.0)
    return params.lr - (params.lr - params.min_lr) * f


def chunk_end(ids: np.ndarray, start: int, chunk_words: int) -> int:
    """End of the chunk starting at ``start``: just past the first -1 at or after ``start + chunk_words``."""
    n = len(ids)
    at = start + chunk_words
    while at < n:
        look = ids[at:at + 65536]
        hit = np.flatnonzero(look < 0)
        if len(hit):
            return at + int(hit[0]) + 1
        at += len(look)
    return n


class Word2VecTrainer:
    """Weights (``syn0`` input vectors, ``syn1neg`` output vectors) of one worker, and how to train them.

    ``backend``: "numba" (the CPU kernel; ``threads`` > 1 trains Hogwild on that many threads) or "torch"
    (``gpu_kernel.TorchHogBatch`` on ``device``, e.g. "cuda" or "cpu", ``batch_centres`` centre words per
    SGD step). ``chunk_words``: tokens per kernel call (per thread).
    """

    def __init__(self, params: Word2VecParams, vocab: Vocab, seed: int = 1, *, backend: str = "numba",
                 device: str = "cpu", threads: int = 1, chunk_words: int = 50_000,
                 batch_centres: int = 1024):
        if backend not in ("numba", "torch"):
            raise ValueError(f"backend must be 'numba' or 'torch', not {backend!r}")
        self.params, self.vocab, self.seed = params, vocab, int(seed)
        self.backend, self.threads, self.chunk_words = backend, max(1, int(threads)), int(chunk_words)
        self.tables = KernelTables(vocab.counts, ns_exponent=params.ns_exponent, sample=params.sample)
        syn0, syn1neg = init_vectors(len(vocab), params.dim, self.seed)
        self._torch = None
        if backend == "torch":
            from workers.word2vec.gpu_kernel import TorchHogBatch  # torch only when asked for

            self._torch = TorchHogBatch(syn0, syn1neg, cum=self.tables.cum, keep=self.tables.keep,
                                        sample=self.tables.sample, sg=params.sg, window=params.window,
                                        negative=params.negative, cbow_mean=params.cbow_mean, device=device,
                                        batch_centres=batch_centres)
        else:
            self._syn0, self._syn1neg = syn0, syn1neg
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 and backend == "numba" else None
        # where the loop stands (what a checkpoint records)
        self.epoch = 0
        self.array_index = 0
        self.offset = 0
        self.words_done = 0  # words trained so far, all epochs
        self.chunks_done = 0

    # ------------------------------------------------------------ weights

    @property
    def syn0(self) -> np.ndarray:
        """Input vectors (the word vectors), vocab x dim float32 (a host copy for the torch backend)."""
        return self._torch.arrays()[0] if self._torch else self._syn0

    @property
    def syn1neg(self) -> np.ndarray:
        return self._torch.arrays()[1] if self._torch else self._syn1neg

    def get_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies of rows ``idx`` of (syn0, syn1neg), for parameter averaging between workers."""
        if self._torch:
            return self._torch.get_rows(idx)
        idx = np.asarray(idx, dtype=np.int64)
        return self._syn0[idx], self._syn1neg[idx]

    def set_rows(self, idx: np.ndarray, syn0_rows: np.ndarray, syn1_rows: np.ndarray) -> None:
        """Overwrite rows ``idx`` of (syn0, syn1neg), e.g. with the workers' average."""
        if self._torch:
            return self._torch.set_rows(idx, syn0_rows, syn1_rows)
        idx = np.asarray(idx, dtype=np.int64)
        self._syn0[idx] = syn0_rows
        self._syn1neg[idx] = syn1_rows

    def use_arrays(self, syn0: np.ndarray, syn1neg: np.ndarray, *, copy: bool = True) -> None:
        """Train in the given float32 arrays from now on (e.g. shared memory that other workers on the
        node train in too, Hogwild style); with ``copy`` the current weights are copied into them first."""
        if self._torch:
            raise ValueError("the torch backend keeps its weights on its device; it cannot share host arrays")
        if syn0.shape != self._syn0.shape or syn1neg.shape != self._syn1neg.shape:
            raise ValueError("shared arrays do not match the model's shape")
        if copy:
            syn0[...] = self._syn0
            syn1neg[...] = self._syn1neg
        self._syn0, self._syn1neg = syn0, syn1neg

    def model(self) -> Word2VecModel:
        """The word vectors as a ``Word2VecModel`` (a copy)."""
        return Word2VecModel(self.vocab.words, self.syn0.copy(), self.vocab.counts)

    # ------------------------------------------------------------ one chunk

    def train_chunk(self, token_ids: np.ndarray, lr_start: float, lr_end: float, *, start: int = 0,
                    end: int | None = None, seed: int | None = None) -> tuple[int, float]:
        """Train on ``token_ids[start:end]`` (int32 ids, sentences closed by -1), the learning rate going
        linearly from ``lr_start`` to ``lr_end``; returns (words processed, loss sum)."""
        words, loss, _ = self._train(token_ids, start, len(token_ids) if end is None else end,
                                     lr_start, lr_end, _mix(self.seed, self.words_done) if seed is None else seed)
        self.words_done += words
        return words, loss

    def _train(self, ids, start, end, lr_start, lr_end, seed) -> tuple[int, float, int]:
        p = self.params
        if ids.dtype != np.int32:
            ids = ids.astype(np.int32)
        if self._torch:
            return self._torch.train_chunk(ids, start, end, lr_start, lr_end, seed)
        kw = dict(sg=p.sg, window=p.window, negative=p.negative, cbow_mean=p.cbow_mean,
                  lr_start=lr_start, lr_end=lr_end, seed=seed)
        if self._pool:
            return train_range_threaded(self._syn0, self._syn1neg, ids, start, end, self.tables,
                                        threads=self.threads, pool=self._pool, **kw)
        return train_range(self._syn0, self._syn1neg, ids, start, end, self.tables, **kw)

    # ------------------------------------------------------------ the whole loop

    def train(self, encoded_arrays: list[np.ndarray], *, progress: Callable[[dict], None] | None = None,
              checkpoint: Callable[[dict], None] | None = None, resume: dict | None = None,
              progress_every_s: float = 0.25, checkpoint_every_s: float = 300.0) -> Word2VecModel:
        """Train ``params.epochs`` epochs over ``encoded_arrays`` and return the model.

        ``progress(dict(fraction, words_per_s, epoch, loss, eta_s, words_done))`` is called at most every
        ``progress_every_s`` seconds and once at the end; ``loss`` is the mean loss per trained pair since
        the previous call. ``checkpoint(state_dict())`` is called every ``checkpoint_every_s`` seconds.
        ``resume``: a state from ``state_dict``/``load_state`` to continue from.
        """
        p = self.params
        if resume is not None:
            self.load_state_dict(resume)
        per_epoch = sum(count_words(a) for a in encoded_arrays)
        total = per_epoch * p.epochs
        if total == 0:
            raise TrainingError("the encoded corpus holds no in-vocabulary word to train on")
        chunk = self.chunk_words * self.threads
        t0 = last_report = last_ckpt = time.perf_counter()
        words_at_t0 = self.words_done
        win_loss, win_pairs, last_loss = 0.0, 0, float("nan")

        def report(now: float) -> None:
            nonlocal win_loss, win_pairs, last_report, last_loss
            if win_pairs:
                last_loss = win_loss / win_pairs
            rate = (self.words_done - words_at_t0) / max(now - t0, 1e-9)
            left = total - self.words_done
            progress({"fraction": self.words_done / total, "words_per_s": rate, "epoch": self.epoch,
                      "loss": last_loss,
                      "eta_s": left / rate if rate > 0 else float("inf"), "words_done": self.words_done})
            win_loss, win_pairs, last_report = 0.0, 0, now

        while self.epoch < p.epochs:
            while self.array_index < len(encoded_arrays):
                ids = encoded_arrays[self.array_index]
                while self.offset < len(ids):
                    end = chunk_end(ids, self.offset, chunk)
                    n = count_words(ids[self.offset:end])
                    lr0 = lr_at(p, self.words_done / total)
                    lr1 = lr_at(p, (self.words_done + n) / total)
                    seed = _mix(self.seed, self.epoch, self.array_index, self.offset)
                    words, loss, pairs = self._train(ids, self.offset, end, lr0, lr1, seed)
                    self.words_done += words
                    self.offset = end
                    win_loss += loss
                    win_pairs += pairs
                    now = time.perf_counter()
                    if progress and now - last_report >= progress_every_s:
                        report(now)
                    if checkpoint and now - last_ckpt >= checkpoint_every_s:
                        checkpoint(self.state_dict())
                        last_ckpt = time.perf_counter()
                self.array_index += 1
                self.offset = 0
            self.epoch += 1
            self.array_index = 0
        if progress:
            report(time.perf_counter())
        return self.model()

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """{"syn0", "syn1neg": float32 arrays (copies), "meta": where training stands, JSON-able}."""
        syn0, syn1neg = (self._torch.arrays() if self._torch else (self._syn0.copy(), self._syn1neg.copy()))
        meta = {"format": STATE_FORMAT, "epoch": self.epoch, "array_index": self.array_index,
                "offset": self.offset, "words_done": self.words_done, "seed": self.seed,
                "vocab_size": len(self.vocab), "dim": self.params.dim}
        return {"syn0": syn0, "syn1neg": syn1neg, "meta": meta}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (weights and position); ValueError if it belongs to another shape."""
        meta = state["meta"]
        shape = (len(self.vocab), self.params.dim)
        if state["syn0"].shape != shape or state["syn1neg"].shape != shape:
            raise ValueError(f"checkpoint holds weights of shape {state['syn0'].shape}, this job needs {shape}")
        idx = np.arange(shape[0])
        self.set_rows(idx, state["syn0"], state["syn1neg"])
        self.epoch, self.array_index = int(meta["epoch"]), int(meta["array_index"])
        self.offset, self.words_done = int(meta["offset"]), int(meta["words_done"])


def state_to_bytes(state: dict) -> bytes:
    """One safetensors blob: the two arrays, the meta as JSON in the metadata."""
    arrays = {"syn0": np.ascontiguousarray(state["syn0"]), "syn1neg": np.ascontiguousarray(state["syn1neg"])}
    return save(arrays, metadata={"meta": json.dumps(state["meta"])})


def state_from_bytes(blob: bytes) -> dict:
    """Read a blob written by ``state_to_bytes`` (safetensors header parsed for the metadata)."""
    arrays = load(blob)
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + header_len])
    return {**arrays, "meta": json.loads(header["__metadata__"]["meta"])}


def save_state(state: dict, path: str | Path) -> Path:
    """Write a state atomically (temp file + rename) as safetensors; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    arrays = {"syn0": np.ascontiguousarray(state["syn0"]), "syn1neg": np.ascontiguousarray(state["syn1neg"])}
    save_file(arrays, str(tmp), metadata={"meta": json.dumps(state["meta"])})
    os.replace(tmp, path)
    return path


def load_state(path: str | Path) -> dict:
    """Read a state written by ``save_state``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["meta"])
    return {**load_file(str(path)), "meta": meta}


def rows_to_average(counts: np.ndarray, round_index: int, *, hot_rows: int = 1000, cold_slices: int = 8) -> np.ndarray:
    """Rows to average between workers at sync round ``round_index``: the ``hot_rows`` most frequent words
    every round (they move most), and one of ``cold_slices`` interleaved slices of the rest in turn, so
    every row is averaged at least every ``cold_slices`` rounds. Ids are sorted by frequency already."""
    n = len(counts)
    hot = min(hot_rows, n)
    cold = np.arange(hot + (round_index % cold_slices), n, cold_slices)
    return np.concatenate([np.arange(hot), cold]).astype(np.int64)


__all__ = ["Word2VecTrainer", "lr_at", "chunk_end", "state_to_bytes", "state_from_bytes", "save_state",
           "load_state", "rows_to_average"]
