"""Job specs: what a user asks kiln to train, validated before anything is stored.

A JobSpec is built by the CLI (flags or ``-f spec.yaml``) or the Python API, validated here, and stored
as JSON in the job's SQL row. Workers read it back with ``JobSpec.model_validate_json``.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.cnn_params import CnnParams

from shared.corpus_files import resolve_corpus
from shared.errors import InvalidParameter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Word2VecParams(_Strict):
    """Hyperparameters; names and defaults follow gensim's Word2Vec (and the original C tool)."""

    corpus: list[str] = Field(min_length=1, description="files, directories or globs (absolute after validation)")
    sg: bool = Field(True, description="skip-gram (True) or CBOW (False)", json_schema_extra={"flag": "--sg/--cbow"})
    dim: int = Field(100, ge=1, le=4096, description="vector size")
    window: int = Field(5, ge=1, le=100, description="maximum distance between the current and predicted word")
    negative: int = Field(5, ge=1, le=100, description="negative samples per positive pair")
    ns_exponent: float = Field(0.75, ge=-2.0, le=2.0, description="exponent of the negative-sampling distribution")
    min_count: int = Field(5, ge=1, description="ignore words with a lower total count")
    max_vocab_size: int | None = Field(None, ge=1, description="keep at most this many most frequent words",
                                       json_schema_extra={"flag": "--max-vocab"})
    sample: float = Field(1e-3, ge=0.0, le=1.0, description="threshold for downsampling frequent words")
    epochs: int = Field(5, ge=1, le=1000, description="passes over the corpus")
    lr: float = Field(0.025, gt=0.0, le=10.0, description="initial learning rate (gensim's alpha)")
    min_lr: float = Field(0.0001, ge=0.0, le=10.0, description="final learning rate (gensim's min_alpha)")
    cbow_mean: bool = Field(True, description="CBOW: average the context vectors (True) or sum them",
                            json_schema_extra={"flag": "--cbow-mean/--cbow-sum"})
    lowercase: bool = Field(False, description="lowercase tokens before counting")
    token_pattern: str | None = Field(None, description="regex whose matches are the tokens; default: split on whitespace")
    max_sentence_length: int = Field(10000, ge=1, description="longer lines are cut into sentences this long")
    eval_analogies: str | None = Field(None, description="questions-words file; analogy accuracy becomes a metric")
    eval_similarity: str | None = Field(None, description="word pairs with scores; Spearman becomes a metric")

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
    workers: int = Field(1, ge=1, le=1024, description="training workers (Ray actors), one placement bundle each")
    cpus_per_worker: float = Field(1.0, gt=0.0, le=1024, description="CPUs reserved per worker (its threads)")
    gpus_per_worker: float = Field(0.0, ge=0.0, le=64, description="GPUs reserved per worker")
    placement: Literal["pack", "spread"] = Field(
        "pack", description="pack: workers fill a node first; spread: one worker per node where possible")

    @property
    def total_cpus(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def total_gpus(self) -> float:
        return self.workers * self.gpus_per_worker


class JobSpec(_Strict):
    kind: Literal["word2vec", "cnn"] = "word2vec"
    name: str = Field(description="the registered model's name")
    params: Word2VecParams | CnnParams
    resources: Resources = Resources()
    priority: int = Field(0, ge=-1000, le=1000, description="higher runs first")
    max_retries: int = Field(2, ge=0, le=100, description="re-runs after a lost worker, runner or node")
    seed: int = Field(1, ge=0, le=2**31 - 1, description="random seed (one-worker jobs are deterministic for it)")
    checkpoint_interval_s: float = Field(60.0, gt=0, le=86400, description="seconds between checkpoints while training",
                                         json_schema_extra={"flag": "--checkpoint-interval", "unit": "duration"})
    timeout_s: float | None = Field(None, gt=0, le=365 * 86400,
                                    description="a running attempt past this many seconds is stopped and FAILED",
                                    json_schema_extra={"flag": "--timeout", "unit": "duration"})
    user: str = "kiln"

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v):
        if not _NAME.fullmatch(v) or ".." in v:  # fullmatch: `$` would let a trailing newline in
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 128, no '..'), starting with a letter "
                             "or digit")
        return v

    @model_validator(mode="after")
    def _params_match_kind(self):
        if not isinstance(self.params, PARAMS_BY_KIND[self.kind]):
            raise ValueError(f"params are not {self.kind} parameters")
        return self


PARAMS_BY_KIND = {"word2vec": Word2VecParams, "cnn": CnnParams}


class _Word2VecParamsOnly(_Strict):
    params: Word2VecParams


