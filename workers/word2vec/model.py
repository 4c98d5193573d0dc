"""A trained word2vec model: words and their vectors, saved, loaded, exported and queried.

Files written by ``save(dir)``: ``vectors.safetensors`` (tensor "vectors", float32 words x dim),
``vocab.json`` (``{"words": [...], "counts": [...]}``) and ``vectors.txt`` (word2vec text format).
Loading needs numpy and safetensors only (no torch), so query commands start fast.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from shared.errors import InvalidParameter, NotFound

VECTORS_FILE = "vectors.safetensors"
VOCAB_FILE = "vocab.json"
TEXT_FILE = "vectors.txt"


class Word2VecModel:
    """``words[i]`` has vector ``vectors[i]`` (float32); ``counts`` (optional) are corpus counts."""

    def __init__(self, words: list[str], vectors: np.ndarray, counts: np.ndarray | None = None):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"{len(words)} words but vectors of shape {vectors.shape}")
        self.words = list(words)
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def unit_vectors(self) -> np.ndarray:
        """Vectors scaled to length 1 (zero vectors stay zero); computed once."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = (self.vectors / np.where(norms > 0, norms, 1)).astype(np.float32)
        return self._unit

    def id_of(self, word: str) -> int:
        """The row of ``word``; NotFound if it is not in the vocabulary."""
        try:
            return self.index[word]
        except KeyError:
            raise NotFound(f"word {word!r} is not in the model's vocabulary ({len(self)} words)") from None

    def vector(self, word: str) -> np.ndarray:
        return self.vectors[self.id_of(word)]

    # ------------------------------------------------------------ files

    def save(self, directory: str | Path) -> dict[str, str]:
        """Write the three files into ``directory`` (created if needed); return {kind: path}."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors}, str(d / VECTORS_FILE), metadata={"format": "kiln.word2vec/1"})
        vocab = {"words": self.words, "counts": None if self.counts is None else self.counts.tolist()}
        (d / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        self.export_text(d / TEXT_FILE)
        return {"vectors": str(d / VECTORS_FILE), "vocab": str(d / VOCAB_FILE), "text": str(d / TEXT_FILE)}

    @classmethod
    def load(cls, directory: str | Path) -> "Word2VecModel":
        """Read a model written by ``save``; NotFound if the directory holds none."""
        d = Path(directory)
        if not (d / VECTORS_FILE).exists() or not (d / VOCAB_FILE).exists():
            raise NotFound(f"{d}: no word2vec model here (expected {VECTORS_FILE} and {VOCAB_FILE})")
        vectors = load_file(str(d / VECTORS_FILE))["vectors"]
        vocab = json.loads((d / VOCAB_FILE).read_text(encoding="utf-8"))
        return cls(vocab["words"], vectors, vocab.get("counts"))

    def export_text(self, path: str | Path) -> Path:
        """word2vec text format: a "<words> <dim>" header, then "word v1 v2 ..." (9 significant digits,
        which round-trips float32 exactly)."""
        check_words(self.words)
        path = Path(path)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(f"{len(self)} {self.dim}\n")
            fmt = " ".join(["%.9g"] * self.dim)
            for word, row in zip(self.words, self.vectors.tolist()):
                f.write(word + " " + fmt % tuple(row) + "\n")
        return path

    def export_binary(self, path: str | Path) -> Path:
        """word2vec binary format (the C tool's, ``binary=True`` in gensim): a text header, then per word
        its UTF-8 bytes, a space, dim little-endian float32 values and a newline."""
        check_words(self.words)
        path = Path(path)
        data = self.vectors.astype("<f4")
        with open(path, "wb") as f:
            f.write(f"{len(self)} {self.dim}\n".encode())
            for word, row in zip(self.words, data):
                f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        return path

    # ------------------------------------------------------------ queries

    def _nearest(self, query: np.ndarray, exclude: set[int], topn: int) -> list[tuple[str, float]]:
        q = query / (np.linalg.norm(query) or 1.0)
        sims = self.unit_vectors @ q.astype(np.float32)
        if exclude:
            sims[list(exclude)] = -np.inf
        topn = max(0, min(topn, len(self) - len(exclude)))
        if topn == 0:
            return []
        best = np.argpartition(-sims, topn - 1)[:topn]
        best = best[np.argsort(-sims[best], kind="stable")]
        return [(self.words[i], float(sims[i])) for i in best]

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words closest to ``word`` by cosine similarity, closest first (``word`` excluded)."""
        i = self.id_of(word)
        return self._nearest(self.unit_vectors[i], {i}, topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list[tuple[str, float]]:
        """"a is to b as c is to ?" by 3CosAdd: nearest to unit(b) - unit(a) + unit(c), inputs excluded
        (gensim's ``most_similar(positive=[b, c], negative=[a])``)."""
        ia, ib, ic = self.id_of(a), self.id_of(b), self.id_of(c)
        u = self.unit_vectors
        return self._nearest(u[ib] - u[ia] + u[ic], {ia, ib, ic}, topn)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        u = self.unit_vectors
        return float(u[self.id_of(a)] @ u[self.id_of(b)])


def check_words(words: list[str]) -> None:
    """The word2vec formats cannot hold a word with whitespace in it; raise InvalidParameter on one."""
    for w in words:
        if not w or any(ch.isspace() for ch in w):
            raise InvalidParameter(f"word {w!r} cannot be written in the word2vec format (empty or has whitespace)")
