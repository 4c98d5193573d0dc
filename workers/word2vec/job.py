"""Word2VecJob: word2vec on the training contract (workers/contract.py).

Steps, in the order ``run_trainer`` calls them:

- ``prepare``: start the job's workers (each on its own placement-group bundle, ``ctx.worker_options``;
  they warm their kernel up meanwhile), cut the corpus into byte-range shards, count them on the workers
  (the map of the vocabulary; the reduce is here), and encode them on the workers into .npy files;
- ``place``: find where the workers run (reported as ``placement``), give each its share of the encoded
  stream, and let the workers of one node train in shared weights (Hogwild, like gensim's threads);
- ``train``: the one loop, in rounds: every worker trains its next words at the job's learning-rate
  schedule (``Word2VecWorker.train_round``), groups on different nodes merge by summed deltas, the
  weights are checked for NaN/inf, progress is reported, and a checkpoint is written every
  ``spec.checkpoint_interval_s`` seconds; a resumed attempt continues where the checkpoint stood;
- ``finalize``: model files, evaluation, and the ``TrainResult``.

On a job the workers are Ray actors; under a context without Ray (``ctx.uses_ray`` false: tests, the
benchmark) the same workers are plain objects in this process and the same loop drives them.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from workers.contract import Checkpoint, TrainResult, check_finite
from workers.lineage import kiln_lineage
from workers.word2vec.corpus import corpus_size, plan_shards
from workers.word2vec.merge import DeltaMerge
from workers.word2vec.trainer import THREAD_CHUNK_WORDS, lr_at, rows_to_merge
from workers.word2vec.vocab import Vocab, merge_counts
from workers.word2vec.worker import Word2VecWorker

CHECKPOINT_FORMAT = "kiln.word2vec.checkpoint/1"
WEIGHTS_FILE = "weights.safetensors"
ROUND_S = 1.0
"""Target seconds of training per round for multi-worker jobs (between two merges / progress reports)."""
FREQUENT_ROWS = 2048
"""The most frequent words' rows are merged across nodes every round; the rest in turn (rows_to_merge)."""
FULL_MERGE_FLOATS = 8_000_000
"""Up to this many weights per matrix (vocabulary x dim, 32 MB), every row is merged every round: that
costs tens of milliseconds a round, and rows left to drift apart for several rounds cost quality."""
SHARD_BYTES = 32 << 20
"""Largest target bytes per corpus shard (one worker call counts or encodes one shard)."""
MIN_SHARD_BYTES = 1 << 20
"""Smallest target bytes per shard: below this a call costs more than it saves."""


def split_stream(lengths: list[int], workers: int) -> list[list[tuple[int, int, int]]]:
    """Cut the concatenated encoded shards into ``workers`` contiguous parts of equal length.

    Returns, per worker, pieces (shard index, lo, hi) in array positions. Workers move each cut to the next
    sentence start (encode.next_sentence_start), the same rule on both sides, so the pieces tile exactly.
    """
    total = sum(lengths)
    cuts = [round(total * k / workers) for k in range(workers + 1)]
    starts = np.cumsum([0] + lengths[:-1]).tolist()
    parts: list[list[tuple[int, int, int]]] = []
    for k in range(workers):
        lo, hi = cuts[k], cuts[k + 1]
        pieces = []
        for i, (s0, n) in enumerate(zip(starts, lengths)):
            a, b = max(lo, s0), min(hi, s0 + n)
            if a < b:
                pieces.append((i, a - s0, b - s0))
        parts.append(pieces)
    return parts


def first_round_words(total_work: int, workers: int, threads: int) -> int:
    """Words per worker in a round. One worker: a fixed size, about 200 rounds a job (on one thread the
    vectors do not depend on it; see trainer.RoundPlan). Several: a first guess that the loop adapts to
    each worker's speed. With threads, at least 16 chunks per thread, so that the wait at the end of a
    round (the threads' one barrier) stays a small part of it."""
    base = 100_000 if workers > 1 else int(min(2_000_000, max(50_000, total_work / 200)))
    if threads > 1:
        base = max(base * (threads if workers > 1 else 1), 16 * THREAD_CHUNK_WORDS * threads)
    return base


