"""The SQL schema as SQLAlchemy ORM classes. They stay inside services/registry: callers get the
plain records from ``entities`` through each class's ``to_entity()``.

Changing anything here needs a new migration in ``migrations/versions`` (a test compares the two).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import (JSON, Double, ForeignKey, Index, Integer, MetaData, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.registry.entities import JobRecord, Lineage, ModelVersion, RegisteredModel
from services.registry.timestamps import UTCDateTime, utcnow
from shared.states import JobState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names, spelled out again in the migrations so both sides agree."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_uid() -> str:
    """A fresh version uid: 32 hex digits, never reused."""
    return uuid.uuid4().hex


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


class SqlJob(Base):
    """A job's durable record: spec, owner, attempts, final state and result."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_user", "user"),
        Index("ix_jobs_submitted_at", "submitted_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(128))
    spec: Mapped[str] = mapped_column(Text)  # the JobSpec as JSON text, exactly as submitted
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)

    def to_entity(self) -> JobRecord:
        return JobRecord(
            id=self.id, name=self.name, kind=self.kind, user=self.user, spec_json=self.spec,
            priority=self.priority, state=JobState(self.state), attempt=self.attempt,
            max_retries=self.max_retries, submitted_at=self.submitted_at, started_at=self.started_at,
            finished_at=self.finished_at, error=self.error, metrics=self.metrics, result=self.result,
            checkpoint_uri=self.checkpoint_uri,
        )


class SqlRegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[SqlModelVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True,
        order_by="SqlModelVersion.version")
    tags: Mapped[list[SqlModelTag]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    aliases: Mapped[list[SqlModelAlias]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True)

    def to_entity(self, latest_version: int | None = None) -> RegisteredModel:
        return RegisteredModel(
            name=self.name, kind=self.kind, created_at=self.created_at, description=self.description,
            latest_version=latest_version,
            tags={t.key: t.value for t in self.tags},
            aliases={a.alias: a.version.version for a in self.aliases},
        )


class SqlModelVersion(Base):
    """One version of a model; the UNIQUE (model_id, version) pair makes numbering race-free."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index("ix_model_versions_job_id", "job_id"),
        Index("ix_model_versions_uid", "uid", unique=True),
        Index("ix_model_versions_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(_fk("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Never reused, unlike (name, version) after a delete or SQLite's row ids: caches are keyed by it.
    # Nullable only because SQLite cannot add a NOT NULL column in place; kiln always sets it.
    uid: Mapped[str | None] = mapped_column(String(32), default=new_uid)
    description: Mapped[str | None] = mapped_column(Text)
    # Lineage. No foreign key to jobs: the record of where a model came from outlives job rows.
    job_id: Mapped[str | None] = mapped_column(String(64))
    dataset_fingerprint: Mapped[str | None] = mapped_column(String(128))
    kiln_version: Mapped[str | None] = mapped_column(String(64))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    trained_from: Mapped[str | None] = mapped_column(String(200))  # "name:version" of a parent, kept as text

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="versions")
    params: Mapped[list[SqlParam]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    metrics: Mapped[list[SqlMetric]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    artifacts: Mapped[list[SqlArtifact]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    tags: Mapped[list[SqlVersionTag]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    # Read-only here: aliases are written through the model; the database drops them with the version.
    aliases: Mapped[list[SqlModelAlias]] = relationship(viewonly=True)

    def to_entity(self) -> ModelVersion:
        return ModelVersion(
            name=self.model.name, version=self.version, kind=self.model.kind, status=self.status,
            created_at=self.created_at, uid=self.uid or "",
            description=self.description or self.model.description,
            params={p.key: json.loads(p.value) for p in sorted(self.params, key=lambda p: p.key)},
            metrics=summary_metrics(self.metrics),
            artifacts={a.name: a.uri for a in sorted(self.artifacts, key=lambda a: a.name)},
            # A version carries its model's tags too, unless it sets the same key itself.
            tags={t.key: t.value for t in sorted([*self.model.tags, *self.tags], key=lambda t: t.key)
                  if not (isinstance(t, SqlModelTag) and t.key in {v.key for v in self.tags})},
            aliases=tuple(sorted(a.alias for a in self.aliases)),
            lineage=Lineage(job_id=self.job_id, dataset_fingerprint=self.dataset_fingerprint,
                            kiln_version=self.kiln_version, git_commit=self.git_commit,
                            trained_from=self.trained_from),
        )

    def history(self) -> dict[str, list[dict[str, float]]]:
        """Metric values logged at a step (epoch), per key, by step: ``{"loss": [{"step": 1, "value": ..}]}``."""
        out: dict[str, list[dict[str, float]]] = {}
        for m in sorted((m for m in self.metrics if m.step is not None), key=lambda m: (m.key, m.step)):
            out.setdefault(m.key, []).append({"step": m.step, "value": metric_value(m.key, m.value)})
        return out


def summary_metrics(rows: list[SqlMetric]) -> dict[str, float]:
    """One value per key: the value logged without a step if any, else the one at the highest step."""
    best: dict[str, SqlMetric] = {}
    for m in rows:
        old = best.get(m.key)
        if old is None or _rank(m) > _rank(old):
            best[m.key] = m
    return {k: metric_value(k, best[k].value) for k in sorted(best)}


COUNT_SUFFIXES = ("_size", "_words", "_count")
"""Metrics named so are counts (vocab_size, corpus_words...): JSON gives them as integers, not 8839.0."""


def metric_value(key: str, value: float) -> float | int:
    """A stored metric (a float in SQL) as scripts expect it: an int for a whole-number count."""
    return int(value) if key.endswith(COUNT_SUFFIXES) and float(value).is_integer() else value


def _rank(m: SqlMetric) -> tuple[int, int]:
    return (1, 0) if m.step is None else (0, m.step)


class SqlParam(Base):
    """A training parameter; ``value`` is JSON text so numbers stay numbers, and ``num`` holds the value
    again when it is a number, so that ``param.dim >= 100`` compares numbers in SQL."""

    __tablename__ = "model_params"
    __table_args__ = (Index("ix_model_params_key_num", "key", "num"),)

    version_id: Mapped[int] = mapped_column(_fk("model_versions.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    num: Mapped[float | None] = mapped_column(Double)


class SqlMetric(Base):
    """A metric value; ``step`` is None for a final value, else the epoch / iteration it was taken at."""

    __tablename__ = "model_metrics"
    __table_args__ = (
        Index("ix_model_metrics_version_id_key_step", "version_id", "key", "step"),  # a version's value of a key
        Index("ix_model_metrics_key_step_value", "key", "step", "value"),  # filters and orders by a metric
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(_fk("model_versions.id"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Double)
    step: Mapped[int | None] = mapped_column(Integer)


class SqlArtifact(Base):
    __tablename__ = "model_artifacts"

    version_id: Mapped[int] = mapped_column(_fk("model_versions.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    uri: Mapped[str] = mapped_column(Text)


class SqlModelTag(Base):
    __tablename__ = "model_tags"

    model_id: Mapped[int] = mapped_column(_fk("registered_models.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SqlVersionTag(Base):
    __tablename__ = "model_version_tags"
    __table_args__ = (Index("ix_model_version_tags_key_value", "key", "value"),)  # tag.K = V from the tag side

    version_id: Mapped[int] = mapped_column(_fk("model_versions.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SqlModelAlias(Base):
    """``name@alias`` -> one version of the same model; at most one version per alias."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(_fk("registered_models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(_fk("model_versions.id"))

    model: Mapped[SqlRegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[SqlModelVersion] = relationship()

