"""A word2vec job on Ray: sharded scan -> vocabulary map-reduce -> encoding -> data-parallel training.

Called by the JobRunner with a JobContext. The job's ``Word2VecWorker`` actors (one per requested
worker, on the CPUs/GPUs the dispatcher reserved) scan the corpus shards for the vocabulary
(map-reduce), encode the shards, then each trains on its share of the encoded stream.

Workers on one node train in shared weights (Hogwild, as gensim's threads do); groups on different
nodes (or GPUs) keep their own weights. Training goes in rounds of about ROUND_S seconds: every
worker trains on its next words at the globally scheduled learning rate, then the runner merges the
groups (DeltaMerge: the most frequent rows every round, the others in turn, all at the end), reports
progress to Redis, and writes a checkpoint every ``checkpoint_interval_s`` seconds.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import ray

from shared.states import JobState
from workers.word2vec.corpus import plan_shards
from workers.lineage import kiln_lineage
from workers.word2vec.trainer import rows_to_average
from workers.word2vec.vocab import Vocab, merge_counts
from workers.word2vec.worker import Word2VecWorker, checkpoint_exists, load_checkpoint, save_checkpoint

ROUND_S = 1.0
"""Target seconds of training between two parameter averagings / progress reports."""
FREQUENT_ROWS = 2048
"""The most frequent words' rows are merged every round; the rest in turn (trainer.rows_to_average)."""
SHARD_BYTES = 32 << 20
"""Largest target bytes per corpus shard (one Ray task scans or encodes one shard)."""
MIN_SHARD_BYTES = 1 << 20
"""Smallest target bytes per shard: below this a task costs more than it saves."""


def _reader_opts(p) -> dict:
    return {"lowercase": p.lowercase, "token_pattern": p.token_pattern, "max_sentence_length": p.max_sentence_length}