class _Workers:
    """The job's workers, called alike whether they are Ray actors or plain objects in this process."""

    def __init__(self, handles: list, remote: bool):
        self.handles, self.remote = handles, remote

    def __len__(self) -> int:
        return len(self.handles)

    def call(self, rank: int, method: str, *args):
        """Start ``method`` on worker ``rank``: an ObjectRef on Ray, the value itself otherwise."""
        fn = getattr(self.handles[rank], method)
        return fn.remote(*args) if self.remote else fn(*args)

    def get(self, refs):
        if not self.remote:
            return refs
        import ray  # noqa: PLC0415

        return ray.get(refs)

    def each(self, method: str, *args, ranks=None) -> list:
        """``method(*args)`` on every worker (or ``ranks``), results in rank order."""
        ranks = range(len(self.handles)) if ranks is None else ranks
        return self.get([self.call(k, method, *args) for k in ranks])

    def put(self, value):
        """A value shipped once to many workers (a Ray object ref, or the value itself)."""
        if not self.remote:
            return value
        import ray  # noqa: PLC0415

        return ray.put(value)


@dataclass
class _Progress:
    """Where the job's loop stands; what a checkpoint records besides the weights and worker positions."""

    words_done: int = 0  # in-vocabulary words trained by all workers, all epochs
    rounds: int = 0
    budgets: list[int] = field(default_factory=list)
    train_seconds: float = 0.0  # training time of all attempts so far


