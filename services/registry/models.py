"""ModelRegistry: registered models, their numbered versions, aliases, tags, metrics and lineage.

Every public method runs in its own transaction, or in the caller's when given ``session=`` (from
``Database.session()``), so that several writes commit or roll back together.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from services.registry.checks import (check_alias, check_description, check_history, check_lineage, check_metrics,
                                      check_name, check_strings, check_tags, encode_params)
from services.registry.engine import session_or_new
from services.registry.entities import ModelVersion, RegisteredModel
from services.registry.loading import load_versions
from services.registry.schema import (SqlArtifact, SqlMetric, SqlModelAlias, SqlModelTag, SqlModelVersion,
                                      SqlParam, SqlRegisteredModel, SqlVersionTag, new_uid)
from services.registry.search import VersionQuery, select_version_ids
from services.registry.timestamps import utcnow
from shared.errors import InvalidParameter, KilnError, NotFound, UserError

READY = "READY"
"""Status of a version whose files and records are all in place."""
_VERSION_RETRIES = 5


class VersionInUse(UserError):
    """A version cannot be deleted while an alias points at it (unless forced)."""

    code = "RESOURCE_IN_USE"
    exit_code = 2


class ModelRef(NamedTuple):
    """A parsed ``name``, ``name:version`` or ``name@alias``; ``registry.get_version(*ref)`` resolves it."""

    name: str
    version: int | None = None
    alias: str | None = None


def parse_ref(ref: str) -> ModelRef:
    """``"w2v:3"`` -> ModelRef("w2v", 3); ``"w2v@prod"`` -> ModelRef("w2v", alias="prod"); ``"w2v"`` -> latest.

    ``name@latest`` is the latest version too. InvalidParameter for anything else.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter(f"not a model reference: {ref!r} (use NAME, NAME:VERSION or NAME@ALIAS)")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        check_name(name)
        check_alias(alias, allow_reserved=True)
        return ModelRef(name, None, None if alias == "latest" else alias)
    if ":" in ref:
        name, number = ref.split(":", 1)
        check_name(name)
        if not re.fullmatch(r"[0-9]{1,9}", number) or int(number) < 1:
            raise InvalidParameter(f"not a model reference: {ref!r} (the version after ':' is a number from 1)")
        return ModelRef(name, int(number))
    check_name(ref)
    return ModelRef(ref)


