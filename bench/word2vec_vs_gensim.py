"""kiln's word2vec trainer against gensim's Word2Vec on one corpus, same hyperparameters, one run.

For each trainer: words/s = raw corpus words x epochs / wall time of (vocabulary + encoding + training),
analogy accuracy on gensim's questions-words.txt (3CosAdd, 30,000 most frequent words), and WordSim-353
Spearman (means over the runs); then kiln/gensim ratios. Wall time is the median of ``--repeats`` runs. Every model is scored by the same code (workers/word2vec/evaluate.py,
which agrees with gensim's own evaluate_* functions).

    python -m bench.word2vec_vs_gensim [--corpus PATH] [--epochs 5] [--sg 1] [--threads 2]

The default corpus is the offline Wikipedia sample from bench/corpora.py. numba compiles the kernel
once per machine (cached on disk); a warm-up call before timing keeps that out of the figures.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from bench.corpora import questions_words, wiki_extract_text, wordsim353
from shared.specs import Word2VecParams
from workers.word2vec.corpus import plan_shards
from workers.word2vec.encode import encode_shard
from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman
from workers.word2vec.model import Word2VecModel
from workers.word2vec.trainer import Word2VecTrainer
from workers.word2vec.vocab import Vocab, count_shard, merge_counts


def run_gensim(corpus: str, p: Word2VecParams, workers: int, seed: int) -> tuple[Word2VecModel, float]:
    """(model, wall seconds of gensim's build_vocab + train)."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    t0 = time.perf_counter()
    m = Word2Vec(LineSentence(corpus), vector_size=p.dim, window=p.window, negative=p.negative, sg=int(p.sg),
                 min_count=p.min_count, sample=p.sample, epochs=p.epochs, alpha=p.lr, min_alpha=p.min_lr,
                 ns_exponent=p.ns_exponent, cbow_mean=int(p.cbow_mean), hs=0, workers=workers, seed=seed)
    wall = time.perf_counter() - t0
    return Word2VecModel(list(m.wv.index_to_key), m.wv.vectors), wall


def run_kiln(corpus: str, p: Word2VecParams, threads: int, seed: int) -> tuple[Word2VecModel, float, int]:
    """(model, wall seconds of vocabulary + encoding + training, raw words)."""
    t0 = time.perf_counter()
    shards = plan_shards([corpus])
    counts = merge_counts([count_shard(s) for s in shards])
    vocab = Vocab.build(counts, min_count=p.min_count, max_vocab_size=p.max_vocab_size)
    arrays = [encode_shard(s, vocab) for s in shards]
    model = Word2VecTrainer(p, vocab, seed, threads=threads).train(arrays)
    return model, time.perf_counter() - t0, counts.raw_words


def warm_up(p: Word2VecParams) -> None:
    """Compile (or load from numba's cache) the kernels outside the timed region."""
    vocab = Vocab.build({"a": 5, "b": 5, "c": 5}, min_count=1)
    ids = np.array([0, 1, 2, 0, 1, -1] * 10, dtype=np.int32)
    for sg in (True, False):
        Word2VecTrainer(p.model_copy(update={"sg": sg, "epochs": 1}), vocab, 1).train([ids])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="plain-text corpus (default: the Wikipedia sample)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sg", type=int, default=1, choices=(0, 1))
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--gensim-workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads of kiln's Hogwild variant (0: skip it)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs per trainer; wall time is the median")
    args = ap.parse_args()
    corpus = str(args.corpus or wiki_extract_text())
    p = Word2VecParams(corpus=[corpus], sg=bool(args.sg), dim=args.dim, window=5, negative=5, min_count=5,
                       sample=1e-3, epochs=args.epochs)
    warm_up(p)

    trainers = [(f"gensim workers={args.gensim_workers}", lambda: run_gensim(corpus, p, args.gensim_workers, args.seed)),
                ("kiln 1 thread", lambda: run_kiln(corpus, p, 1, args.seed)[:2])]
    if args.threads > 1:
        trainers.append((f"kiln {args.threads} threads", lambda: run_kiln(corpus, p, args.threads, args.seed)[:2]))
    raw = sum(len(line.split()) for line in open(corpus, encoding="utf-8", errors="replace"))
    walls: dict[str, list[float]] = {name: [] for name, _ in trainers}
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trainers}
    for r in range(args.repeats):
        # alternate the order so that a busy machine does not always hit the same trainer
        for name, fn in (trainers if r % 2 == 0 else trainers[::-1]):
            model, wall = fn()
            walls[name].append(wall)
            scores[name].append((analogy_accuracy(model, questions_words())["accuracy"],
                                 similarity_spearman(model, wordsim353())["spearman"]))
            vocab_size = len(model)

    print(f"corpus {corpus}: {raw:,} words, vocabulary {vocab_size:,}; {'skip-gram' if p.sg else 'CBOW'} "
          f"dim {p.dim} window {p.window} negative {p.negative} min_count {p.min_count} sample {p.sample} "
          f"epochs {p.epochs}; median of {args.repeats} runs (min-max)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'trainer':<18} {'wall s':>16} {'words/s':>10} {'analogy':>8} {'wordsim':>8} "
          f"{'speed x':>8} {'analogy d':>9} {'wordsim d':>9}")
    base = None
    for name, _ in trainers:
        w = sorted(walls[name])
        wall = float(np.median(w))
        wps = raw * p.epochs / wall
        acc = float(np.mean([a for a, _ in scores[name]]))
        rho = float(np.mean([b for _, b in scores[name]]))
        if base is None:
            base = (wps, acc, rho)
        spread = f"{wall:.2f} ({w[0]:.2f}-{w[-1]:.2f})"
        print(f"{name:<18} {spread:>16} {wps:>10,.0f} {acc:>8.2%} {rho:>8.3f} "
              f"{wps / base[0]:>8.2f} {100 * (acc - base[1]):>+8.2f}p {rho - base[2]:>+9.3f}")


if __name__ == "__main__":
    main()
