"""The registry database: job records and the model registry, in SQLite or PostgreSQL.

    db = Database()                      # KILN_DB_URL, migrated on first use
    db.jobs.create(job_id=..., ...)      # JobRecords
    db.models.get_version("w2v", alias="prod")   # ModelRegistry
    db.models.search(VersionQuery(filters=(parse_filter("metric.accuracy>0.9"),), limit=10))
    with db.session() as s:              # several writes in one transaction
        db.models.register_version(..., session=s)
        db.jobs.transition(job_id, "SUCCEEDED", result=..., session=s)

SQL rows never leave this package: callers get the dataclasses in ``entities``.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from services.registry.engine import (SCHEMA_REVISION, SchemaOutOfDate, check_schema, ensure_schema, make_engine,
                                      session_scope, upgrade)
from services.registry.entities import JobRecord, Lineage, ModelVersion, RegisteredModel
from services.registry.jobs import JobRecords
from services.registry.models import ModelRef, ModelRegistry, VersionInUse, parse_ref
from services.registry.search import Filter, OrderField, VersionQuery, parse_filter, parse_order
from services.registry.tokens import ApiToken, TokenRecords  # registers api_tokens on Base.metadata

__all__ = [
    "Database", "ModelRegistry", "JobRecords", "JobRecord", "ModelVersion", "RegisteredModel",
    "Lineage", "ModelRef", "parse_ref", "make_engine", "session_scope", "upgrade", "check_schema",
    "SchemaOutOfDate", "SCHEMA_REVISION", "VersionInUse", "VersionQuery", "Filter", "OrderField", "parse_filter",
    "parse_order", "ApiToken", "TokenRecords", "load_model",
]


class Database:
    """The engine, both stores, and ``session()`` for one transaction across them.

    ``url`` defaults to the settings' ``db_url``. An empty database is migrated on first use
    (``auto_upgrade``); one at an older schema raises SchemaOutOfDate (run ``kiln db upgrade``).
    """

    def __init__(self, url: str | URL | None = None, *, auto_upgrade: bool = True):
        if url is None:
            from shared.config import get_settings
            url = get_settings().db_url
        self.engine = make_engine(url)
        try:
            (ensure_schema if auto_upgrade else check_schema)(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.models = ModelRegistry(self.engine)
        self.jobs = JobRecords(self.engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def session(self, *, read_only: bool = False) -> AbstractContextManager[Session]:
        """One transaction: pass it as ``session=`` to store methods; commits at the end, rolls back on error.

        ``read_only`` transactions must not write; on SQLite they never wait behind another writer's lock.
        """
        return session_scope(self.engine, read_only=read_only)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_model(ref: str, settings=None):
    """``load_model("news@production")``: word2vec vectors (``most_similar``, ``analogy``), or for a CNN an
    eval-mode torch module with its preprocessing. See ``services.models`` for every registry operation."""
    from services.models import load_model as _load  # noqa: PLC0415 - numpy/torch only when a model is loaded

    return _load(ref, settings)
