"""Word2VecWorker: one data-parallel trainer (a Ray actor) that owns some encoded shards.

It walks its shards epoch after epoch, training on ``budget`` words per call at the learning rate the
runner schedules, and exposes its parameter rows so the runner can average them across workers.
Checkpoints are safetensors (arrays) + JSON (positions), never pickle.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from shared.specs import Word2VecParams
from workers.word2vec.encode import SENTENCE_END, load_encoded
from workers.word2vec.vocab import Vocab


class Word2VecWorker:
    def __init__(self, params_json: str, seed: int, rank: int = 0, gpu: bool = False):
        """A trainer-to-be: it warms its kernel up now, and gets its vocabulary (``set_vocab``) and its data
        (``attach``) later. All workers start from the same vectors (``seed``); ``rank`` varies their sampling."""
        self.params = Word2VecParams.model_validate_json(params_json)
        self.seed, self.rank, self.gpu = seed, rank, gpu
        self.vocab: Vocab | None = None
        self.trainer = None
        self.shards: list[np.ndarray] = []
        self.words: list[int] = []
        self.epoch, self.shard, self.offset = 0, 0, 0
        self._warm_up()

    def _make_trainer(self, vocab: Vocab):
        from workers.word2vec.trainer import Word2VecTrainer  # noqa: PLC0415

        t = Word2VecTrainer(self.params, vocab, seed=self.seed, backend="torch" if self.gpu else "numba",
                            device="cuda" if self.gpu else "cpu")
        if self.rank:
            t.seed = self.seed * 1_000_003 + self.rank  # same initial vectors, different negative samples
        return t

    def _warm_up(self) -> None:
        """Compile (or load from numba's disk cache) the kernel on a two-word model, outside the timed training."""
        if self.gpu:
            return
        t = self._make_trainer(Vocab.build({"a": 2, "b": 1}, min_count=1))
        t.train_chunk(np.array([0, 1, 0, -1], dtype=np.int32), 0.0, 0.0)

    # -- data preparation -----------------------------------------------------------------------
    def count(self, shard: dict, opts: dict):
        """Token counts of one corpus shard (the map step of the vocabulary)."""
        from workers.word2vec.corpus import Shard  # noqa: PLC0415
        from workers.word2vec.vocab import count_shard  # noqa: PLC0415

        return count_shard(Shard.from_dict(shard), **opts)

    def fingerprint(self, paths: list[str]) -> str:
        from workers.lineage import corpus_fingerprint  # noqa: PLC0415

        return corpus_fingerprint(paths)

    def share_memory(self, key: str, create: bool) -> None:
        """Train in weights shared by every worker of this job on this node (Hogwild, as gensim's threads).

        The worker with ``create`` makes the shared files (its own weights become the start); the others
        map them. The files are unlinked once all have mapped them (``unlink_shared``), so nothing is
        left behind; the memory lives until the last worker exits.
        """
        import mmap  # noqa: PLC0415

        arrays = []
        for name, current in (("syn0", self.trainer.syn0), ("syn1neg", self.trainer.syn1neg)):
            path = _shm_path(key, name)
            if create:
                with open(path, "wb") as f:
                    f.truncate(current.nbytes)
            with open(path, "r+b") as f:
                mm = mmap.mmap(f.fileno(), current.nbytes)
            arr = np.frombuffer(mm, dtype=np.float32).reshape(current.shape)
            arrays.append(arr)
        # the creator's weights become the start; the others adopt them without copying theirs over
        self.trainer.use_arrays(*arrays, copy=create)

    def unlink_shared(self, key: str) -> None:
        for name in ("syn0", "syn1neg"):
            _shm_path(key, name).unlink(missing_ok=True)

    def set_vocab(self, vocab_json: str) -> None:
        self.vocab = Vocab.from_json(vocab_json)
        self.trainer = self._make_trainer(self.vocab)

    def node(self) -> str:
        """The Ray node this worker runs on."""
        import ray  # noqa: PLC0415 - only ever called inside a Ray actor

        return ray.get_runtime_context().get_node_id()

    def encode(self, shard: dict, opts: dict, dest: str) -> tuple[str, int, int]:
        """Encode one corpus shard with this worker's vocabulary into ``dest`` (.npy);
        returns (dest, words, array length)."""
        from workers.word2vec.corpus import Shard  # noqa: PLC0415
        from workers.word2vec.encode import count_words, encode_shard, save_encoded  # noqa: PLC0415

        ids = encode_shard(Shard.from_dict(shard), self.vocab, **opts)
        save_encoded(dest, ids)
        return dest, count_words(ids), len(ids)

    def attach(self, pieces: list[tuple[str, int, int]]) -> int:
        """Take (encoded shard path, lo, hi) ranges; each cut moves to the next sentence start. Returns words."""
        self.shards = []
        for path, lo, hi in pieces:
            ids = load_encoded(path, mmap=True)
            a, b = sentence_start(ids, lo), sentence_start(ids, hi)
            if a < b:
                self.shards.append(ids[a:b])
        self.words = [int(np.count_nonzero(s >= 0)) for s in self.shards]
        return sum(self.words)

    # -- training -------------------------------------------------------------------------------
    def train_words(self, budget: int, lr_start: float, lr_end: float) -> dict:
        """Train on about ``budget`` words (whole sentences), lr going linearly lr_start -> lr_end."""
        t0 = time.perf_counter()
        did, loss = 0, 0.0
        if not self.shards or sum(self.words) == 0:
            return {"words": 0, "loss": 0.0, "seconds": 0.0}
        while did < budget and self.epoch < self.params.epochs:
            ids = self.shards[self.shard]
            end = _sentence_end(ids, self.offset, budget - did)
            piece = np.ascontiguousarray(ids[self.offset:end])
            n = int(np.count_nonzero(piece >= 0))
            if n:
                a = did / budget
                b = min(1.0, (did + n) / budget)
                w, l = self.trainer.train_chunk(piece, lr_start + (lr_end - lr_start) * a,
                                                lr_start + (lr_end - lr_start) * b)
                did += n
                loss += float(l)
            self.offset = end
            if self.offset >= len(ids):
                self.offset = 0
                self.shard += 1
                if self.shard >= len(self.shards):
                    self.shard = 0
                    self.epoch += 1
        return {"words": did, "loss": loss, "seconds": time.perf_counter() - t0}

    # -- parameters -----------------------------------------------------------------------------
    def get_rows(self, rows):
        """Copies of (syn0, syn1neg) rows ``rows`` (all rows when None)."""
        if rows is None:
            return self.trainer.syn0.copy(), self.trainer.syn1neg.copy()
        return self.trainer.get_rows(rows)

    def set_rows(self, rows, syn0, syn1neg) -> None:
        if rows is None:
            rows = np.arange(len(self.vocab), dtype=np.int64)
        self.trainer.set_rows(rows, syn0, syn1neg)

    def vectors(self) -> np.ndarray:
        return self.trainer.syn0.copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"syn0": self.trainer.syn0.copy(), "syn1neg": self.trainer.syn1neg.copy()}

    def position(self) -> list[int]:
        return [self.epoch, self.shard, self.offset]

    def load_state(self, state: dict[str, np.ndarray], position: list[int]) -> None:
        self.set_rows(None, state["syn0"], state["syn1neg"])
        self.epoch, self.shard, self.offset = (int(x) for x in position)