def flag_of(model: type[BaseModel], field: str) -> str:
    """The CLI flag of ``model``'s ``field``: ``json_schema_extra["flag"]`` or ``--field-name`` (for a pair
    such as ``--sg/--cbow``, the whole pair)."""
    info = model.model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return extra.get("flag") or "--" + field.replace("_", "-")


_MODELS = {"params": Word2VecParams, "resources": Resources}


def _where(loc: tuple, flags: bool) -> str:
    """How the user named the field at ``loc``: its flag (``--min-count``) or its key (``min_count``)."""
    parts = [str(p) for p in loc]
    if flags and parts:
        model = _MODELS.get(parts[0], JobSpec) if len(parts) > 1 else JobSpec
        name = parts[1] if len(parts) > 1 and parts[0] in _MODELS else parts[0]
        if name == "corpus":
            return "CORPUS"
        if name in model.model_fields:
            return flag_of(model, name).split("/")[0]
    return ".".join(p for p in parts if p not in _MODELS) or "spec"


def _plain(err: dict) -> str:
    """Pydantic's error as plain words: ``must be at least 1``, ``must be a whole number``."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return "must be a finite number"
    plain = {
        "greater_than_equal": lambda: f"must be at least {ctx.get('ge')}",
        "greater_than": lambda: f"must be greater than {ctx.get('gt')}",
        "less_than_equal": lambda: f"must be at most {ctx.get('le')}",
        "less_than": lambda: f"must be less than {ctx.get('lt')}",
        "int_parsing": lambda: "must be a whole number", "int_type": lambda: "must be a whole number",
        "int_from_float": lambda: "must be a whole number",
        "float_parsing": lambda: "must be a number", "float_type": lambda: "must be a number",
        "bool_parsing": lambda: "must be true or false", "bool_type": lambda: "must be true or false",
        "missing": lambda: "is required", "extra_forbidden": lambda: "is not a known setting",
        "literal_error": lambda: f"must be one of {ctx.get('expected')}",
        "too_short": lambda: "needs at least one file",
        "string_type": lambda: "must be text",
    }.get(kind)
    return plain() if plain else err["msg"].removeprefix("Value error, ")


def _first_error(e: ValidationError, *, flags: bool = False) -> str:
    err = e.errors()[0]
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None or err["type"] == "missing" else f" (got {value!r})"
    sep = ":" if err["type"] == "value_error" else ""
    return f"{_where(err['loc'], flags)}{sep} {_plain(err)}{shown}"


def build_spec(data: dict, *, flags: bool = False, skipped: list | None = None) -> JobSpec:
    """Validate a plain dict into a JobSpec, checking the corpus files; raise InvalidParameter on any problem.
    ``skipped`` (a list) collects the (path, reason) of files a corpus directory or glob left out.

    ``flags``: messages name the CLI flag (``--min-count must be at least 1``) instead of the spec key
    (``min_count must be at least 1``), for specs built from the command line."""
    if data.get("kind", "word2vec") == "word2vec" and isinstance(data.get("params"), dict):
        try:  # validated alone first, so errors are named by field and not by the params union's branch
            data = {**data, "params": _Word2VecParamsOnly.model_validate({"params": data["params"]}).params}
        except ValidationError as e:
            raise InvalidParameter(_first_error(e, flags=flags)) from None
    if data.get("kind") == "cnn" and isinstance(data.get("params"), dict):  # errors named by field, not union branch
        try:
            data = {**data, "params": CnnParams.model_validate(data["params"])}
        except ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else "params"
            where = ("DATASET" if name == "dataset" else flag_of(CnnParams, name)) if flags and name in CnnParams.model_fields else name
            raise InvalidParameter(_first_error(e, flags=False).replace(".".join(map(str, err["loc"])) or "spec", where, 1)) from None
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidParameter(_first_error(e, flags=flags)) from None
    if spec.kind == "cnn":
        return spec  # the dataset itself is checked by workers/cnn/precheck.py (it reads image headers)
    p = spec.params
    if p.min_lr > p.lr:
        lr, min_lr = ("--lr", "--min-lr") if flags else ("lr", "min_lr")
        raise InvalidParameter(f"{min_lr} ({p.min_lr}) must not exceed {lr} ({p.lr})")
    files = resolve_corpus(p.corpus, skipped=skipped)

    def eval_file(path: str | None, flag: str) -> str | None:  # the same existence / readability / text checks
        return None if path is None else str(resolve_corpus([path], what=flag)[0])

    params = p.model_copy(update={"corpus": [str(f) for f in files],
                                  "eval_analogies": eval_file(p.eval_analogies, "--eval-analogies"),
                                  "eval_similarity": eval_file(p.eval_similarity, "--eval-similarity")})
    return spec.model_copy(update={"params": params})
