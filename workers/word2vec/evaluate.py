"""Intrinsic evaluation of word vectors, computed as gensim computes it so the numbers compare.

``analogy_accuracy``: questions-words format (``: section`` lines, then "a b c expected" lines); each
question is answered by 3CosAdd over the ``restrict_vocab`` most frequent words, the three inputs
excluded; questions with a word outside those are skipped (counted as ``oov``). This is gensim's
``KeyedVectors.evaluate_word_analogies``.

``similarity_spearman``: word pairs with a human score (tab- or space-separated, ``#`` comments, e.g.
WordSim-353); Spearman's rho between the scores and the cosine similarities of the pairs in the
vocabulary. This is gensim's ``evaluate_word_pairs``.

A file with no usable line, or a question before any section, raises InvalidParameter.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.errors import InvalidParameter
from workers.word2vec.model import Word2VecModel


def _lines(path: str | Path) -> list[str]:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InvalidParameter(f"{path}: cannot be read ({e.strerror or e})") from None


def _lookup(model: Word2VecModel, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Key -> row over the ``restrict_vocab`` first words; with case folding the most frequent spelling wins."""
    words = model.words[:restrict_vocab]
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}
    table: dict[str, int] = {}
    for i, w in enumerate(words):
        table.setdefault(w.upper(), i)
    return table


def analogy_accuracy(model: Word2VecModel, path: str | Path, *, restrict_vocab: int = 30000,
                     case_insensitive: bool = True) -> dict:
    """Accuracy on an analogy file: {"accuracy", "correct", "total", "oov", "sections": [{"section",
    "correct", "total", "accuracy"}]}; ``total`` counts the questions asked (in vocabulary)."""
    key = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
    ok = _lookup(model, restrict_vocab, case_insensitive)
    sections: list[dict] = []
    questions: list[tuple[int, int, int, int, int]] = []  # (section, a, b, c, expected) rows
    seen, oov = 0, 0
    for no, line in enumerate(_lines(path), 1):
        if line.startswith(": "):
            sections.append({"section": line[2:].strip(), "correct": 0, "total": 0})
            continue
        parts = line.split()
        if not parts:
            continue
        if not sections:
            raise InvalidParameter(f"{path}: line {no} is a question before any ': section' line; "
                                   "not a questions-words analogy file")
        if len(parts) != 4:
            continue  # gensim skips malformed lines too
        seen += 1
        ids = [ok.get(key(w)) for w in parts]
        if any(i is None for i in ids):
            oov += 1
            continue
        questions.append((len(sections) - 1, *ids))
    if seen == 0:
        raise InvalidParameter(f"{path}: no analogy question found (expected ': section' lines, then "
                               "lines of four words)")
    n = min(restrict_vocab, len(model))
    unit = model.unit_vectors[:n]
    # words that case-fold to the same key are all excluded, as gensim compares predictions by key
    group = np.array([ok[key(w)] for w in model.words[:n]], dtype=np.int64)
    q = np.array(questions, dtype=np.int64).reshape(-1, 5)
    correct_q = np.zeros(len(q), dtype=bool)
    for lo in range(0, len(q), 2048):
        blk = q[lo:lo + 2048]
        target = unit[blk[:, 2]] - unit[blk[:, 1]] + unit[blk[:, 3]]
        sims = target @ unit.T
        for col in (1, 2, 3):
            sims[group[None, :] == blk[:, col:col + 1]] = -np.inf
        correct_q[lo:lo + 2048] = group[np.argmax(sims, axis=1)] == blk[:, 4]
    for (sec, *_), good in zip(q.tolist(), correct_q.tolist()):
        sections[sec]["total"] += 1
        sections[sec]["correct"] += int(good)
    for s in sections:
        s["accuracy"] = s["correct"] / s["total"] if s["total"] else 0.0
    correct, total = int(correct_q.sum()), len(q)
    return {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total,
            "oov": oov, "oov_ratio": oov / seen, "sections": sections}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or xs[i] != xs[start]:
            ranks[order[start:i]] = (start + i + 1) / 2.0
            start = i
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks)."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def similarity_spearman(model: Word2VecModel, path: str | Path, *, restrict_vocab: int = 300000,
                        case_insensitive: bool = True) -> dict:
    """Spearman's rho of human scores vs cosine similarities: {"spearman", "pearson", "pairs", "oov",
    "oov_ratio"}; pairs with a word outside the ``restrict_vocab`` first words are counted in ``oov``."""
    key = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
    ok = _lookup(model, restrict_vocab, case_insensitive)
    gold, pairs, oov, parsed = [], [], 0, 0
    for line in _lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 3:
            continue
        try:
            score = float(parts[2])
        except ValueError:
            continue
        parsed += 1
        a, b = ok.get(key(parts[0].strip())), ok.get(key(parts[1].strip()))
        if a is None or b is None:
            oov += 1
            continue
        gold.append(score)
        pairs.append((a, b))
    if parsed == 0:
        raise InvalidParameter(f"{path}: no word pair with a score found (expected lines 'word1<TAB>word2<TAB>score')")
    if len(pairs) < 2:
        return {"spearman": float("nan"), "pearson": float("nan"), "pairs": len(pairs), "oov": oov,
                "oov_ratio": oov / parsed}
    u = model.unit_vectors
    idx = np.array(pairs)
    sims = np.einsum("ij,ij->i", u[idx[:, 0]], u[idx[:, 1]]).astype(np.float64)
    g = np.array(gold, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant scores: nan, as scipy says
        pearson = float(np.corrcoef(g, sims)[0, 1])
    return {"spearman": spearman(g, sims), "pearson": pearson, "pairs": len(pairs), "oov": oov,
            "oov_ratio": oov / parsed}
