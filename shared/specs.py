"""Job specs: what a user asks kiln to train, validated before anything is stored.

A JobSpec is built by the CLI (flags or ``-f spec.yaml``) or the Python API, validated here, and stored
as JSON in the job's SQL row. Workers read it back with ``JobSpec.model_validate_json``.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.corpus_files import resolve_corpus
from shared.errors import InvalidParameter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Word2VecParams(_Strict):
    """Hyperparameters; names and defaults follow gensim's Word2Vec (and the original C tool)."""

    corpus: list[str] = Field(min_length=1, description="files, directories or globs (absolute after validation)")
    sg: bool = Field(True, description="skip-gram (True) or CBOW (False)")
    dim: int = Field(100, ge=1, le=4096, description="vector size")
    window: int = Field(5, ge=1, le=100, description="maximum distance between the current and predicted word")
    negative: int = Field(5, ge=1, le=100, description="negative samples per positive pair")
    ns_exponent: float = Field(0.75, ge=-2.0, le=2.0, description="exponent of the negative-sampling distribution")
    min_count: int = Field(5, ge=1, description="ignore words with a lower total count")
    max_vocab_size: int | None = Field(None, ge=1, description="keep at most this many most frequent words")
    sample: float = Field(1e-3, ge=0.0, le=1.0, description="threshold for downsampling frequent words")
    epochs: int = Field(5, ge=1, le=1000)
    lr: float = Field(0.025, gt=0.0, le=10.0, description="initial learning rate (gensim's alpha)")
    min_lr: float = Field(0.0001, ge=0.0, le=10.0, description="final learning rate (gensim's min_alpha)")
    cbow_mean: bool = Field(True, description="CBOW: average the context vectors (True) or sum them")
    lowercase: bool = Field(False, description="lowercase tokens before counting")
    token_pattern: str | None = Field(None, description="regex whose matches are the tokens; default: split on whitespace")
    max_sentence_length: int = Field(10000, ge=1, description="longer lines are cut into sentences this long")
    eval_analogies: str | None = None
    eval_similarity: str | None = None

    @field_validator("token_pattern")
    @classmethod
    def _pattern_compiles(cls, v):
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a valid regular expression ({e})") from None
        return v


class Resources(_Strict):
    workers: int = Field(1, ge=1, le=1024)
    cpus_per_worker: float = Field(1.0, gt=0.0, le=1024)
    gpus_per_worker: float = Field(0.0, ge=0.0, le=64)
    placement: Literal["pack", "spread"] = Field(
        "pack", description="pack: workers fill a node first; spread: one worker per node where possible")

    @property
    def total_cpus(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def total_gpus(self) -> float:
        return self.workers * self.gpus_per_worker


class JobSpec(_Strict):
    kind: Literal["word2vec"] = "word2vec"
    name: str = Field(description="the registered model's name")
    params: Word2VecParams
    resources: Resources = Resources()
    priority: int = Field(0, ge=-1000, le=1000, description="higher runs first")
    max_retries: int = Field(2, ge=0, le=100)
    seed: int = Field(1, ge=0, le=2**31 - 1)
    checkpoint_interval_s: float = Field(60.0, gt=0, description="seconds between checkpoints while training")
    user: str = "kiln"

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v):
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 128), starting with a letter or digit")
        return v


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if p not in ("params", "resources")) or "spec"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    return f"{where}: {msg}{shown}"


def build_spec(data: dict) -> JobSpec:
    """Validate a plain dict into a JobSpec, checking the corpus files; raise InvalidParameter on any problem."""
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidParameter(_first_error(e)) from None
    p = spec.params
    if p.min_lr > p.lr:
        raise InvalidParameter(f"min_lr ({p.min_lr}) must not exceed lr ({p.lr})")
    files = resolve_corpus(p.corpus)

    def eval_file(path: str | None) -> str | None:  # the same existence / readability / text checks
        return None if path is None else str(resolve_corpus([path])[0])

    params = p.model_copy(update={"corpus": [str(f) for f in files], "eval_analogies": eval_file(p.eval_analogies),
                                  "eval_similarity": eval_file(p.eval_similarity)})
    return spec.model_copy(update={"params": params})
