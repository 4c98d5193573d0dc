"""ModelRegistry: registered models, their numbered versions, aliases, tags, metrics and lineage.

Every public method runs in its own transaction, or in the caller's when given ``session=`` (from
``Database.session()``), so that several writes commit or roll back together.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from services.registry.engine import session_or_new
from services.registry.entities import ModelVersion, RegisteredModel
from services.registry.schema import (SqlArtifact, SqlMetric, SqlModelAlias, SqlModelTag, SqlModelVersion,
                                      SqlParam, SqlRegisteredModel, SqlVersionTag)
from services.registry.timestamps import utcnow
from shared.errors import InvalidParameter, KilnError, NotFound

READY = "READY"
"""Status of a version whose files and records are all in place."""
RESERVED_ALIASES = frozenset({"latest"})
"""Aliases a user may not set: ``name@latest`` always means the highest version."""
LINEAGE_KEYS = frozenset({"job_id", "dataset_fingerprint", "corpus_fingerprint", "kiln_version", "git_commit"})
"""Keys ``register_version`` accepts in ``lineage`` (``corpus_fingerprint`` is word2vec's name for the dataset's)."""
_VERSION_RETRIES = 5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # the same rule as JobSpec.name
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")  # not all digits, so name@3 is never ambiguous
_MAX_KEY = 250


class ModelRef(NamedTuple):
    """A parsed ``name``, ``name:version`` or ``name@alias``; ``registry.get_version(*ref)`` resolves it."""

    name: str
    version: int | None = None
    alias: str | None = None


def parse_ref(ref: str) -> ModelRef:
    """``"w2v:3"`` -> ModelRef("w2v", 3); ``"w2v@prod"`` -> ModelRef("w2v", alias="prod"); ``"w2v"`` -> latest."""
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter(f"not a model reference: {ref!r} (use NAME, NAME:VERSION or NAME@ALIAS)")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        _check_name(name)
        _check_alias(alias, allow_reserved=True)
        return ModelRef(name, None, None if alias == "latest" else alias)
    if ":" in ref:
        name, number = ref.split(":", 1)
        _check_name(name)
        if not number.isdigit() or int(number) < 1:
            raise InvalidParameter(f"not a model reference: {ref!r} (the version after ':' is a number from 1)")
        return ModelRef(name, int(number))
    _check_name(ref)
    return ModelRef(ref)


class ModelRegistry:
    """Models and versions in SQL. Methods return entities (``ModelVersion``, ``RegisteredModel``)."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def _session(self, session: Session | None):
        return session_or_new(self._engine, session)

    # -- writing versions -------------------------------------------------------------------------
    def register_version(self, *, name: str, kind: str, params: dict[str, Any], metrics: dict[str, float],
                         artifacts: dict[str, str], lineage: dict[str, str | None],
                         tags: dict[str, str] | None = None, job_id: str | None = None,
                         session: Session | None = None) -> ModelVersion:
        """Record a new version of ``name`` (creating the model on first use) and return it.

        Versions are numbered 1, 2, 3... per model; concurrent callers never get the same number (the
        model row is locked on PostgreSQL, SQLite writers are serialised, and the UNIQUE (model, version)
        constraint backs both). ``params`` values are any JSON values; ``metrics`` finite numbers;
        ``artifacts`` name -> URI; ``lineage`` keys from LINEAGE_KEYS. Raises InvalidParameter on bad input
        or when ``name`` exists with another kind.
        """
        _check_name(name)
        if not isinstance(kind, str) or not kind:
            raise InvalidParameter(f"model kind must be a non-empty string, got {kind!r}")
        encoded_params = _encode_params(params)
        metrics = _check_metrics(metrics)
        artifacts = _check_strings(artifacts, "artifacts")
        tags = _check_strings(tags or {}, "tags")
        lineage = _check_lineage(lineage, job_id)
        with self._session(session) as s:
            model = self._lock_or_create_model(s, name, kind)
            for _ in range(_VERSION_RETRIES):
                number = s.scalar(select(func.coalesce(func.max(SqlModelVersion.version), 0))
                                  .where(SqlModelVersion.model_id == model.id)) + 1
                row = SqlModelVersion(
                    model_id=model.id, version=number, status=READY, created_at=utcnow(), **lineage,
                    params=[SqlParam(key=k, value=v) for k, v in encoded_params.items()],
                    metrics=[SqlMetric(key=k, value=v, step=None) for k, v in metrics.items()],
                    artifacts=[SqlArtifact(name=k, uri=v) for k, v in artifacts.items()],
                    tags=[SqlVersionTag(key=k, value=v) for k, v in tags.items()],
                )
                try:
                    with s.begin_nested():  # a lost race on the number rolls back only this savepoint
                        s.add(row)
                    break
                except IntegrityError:
                    continue
            else:
                raise KilnError(f"could not allocate a version number for model {name!r} "
                                f"after {_VERSION_RETRIES} tries")
            return row.to_entity()

    def _lock_or_create_model(self, s: Session, name: str, kind: str) -> SqlRegisteredModel:
        query = select(SqlRegisteredModel).where(SqlRegisteredModel.name == name).with_for_update()
        model = s.scalars(query).one_or_none()
        if model is None:
            try:
                with s.begin_nested():
                    model = SqlRegisteredModel(name=name, kind=kind, created_at=utcnow())
                    s.add(model)
            except IntegrityError:  # another writer created it first and has committed: lock theirs
                model = s.scalars(query).one()
        if model.kind != kind:
            raise InvalidParameter(f"model {name!r} holds {model.kind} models; cannot register a {kind} version")
        return model

    def log_metrics(self, name: str, version: int, metrics: dict[str, float], *, step: int | None = None,
                    session: Session | None = None) -> ModelVersion:
        """Add metric values to a version; a value for the same key and step replaces the old one."""
        metrics = _check_metrics(metrics)
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            raise InvalidParameter(f"metric step must be a non-negative integer, got {step!r}")
        with self._session(session) as s:
            row = self._version(s, name, version)
            same_step = SqlMetric.step.is_(None) if step is None else SqlMetric.step == step
            for key, value in metrics.items():
                s.execute(delete(SqlMetric).where(SqlMetric.version_id == row.id, SqlMetric.key == key, same_step))
                s.add(SqlMetric(version_id=row.id, key=key, value=value, step=step))
            s.flush()
            s.expire(row, ["metrics"])
            return row.to_entity()

    def delete_version(self, name: str, version: int, *, session: Session | None = None) -> None:
        """Delete one version with its params, metrics, artifacts, tags and aliases."""
        with self._session(session) as s:
            s.delete(self._version(s, name, version))
            s.flush()

    def delete_model(self, name: str, *, session: Session | None = None) -> None:
        """Delete a model with all its versions."""
        with self._session(session) as s:
            s.delete(self._model(s, name))
            s.flush()

    # -- aliases and tags -------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, session: Session | None = None) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (moving it if it pointed elsewhere); return that version."""
        _check_alias(alias)
        with self._session(session) as s:
            row = self._version(s, name, version)
            existing = s.get(SqlModelAlias, (row.model_id, alias))
            if existing is None:
                s.add(SqlModelAlias(model_id=row.model_id, alias=alias, version_id=row.id))
            else:
                existing.version_id = row.id
            s.flush()
            s.expire_all()  # alias collections on both ends are now stale
            return row.to_entity()

    def delete_alias(self, name: str, alias: str, *, session: Session | None = None) -> None:
        with self._session(session) as s:
            model = self._model(s, name)
            existing = s.get(SqlModelAlias, (model.id, alias))
            if existing is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            s.delete(existing)
            s.flush()

    def set_tag(self, name: str, key: str, value: str, version: int | None = None, *,
                session: Session | None = None) -> None:
        """Set a tag on the model, or on one of its versions when ``version`` is given."""
        key, value = next(iter(_check_strings({key: value}, "tags").items()))
        with self._session(session) as s:
            if version is None:
                cls, ids = SqlModelTag, {"model_id": self._model(s, name).id}
            else:
                cls, ids = SqlVersionTag, {"version_id": self._version(s, name, version).id}
            existing = s.get(cls, {**ids, "key": key})
            if existing is None:
                s.add(cls(**ids, key=key, value=value))
            else:
                existing.value = value
            s.flush()

    def delete_tag(self, name: str, key: str, version: int | None = None, *,
                   session: Session | None = None) -> None:
        with self._session(session) as s:
            if version is None:
                existing = s.get(SqlModelTag, {"model_id": self._model(s, name).id, "key": key})
                where = f"model {name!r}"
            else:
                existing = s.get(SqlVersionTag, {"version_id": self._version(s, name, version).id, "key": key})
                where = f"{name}:{version}"
            if existing is None:
                raise NotFound(f"{where} has no tag {key!r}")
            s.delete(existing)
            s.flush()

    # -- reading ----------------------------------------------------------------------------------
    def get_version(self, name: str, version: int | None = None, alias: str | None = None, *,
                    session: Session | None = None) -> ModelVersion:
        """One version by number, by alias, or the latest when neither is given. NotFound if absent."""
        if version is not None and alias is not None:
            raise InvalidParameter("give a version or an alias, not both")
        with self._session(session) as s:
            if alias is not None:
                model = self._model(s, name)
                link = s.get(SqlModelAlias, (model.id, alias))
                if link is None:
                    raise NotFound(f"model {name!r} has no alias {alias!r}")
                return link.version.to_entity()
            if version is not None:
                return self._version(s, name, version).to_entity()
            model = self._model(s, name)
            latest = s.scalars(select(SqlModelVersion).where(SqlModelVersion.model_id == model.id)
                               .order_by(SqlModelVersion.version.desc()).limit(1)).one_or_none()
            if latest is None:
                raise NotFound(f"model {name!r} has no versions")
            return latest.to_entity()

    def get_model(self, name: str, *, session: Session | None = None) -> RegisteredModel:
        with self._session(session) as s:
            model = self._model(s, name)
            latest = s.scalar(select(func.max(SqlModelVersion.version)).where(SqlModelVersion.model_id == model.id))
            return model.to_entity(latest)

    def list_models(self, *, session: Session | None = None) -> list[RegisteredModel]:
        """Every model, by name, with its latest version number, tags and aliases."""
        with self._session(session) as s:
            latest = dict(s.execute(select(SqlModelVersion.model_id, func.max(SqlModelVersion.version))
                                    .group_by(SqlModelVersion.model_id)).all())
            models = s.scalars(select(SqlRegisteredModel).order_by(SqlRegisteredModel.name).options(
                selectinload(SqlRegisteredModel.tags),
                selectinload(SqlRegisteredModel.aliases).selectinload(SqlModelAlias.version))).all()
            return [m.to_entity(latest.get(m.id)) for m in models]

    def list_versions(self, name: str | None = None, *, session: Session | None = None) -> list[ModelVersion]:
        """Versions of one model (NotFound if it does not exist) or of all models, by name then number."""
        with self._session(session) as s:
            query = (select(SqlModelVersion).join(SqlModelVersion.model)
                     .order_by(SqlRegisteredModel.name, SqlModelVersion.version)
                     .options(*(selectinload(rel) for rel in (
                         SqlModelVersion.model, SqlModelVersion.params, SqlModelVersion.metrics,
                         SqlModelVersion.artifacts, SqlModelVersion.tags, SqlModelVersion.aliases))))
            if name is not None:
                query = query.where(SqlModelVersion.model_id == self._model(s, name).id)
            return [row.to_entity() for row in s.scalars(query)]

    # -- lookups ----------------------------------------------------------------------------------
    @staticmethod
    def _model(s: Session, name: str) -> SqlRegisteredModel:
        model = s.scalars(select(SqlRegisteredModel).where(SqlRegisteredModel.name == name)).one_or_none()
        if model is None:
            raise NotFound(f"no model named {name!r}")
        return model

    def _version(self, s: Session, name: str, version: int) -> SqlModelVersion:
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidParameter(f"version must be an integer, got {version!r}")
        model = self._model(s, name)
        row = s.scalars(select(SqlModelVersion).where(SqlModelVersion.model_id == model.id,
                                                      SqlModelVersion.version == version)).one_or_none()
        if row is None:
            raise NotFound(f"model {name!r} has no version {version}")
        return row


