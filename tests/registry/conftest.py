"""Fixtures: the same tests run against a SQLite file and, when one is reachable, PostgreSQL.

PostgreSQL isolation: each pytest process works in its own schema (``kiln_test_<pid>_<random>``, set
through ``search_path``), migrated once and emptied before every test, and dropped at the end; tests
that migrate from scratch get a schema of their own. Parallel runs never share tables.
Set KILN_TEST_PG_URL to use another server.
"""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from services.registry import Database, upgrade
from services.registry.schema import Base

PG_URL = os.environ.get("KILN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server():
    """An engine on the test server's default schema, or a skip saying why there is none."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        engine.connect().close()
    except Exception as e:  # any failure to connect means: no PostgreSQL here
        engine.dispose()
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({reason})")
    yield engine
    engine.dispose()


def _schema_url(name: str) -> str:
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False)


def _new_schema(pg_server) -> tuple[str, str]:
    name = f"kiln_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with pg_server.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    return name, _schema_url(name)


def _drop_schema(pg_server, name: str) -> None:
    with pg_server.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def pg_session_url(pg_server):
    """A schema for this pytest process, migrated once."""
    name, url = _new_schema(pg_server)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_schema(pg_server, name)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kiln' / 'registry.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("pg_session_url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """The URL of a database with nothing in it (no tables, no migration record)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'registry.db'}"
        return
    pg_server = request.getfixturevalue("pg_server")
    name, url = _new_schema(pg_server)
    try:
        yield url
    finally:
        _drop_schema(pg_server, name)


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.close()