def sentence_start(ids: np.ndarray, x: int) -> int:
    """The first position >= x where a sentence starts (0, just after a -1, or the array's end)."""
    if x <= 0:
        return 0
    n = len(ids)
    if x >= n:
        return n
    probe = x - 1  # x starts a sentence if the separator sits just before it
    while probe < n:
        hits = np.flatnonzero(ids[probe:probe + 65536] == SENTENCE_END)
        if hits.size:
            return probe + int(hits[0]) + 1
        probe += 65536
    return n


def _sentence_end(ids: np.ndarray, start: int, budget: int) -> int:
    """The index just past the first sentence end at or after ``start + budget`` (or the array's end)."""
    n = len(ids)
    probe = min(n, start + max(1, budget))
    if probe >= n:
        return n
    # search forward in blocks for the next separator
    while probe < n:
        block = ids[probe:probe + 65536]
        hits = np.flatnonzero(block == SENTENCE_END)
        if hits.size:
            return probe + int(hits[0]) + 1
        probe += len(block)
    return n


def _shm_path(key: str, name: str) -> Path:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"kiln-{key}-{name}"


CKPT_ARRAYS = "state.safetensors"
CKPT_META = "meta.json"


def checkpoint_exists(d: Path) -> bool:
    return (Path(d) / CKPT_META).is_file() and (Path(d) / CKPT_ARRAYS).is_file()


def save_checkpoint(d: Path, state: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays then metadata, each atomically (meta last: its presence marks a whole checkpoint)."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    save_file(state, str(d / (CKPT_ARRAYS + ".tmp")))
    (d / (CKPT_ARRAYS + ".tmp")).replace(d / CKPT_ARRAYS)
    (d / (CKPT_META + ".tmp")).write_text(json.dumps(meta))
    (d / (CKPT_META + ".tmp")).replace(d / CKPT_META)


def load_checkpoint(d: Path) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors.numpy import load_file  # noqa: PLC0415

    d = Path(d)
    return load_file(str(d / CKPT_ARRAYS)), json.loads((d / CKPT_META).read_text())
