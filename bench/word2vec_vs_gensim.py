"""kiln's word2vec against gensim's Word2Vec on one corpus, same hyperparameters: in process and as a Ray job.

Rows:
- ``gensim workers=2``: gensim's Word2Vec (build_vocab + train), the peer;
- ``kiln in-process 1 thread``: the job's own steps and round loop (workers/word2vec/job.py ``Word2VecJob``)
  with its one worker in this process (``workers.contract.LocalContext``: no Ray, no Redis);
- ``kiln Ray job N worker(s)``: the same ``Word2VecJob`` with its N ``Word2VecWorker`` actors of 1 CPU on a
  local Ray cluster of ``--ray-cpus`` CPUs (vocabulary map-reduce, encoding and training on the actors; the
  workers of one node train in shared weights), without Redis or SQL (``LocalContext(uses_ray=True)``
  keeps reports and logs in memory and files in a temporary folder).

Columns: wall s = vocabulary + encoding + training (the job's ``prep_seconds + train_seconds``; for gensim
its build_vocab + train); ``job s`` is the whole job (model files and evaluation included), median over
``--repeats`` runs; words/s = raw corpus words x epochs / wall s; analogy = accuracy on gensim's
questions-words.txt (3CosAdd over the 30,000 most frequent words); wordsim = WordSim-353 Spearman (means
over the runs); then each figure as a ratio to gensim's. Every model is scored by the same code
(workers/word2vec/evaluate.py, which agrees with gensim's evaluate_* functions).

    python -m bench.word2vec_vs_gensim [--corpus PATH] [--epochs 5] [--repeats 3] [--ray-workers 1,2]

The default corpus is bench/corpora.py's ``bench_corpus()`` (python3-doc manuals + WordNet glosses +
the Wikipedia sample; ``make bench-data`` builds it), else the Wikipedia sample alone. numba compiles the
kernel once per machine (cached on disk) and the first Ray job starts Ray's worker processes: an
untimed warm-up of each keeps that out of the figures. The in-process rows run before Ray starts, so
Ray's idle processes do not slow them; within each group the order alternates between repeats.
"""
from __future__ import annotations

import os

# Before anything imports ray: a short-lived local cluster, no token, no usage report.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from bench.corpora import bench_corpus, questions_words, wiki_extract_text, word_count, wordsim353  # noqa: E402
from shared.specs import JobSpec, Resources, Word2VecParams  # noqa: E402
from workers.contract import LocalContext, ScalingConfig, run_trainer  # noqa: E402
from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: E402
from workers.word2vec.job import Word2VecJob  # noqa: E402
from workers.word2vec.model import Word2VecModel  # noqa: E402
from workers.word2vec.trainer import Word2VecTrainer  # noqa: E402
from workers.word2vec.vocab import Vocab  # noqa: E402


@dataclass
class Run:
    """One timed run: the model, the wall seconds of vocabulary + training, and extra figures."""

    model: Word2VecModel
    wall: float
    job_s: float | None = None  # a kiln job's whole run (model files and evaluation included)
    metrics: dict = field(default_factory=dict)  # a kiln job's result metrics


# -- in process -------------------------------------------------------------------------------------