class Word2VecJob:
    """A word2vec job's trainer (see the module docstring); ``ctx`` is a workers.contract.TrainContext."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.spec, self.p = ctx.spec, ctx.spec.params
        self.scaling = ctx.scaling
        self.workers: _Workers | None = None
        self.vocab: Vocab | None = None
        self.raw_words = 0
        self.encoded: list[tuple[str, int, int]] = []  # (path, words, array length) per shard
        self.groups: list[list[int]] = []  # ranks sharing one set of weights
        self.merger: DeltaMerge | None = None
        self.progress = _Progress()
        self.history: list[dict] = []
        self.final_loss = float("nan")
        self.prep_s = self.train_s = 0.0
        self.resumed_at = 0.0
        self.words_at_start = 0
        self._fingerprint = None
        self.worker_time: list[list[float]] = []  # per rank: [words trained, seconds training] this attempt

    @staticmethod
    def backend(spec) -> str:
        """The kernel a job's workers train with: the Triton kernel on the GPU when the job asks for GPUs,
        else the compiled CPU kernel."""
        return "triton-cuda" if spec.resources.gpus_per_worker > 0 else "numba"

    # -- prepare ----------------------------------------------------------------------------------
    def _reader_opts(self) -> dict:
        p = self.p
        return {"lowercase": p.lowercase, "token_pattern": p.token_pattern, "max_sentence_length": p.max_sentence_length}

    def _start_workers(self) -> None:
        ctx, n = self.ctx, self.scaling.workers
        args = (self.p.model_dump_json(), self.spec.seed)
        extra = (self.scaling.backend, self.scaling.threads_per_worker)
        if getattr(ctx, "uses_ray", False):
            import ray  # noqa: PLC0415

            actor = ray.remote(Word2VecWorker)
            named = {"namespace": ctx.namespace} if ctx.namespace else {}
            handles = [actor.options(**ctx.worker_options(k), name=self.worker_name(ctx.job_id, ctx.attempt, k),
                                     max_restarts=0, **named).remote(*args, k, *extra) for k in range(n)]
            self.workers = _Workers(handles, remote=True)
        else:
            self.workers = _Workers([Word2VecWorker(*args, k, *extra) for k in range(n)], remote=False)

    @staticmethod
    def worker_name(job_id: str, attempt: int, rank: int) -> str:
        """The Ray actor name of a job's worker (in the runner's namespace), e.g. for an operator's tools."""
        return f"w2v-{job_id}-a{attempt}-{rank}"

    def prepare(self) -> None:
        """Shards scanned, vocabulary reduced, shards encoded to .npy files beside the job, on the workers."""
        ctx, p = self.ctx, self.p
        t0 = time.time()
        ctx.report({"phase": "scanning corpus", "epochs": p.epochs, "throughput_unit": "words/s"})
        ctx.log(f"attempt {ctx.attempt}: preparing data ({len(p.corpus)} file(s)) on {self.scaling.workers} "
                f"worker(s) x {self.scaling.threads_per_worker} thread(s), backend {self.scaling.backend}")
        self._start_workers()
        w, n = self.workers, len(self.workers)
        corpus_bytes = corpus_size(p.corpus)  # a file deleted since submit: one line, not FileNotFoundError
        target = int(min(SHARD_BYTES, max(MIN_SHARD_BYTES, corpus_bytes / (4 * n))))
        shards = plan_shards(p.corpus, target_bytes=target)
        opts = self._reader_opts()
        if w.remote:  # hashing the files overlaps the counting
            self._fingerprint = w.call(n - 1, "fingerprint", p.corpus)

        ctx.report({"phase": "counting"})
        ctx.log(f"counting words in {len(shards)} shard(s) of {corpus_bytes:,} bytes")
        counts = merge_counts(w.get([w.call(i % n, "count", sh.to_dict(), opts) for i, sh in enumerate(shards)]))
        self.vocab = Vocab.build(counts, min_count=p.min_count, max_vocab_size=p.max_vocab_size)
        self.raw_words = counts.raw_words
        if counts.stats.undecodable_bytes:
            ctx.log(f"replaced {counts.stats.undecodable_bytes} undecodable byte(s) while reading the corpus",
                    level="WARNING")
        ctx.log(f"vocabulary: {len(self.vocab)} words (min_count={p.min_count}) from {self.raw_words} tokens "
                f"in {len(shards)} shard(s)")

        ctx.report({"phase": "encoding"})
        ctx.log(f"encoding {len(shards)} shard(s) with the vocabulary")
        vocab_json = self.vocab.to_json()
        w.each("set_vocab", vocab_json)
        data_dir = ctx.job_dir("data")
        (data_dir / "vocab.json").write_text(vocab_json)
        self.encoded = w.get([w.call(i % n, "encode", sh.to_dict(), opts, str(data_dir / f"shard-{i:05d}.npy"))
                              for i, sh in enumerate(shards)])
        self.prep_s = time.time() - t0
        ctx.log(f"encoded {self.epoch_words} in-vocabulary words in {self.prep_s:.1f}s")

    @property
    def epoch_words(self) -> int:
        """In-vocabulary words of one pass over the corpus."""
        return sum(e[1] for e in self.encoded)

    # -- place ------------------------------------------------------------------------------------
    def place(self) -> None:
        """Report where the workers run, give each its share of the encoded stream, and group the CPU
        workers of each node around shared weights (GPU workers keep their own)."""
        ctx, w = self.ctx, self.workers
        nodes = w.each("node")
        ctx.report({"placement": [{"worker": k, "node_id": nid, "node_ip": ip} for k, (nid, ip) in enumerate(nodes)]})
        parts = split_stream([e[2] for e in self.encoded], len(w))
        w.get([w.call(k, "attach", [(self.encoded[i][0], lo, hi) for i, lo, hi in part])
               for k, part in enumerate(parts)])
        by_node: dict[str, list[int]] = {}
        for k, (nid, _) in enumerate(nodes):
            by_node.setdefault(nid if not self.scaling.use_gpu else f"gpu-{k}", []).append(k)
        self.groups = list(by_node.values())
        for g, ranks in enumerate(self.groups):
            if len(ranks) > 1:
                key = f"{ctx.job_id}-{ctx.attempt}-{g}-{time.time_ns()}"
                w.get(w.call(ranks[0], "share_memory", key, True))
                w.each("share_memory", key, False, ranks=ranks[1:])
                w.get(w.call(ranks[0], "unlink_shared", key))
        if len(self.groups) > 1:
            self.merger = DeltaMerge(w, [ranks[0] for ranks in self.groups])
        ctx.log(f"placed {len(w)} worker(s) on {len(set(nid for nid, _ in nodes))} node(s), "
                f"{len(self.groups)} weight group(s)")

    # -- train ------------------------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        from safetensors.numpy import load_file  # noqa: PLC0415

        meta = ckpt.meta()
        if meta.get("format") != CHECKPOINT_FORMAT or len(meta["positions"]) != len(self.workers):
            raise ValueError(f"the checkpoint {ckpt.path} was not written by this job "
                             f"({meta.get('format')}, {len(meta.get('positions', []))} worker(s))")
        weights = load_file(str(ckpt.path / WEIGHTS_FILE))
        w = self.workers
        syn0, syn1 = w.put(weights["syn0"]), w.put(weights["syn1neg"])
        w.get([w.call(k, "restore", syn0, syn1, pos) for k, pos in enumerate(meta["positions"])])
        job = meta["job"]
        self.progress = _Progress(words_done=int(job["words_done"]), rounds=int(job["rounds"]),
                                  budgets=[int(b) for b in job["budgets"]], train_seconds=float(job["train_seconds"]))
        if self.merger is not None:
            self.merger.reset(weights["syn0"], weights["syn1neg"])

    def _write_checkpoint(self, total_work: int) -> None:
        """Merge every row, write weights + positions to a fresh folder, and report it as the checkpoint.
        A failed write is logged and training goes on (the next checkpoint tries again)."""
        from safetensors.numpy import save_file  # noqa: PLC0415

        ctx, w = self.ctx, self.workers
        if self.merger is not None:
            self.merger.merge(None)
        try:
            folder = ctx.new_checkpoint_dir()
            syn0, syn1 = w.get(w.call(0, "get_rows", None))
            save_file({"syn0": syn0, "syn1neg": syn1}, str(folder / WEIGHTS_FILE))
            pr = self.progress
            Checkpoint.write_meta(folder, {
                "format": CHECKPOINT_FORMAT, "positions": w.each("position"),
                "job": {"words_done": pr.words_done, "rounds": pr.rounds, "budgets": pr.budgets,
                        "train_seconds": pr.train_seconds + self.train_s},
                "vocab_size": len(self.vocab), "dim": self.p.dim})
        except OSError as e:
            ctx.log(f"could not write the checkpoint ({e}); training goes on", level="WARNING")
            return
        ctx.report({"progress": pr.words_done / total_work}, checkpoint=Checkpoint(folder))

    def train(self) -> None:
        """The round loop (see the module docstring); resumes from ``ctx.resume`` when there is one."""
        ctx, p, w = self.ctx, self.p, self.workers
        n, threads = len(w), self.scaling.threads_per_worker
        total_work = self.epoch_words * p.epochs
        pr = self.progress
        pr.budgets = [first_round_words(total_work, n, threads)] * n
        if ctx.resume is not None:
            self._restore(ctx.resume)
            pr = self.progress
            self.resumed_at = pr.words_done / total_work
            ctx.log(f"resumed from the checkpoint at {self.resumed_at:.1%} (round {pr.rounds})")
        self.words_at_start = pr.words_done
        ctx.report({"phase": "training", "progress": pr.words_done / total_work, "epochs": p.epochs,
                    "throughput_unit": "words/s"})
        ctx.log(f"training {'skip-gram' if p.sg else 'CBOW'} dim={p.dim} on {n} worker(s)")
        raw_per_word = self.raw_words / max(self.epoch_words, 1)
        t0 = last_ckpt = time.time()
        epoch_mark = (pr.words_done // max(self.epoch_words, 1), pr.words_done, t0)  # (epoch, words, time)
        epoch_loss = [0.0, 0]
        finished = [False] * n
        self.worker_time = [[0, 0.0] for _ in range(n)]
        while not all(finished):
            done0 = pr.words_done
            active = [k for k in range(n) if not finished[k]]
            step = sum(pr.budgets[k] for k in active)
            plans = {k: {"words": pr.budgets[k], "global_done": done0 if n > 1 else -1,
                         "global_total": total_work if n > 1 else 0, "global_words": step if n > 1 else 0}
                     for k in active}
            outs = dict(zip(active, w.get([w.call(k, "train_round", plans[k]) for k in active])))
            did = sum(o["words"] for o in outs.values())
            for k, o in outs.items():
                finished[k] = o["finished"]
                self.worker_time[k][0] += o["words"]
                self.worker_time[k][1] += o["seconds"]
            pr.words_done += did
            pr.rounds += 1
            loss = sum(o["loss"] for o in outs.values()) / max(sum(o["pairs"] for o in outs.values()), 1)
            lr = max(o["lr"] for o in outs.values()) if outs else lr_at(p, 1.0)
            check_finite(round_index=pr.rounds, lr=lr, loss=loss,
                         nonfinite=sorted({a for o in outs.values() for a in o["nonfinite"]}))
            epoch_loss[0] += sum(o["loss"] for o in outs.values())
            epoch_loss[1] += sum(o["pairs"] for o in outs.values())
            if n > 1:  # a slower worker gets fewer words, so no worker waits long for another
                for k, o in outs.items():
                    if o["words"] >= pr.budgets[k]:
                        pr.budgets[k] = int(max(10_000, min(5_000_000, pr.budgets[k] * ROUND_S / max(o["seconds"], 1e-3))))
            if self.merger is not None:
                every_row = all(finished) or len(self.vocab) * p.dim <= FULL_MERGE_FLOATS
                self.merger.merge(None if every_row else rows_to_merge(self.vocab.counts, pr.rounds,
                                                                      hot_rows=FREQUENT_ROWS))
            now = time.time()
            self.train_s = now - t0
            rate = (pr.words_done - self.words_at_start) / max(self.train_s, 1e-6)
            epoch = min(p.epochs, int(pr.words_done // max(self.epoch_words, 1)) + 1)
            ctx.report({"progress": pr.words_done / total_work, "throughput": round(rate * raw_per_word),
                        "loss": loss, "eta_s": (total_work - pr.words_done) / max(rate, 1e-6), "epoch": epoch,
                        "lr": lr})
            if pr.words_done // max(self.epoch_words, 1) > epoch_mark[0] or all(finished):
                self._end_epoch(epoch_mark, epoch_loss, now, raw_per_word)
                epoch_mark = (pr.words_done // max(self.epoch_words, 1), pr.words_done, now)
                epoch_loss = [0.0, 0]
            if not all(finished) and now - last_ckpt >= self.spec.checkpoint_interval_s:
                self._write_checkpoint(total_work)
                last_ckpt = time.time()
        self.train_s = time.time() - t0

    def _end_epoch(self, mark, epoch_loss, now, raw_per_word) -> None:
        epoch, words, t = mark
        loss = epoch_loss[0] / max(epoch_loss[1], 1)
        wps = (self.progress.words_done - words) * raw_per_word / max(now - t, 1e-6)
        self.final_loss = loss
        self.history.append({"epoch": int(epoch) + 1, "loss": loss, "words_per_s": round(wps, 1)})
        self.ctx.log(f"epoch {int(epoch) + 1}/{self.p.epochs}: loss {loss:.4f}, {wps:,.0f} words/s")

    # -- finalize ---------------------------------------------------------------------------------
    def finalize(self) -> TrainResult:
        """Model files (word2vec text/binary, safetensors + vocabulary), evaluation, metrics, typed params."""
        from workers.word2vec.model import Word2VecModel  # noqa: PLC0415

        ctx, p, r, w = self.ctx, self.p, self.spec.resources, self.workers
        ctx.report({"phase": "evaluating"})
        ctx.log("writing the model files and evaluating")
        vectors = w.get(w.call(0, "vectors"))
        check_finite(round_index=self.progress.rounds, lr=p.min_lr, arrays={"vectors": vectors})
        model = Word2VecModel(self.vocab.words, vectors, counts=self.vocab.counts)
        model_dir = ctx.job_dir("model")
        artifacts = {name: ctx.uri(path) for name, path in model.save(model_dir).items()}
        raw_per_word = self.raw_words / max(self.epoch_words, 1)
        trained_raw = (self.progress.words_done - self.words_at_start) * raw_per_word  # this attempt's words
        metrics = {
            "vocab_size": len(self.vocab),  # counts are ints (JSON: 8839, not 8839.0)
            "corpus_words": int(self.raw_words),
            "train_words": int(self.epoch_words),
            "words_per_s": round(trained_raw / max(self.prep_s + self.train_s, 1e-6), 1),
            "train_words_per_s": round(trained_raw / max(self.train_s, 1e-6), 1),
            "prep_seconds": round(self.prep_s, 3),
            "train_seconds": round(self.train_s, 3),
            "resumed_at": round(self.resumed_at, 6),
            "final_loss": float(self.final_loss),
        }
        for k, (words, seconds) in enumerate(self.worker_time):  # raw words/s of each worker while it trained
            metrics[f"worker{k}_words_per_s"] = round(words * raw_per_word / max(seconds, 1e-6), 1)
        metrics.update(self._evaluate(model))
        params = {**p.model_dump(), "workers": r.workers, "cpus_per_worker": r.cpus_per_worker,
                  "gpus_per_worker": r.gpus_per_worker, "placement": r.placement, "seed": self.spec.seed,
                  "backend": self.scaling.backend, "threads_per_worker": self.scaling.threads_per_worker}
        fingerprint = w.get(self._fingerprint) if self._fingerprint is not None else None
        if fingerprint is None:
            from workers.lineage import corpus_fingerprint  # noqa: PLC0415

            fingerprint = corpus_fingerprint(p.corpus)
        lineage = {"job_id": ctx.job_id, "dataset_fingerprint": fingerprint, **kiln_lineage()}
        ctx.log(f"done: {metrics['words_per_s']:,.0f} words/s overall; model files in {model_dir}")
        return TrainResult(artifacts=artifacts, metrics=metrics, params=json.loads(json.dumps(params)),
                           lineage=lineage, history=self.history)

    def _evaluate(self, model) -> dict:
        from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: PLC0415

        p, out = self.p, {}
        if p.eval_analogies:
            res = analogy_accuracy(model, p.eval_analogies)
            out["analogy_accuracy"] = float(res["accuracy"])
            self.ctx.log(f"analogies: {res['accuracy']:.4f} ({res['correct']}/{res['total']})")
        if p.eval_similarity:
            res = similarity_spearman(model, p.eval_similarity)
            out["similarity_spearman"] = float(res["spearman"])
            self.ctx.log(f"similarity: Spearman {res['spearman']:.4f}")
        return out

    def close(self) -> None:
        """Release the workers (Ray actors killed; in-process ones stop their thread pools)."""
        if self.workers is None:
            return
        if self.workers.remote:
            import ray  # noqa: PLC0415

            for h in self.workers.handles:
                ray.kill(h, no_restart=True)
        else:
            for h in self.workers.handles:
                h.close()
        self.workers = None