# -- input checks (before anything touches the database) -----------------------------------------------
def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameter(f"bad model name {name!r}: use letters, digits, '.', '_' or '-' (at most 128), "
                               "starting with a letter or digit")


def _check_alias(alias: Any, *, allow_reserved: bool = False) -> None:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidParameter(f"bad alias {alias!r}: use letters, digits, '.', '_' or '-' (at most 128), "
                               "starting with a letter or '_'")
    if alias in RESERVED_ALIASES and not allow_reserved:
        raise InvalidParameter(f"alias {alias!r} is reserved")


def _check_keys(d: Any, what: str) -> dict:
    if not isinstance(d, dict):
        raise InvalidParameter(f"{what} must be a dict, got {type(d).__name__}")
    for key in d:
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
            raise InvalidParameter(f"{what}: keys must be non-empty strings of at most {_MAX_KEY} characters, "
                                   f"got {key!r}")
    return d


def _encode_params(params: Any) -> dict[str, str]:
    out = {}
    for key, value in _check_keys(params, "params").items():
        try:
            out[key] = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidParameter(f"param {key!r}: {value!r} is not a JSON value") from None
    return out


def _check_metrics(metrics: Any) -> dict[str, float]:
    out = {}
    for key, value in _check_keys(metrics, "metrics").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidParameter(f"metric {key!r} must be a finite number, got {value!r}")
        out[key] = float(value)
    return out


def _check_strings(d: Any, what: str) -> dict[str, str]:
    for key, value in _check_keys(d, what).items():
        if not isinstance(value, str):
            raise InvalidParameter(f"{what}: {key!r} must be a string, got {type(value).__name__}")
    return dict(d)


def _check_lineage(lineage: Any, job_id: str | None) -> dict[str, str | None]:
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
    return {key: lineage.get(key) for key in ("job_id", "dataset_fingerprint", "kiln_version", "git_commit")}
