"""kiln's word2vec GPU kernel (Triton) against its CPU kernel (numba), on one GPU machine, in one run.

Runs where there is no Ray, Redis, SQL or pydantic: it imports numpy, torch, triton and kiln's
kernel/vocab/encode/evaluate modules only (numba too when it is there). It prints:

- the CPU kernel's words/s on this machine's cores (Hogwild threads, as a kiln worker trains) and its
  quality, or "CPU kernel: numba not installed";
- the GPU kernel's words/s at several launch settings (programs per launch; skip-gram and CBOW; the
  skip-gram window as one block or one output row at a time), its quality, and the ratios to the CPU.

words/s = in-vocabulary words x epochs / seconds of training (corpus already encoded and on the device;
the first launch's compilation is done before the clock starts). Quality: analogy accuracy (gensim's
3CosAdd over the 30,000 most frequent words) with ``--questions``, Spearman's rho with ``--wordsim``.

    python bench/word2vec_gpu.py --corpus data/bench-corpus.txt \\
        --questions data/questions-words.txt --wordsim data/wordsim353.tsv
    python bench/word2vec_gpu.py --synthetic 20000000      # a Zipfian corpus, speed only

The corpus is read as kiln reads it (whitespace tokens, one sentence per line, min_count applied).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

try:  # model.py (reached through evaluate.py) saves with safetensors, which this benchmark never does
    import safetensors.numpy  # noqa: F401
except ImportError:  # a GPU machine without it: evaluation still works (it only reads vectors in memory)
    import types

    def _absent(*_a, **_k):
        raise RuntimeError("safetensors is not installed")

    _st = types.ModuleType("safetensors")
    _st.numpy = types.ModuleType("safetensors.numpy")
    _st.numpy.load_file = _st.numpy.save_file = _absent
    sys.modules.update({"safetensors": _st, "safetensors.numpy": _st.numpy})
    print("note: safetensors not installed; model files are not needed here")

from workers.word2vec.encode import count_words, encode_shard, next_sentence_start  # noqa: E402
from workers.word2vec.vocab import Vocab, count_shard, merge_counts  # noqa: E402


def lr_at(lr: float, min_lr: float, fraction: float) -> float:
    return lr - (lr - min_lr) * min(max(fraction, 0.0), 1.0)


def mix(*parts: int) -> int:
    x = 0x243F6A8885A308D3
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


# ------------------------------------------------------------------ data

def load_corpus(paths: list[str], min_count: int) -> tuple[Vocab, np.ndarray]:
    from workers.word2vec.corpus import plan_shards

    shards = plan_shards(paths)
    vocab = Vocab.build(merge_counts([count_shard(s) for s in shards]), min_count=min_count)
    ids = np.concatenate([encode_shard(s, vocab) for s in shards]).astype(np.int32)
    return vocab, ids


def synthetic_corpus(n_words: int, vocab_size: int = 50_000, sentence: int = 20, seed: int = 0) -> tuple[Vocab, np.ndarray]:
    """``n_words`` words drawn from a Zipf(1) law over ``vocab_size`` words, sentences of ``sentence`` words."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab_size + 1)
    ids = rng.choice(vocab_size, size=n_words, p=p / p.sum()).astype(np.int32)
    counts = np.bincount(ids, minlength=vocab_size)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(vocab_size, np.int32)
    rank[order] = np.arange(vocab_size, dtype=np.int32)
    keep = counts[order] > 0
    vocab = Vocab.build({f"w{i}": int(c) for i, c in zip(order[keep], counts[order][keep])}, min_count=1)
    ids = rank[ids]
    out = np.full(n_words + n_words // sentence + 1, -1, np.int32)
    pos = np.arange(n_words) + np.arange(n_words) // sentence
    out[pos] = ids
    return vocab, out


# ------------------------------------------------------------------ quality

def quality(vocab: Vocab, vectors: np.ndarray, args) -> dict:
    if not (args.questions or args.wordsim):
        return {}
    from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman
    from workers.word2vec.model import Word2VecModel

    model = Word2VecModel(vocab.words, vectors, vocab.counts)
    out = {}
    if args.questions:
        out["analogy"] = analogy_accuracy(model, args.questions)["accuracy"]
    if args.wordsim:
        out["spearman"] = similarity_spearman(model, args.wordsim)["spearman"]
    return out


def fmt_quality(q: dict) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in q.items()) or "(no evaluation files)"


# ------------------------------------------------------------------ CPU kernel (numba)

