"""``Word2VecTrainer``: the weights of one worker, where it stands in its data, and the one training step.

The step is ``train_round(plan)``: train whole chunks from where the trainer stands until about
``plan.words`` more words are done (or its epochs are over). A job's round loop (workers/word2vec/job.py)
calls it on every worker; ``train`` is the same step called until the end, for code that holds
encoded arrays in hand (tests of the kernel's quality, the GPU check).

Chunks are cut at sentence starts every ``chunk_words`` tokens (encode.next_sentence_start); each chunk's
random seed is derived from (seed, epoch, array, offset) and its learning rate from the words trained
before it, so on one thread the vectors do not depend on how the work is cut into rounds, and a trainer
restored from ``state_dict`` ends exactly where an uninterrupted one does.

Threads (``threads`` > 1, numba backend): each thread claims the next chunk from the shared position
under a lock and trains it without the GIL in the shared weights (Hogwild, as gensim's threads); they
wait for each other only at the end of a round, not after every chunk.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shared.specs import Word2VecParams
from workers.word2vec.encode import count_words, next_sentence_start
from workers.word2vec.kernel import KernelTables, init_vectors, train_range
from workers.word2vec.model import Word2VecModel
from workers.word2vec.vocab import Vocab

STATE_FORMAT = "kiln.word2vec.state/2"
CHUNK_WORDS = 50_000
"""Tokens per kernel call on one thread (about 50 ms): Python's share of the time stays well under 1%."""
THREAD_CHUNK_WORDS = 10_000
"""Tokens a thread claims at a time when several share a worker: small, so that at the end of a round
(the one barrier) no thread waits long for the others' last chunk."""
BACKENDS = ("numba", "triton-cuda", "triton-cpu")
"""numba: the compiled CPU kernel (kernel.py); triton-cuda: the Triton GPU kernel (triton_kernel.py, driven by
gpu_backend.py); triton-cpu: the same kernel under Triton's interpreter (TRITON_INTERPRET=1, tests only)."""


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


@dataclass(frozen=True)
class RoundPlan:
    """One round for one trainer: train about ``words`` words.

    The learning rate follows the whole job's progress: a chunk that starts ``did`` words into this
    trainer's round is at ``(global_done + did * global_words // words) / global_total`` of the job, where
    ``global_done`` is what all workers had trained when the round began and ``global_words`` what they
    train in it together. Left at their defaults (-1, 0, 0) they mean this trainer alone, so a one-worker
    job and ``Word2VecTrainer.train`` follow the same schedule, in integers (bit for bit).
    """

    words: int
    global_done: int = -1
    global_total: int = 0
    global_words: int = 0

    def to_dict(self) -> dict:
        return {"words": self.words, "global_done": self.global_done, "global_total": self.global_total,
                "global_words": self.global_words}


