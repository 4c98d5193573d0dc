"""Threads in one word2vec worker (``--cpus-per-worker``) against workers, and against gensim's threads.

Rows, training time only (vocabulary and encoding excluded), same corpus and hyperparameters:
- ``gensim workers=T``: gensim's ``Word2Vec.train`` on T threads (the vocabulary built beforehand);
- ``kiln 1 worker x T threads``: a word2vec job (``Word2VecJob`` through ``run_trainer``) whose one worker
  trains on T threads, in this process (``LocalContext``), as ``--cpus-per-worker T`` does on a cluster;
- ``--ray WxT,...``: jobs of W Ray actors x T threads on a local Ray instance of ``--ray-cpus`` CPUs (e.g.
  ``1x2,2x1``: one worker on 2 threads against two workers on one thread each).

words/s = raw corpus words x epochs / training seconds; ``x 1 thread`` = against the same trainer's
1-thread row (kiln's scaling); ``x gensim`` = against gensim on as many threads. Quality: WordSim-353
Spearman (and analogy accuracy, 3CosAdd over the 30,000 most frequent words).

    python -m bench.word2vec_threads --threads 1,2 [--ray 1x2,2x1] [--corpus PATH] [--epochs 5] [--repeats 1]

A thread count above the machine's cores measures contention, not scaling: the issue's target (16 threads
>= 12x one thread) needs a machine with 16 free cores.
"""
from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.corpora import bench_corpus, questions_words, wiki_extract_text, word_count, wordsim353  # noqa: E402
from bench.word2vec_vs_gensim import _versions, run_kiln_job, start_ray, warm_up  # noqa: E402
from shared.specs import Word2VecParams  # noqa: E402
from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: E402
from workers.word2vec.model import Word2VecModel  # noqa: E402


def gensim_train(corpus: str, p: Word2VecParams, threads: int, seed: int) -> tuple[Word2VecModel, float]:
    """gensim's Word2Vec.train on ``threads`` threads, timed alone (build_vocab before the clock starts)."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    m = Word2Vec(vector_size=p.dim, window=p.window, negative=p.negative, sg=int(p.sg), min_count=p.min_count,
                 sample=p.sample, alpha=p.lr, min_alpha=p.min_lr, ns_exponent=p.ns_exponent,
                 cbow_mean=int(p.cbow_mean), hs=0, workers=threads, seed=seed)
    sentences = LineSentence(corpus)
    m.build_vocab(sentences)
    t0 = time.perf_counter()
    m.train(sentences, total_examples=m.corpus_count, epochs=p.epochs)
    return Word2VecModel(list(m.wv.index_to_key), m.wv.vectors), time.perf_counter() - t0


def quality(model: Word2VecModel) -> tuple[float, float]:
    return (analogy_accuracy(model, questions_words())["accuracy"], similarity_spearman(model, wordsim353())["spearman"])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        if part.strip():
            w, _, t = part.strip().partition("x")
            out.append((int(w), int(t or 1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts of the in-process rows")
    ap.add_argument("--ray", default="", help="comma-separated WORKERSxTHREADS Ray job rows, e.g. 1x2,2x1")
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--no-gensim", action="store_true", help="skip gensim's rows")
    ap.add_argument("--corpus", help="plain-text corpus (default: bench_corpus(), else the Wikipedia sample)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sg", type=int, default=1, choices=(0, 1))
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="runs per row; the median training time is shown")
    args = ap.parse_args()
    threads, shapes = _ints(args.threads), _shapes(args.ray)

    print(f"command: python -m bench.word2vec_threads {shlex.join(sys.argv[1:])}".rstrip())
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}); "
          f"Python {platform.python_version()}; {_versions()}")
    if args.corpus:
        corpus = str(args.corpus)
    else:
        try:
            corpus = str(bench_corpus())
        except FileNotFoundError:
            corpus = str(wiki_extract_text())
    raw = word_count(corpus)
    p = Word2VecParams(corpus=[corpus], sg=bool(args.sg), dim=args.dim, min_count=args.min_count, epochs=args.epochs)
    print(f"corpus: {corpus}, {raw:,} words; {'skip-gram' if p.sg else 'CBOW'} dim {p.dim} window {p.window} "
          f"negative {p.negative} epochs {p.epochs}; training time only, median of {args.repeats} run(s)", flush=True)
    warm_up(p)

    rows: list[tuple[str, int, float, float, float]] = []  # name, threads, train s, analogy, wordsim

    def record(name: str, n_threads: int, runs: list[tuple[Word2VecModel, float]]) -> None:
        secs = float(np.median([s for _, s in runs]))
        acc, rho = quality(runs[-1][0])
        rows.append((name, n_threads, secs, acc, rho))
        print(f"  {name}: {secs:.2f} s, wordsim {rho:.3f}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="kiln-bench-threads-") as tmp:
        counter = iter(range(1_000_000))

        def kiln(workers: int, t: int, on_ray: bool) -> tuple[Word2VecModel, float]:
            run = run_kiln_job(corpus, p, workers, t, args.seed, Path(tmp), f"threads-{next(counter)}", on_ray=on_ray)
            return run.model, run.metrics["train_seconds"]

        for t in threads:
            if not args.no_gensim:
                record(f"gensim workers={t}", t, [gensim_train(corpus, p, t, args.seed) for _ in range(args.repeats)])
            record(f"kiln 1 worker x {t} thread{'s' if t > 1 else ''}", t,
                   [kiln(1, t, False) for _ in range(args.repeats)])
        if shapes:
            import ray

            start_ray(args.ray_cpus)
            try:
                kiln(max(w for w, _ in shapes), 1, True)  # warm-up: Ray's worker processes up, kiln imported
                for w, t in shapes:
                    record(f"kiln Ray job {w} worker{'s' if w > 1 else ''} x {t} thread{'s' if t > 1 else ''}",
                           w * t, [kiln(w, t, True) for _ in range(args.repeats)])
            finally:
                ray.shutdown()

    head = f"{'trainer':<34} {'train s':>8} {'words/s':>11} {'x 1 thread':>10} {'x gensim':>9} {'analogy':>8} {'wordsim':>8}"
    print(head)
    print("-" * len(head))
    one = {name.split(" x ")[0].split(" workers=")[0]: secs for name, t, secs, _, _ in rows if t == 1}
    gensim = {t: secs for name, t, secs, _, _ in rows if name.startswith("gensim")}
    for name, t, secs, acc, rho in rows:
        wps = raw * p.epochs / secs
        base = one.get("gensim" if name.startswith("gensim") else "kiln 1 worker")
        scale = f"{base / secs:.2f}" if base and not name.startswith("kiln Ray") else "-"
        vs = f"{gensim[t] / secs:.2f}" if t in gensim and not name.startswith("gensim") else "-"
        print(f"{name:<34} {secs:>8.2f} {wps:>11,.0f} {scale:>10} {vs:>9} {acc:>8.2%} {rho:>8.3f}")


if __name__ == "__main__":
    main()