class ModelRegistry:
    """Models and versions in SQL. Methods return entities (``ModelVersion``, ``RegisteredModel``)."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def _session(self, session: Session | None, *, read_only: bool = False):
        return session_or_new(self._engine, session, read_only=read_only)

    # -- writing versions -------------------------------------------------------------------------
    def register_version(self, *, name: str, kind: str, params: dict[str, Any], metrics: dict[str, float],
                         artifacts: dict[str, str], lineage: dict[str, str | None],
                         tags: dict[str, str] | None = None, job_id: str | None = None,
                         history: list[dict[str, float]] | None = None,
                         session: Session | None = None) -> ModelVersion:
        """Record a new version of ``name`` (creating the model on first use) and return it.

        Versions are numbered 1, 2, 3... per model; concurrent callers never get the same number (the
        model row is locked on PostgreSQL, SQLite writers are serialised, and the UNIQUE (model, version)
        constraint backs both). ``params`` values are any JSON values, kept typed; ``metrics`` finite
        numbers (final values); ``history`` per-epoch metric dicts (``[{"epoch": 1, "loss": ..}, ...]``);
        ``artifacts`` name -> URI; ``lineage`` keys from LINEAGE_KEYS. Raises InvalidParameter on bad
        input or when ``name`` exists with another kind.
        """
        check_name(name)
        if not isinstance(kind, str) or not kind or len(kind) > 32:
            raise InvalidParameter(f"model kind must be a short non-empty string, got {kind!r}")
        encoded_params = encode_params(params)
        metrics = check_metrics(metrics)
        steps = check_history(history)
        last: dict[str, float] = {}
        for _, values in sorted(steps, key=lambda sv: sv[0]):
            last.update(values)
        metrics = {**last, **metrics}  # a key only in the history: its last value is its final value
        artifacts = check_strings(artifacts, "artifacts")
        tags = check_tags(tags or {})
        lineage = check_lineage(lineage, job_id)
        with self._session(session) as s:
            model = self._lock_or_create_model(s, name, kind)
            for _ in range(_VERSION_RETRIES):
                number = s.scalar(select(func.coalesce(func.max(SqlModelVersion.version), 0))
                                  .where(SqlModelVersion.model_id == model.id)) + 1
                row = SqlModelVersion(
                    model_id=model.id, version=number, status=READY, created_at=utcnow(), uid=new_uid(),
                    **lineage,
                    params=[SqlParam(key=k, value=text, num=num) for k, (text, num) in encoded_params.items()],
                    metrics=[SqlMetric(key=k, value=v, step=None) for k, v in metrics.items()]
                    + [SqlMetric(key=k, value=v, step=step) for step, values in steps for k, v in values.items()],
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
        metrics = check_metrics(metrics)
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

    def describe(self, name: str, text: str, version: int | None = None, *,
                 session: Session | None = None) -> None:
        """Set the description of a model, or of one version when ``version`` is given ("" clears it)."""
        text = check_description(text)
        with self._session(session) as s:
            row = self._model(s, name) if version is None else self._version(s, name, version)
            row.description = text or None
            s.flush()

    def delete_version(self, name: str, version: int, *, force: bool = False,
                       session: Session | None = None) -> ModelVersion:
        """Delete one version with its params, metrics, artifact records, tags and aliases; return it.

        Refused (VersionInUse) while an alias points at it, unless ``force``. The files stay: the model
        service removes them once this has committed.
        """
        with self._session(session) as s:
            row = self._version(s, name, version, lock=True)
            gone = row.to_entity()
            if gone.aliases and not force:
                raise VersionInUse(f"{gone.ref} is {', '.join(f'{name}@{a}' for a in gone.aliases)}: move the "
                                   "alias first, or delete with --force")
            s.delete(row)
            s.flush()
            return gone

    def delete_model(self, name: str, *, session: Session | None = None) -> None:
        """Delete a model with all its versions."""
        with self._session(session) as s:
            s.delete(self._model(s, name))
            s.flush()

    # -- aliases and tags -------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, session: Session | None = None) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (moving it if it pointed elsewhere); return that version."""
        check_alias(alias)
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

    def delete_alias(self, name: str, alias: str, *, session: Session | None = None) -> int:
        """Remove ``name@alias``; return the version it pointed at. NotFound if there is no such alias."""
        check_alias(alias, allow_reserved=True)
        with self._session(session) as s:
            model = self._model(s, name)
            existing = s.get(SqlModelAlias, (model.id, alias))
            if existing is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            version = existing.version.version
            s.delete(existing)
            s.flush()
            return version

    def set_tag(self, name: str, key: str, value: str, version: int | None = None, *,
                session: Session | None = None) -> None:
        """Set a tag on the model, or on one of its versions when ``version`` is given."""
        key, value = next(iter(check_tags({key: value}).items()))
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
        """Remove a tag from the model (or one version); NotFound if it has no such tag."""
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
        with self._session(session, read_only=True) as s:
            return self._resolve(s, name, version, alias).to_entity()

    def history(self, name: str, version: int, *, session: Session | None = None) -> dict[str, list[dict]]:
        """A version's per-step metric values: ``{"loss": [{"step": 1, "value": 0.9}, ...]}``."""
        with self._session(session, read_only=True) as s:
            return self._version(s, name, version).history()

    def get_model(self, name: str, *, session: Session | None = None) -> RegisteredModel:
        with self._session(session, read_only=True) as s:
            model = self._model(s, name)
            latest = s.scalar(select(func.max(SqlModelVersion.version)).where(SqlModelVersion.model_id == model.id))
            return model.to_entity(latest)

    def list_models(self, *, session: Session | None = None) -> list[RegisteredModel]:
        """Every model, by name, with its latest version number, tags and aliases."""
        with self._session(session, read_only=True) as s:
            latest = dict(s.execute(select(SqlModelVersion.model_id, func.max(SqlModelVersion.version))
                                    .group_by(SqlModelVersion.model_id)).all())
            models = s.scalars(select(SqlRegisteredModel).order_by(SqlRegisteredModel.name).options(
                selectinload(SqlRegisteredModel.tags),
                selectinload(SqlRegisteredModel.aliases).selectinload(SqlModelAlias.version))).all()
            return [m.to_entity(latest.get(m.id)) for m in models]

    def list_versions(self, name: str | None = None, *, session: Session | None = None) -> list[ModelVersion]:
        """Versions of one model (NotFound if it does not exist) or of all models, by name then number."""
        with self._session(session, read_only=True) as s:
            query = select(SqlModelVersion).join(SqlModelVersion.model).order_by(SqlRegisteredModel.name,
                                                                                 SqlModelVersion.version)
            if name is not None:
                query = query.where(SqlModelVersion.model_id == self._model(s, name).id)
            ids = list(s.scalars(query.with_only_columns(SqlModelVersion.id)))
            found = load_versions(s, ids)
            return [found[i] for i in ids if i in found]

    def search(self, query: VersionQuery | None = None, *, session: Session | None = None) -> list[ModelVersion]:
        """The versions ``query`` selects (default: the latest of each model, by name), in its order."""
        query = query or VersionQuery()
        with self._session(session, read_only=True) as s:
            ids = list(s.scalars(select_version_ids(query, s.get_bind().dialect.name)))
            found = load_versions(s, ids)
            return [found[i] for i in ids if i in found]

    def uids(self, *, session: Session | None = None) -> set[str]:
        """The uid of every version."""
        with self._session(session, read_only=True) as s:
            return set(s.scalars(select(SqlModelVersion.uid)))

    def artifact_uris(self, *, session: Session | None = None) -> set[str]:
        """Every artifact URI some version references."""
        with self._session(session, read_only=True) as s:
            return set(s.scalars(select(SqlArtifact.uri).distinct()))

    # -- lookups ----------------------------------------------------------------------------------
    def _resolve(self, s: Session, name: str, version: int | None, alias: str | None) -> SqlModelVersion:
        if version is not None and alias is not None:
            raise InvalidParameter("give a version or an alias, not both")
        if alias is not None:
            link = s.get(SqlModelAlias, (self._model(s, name).id, alias))
            if link is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            return link.version
        if version is not None:
            return self._version(s, name, version)
        model = self._model(s, name)
        latest = s.scalars(select(SqlModelVersion).where(SqlModelVersion.model_id == model.id)
                           .order_by(SqlModelVersion.version.desc()).limit(1)).one_or_none()
        if latest is None:
            raise NotFound(f"model {name!r} has no versions")
        return latest

    @staticmethod
    def _model(s: Session, name: str) -> SqlRegisteredModel:
        model = s.scalars(select(SqlRegisteredModel).where(SqlRegisteredModel.name == name)).one_or_none()
        if model is None:
            raise NotFound(f"no model named {name!r}")
        return model

    def _version(self, s: Session, name: str, version: int, *, lock: bool = False) -> SqlModelVersion:
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidParameter(f"version must be an integer, got {version!r}")
        model = self._model(s, name)
        query = select(SqlModelVersion).where(SqlModelVersion.model_id == model.id, SqlModelVersion.version == version)
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).one_or_none()
        if row is None:
            raise NotFound(f"model {name!r} has no version {version}")
        return row