class Word2VecTrainer:
    """Weights (``syn0`` input vectors, ``syn1neg`` output vectors) of one worker, its encoded data
    (``attach``), its position in that data, and the training step.

    ``backend``: one of BACKENDS; ``threads``: Hogwild threads of the numba backend; ``chunk_words``: tokens
    a thread trains per kernel call (CHUNK_WORDS on one thread, THREAD_CHUNK_WORDS on several);
    ``gpu_options``: keyword options of ``gpu_backend.GpuWord2Vec`` (programs, capacity_bytes, num_warps, sg_loop).
    """

    def __init__(self, params: Word2VecParams, vocab: Vocab, seed: int = 1, *, backend: str = "numba",
                 threads: int = 1, chunk_words: int | None = None, gpu_options: dict | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.params, self.vocab, self.seed = params, vocab, int(seed)
        self.backend = backend
        self.threads = max(1, int(threads)) if backend == "numba" else 1
        gpu = backend.startswith("triton")
        if gpu:
            from workers.word2vec.gpu_backend import GPU_CHUNK_WORDS  # torch and triton only when asked for
        self.chunk_words = int(chunk_words or (GPU_CHUNK_WORDS if gpu else CHUNK_WORDS if self.threads == 1
                                               else THREAD_CHUNK_WORDS))
        self.tables = KernelTables(vocab.counts, ns_exponent=params.ns_exponent, sample=params.sample)
        syn0, syn1neg = init_vectors(len(vocab), params.dim, self.seed)
        self._gpu = None  # a GPU backend: weights, tables and corpus on its device
        if gpu:
            from workers.word2vec.gpu_backend import GpuWord2Vec

            self._gpu = GpuWord2Vec(syn0, syn1neg, keep=self.tables.keep, neg_threshold=self.tables.neg_threshold,
                                    neg_alias=self.tables.neg_alias, sample=self.tables.sample, sg=params.sg,
                                    window=params.window, negative=params.negative, cbow_mean=params.cbow_mean,
                                    device=backend.removeprefix("triton-"), **(gpu_options or {}))
        else:
            self._syn0, self._syn1neg = syn0, syn1neg
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="w2v") if self.threads > 1 else None
        self._lock = threading.Lock()
        self.arrays: list[np.ndarray] = []
        self.epoch_words = 0
        # where the trainer stands (what state_dict records)
        self.epoch = 0
        self.array_index = 0
        self.offset = 0
        self.words_done = 0  # words claimed for training so far, all epochs

    # ------------------------------------------------------------ data

    def attach(self, arrays: list[np.ndarray]) -> int:
        """Train on these encoded arrays (int32 ids, sentences closed by -1); returns words per epoch."""
        self.arrays = [a if a.dtype == np.int32 else a.astype(np.int32) for a in arrays]
        self.epoch_words = sum(count_words(a) for a in self.arrays)
        if self._gpu:
            self._gpu.attach(self.arrays)  # the whole share on the device (fails naming the sizes if it cannot)
        if self.epoch_words == 0:
            self.epoch = self.params.epochs  # nothing to train: finished at once
        self._normalise()
        return self.epoch_words

    @property
    def total_words(self) -> int:
        """Words x epochs this trainer trains in all."""
        return self.epoch_words * self.params.epochs

    @property
    def finished(self) -> bool:
        return self.epoch >= self.params.epochs

    def _normalise(self) -> None:
        """Move the position past the end of an array (and of an epoch) and past empty arrays."""
        while not self.finished:
            if self.array_index >= len(self.arrays):
                self.array_index, self.offset = 0, 0
                self.epoch += 1
            elif self.offset >= len(self.arrays[self.array_index]):
                self.array_index += 1
                self.offset = 0
            else:
                return

    # ------------------------------------------------------------ weights

    @property
    def syn0(self) -> np.ndarray:
        """Input vectors (the word vectors), vocab x dim float32 (a host copy for a GPU backend)."""
        return self._gpu.arrays()[0] if self._gpu else self._syn0

    @property
    def syn1neg(self) -> np.ndarray:
        return self._gpu.arrays()[1] if self._gpu else self._syn1neg

    def get_rows(self, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Copies of rows ``idx`` (all rows when None) of (syn0, syn1neg)."""
        if idx is None:
            return self.syn0.copy(), self.syn1neg.copy()
        if self._gpu:
            return self._gpu.get_rows(idx)
        idx = np.asarray(idx, dtype=np.int64)
        return self._syn0[idx], self._syn1neg[idx]

    def set_rows(self, idx: np.ndarray | None, syn0_rows: np.ndarray, syn1_rows: np.ndarray) -> None:
        """Overwrite rows ``idx`` (all rows when None) of (syn0, syn1neg)."""
        if idx is None:
            idx = np.arange(len(self.vocab), dtype=np.int64)
        if self._gpu:
            return self._gpu.set_rows(idx, syn0_rows, syn1_rows)
        idx = np.asarray(idx, dtype=np.int64)
        self._syn0[idx] = syn0_rows
        self._syn1neg[idx] = syn1_rows

    def use_arrays(self, syn0: np.ndarray, syn1neg: np.ndarray, *, copy: bool = True) -> None:
        """Train in the given float32 arrays from now on (e.g. shared memory that other workers on the
        node train in too, Hogwild style); with ``copy`` the current weights are copied into them first."""
        if self._gpu:
            raise ValueError("a GPU backend keeps its weights on its device; it cannot share host arrays")
        if syn0.shape != self._syn0.shape or syn1neg.shape != self._syn1neg.shape:
            raise ValueError("shared arrays do not match the model's shape")
        if copy:
            syn0[...] = self._syn0
            syn1neg[...] = self._syn1neg
        self._syn0, self._syn1neg = syn0, syn1neg

    def nonfinite(self) -> list[str]:
        """Names of the weight arrays holding NaN or inf (empty when all is finite)."""
        if self._gpu:
            return self._gpu.nonfinite()
        return [name for name, a in (("syn0", self._syn0), ("syn1neg", self._syn1neg)) if not np.isfinite(a).all()]

    def model(self) -> Word2VecModel:
        """The word vectors as a ``Word2VecModel`` (a copy)."""
        return Word2VecModel(self.vocab.words, self.syn0.copy(), self.vocab.counts)

    # ------------------------------------------------------------ the step

    def _claim(self, plan: RoundPlan, round_start: int, round_epoch: int):
        """The next chunk of the round (ids, start, end, lr_start, lr_end, seed), the position moved past
        it; None when the round's words are claimed, its epoch is over (a round never spans two epochs,
        so each epoch's loss can be told) or training is over. Called under ``_lock``."""
        did = self.words_done - round_start
        if self.finished or did >= plan.words or self.epoch != round_epoch:
            return None
        ids = self.arrays[self.array_index]
        start = self.offset
        end = next_sentence_start(ids, start + self.chunk_words)
        n = count_words(ids[start:end])
        seed = _mix(self.seed, self.epoch, self.array_index, start)
        lr0, lr1 = self._lr(plan, round_start, did), self._lr(plan, round_start, did + n)
        self.offset = end
        self.words_done += n
        self._normalise()
        return ids, start, end, lr0, lr1, seed

    def _lr(self, plan: RoundPlan, round_start: int, did: int) -> float:
        if plan.global_done < 0:
            return lr_at(self.params, (round_start + did) / max(self.total_words, 1))
        return lr_at(self.params, (plan.global_done + did * plan.global_words // max(plan.words, 1))
                     / max(plan.global_total, 1))

    def _train_chunk(self, ids, start, end, lr0, lr1, seed) -> tuple[int, float, int]:
        if self._gpu:
            return self._gpu.train_chunk(ids, start, end, lr0, lr1, seed)
        p = self.params
        return train_range(self._syn0, self._syn1neg, ids, start, end, self.tables, sg=p.sg, window=p.window,
                           negative=p.negative, cbow_mean=p.cbow_mean, lr_start=lr0, lr_end=lr1, seed=seed)

    def train_round(self, plan: RoundPlan) -> dict:
        """Train about ``plan.words`` words (whole chunks) from where the trainer stands, up to the end of
        the current epoch at most.

        Returns {"words", "loss" (sum), "pairs" (trained pairs or centres), "seconds", "lr" (the learning
        rate at the round's end), "finished"}."""
        t0 = time.perf_counter()
        round_start, round_epoch = self.words_done, self.epoch
        totals = [0, 0.0, 0]
        last_lr = [lr_at(self.params, 0.0) if plan.global_done < 0 else self._lr(plan, round_start, 0)]

        def run() -> None:
            while True:
                with self._lock:
                    chunk = self._claim(plan, round_start, round_epoch)
                if chunk is None:
                    return
                words, loss, pairs = self._train_chunk(*chunk)
                with self._lock:
                    totals[0] += words
                    totals[1] += float(loss)
                    totals[2] += pairs
                    last_lr[0] = chunk[4]

        if self._pool is None:
            run()
        else:
            for f in [self._pool.submit(run) for _ in range(self.threads)]:
                f.result()  # the one barrier: the end of the round
        return {"words": totals[0], "loss": totals[1], "pairs": totals[2], "seconds": time.perf_counter() - t0,
                "lr": last_lr[0], "finished": self.finished}

    def train(self, arrays: list[np.ndarray], *, round_words: int = 1_000_000) -> Word2VecModel:
        """Attach ``arrays`` and call ``train_round`` until the trainer's epochs are done; the model."""
        self.attach(arrays)
        while not self.finished:
            self.train_round(RoundPlan(words=round_words))
        return self.model()

    def close(self) -> None:
        """Stop the thread pool (the trainer cannot train afterwards)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------ checkpoints

    def position(self) -> dict:
        """Where the trainer stands, JSON-able (the non-array part of its state)."""
        return {"format": STATE_FORMAT, "epoch": self.epoch, "array_index": self.array_index,
                "offset": self.offset, "words_done": self.words_done, "seed": self.seed,
                "vocab_size": len(self.vocab), "dim": self.params.dim}

    def state_dict(self) -> dict:
        """{"syn0", "syn1neg": float32 arrays (copies), "meta": ``position()``}."""
        syn0, syn1neg = self.get_rows(None)
        return {"syn0": syn0, "syn1neg": syn1neg, "meta": self.position()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (weights and position); ValueError if it belongs to another model."""
        meta = state["meta"]
        shape = (len(self.vocab), self.params.dim)
        if meta.get("format") != STATE_FORMAT or state["syn0"].shape != shape or state["syn1neg"].shape != shape:
            raise ValueError(f"the checkpoint ({meta.get('format')}, weights {state['syn0'].shape}) does not fit "
                             f"this job ({STATE_FORMAT}, {shape})")
        self.set_rows(None, state["syn0"], state["syn1neg"])
        self.load_position(meta)

    def load_position(self, meta: dict) -> None:
        self.epoch, self.array_index = int(meta["epoch"]), int(meta["array_index"])
        self.offset, self.words_done = int(meta["offset"]), int(meta["words_done"])
        self.seed = int(meta["seed"])


def rows_to_merge(counts: np.ndarray, round_index: int, *, hot_rows: int = 1000, cold_slices: int = 8) -> np.ndarray:
    """Rows to merge between groups of workers after round ``round_index``: the ``hot_rows`` most frequent
    words every round (they move most), and one of ``cold_slices`` interleaved slices of the rest in turn,
    so every row is merged at least every ``cold_slices`` rounds. Ids are sorted by frequency already."""
    n = len(counts)
    hot = min(hot_rows, n)
    cold = np.arange(hot + (round_index % cold_slices), n, cold_slices)
    return np.concatenate([np.arange(hot), cold]).astype(np.int64)
