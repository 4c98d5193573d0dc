"""Word2VecWorker: one worker of a word2vec job (a Ray actor on a job, a plain object under LocalContext).

It does its part of the data preparation (counting and encoding corpus shards), then holds one
``Word2VecTrainer`` on its share of the encoded corpus and trains it round by round as the job's loop
(workers/word2vec/job.py) asks, exposing its weight rows for merging and checkpoints. It imports no Ray:
the job wraps it.
"""
from __future__ import annotations

import mmap
import tempfile
from pathlib import Path

import numpy as np

from shared.specs import Word2VecParams
from workers.word2vec.encode import load_encoded, next_sentence_start
from workers.word2vec.trainer import RoundPlan, Word2VecTrainer
from workers.word2vec.vocab import Vocab


class Word2VecWorker:
    def __init__(self, params_json: str, seed: int, rank: int = 0, backend: str = "numba", threads: int = 1):
        """A trainer-to-be on ``threads`` threads with ``backend``: it warms its kernel up now and gets its
        vocabulary (``set_vocab``) and its data (``attach``) later. All workers start from the same vectors
        (``seed``); ``rank`` varies their sampling."""
        self.params = Word2VecParams.model_validate_json(params_json)
        self.seed, self.rank, self.backend, self.threads = seed, rank, backend, threads
        self.vocab: Vocab | None = None
        self.trainer: Word2VecTrainer | None = None
        self._warm_up()

    def _make_trainer(self, vocab: Vocab) -> Word2VecTrainer:
        t = Word2VecTrainer(self.params, vocab, seed=self.seed, backend=self.backend, threads=self.threads)
        if self.rank:
            t.seed = self.seed * 1_000_003 + self.rank  # same initial vectors, different negative samples
        return t

    def _warm_up(self) -> None:
        """Compile (or load from numba's / Triton's disk cache) the kernel on a two-word model with the job's
        dimension, window and negatives (the Triton kernel's compile-time constants), outside the timed training."""
        if self.backend not in ("numba", "triton-cuda"):
            return
        t = Word2VecTrainer(self.params.model_copy(update={"epochs": 1}), Vocab.build({"a": 2, "b": 1}, min_count=1),
                            backend=self.backend)
        t.train([np.array([0, 1, 0, -1], dtype=np.int32)])

    # -- data preparation -----------------------------------------------------------------------
    def count(self, shard: dict, opts: dict):
        """Token counts of one corpus shard (the map step of the vocabulary)."""
        from workers.word2vec.corpus import Shard  # noqa: PLC0415
        from workers.word2vec.vocab import count_shard  # noqa: PLC0415

        return count_shard(Shard.from_dict(shard), **opts)

    def fingerprint(self, paths: list[str]) -> str:
        from workers.lineage import corpus_fingerprint  # noqa: PLC0415

        return corpus_fingerprint(paths)

    def set_vocab(self, vocab_json: str) -> None:
        self.vocab = Vocab.from_json(vocab_json)
        self.trainer = self._make_trainer(self.vocab)

    def encode(self, shard: dict, opts: dict, dest: str) -> tuple[str, int, int]:
        """Encode one corpus shard with this worker's vocabulary into ``dest`` (.npy);
        returns (dest, words, array length)."""
        from workers.word2vec.corpus import Shard  # noqa: PLC0415
        from workers.word2vec.encode import count_words, encode_shard, save_encoded  # noqa: PLC0415

        ids = encode_shard(Shard.from_dict(shard), self.vocab, **opts)
        save_encoded(dest, ids)
        return dest, count_words(ids), len(ids)

    def attach(self, pieces: list[tuple[str, int, int]]) -> int:
        """Train on (encoded shard path, lo, hi) ranges, each cut moved to the next sentence start (the same
        rule on both sides of a cut, so the workers' pieces tile the corpus). Returns words per epoch."""
        arrays = []
        for path, lo, hi in pieces:
            ids = load_encoded(path, mmap=True)
            a, b = next_sentence_start(ids, lo), next_sentence_start(ids, hi)
            if a < b:
                arrays.append(ids[a:b])
        return self.trainer.attach(arrays)

    # -- placement ------------------------------------------------------------------------------
    def node(self) -> tuple[str, str]:
        """(node id, node IP) of the Ray node this worker runs on; ("local", "127.0.0.1") when it is not a Ray
        actor (an in-process worker, even in a process that is itself connected to Ray)."""
        try:
            import ray  # noqa: PLC0415
        except ImportError:
            return "local", "127.0.0.1"
        if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
            return "local", "127.0.0.1"
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def share_memory(self, key: str, create: bool) -> None:
        """Train in weights shared by every worker of this job on this node (Hogwild, as gensim's threads).

        The worker with ``create`` makes the shared files (its own weights become the start); the others
        map them. The files are unlinked once all have mapped them (``unlink_shared``), so nothing is
        left behind; the memory lives until the last worker exits.
        """
        arrays = []
        for name, current in (("syn0", self.trainer.syn0), ("syn1neg", self.trainer.syn1neg)):
            path = _shm_path(key, name)
            if create:
                with open(path, "wb") as f:
                    f.truncate(current.nbytes)
            with open(path, "r+b") as f:
                mm = mmap.mmap(f.fileno(), current.nbytes)
            arrays.append(np.frombuffer(mm, dtype=np.float32).reshape(current.shape))
        self.trainer.use_arrays(*arrays, copy=create)

    def unlink_shared(self, key: str) -> None:
        for name in ("syn0", "syn1neg"):
            _shm_path(key, name).unlink(missing_ok=True)

    # -- training -------------------------------------------------------------------------------
    def train_round(self, plan: dict) -> dict:
        """One ``Word2VecTrainer.train_round``; adds "nonfinite": the weight arrays holding NaN/inf after it."""
        out = self.trainer.train_round(RoundPlan(**plan))
        out["nonfinite"] = self.trainer.nonfinite()
        return out

    # -- weights and position -------------------------------------------------------------------
    def get_rows(self, rows):
        """Copies of (syn0, syn1neg) rows ``rows`` (all rows when None)."""
        return self.trainer.get_rows(rows)

    def set_rows(self, rows, syn0, syn1neg) -> None:
        """Overwrite rows ``rows`` (all when None) of (syn0, syn1neg): merged values, or a restored checkpoint."""
        self.trainer.set_rows(rows, syn0, syn1neg)

    def vectors(self) -> np.ndarray:
        return self.trainer.syn0.copy()

    def position(self) -> dict:
        return self.trainer.position()

    def restore(self, syn0: np.ndarray, syn1neg: np.ndarray, position: dict) -> None:
        """Continue from a checkpoint: its weights and this worker's position in it."""
        self.trainer.load_state_dict({"syn0": syn0, "syn1neg": syn1neg, "meta": position})


    def close(self) -> None:
        """Stop the trainer's threads (an in-process worker; a Ray actor just exits)."""
        if self.trainer is not None:
            self.trainer.close()


def _shm_path(key: str, name: str) -> Path:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"kiln-{key}-{name}"
