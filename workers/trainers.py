"""Which trainer class trains which job kind (imported lazily: a word2vec job never imports the CNN code)."""
from __future__ import annotations

import importlib

from shared.errors import KilnError

TRAINERS = {
    "word2vec": "workers.word2vec.job:Word2VecJob",
    "cnn": "workers.cnn.job:CnnJob",
}
"""Job kind -> "module:Class". The class takes a TrainContext and implements workers.contract.Trainer;
its ``backend(spec)`` static method names the backend the runner puts in the ScalingConfig."""


def trainer_class(kind: str):
    try:
        module, _, name = TRAINERS[kind].partition(":")
    except KeyError:
        raise KilnError(f"no trainer for job kind {kind!r}") from None
    return getattr(importlib.import_module(module), name)
