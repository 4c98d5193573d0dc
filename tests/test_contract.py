"""The training contract's own parts: checkpoints persisted atomically (and never over something else),
divergence messages, scaling configs, and run_trainer releasing workers whatever happens."""
from __future__ import annotations

import numpy as np
import pytest

from shared.errors import TrainingError
from shared.specs import Resources
from workers.contract import (Checkpoint, ScalingConfig, TrainResult, check_finite, new_checkpoint_dir,
                              persist_checkpoint, run_trainer)


def write(root, value: str) -> Checkpoint:
    d = new_checkpoint_dir(root)
    (d / "weights.npy").write_text(value)
    Checkpoint.write_meta(d, {"value": value})
    return Checkpoint(d)


def test_persist_swaps_the_latest_and_removes_older_ones(tmp_path):
    dest = tmp_path / "checkpoint"
    persist_checkpoint(write(tmp_path, "one"), dest)
    assert Checkpoint(dest).meta() == {"value": "one"}
    persist_checkpoint(write(tmp_path, "two"), dest)
    assert Checkpoint(dest).meta() == {"value": "two"} and (dest / "weights.npy").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("checkpoint-")) == ["checkpoint"]
    assert len(list(tmp_path.glob("checkpoint-*"))) == 1


def test_a_half_written_checkpoint_is_refused(tmp_path):
    d = new_checkpoint_dir(tmp_path)
    (d / "weights.npy").write_text("no meta yet")
    with pytest.raises(ValueError, match="not a whole checkpoint"):
        persist_checkpoint(Checkpoint(d), tmp_path / "checkpoint")


def test_a_file_in_the_way_is_kept_and_the_new_checkpoint_cleaned_up(tmp_path):
    dest = tmp_path / "checkpoint"
    dest.write_text("someone else's file")
    with pytest.raises(OSError, match="in the way"):
        persist_checkpoint(write(tmp_path, "one"), dest)
    assert dest.read_text() == "someone else's file"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]  # no staging or version folder left


def test_divergence_names_round_and_learning_rate():
    check_finite(round_index=3, lr=0.02, loss=1.5, arrays={"w": np.ones(3)})
    with pytest.raises(TrainingError, match=r"round 7 \(learning rate 0.5\): loss is nan"):
        check_finite(round_index=7, lr=0.5, loss=float("nan"))
    with pytest.raises(TrainingError, match="w holds non-finite"):
        check_finite(round_index=1, lr=0.1, arrays={"w": np.array([1.0, np.inf])})
    with pytest.raises(TrainingError, match="syn0, syn1neg hold non-finite"):
        check_finite(round_index=1, lr=0.1, nonfinite=["syn0", "syn1neg"])
    with pytest.raises(TrainingError, match="final_loss is inf"):
        TrainResult(artifacts={}, metrics={"final_loss": float("inf")}, params={}, lineage={}).to_dict()


def test_scaling_config_from_resources():
    s = ScalingConfig.from_resources(Resources(workers=3, cpus_per_worker=2.5, gpus_per_worker=0.5,
                                               placement="spread"), backend="torch-cuda")
    assert s.threads_per_worker == 2 and s.use_gpu and s.placement_strategy == "SPREAD"
    assert s.bundles() == [{"CPU": 2.5, "GPU": 0.5}] * 3


def test_run_trainer_closes_after_a_failing_step():
    steps = []

    class Failing:
        def prepare(self):
            steps.append("prepare")

        def place(self):
            steps.append("place")
            raise RuntimeError("a worker could not start")

        def train(self):
            steps.append("train")

        def finalize(self):
            steps.append("finalize")

        def close(self):
            steps.append("close")

    with pytest.raises(RuntimeError):
        run_trainer(Failing())
    assert steps == ["prepare", "place", "close"]