def run_cpu(vocab: Vocab, ids: np.ndarray, args, sg: bool) -> dict | str:
    """The CPU kernel's run, or why it cannot run here."""
    try:
        from workers.word2vec.kernel import KernelTables, init_vectors, train_range
    except ModuleNotFoundError as e:
        return "numba not installed" if e.name and e.name.startswith(("numba", "llvmlite")) else f"not importable ({e})"
    except Exception as e:  # noqa: BLE001 - e.g. a numba that refuses this NumPy
        return f"numba not usable here ({type(e).__name__}: {e})"
    tables = KernelTables(vocab.counts, ns_exponent=0.75, sample=args.sample)
    syn0, syn1 = init_vectors(len(vocab), args.dim, args.seed)
    kw = dict(sg=sg, window=args.window, negative=args.negative, cbow_mean=True)
    train_range(syn0.copy(), syn1.copy(), np.array([0, 1, 0, -1], np.int32), 0, 4, tables, lr_start=0.01,
                lr_end=0.01, seed=1, **kw)  # compile (or load numba's cache) before the clock
    words = count_words(ids)
    total = words * args.epochs
    lock = threading.Lock()
    state = {"epoch": 0, "pos": 0, "done": 0}

    def claim():
        with lock:
            while state["epoch"] < args.epochs and state["pos"] >= len(ids):
                state["epoch"] += 1
                state["pos"] = 0
            if state["epoch"] >= args.epochs:
                return None
            a = state["pos"]
            b = next_sentence_start(ids, a + 10_000)
            n = count_words(ids[a:b])
            d = state["done"]
            state["pos"], state["done"] = b, d + n
            return a, b, lr_at(args.lr, args.min_lr, d / total), lr_at(args.lr, args.min_lr, (d + n) / total), \
                mix(args.seed, state["epoch"], a)

    def work():
        while (c := claim()) is not None:
            a, b, l0, l1, seed = c
            train_range(syn0, syn1, ids, a, b, tables, lr_start=l0, lr_end=l1, seed=seed, **kw)

    threads = args.cpu_threads or os.cpu_count() or 1
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(work) for _ in range(threads)]:
            f.result()
    seconds = time.perf_counter() - t0
    return {"threads": threads, "seconds": seconds, "words_per_s": total / seconds, "vectors": syn0,
            "finite": bool(np.isfinite(syn0).all())}


# ------------------------------------------------------------------ GPU kernel (Triton)