def split_stream(lengths: list[int], workers: int) -> list[list[tuple[int, int, int]]]:
    """Cut the concatenated encoded shards into ``workers`` contiguous parts of equal length.

    Returns, per worker, pieces (shard index, lo, hi) in array positions. Workers move each cut to
    the next sentence start (Word2VecWorker), with the same rule on both sides, so pieces tile exactly.
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


def run_word2vec(ctx) -> dict:
    spec, p, r = ctx.spec, ctx.spec.params, ctx.spec.resources
    ctx.status.set_state(ctx.job_id, JobState.RUNNING, message="scanning corpus")
    ctx.log(f"attempt {ctx.attempt}: preparing data ({len(p.corpus)} file(s))")
    t0 = time.time()
    opts = _reader_opts(p)

    # Every step runs on the job's own trainer actors, on the CPUs the dispatcher reserved for it
    # (Ray tasks could not get CPUs the trainers hold). The actors start and warm their kernel up first.
    workers_n = r.workers
    actor = ray.remote(Word2VecWorker).options(num_cpus=r.cpus_per_worker, num_gpus=r.gpus_per_worker)
    workers = [actor.remote(p.model_dump_json(), spec.seed, k, r.gpus_per_worker > 0) for k in range(workers_n)]

    # 1. vocabulary: map over shards (several per worker), reduce here
    corpus_bytes = sum(os.path.getsize(f) for f in p.corpus)
    target = int(min(SHARD_BYTES, max(MIN_SHARD_BYTES, corpus_bytes / (4 * workers_n))))
    shards = plan_shards(p.corpus, target_bytes=target)
    counts = merge_counts(ray.get([workers[i % workers_n].count.remote(sh.to_dict(), opts)
                                   for i, sh in enumerate(shards)]))
    fingerprint_ref = workers[-1].fingerprint.remote(p.corpus)
    vocab = Vocab.build(counts, min_count=p.min_count, max_vocab_size=p.max_vocab_size)
    raw_words = counts.raw_words
    if counts.stats.undecodable_bytes:
        ctx.log(f"replaced {counts.stats.undecodable_bytes} undecodable byte(s) while reading the corpus", level="WARNING")
    ctx.log(f"vocabulary: {len(vocab)} words (min_count={p.min_count}) from {raw_words} tokens in {len(shards)} shard(s)")

    # 2. encoding, written beside the job
    vocab_json = vocab.to_json()
    ray.get([w.set_vocab.remote(vocab_json) for w in workers])
    data_dir = ctx.artifacts.job_dir(ctx.job_id, "data")
    (data_dir / "vocab.json").write_text(vocab_json)
    encoded = ray.get([workers[i % workers_n].encode.remote(sh.to_dict(), opts, str(data_dir / f"shard-{i:05d}.npy"))
                       for i, sh in enumerate(shards)])
    paths = [e[0] for e in encoded]
    total = sum(e[1] for e in encoded)
    lengths = [e[2] for e in encoded]
    prep_s = time.time() - t0
    ctx.log(f"encoded {total} in-vocabulary words in {prep_s:.1f}s")

    # 3. training
    parts = split_stream(lengths, workers_n)
    ray.get([w.attach.remote([(paths[i], lo, hi) for i, lo, hi in part]) for w, part in zip(workers, parts)])
    node_of = ray.get([w.node.remote() for w in workers])
    nodes = len(set(node_of))
    groups = _share_per_node(ctx.job_id, workers, node_of, gpu=r.gpus_per_worker > 0)
    total_work = total * p.epochs
    ckpt_dir = ctx.artifacts.checkpoint_dir(ctx.job_id)
    done = 0
    if checkpoint_exists(ckpt_dir):
        state, meta = load_checkpoint(ckpt_dir)
        ray.get([w.load_state.remote(state, meta["positions"][k]) for k, w in enumerate(workers)])
        done = int(meta["words_done"])
        ctx.log(f"resumed from the checkpoint at {done / total_work:.1%}")
    # one representative per group of workers sharing weights; groups (nodes, GPUs) merge by DeltaMerge
    reps = [g[0] for g in groups]
    merger = DeltaMerge(*ray.get(reps[0].get_rows.remote(None))) if len(reps) > 1 else None
    ctx.report(progress=done / total_work, epochs=p.epochs, throughput_unit="words/s", message="training")
    ctx.log(f"training {'skip-gram' if p.sg else 'CBOW'} dim={p.dim} on {workers_n} worker(s) on {nodes} node(s)")

    # Words per round, per worker. One worker: a fixed size (about 200 rounds), so a job is deterministic
    # for its seed. Several: each adapted to its own speed (ROUND_S), so none waits for another.
    adaptive = workers_n > 1
    budgets = [100_000 if adaptive else int(min(2_000_000, max(50_000, total_work / 200)))] * workers_n
    rounds = 0
    last_ckpt = time.time()
    train_t0 = time.time()
    train_done0 = done
    loss_words, loss_sum = 0, 0.0
    worker_words = [0] * workers_n
    worker_seconds = [0.0] * workers_n
    while done < total_work:
        a0 = done / total_work
        step = sum(budgets)
        a1 = min(1.0, (done + step) / total_work)
        lr0 = p.lr - (p.lr - p.min_lr) * a0
        lr1 = p.lr - (p.lr - p.min_lr) * a1
        outs = ray.get([w.train_words.remote(b, lr0, lr1) for w, b in zip(workers, budgets)])
        did = sum(o["words"] for o in outs)
        if did == 0:
            break
        done += did
        loss_sum += sum(o["loss"] for o in outs)
        loss_words += did
        for k, o in enumerate(outs):
            worker_words[k] += o["words"]
            worker_seconds[k] += o["seconds"]
        # a slower worker gets fewer words, so no worker waits for another at the end of a round
        if adaptive:
            budgets = [int(max(10_000, min(5_000_000, b * ROUND_S / max(o["seconds"], 1e-3))))
                       if o["words"] >= b else b for b, o in zip(budgets, outs)]
        rounds += 1
        if merger is not None:
            merger.merge(reps, None if done >= total_work else rows_to_average(vocab.counts, rounds,
                                                                               hot_rows=FREQUENT_ROWS))
        elapsed = time.time() - train_t0
        rate = (done - train_done0) / max(elapsed, 1e-6)
        raw_rate = rate * raw_words / max(total, 1)
        ctx.report(progress=done / total_work, throughput=round(raw_rate), loss=loss_sum / max(loss_words, 1),
                   eta_s=(total_work - done) / max(rate, 1e-6), epoch=min(p.epochs, int(done // max(total, 1)) + 1))
        if time.time() - last_ckpt > spec.checkpoint_interval_s and done < total_work:
            _checkpoint(ctx, workers, reps, merger, ckpt_dir, done)
            last_ckpt = time.time()
    train_s = time.time() - train_t0

    # 4. outputs, evaluation, result
    from workers.word2vec.model import Word2VecModel  # noqa: PLC0415

    vectors = ray.get(workers[0].vectors.remote())
    model = Word2VecModel(vocab.words, vectors, counts=vocab.counts)
    model_dir = ctx.artifacts.job_dir(ctx.job_id, "model")
    files = model.save(model_dir)
    artifacts = {name: ctx.artifacts.uri(path) for name, path in files.items()}
    words_per_s = raw_words * p.epochs / max(prep_s + train_s, 1e-6)
    metrics = {
        "vocab_size": float(len(vocab)),
        "corpus_words": float(raw_words),
        "train_words": float(total),
        "words_per_s": round(words_per_s, 1),
        "train_words_per_s": round(raw_words * p.epochs / max(train_s, 1e-6), 1),
        "prep_seconds": round(prep_s, 3),
        "train_seconds": round(train_s, 3),
        "final_loss": float(loss_sum / max(loss_words, 1)),
    }
    for k, (n, sec) in enumerate(zip(worker_words, worker_seconds)):  # raw words/s while training
        metrics[f"worker{k}_words_per_s"] = round(n / max(sec, 1e-6) * raw_words / max(total, 1), 1)
    metrics.update(_evaluate(ctx, model, p))
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}  # a diverged loss is no metric
    for w in workers:
        ray.kill(w)
    params = p.model_dump(exclude={"corpus"})
    params.update({"corpus": json.dumps(p.corpus), "workers": r.workers, "cpus_per_worker": r.cpus_per_worker,
                   "gpus_per_worker": r.gpus_per_worker, "seed": spec.seed})
    lineage = {"job_id": ctx.job_id, "dataset_fingerprint": ray.get(fingerprint_ref), **kiln_lineage()}
    ctx.log(f"done: {metrics['words_per_s']:.0f} words/s overall; model files in {model_dir}")
    return {"params": {k: ("" if v is None else str(v)) for k, v in params.items()},
            "metrics": metrics, "artifacts": artifacts, "lineage": lineage}


def _share_per_node(job_id: str, workers, node_of: list[str], *, gpu: bool) -> list[list]:
    """Group the CPU workers of each node around one set of shared weights (Hogwild, like gensim's
    threads: no merging within a node). GPU workers keep their own weights (one group each)."""
    if gpu:
        return [[w] for w in workers]
    by_node: dict[str, list] = {}
    for w, node in zip(workers, node_of):
        by_node.setdefault(node, []).append(w)
    groups = list(by_node.values())
    for k, group in enumerate(groups):
        if len(group) < 2:
            continue
        key = f"{job_id}-{k}-{time.time_ns()}"
        ray.get(group[0].share_memory.remote(key, True))
        ray.get([w.share_memory.remote(key, False) for w in group[1:]])
        ray.get(group[0].unlink_shared.remote(key))
    return groups


class DeltaMerge:
    """Merges data-parallel workers by summing their updates since the last merge.

    For rows R: new = base + sum_k (worker_k - base), sent back to every worker; base keeps the merged
    values. Summing (not averaging) the updates gives each word the step it would get if one trainer
    had seen all the workers' text, as shared-memory Hogwild does; plain averaging divided every
    worker's update by the number of workers (measured: 3 analogy points lost with 2 workers).
    """

    def __init__(self, syn0: np.ndarray, syn1neg: np.ndarray):
        self.base0, self.base1 = syn0.copy(), syn1neg.copy()

    def merge(self, workers, rows) -> None:
        parts = ray.get([w.get_rows.remote(rows) for w in workers])
        sel = slice(None) if rows is None else rows
        b0, b1 = self.base0[sel], self.base1[sel]
        new0 = b0 + np.sum([x[0] - b0 for x in parts], axis=0, dtype=np.float32)
        new1 = b1 + np.sum([x[1] - b1 for x in parts], axis=0, dtype=np.float32)
        self.base0[sel], self.base1[sel] = new0, new1
        ray.get([w.set_rows.remote(rows, new0, new1) for w in workers])


def _checkpoint(ctx, workers, reps, merger, ckpt_dir: Path, done: int) -> None:
    if merger is not None:
        merger.merge(reps, None)
    state = ray.get(workers[0].state.remote())
    positions = ray.get([w.position.remote() for w in workers])
    save_checkpoint(ckpt_dir, state, {"words_done": done, "positions": positions})
    ctx.report(checkpoint=str(ckpt_dir))
    ctx.log(f"checkpoint written at {done}")


def _evaluate(ctx, model, p) -> dict:
    from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: PLC0415

    out = {}
    if p.eval_analogies:
        res = analogy_accuracy(model, p.eval_analogies)
        out["analogy_accuracy"] = float(res["accuracy"])
        ctx.log(f"analogies: {res['accuracy']:.4f} ({res['correct']}/{res['total']})")
    if p.eval_similarity:
        res = similarity_spearman(model, p.eval_similarity)
        out["similarity_spearman"] = float(res["spearman"])
        ctx.log(f"similarity: Spearman {res['spearman']:.4f}")
    return out
