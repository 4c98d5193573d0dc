"""Word2VecJob's steps, each alone, in this process (workers/contract.LocalContext: no Ray, no Redis)."""
from __future__ import annotations

import numpy as np
import pytest

from shared.errors import TrainingError
from shared.specs import build_spec
from workers.contract import LocalContext, ScalingConfig, run_trainer
from workers.word2vec.encode import load_encoded
from workers.word2vec.job import Word2VecJob
from workers.word2vec.trainer import Word2VecTrainer


def spec_for(corpus, **params):
    base = {"corpus": [str(corpus)], "dim": 16, "epochs": 3, "min_count": 1, **params}
    return build_spec({"kind": "word2vec", "name": "local", "params": base, "checkpoint_interval_s": 1e-6})


class Crash(Exception):
    """Raised from a report callback: the process 'dies' right after a checkpoint was persisted."""


def test_steps_report_their_phases_and_placement(small_corpus, tmp_path):
    ctx = LocalContext(spec_for(small_corpus), tmp_path)
    job = Word2VecJob(ctx)
    try:
        job.prepare()
        assert len(job.vocab) == 24 and job.epoch_words > 10_000
        assert (tmp_path / "data" / "vocab.json").is_file()
        job.place()
        assert ctx.reports[-1]["placement"] == [{"worker": 0, "node_id": "local", "node_ip": "127.0.0.1"}]
        job.train()
        result = job.finalize()
    finally:
        job.close()
    phases = [r["phase"] for r in ctx.reports if "phase" in r]
    assert phases == ["scanning corpus", "counting", "encoding", "training", "evaluating"]
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert sum("epoch 3/3: loss" in line for line in ctx.logs) == 1
    assert result.params["dim"] == 16 and result.params["max_vocab_size"] is None
    assert result.params["corpus"] == [str(small_corpus)] and result.params["backend"] == "numba"
    assert set(result.artifacts) >= {"vectors", "vocab", "text"} and result.metrics["resumed_at"] == 0


def test_one_worker_job_runs_the_trainers_own_loop(small_corpus, tmp_path):
    """The job's rounds and Word2VecTrainer.train give the same vectors bit for bit: one loop."""
    spec = spec_for(small_corpus)
    ctx = LocalContext(spec, tmp_path)
    job = Word2VecJob(ctx)
    run_trainer(job)
    from workers.word2vec.model import Word2VecModel

    from_job = Word2VecModel.load(tmp_path / "model").vectors
    arrays = [load_encoded(f) for f in sorted((tmp_path / "data").glob("shard-*.npy"))]
    alone = Word2VecTrainer(spec.params, job.vocab, seed=spec.seed).train(arrays, round_words=123).vectors
    np.testing.assert_array_equal(from_job, alone)


def test_resume_after_a_crash_continues_exactly(small_corpus, tmp_path):
    spec = spec_for(small_corpus, epochs=6)
    whole = run_trainer(Word2VecJob(LocalContext(spec, tmp_path / "whole")))

    def crash_after_checkpoint(_metrics):
        if any("checkpoint saved" in line for line in first.logs):
            raise Crash()

    first = LocalContext(spec, tmp_path / "run", on_report=crash_after_checkpoint)
    with pytest.raises(Crash):
        run_trainer(Word2VecJob(first))
    second = LocalContext(spec, tmp_path / "run", attempt=2)
    assert second.resume is not None
    resumed = run_trainer(Word2VecJob(second))
    assert any("resumed from the checkpoint" in line for line in second.logs)
    assert 0 < resumed.metrics["resumed_at"] < 1
    from workers.word2vec.model import Word2VecModel

    np.testing.assert_array_equal(Word2VecModel.load(tmp_path / "run" / "model").vectors,
                                  Word2VecModel.load(tmp_path / "whole" / "model").vectors)
    assert whole.metrics["resumed_at"] == 0


def test_nan_weights_fail_the_round_naming_round_and_learning_rate(small_corpus, tmp_path):
    job = Word2VecJob(LocalContext(spec_for(small_corpus, epochs=20), tmp_path))
    try:
        job.prepare()
        job.place()
        job.workers.handles[0].set_rows(np.arange(2), np.full((2, 16), np.inf, np.float32), np.zeros((2, 16), np.float32))
        with pytest.raises(TrainingError, match=r"diverged at round 1 \(learning rate [0-9.]+\): syn0.*non-finite values"):
            job.train()
    finally:
        job.close()


def test_two_in_process_workers_share_weights_and_threads_follow_cpus(small_corpus, tmp_path):
    spec = spec_for(small_corpus)
    two = ScalingConfig(workers=2, cpus_per_worker=2, backend="numba")
    ctx = LocalContext(spec, tmp_path, scaling=two)
    job = Word2VecJob(ctx)
    result = run_trainer(job)
    assert job.groups == [[0, 1]] and job.merger is None  # one node: Hogwild in one set of weights
    assert result.params["threads_per_worker"] == 2
    assert any("2 worker(s) x 2 thread(s)" in line for line in ctx.logs)
    assert result.metrics["worker0_words_per_s"] > 0 and result.metrics["worker1_words_per_s"] > 0