def run_gensim(corpus: str, p: Word2VecParams, workers: int, seed: int) -> Run:
    """gensim's build_vocab + train, timed."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    t0 = time.perf_counter()
    m = Word2Vec(LineSentence(corpus), vector_size=p.dim, window=p.window, negative=p.negative, sg=int(p.sg),
                 min_count=p.min_count, sample=p.sample, epochs=p.epochs, alpha=p.lr, min_alpha=p.min_lr,
                 ns_exponent=p.ns_exponent, cbow_mean=int(p.cbow_mean), hs=0, workers=workers, seed=seed)
    wall = time.perf_counter() - t0
    return Run(Word2VecModel(list(m.wv.index_to_key), m.wv.vectors), wall)


def warm_up(p: Word2VecParams) -> None:
    """Compile (or load from numba's cache) the kernels outside the timed region."""
    vocab = Vocab.build({"a": 5, "b": 5, "c": 5}, min_count=1)
    ids = np.array([0, 1, 2, 0, 1, -1] * 10, dtype=np.int32)
    for sg in (True, False):
        Word2VecTrainer(p.model_copy(update={"sg": sg, "epochs": 1}), vocab, 1).train([ids])


# -- kiln: the job's steps, in process or on Ray ---------------------------------------------------

def run_kiln_job(corpus: str, p: Word2VecParams, workers: int, threads: int, seed: int, root: Path, job_id: str,
                 *, on_ray: bool, checkpoint_interval_s: float | None = None) -> Run:
    """One word2vec job (Word2VecJob through run_trainer) of ``workers`` x ``threads``: its workers in this
    process, or Ray actors on the connected Ray instance (``on_ray``); files removed afterwards."""
    extra = {} if checkpoint_interval_s is None else {"checkpoint_interval_s": checkpoint_interval_s}
    spec = JobSpec(name="bench", params=p.model_copy(update={"corpus": [str(Path(corpus).absolute())]}),
                   resources=Resources(workers=workers, cpus_per_worker=float(threads)), seed=seed, user="bench",
                   **extra)
    folder = root / job_id
    ctx = LocalContext(spec, folder, job_id=job_id, uses_ray=on_ray, resume=False,
                       scaling=ScalingConfig.from_resources(spec.resources, backend=Word2VecJob.backend(spec)))
    t0 = time.perf_counter()
    result = run_trainer(Word2VecJob(ctx))
    job_s = time.perf_counter() - t0
    m = result.metrics
    model = Word2VecModel.load(folder / "model")
    shutil.rmtree(folder, ignore_errors=True)
    return Run(model, m["prep_seconds"] + m["train_seconds"], job_s, m)


def start_ray(num_cpus: int) -> None:
    """A fresh local Ray instance of ``num_cpus`` CPUs ("local": never a cluster some other process started)."""
    import ray

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)


def warm_up_ray(corpus: str, p: Word2VecParams, worker_counts: list[int], root: Path, lines: int = 5000) -> None:
    """Untimed small jobs (one per worker count), so that Ray's worker processes are up and have imported
    kiln before the timed jobs."""
    small = root / "warm-up.txt"
    with open(corpus, encoding="utf-8", errors="replace") as src, open(small, "w", encoding="utf-8") as out:
        for _, line in zip(range(lines), src):
            out.write(line)
    for n in worker_counts:
        run_kiln_job(str(small), p.model_copy(update={"epochs": 1, "min_count": 1}), n, 1, 1, root, f"warm-up-{n}w",
                     on_ray=True)


# -- the report -------------------------------------------------------------------------------------

def _versions() -> str:
    out = []
    for dist in ("gensim", "numba", "ray", "numpy"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def _ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}" if base > 0 and np.isfinite(x) else "n/a"