def run_gpu(vocab: Vocab, ids_dev, ids: np.ndarray, tables, args, *, sg: bool, programs: int, sg_loop: bool,
            num_warps: int) -> dict:
    import torch

    def sync():
        if ids_dev.is_cuda:
            torch.cuda.synchronize()

    from workers.word2vec.triton_kernel import train_slice

    keep, thr, alias = tables
    rng = np.random.default_rng(args.seed)
    syn0 = torch.from_numpy(((rng.random((len(vocab), args.dim), dtype=np.float32) - 0.5) / args.dim)).to(ids_dev.device)
    syn1 = torch.zeros_like(syn0)
    kw = dict(keep=keep, neg_threshold=thr, neg_alias=alias, sample=args.sample > 0, sg=sg, window=args.window,
              negative=args.negative, cbow_mean=True, programs=programs, sg_loop=sg_loop,
              num_warps=num_warps)
    n = len(ids)
    warm = min(n, 100_000 if ids_dev.is_cuda else 200)
    train_slice(syn0.clone(), syn1.clone(), ids_dev, 0, warm, lr_start=0.01, lr_end=0.01, seed=1, **kw)
    sync()  # compiled before the clock
    words = count_words(ids)
    step = args.launch_tokens or n
    loss, pairs = 0.0, 0
    t0 = time.perf_counter()
    for e in range(args.epochs):
        for a in range(0, n, step):
            b = min(n, a + step)
            f0, f1 = (e * n + a) / (args.epochs * n), (e * n + b) / (args.epochs * n)
            l, p = train_slice(syn0, syn1, ids_dev, a, b, lr_start=lr_at(args.lr, args.min_lr, f0),
                               lr_end=lr_at(args.lr, args.min_lr, f1), seed=mix(args.seed, e, a), **kw)
            loss, pairs = loss + l, pairs + p
    sync()
    seconds = time.perf_counter() - t0
    vectors = syn0.cpu().numpy()
    return {"seconds": seconds, "words_per_s": words * args.epochs / seconds, "vectors": vectors,
            "finite": bool(np.isfinite(vectors).all() and np.isfinite(syn1.cpu().numpy()).all()),
            "loss_per_pair": loss / max(pairs, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", nargs="+", help="plain-text corpus file(s)")
    src.add_argument("--synthetic", type=int, metavar="N", help="a Zipfian corpus of N words (speed only)")
    ap.add_argument("--questions", help="questions-words file (analogy accuracy)")
    ap.add_argument("--wordsim", help="word pairs with scores, e.g. wordsim353.tsv (Spearman)")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negative", type=int, default=5)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=None, help="default 0.025 skip-gram, 0.05 CBOW (gensim's)")
    ap.add_argument("--min-lr", type=float, default=0.0001)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--programs", default="2048,8192,32768", help="programs per launch to try (skip-gram)")
    ap.add_argument("--cbow-programs", default="8192,32768", help="programs per launch to try (CBOW); '' skips CBOW")
    ap.add_argument("--launch-tokens", type=int, default=0, help="tokens per launch (default: a whole epoch)")
    ap.add_argument("--cpu-threads", type=int, default=0, help="numba threads (default: all cores)")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cpu: Triton's interpreter (TRITON_INTERPRET=1), to check this script on a tiny corpus")
    args = ap.parse_args()
    for f in (args.questions, args.wordsim, *(args.corpus or [])):
        if f and not Path(f).is_file():
            print(f"error: {f}: no such file", file=sys.stderr)
            return 2
    try:
        programs = [int(x) for x in args.programs.split(",") if x]
        cbow_programs = [int(x) for x in args.cbow_programs.split(",") if x]
    except ValueError:
        print("error: --programs and --cbow-programs take comma-separated integers", file=sys.stderr)
        return 2

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device visible to torch; this benchmark measures the GPU kernel", file=sys.stderr)
        return 2
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("error: --device cpu runs the kernel under Triton's interpreter: set TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    from workers.word2vec.gpu_backend import check_fits, free_bytes, host_tables

    t0 = time.perf_counter()
    vocab, ids = synthetic_corpus(args.synthetic) if args.synthetic else load_corpus(args.corpus, args.min_count)
    words = count_words(ids)
    print(f"corpus: {words:,} words, vocabulary {len(vocab):,} (read and encoded in {time.perf_counter() - t0:.1f}s); "
          f"d{args.dim} w{args.window} n{args.negative} sample {args.sample:g}, {args.epochs} epochs")
    dev = torch.device(args.device)
    gpu_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none (Triton's interpreter on the CPU)"
    print(f"GPU: {gpu_name}; torch {torch.__version__}, triton "
          f"{__import__('triton').__version__}; CPU cores: {os.cpu_count()}", flush=True)
    check_fits(len(vocab), args.dim, len(ids), free_bytes=free_bytes(dev), device=str(dev))
    keep, thr, alias = host_tables(vocab.counts, ns_exponent=0.75, sample=args.sample)
    tables = tuple(torch.from_numpy(a).to(dev) for a in (keep, thr, alias))
    ids_dev = torch.from_numpy(ids).to(dev)

    rows = []
    modes = [(True, programs)] + ([(False, cbow_programs)] if cbow_programs else [])
    user_lr = args.lr
    for sg, plist in modes:
        name = "skip-gram" if sg else "CBOW"
        args.lr = user_lr or (0.025 if sg else 0.05)
        cpu = "skipped" if args.skip_cpu else run_cpu(vocab, ids, args, sg)
        if isinstance(cpu, str):
            print(f"{name} CPU kernel: {cpu}")
            cpu = None
        else:
            cpu["quality"] = quality(vocab, cpu.pop("vectors"), args)
            print(f"{name} CPU kernel (numba, {cpu['threads']} threads): {cpu['words_per_s'] / 1e6:.2f}M words/s, "
                  f"{cpu['seconds']:.1f}s, {fmt_quality(cpu['quality'])}{'' if cpu['finite'] else '  NON-FINITE'}",
                  flush=True)
        # (programs, skip-gram row loop, warps per program): the backend's default (row loop, one warp) at
        # each programs count, then the window-block variant and four warps at the middle count
        mid = plist[len(plist) // 2]
        settings = [(p, True, 1) for p in plist] + ([(mid, False, 1)] if sg else []) + [(mid, True, 4)]
        for p, loop, warps in settings:
            g = run_gpu(vocab, ids_dev, ids, tables, args, sg=sg, programs=p, sg_loop=loop, num_warps=warps)
            g["quality"] = quality(vocab, g.pop("vectors"), args)
            ratio = f"  {g['words_per_s'] / cpu['words_per_s']:.1f}x the CPU kernel" if cpu else ""
            diffs = "".join(f"  {k} {v - cpu['quality'][k]:+.3f}" for k, v in g["quality"].items()) if cpu else ""
            label = f"{p} programs x {warps} warp{'s' if warps > 1 else ''}" + ("" if not sg else
                                                                                 ", row loop" if loop else ", block")
            print(f"{name} GPU kernel ({label}): {g['words_per_s'] / 1e6:.1f}M words/s, {g['seconds']:.2f}s, "
                  f"{fmt_quality(g['quality'])}{ratio}{diffs}{'' if g['finite'] else '  NON-FINITE'}", flush=True)
            rows.append((name, label, g))
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0 if all(g["finite"] for _, _, g in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
