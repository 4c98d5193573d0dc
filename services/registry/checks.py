"""Input checks for the registry, run before anything touches the database.

Names, aliases and tag keys are matched whole (``fullmatch``: ``"w2v\\n"`` is no name), are bounded in
length, and hold no path separator and no ``..``, so they are safe wherever they end up.
Each check returns the cleaned value or raises InvalidParameter (exit code 2).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from shared.errors import InvalidParameter

RESERVED_ALIASES = frozenset({"latest"})
"""Aliases a user may not set: ``name@latest`` always means the highest version."""
LINEAGE_KEYS = frozenset({"job_id", "dataset_fingerprint", "corpus_fingerprint", "kiln_version", "git_commit",
                          "trained_from"})
"""Keys ``register_version`` accepts in ``lineage`` (``corpus_fingerprint`` is word2vec's name for the
dataset's; ``trained_from`` is the ``name:version`` a model was trained from)."""
MAX_TAG_VALUE = 500
"""Longest tag value, in characters: tag values are indexed for search, and a PostgreSQL index entry holds
at most 2704 bytes (500 characters of UTF-8 plus a 250-character key fit)."""
MAX_DESCRIPTION = 10_000
"""Longest description, in characters."""
MAX_KEY = 250
"""Longest param, metric or tag key."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # the same rule as JobSpec.name
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")  # not all digits, so name@3 is never ambiguous
_TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]{0,249}")  # addressable as tag.KEY in a filter
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: Any) -> str:
    """A model name: letters, digits, '.', '_', '-', at most 128, starting with a letter or digit, no '..'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidParameter(f"bad model name {name!r}: use letters, digits, '.', '_' or '-' (at most 128, "
                               "no '..'), starting with a letter or digit")
    return name


def check_alias(alias: Any, *, allow_reserved: bool = False) -> str:
    """An alias: like a name but starting with a letter or '_'; ``latest`` only when ``allow_reserved``."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or ".." in alias:
        raise InvalidParameter(f"bad alias {alias!r}: use letters, digits, '.', '_' or '-' (at most 128, "
                               "no '..'), starting with a letter or '_'")
    if alias in RESERVED_ALIASES and not allow_reserved:
        raise InvalidParameter(f"alias {alias!r} is reserved")
    return alias


def check_tags(tags: Any) -> dict[str, str]:
    """Tag keys like ``team`` or ``data/source`` (no spaces, no '..'); values strings of at most MAX_TAG_VALUE."""
    out = {}
    for key, value in _check_keys(tags, "tags").items():
        if not _TAG_KEY.fullmatch(key) or ".." in key:
            raise InvalidParameter(f"bad tag key {key!r}: use letters, digits, '.', '_', '-', '/' or ':' "
                                   f"(at most {MAX_KEY}, no '..')")
        if not isinstance(value, str):
            raise InvalidParameter(f"tag {key!r}: the value must be a string, got {type(value).__name__}")
        if len(value) > MAX_TAG_VALUE or _CONTROL.search(value.replace("\t", " ")):
            raise InvalidParameter(f"tag {key!r}: the value must be one line of at most {MAX_TAG_VALUE} characters")
        out[key] = value
    return out


def check_description(text: Any) -> str:
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
        raise InvalidParameter(f"a description is text of at most {MAX_DESCRIPTION} characters")
    return text


def encode_params(params: Any) -> dict[str, tuple[str, float | None]]:
    """``{key: any JSON value}`` -> ``{key: (JSON text, the number or None)}``."""
    out = {}
    for key, value in _check_keys(params, "params").items():
        try:
            text = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidParameter(f"param {key!r}: {value!r} is not a JSON value") from None
        number = None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)
        out[key] = (text, number)
    return out


def check_metrics(metrics: Any) -> dict[str, float]:
    """``{key: finite number}`` with float values."""
    out = {}
    for key, value in _check_keys(metrics, "metrics").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidParameter(f"metric {key!r} must be a finite number, got {value!r}")
        out[key] = float(value)
    return out


def check_history(history: Any) -> list[tuple[int, dict[str, float]]]:
    """Per-epoch metrics, ``[{"epoch": 1, "loss": 0.9}, ...]`` -> ``[(1, {"loss": 0.9}), ...]``.

    An entry's step is its ``epoch`` (or ``step``) when it has one, else its 1-based position. Values
    that are not finite numbers (an early ``inf``, a label) are left out rather than refused: the history
    is a record of the run, and a glitch in it must not keep a trained model from being registered.
    """
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise InvalidParameter(f"history must be a list of per-epoch metric dicts, got {type(history).__name__}")
    out = []
    for i, entry in enumerate(history, 1):
        if not isinstance(entry, dict):
            raise InvalidParameter(f"history[{i - 1}] must be a dict, got {type(entry).__name__}")
        entry = dict(entry)
        step = entry.pop("epoch", entry.pop("step", i))
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidParameter(f"history[{i - 1}]: the epoch must be a non-negative integer, got {step!r}")
        _check_keys(entry, f"history[{i - 1}]")
        out.append((step, {k: float(v) for k, v in entry.items()
                           if not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)}))
    return out


def check_strings(d: Any, what: str) -> dict[str, str]:
    for key, value in _check_keys(d, what).items():
        if not isinstance(value, str):
            raise InvalidParameter(f"{what}: {key!r} must be a string, got {type(value).__name__}")
    return dict(d)


def check_lineage(lineage: Any, job_id: str | None) -> dict[str, str | None]:
    """The lineage columns from ``lineage`` (keys from LINEAGE_KEYS) and ``job_id``."""
    lineage = dict(_check_keys(lineage, "lineage"))
    unknown = set(lineage) - LINEAGE_KEYS
    if unknown:
        raise InvalidParameter(f"lineage: unknown keys {sorted(unknown)} (known: {sorted(LINEAGE_KEYS)})")
    for key, value in lineage.items():
        if value is not None and not isinstance(value, str):
            raise InvalidParameter(f"lineage: {key!r} must be a string, got {type(value).__name__}")
    if "corpus_fingerprint" in lineage:
        corpus = lineage.pop("corpus_fingerprint")
        if lineage.get("dataset_fingerprint") not in (None, corpus):
            raise InvalidParameter("lineage: dataset_fingerprint and corpus_fingerprint differ")
        lineage["dataset_fingerprint"] = corpus
    if job_id is not None:
        if lineage.get("job_id") not in (None, job_id):
            raise InvalidParameter(f"job_id {job_id!r} differs from lineage job_id {lineage['job_id']!r}")
        lineage["job_id"] = job_id
    return {key: lineage.get(key) for key in ("job_id", "dataset_fingerprint", "kiln_version", "git_commit",
                                              "trained_from")}


def _check_keys(d: Any, what: str) -> dict:
    if not isinstance(d, dict):
        raise InvalidParameter(f"{what} must be a dict, got {type(d).__name__}")
    for key in d:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or _CONTROL.search(key):
            raise InvalidParameter(f"{what}: keys must be one-line strings of 1 to {MAX_KEY} characters, "
                                   f"got {key!r}")
    return d