def timed(trainers: list[tuple[str, Callable[[], Run]]], repeats: int, results: dict[str, list]) -> None:
    """Run each trainer ``repeats`` times, alternating the order so that a busy machine does not always
    hit the same one; append (Run, analogy accuracy, Spearman) to ``results[name]``."""
    for r in range(repeats):
        for name, fn in (trainers if r % 2 == 0 else trainers[::-1]):
            run = fn()
            acc = analogy_accuracy(run.model, questions_words())["accuracy"]
            rho = similarity_spearman(run.model, wordsim353())["spearman"]
            results[name].append((run, acc, rho))
            print(f"  {name}: {run.wall:.2f} s, analogy {acc:.2%}, wordsim {rho:.3f}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="plain-text corpus (default: bench_corpus(), else the Wikipedia sample)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sg", type=int, default=1, choices=(0, 1), help="1 skip-gram, 0 CBOW")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negative", type=int, default=5)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--gensim-workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="also time kiln's in-process Hogwild variant on this many threads (0: no such row)")
    ap.add_argument("--ray-workers", default="1,2",
                    help="comma-separated worker counts of the Ray job rows, 1 CPU each ('' : no Ray rows)")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--checkpoint-interval", type=float, default=None,
                    help="seconds between a Ray job's checkpoints (default: the job spec's default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs per row; wall time is the median")
    args = ap.parse_args()
    ray_workers = [int(x) for x in args.ray_workers.split(",") if x.strip()]
    if any(n > args.ray_cpus for n in ray_workers):
        ap.error(f"--ray-workers {args.ray_workers}: a job of 1-CPU workers needs at most --ray-cpus {args.ray_cpus}")

    print(f"command: python -m bench.word2vec_vs_gensim {shlex.join(sys.argv[1:])}".rstrip())
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}; {_versions()}")
    if args.corpus:
        corpus = str(args.corpus)
    else:
        try:
            corpus = str(bench_corpus())
        except FileNotFoundError as e:
            print(f"note: {e}; falling back to the Wikipedia sample")
            corpus = str(wiki_extract_text())
    raw = word_count(corpus)
    p = Word2VecParams(corpus=[corpus], sg=bool(args.sg), dim=args.dim, window=args.window, negative=args.negative,
                       min_count=args.min_count, sample=args.sample, epochs=args.epochs)
    print(f"corpus: {corpus}, {raw:,} words; {'skip-gram' if p.sg else 'CBOW'} dim {p.dim} window {p.window} "
          f"negative {p.negative} min_count {p.min_count} sample {p.sample} epochs {p.epochs}; "
          f"median of {args.repeats} run(s) (min-max)", flush=True)

    warm_up(p)
    gensim_row = f"gensim workers={args.gensim_workers}"
    ray_rows = [(f"kiln Ray job {n} worker{'s' if n > 1 else ''}", n) for n in ray_workers]
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        counter = iter(range(1_000_000))

        def job(n: int, threads: int, on_ray: bool) -> Callable[[], Run]:
            return lambda: run_kiln_job(corpus, p, n, threads, args.seed, Path(tmp), f"bench-{next(counter)}",
                                        on_ray=on_ray, checkpoint_interval_s=args.checkpoint_interval)

        in_process = [(gensim_row, lambda: run_gensim(corpus, p, args.gensim_workers, args.seed)),
                      ("kiln in-process 1 thread", job(1, 1, False))]
        if args.threads > 1:
            in_process.append((f"kiln in-process {args.threads} threads", job(1, args.threads, False)))
        results: dict[str, list] = {name: [] for name, _ in in_process + ray_rows}
        timed(in_process, args.repeats, results)

        if ray_rows:
            import ray

            start_ray(args.ray_cpus)
            try:
                warm_up_ray(corpus, p, ray_workers, Path(tmp))
                timed([(name, job(n, 1, True)) for name, n in ray_rows], args.repeats, results)
            finally:
                ray.shutdown()

    vocab_size = len(results[gensim_row][0][0].model)
    print(f"vocabulary: {vocab_size:,} words (gensim); Ray cluster: {args.ray_cpus} CPUs, 1 CPU per worker")
    head = (f"{'trainer':<26} {'wall s':>19} {'job s':>7} {'words/s':>10} {'analogy':>8} {'wordsim':>8} "
            f"{'speed x':>8} {'analogy x':>9} {'wordsim x':>9}")
    print(head)
    print("-" * len(head))
    base = None
    summary: dict[str, dict] = {}
    for name in results:
        runs = results[name]
        walls = sorted(r.wall for r, _, _ in runs)
        wall = float(np.median(walls))
        wps = raw * p.epochs / wall
        acc = float(np.mean([a for _, a, _ in runs]))
        rho = float(np.mean([b for _, _, b in runs]))
        job_s = [r.job_s for r, _, _ in runs if r.job_s is not None]
        if base is None:
            base = (wps, acc, rho)
        summary[name] = {"wps": wps, "runs": [r for r, _, _ in runs]}
        spread = f"{wall:.2f} ({walls[0]:.2f}-{walls[-1]:.2f})"
        job = f"{np.median(job_s):.2f}" if job_s else "-"
        print(f"{name:<26} {spread:>19} {job:>7} {wps:>10,.0f} {acc:>8.2%} {rho:>8.3f} "
              f"{_ratio(wps, base[0]):>8} {_ratio(acc, base[1]):>9} {_ratio(rho, base[2]):>9}")

    def job_median(name: str, key: str) -> float:
        return float(np.median([r.metrics.get(key, np.nan) for r in summary[name]["runs"]]))

    for name, n in ray_rows:
        per_worker = ", ".join(f"{job_median(name, f'worker{k}_words_per_s'):,.0f}" for k in range(n))
        print(f"{name}: prep {job_median(name, 'prep_seconds'):.2f} s + training "
              f"{job_median(name, 'train_seconds'):.2f} s; training alone "
              f"{job_median(name, 'train_words_per_s'):,.0f} words/s; per worker {per_worker} words/s while training")
    if 1 in ray_workers and 2 in ray_workers:
        one, two = ray_rows[ray_workers.index(1)][0], ray_rows[ray_workers.index(2)][0]
        train_ratio = job_median(two, "train_words_per_s") / job_median(one, "train_words_per_s")
        print(f"kiln 2 workers / 1 worker throughput = {summary[two]['wps'] / summary[one]['wps']:.2f} "
              f"(vocabulary + training; training alone {train_ratio:.2f}; target >= 1.7)")

if __name__ == "__main__":
    main()
