"""Migrations: they apply, they match the ORM, and old or foreign databases are refused clearly."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from services.registry import Database, SchemaOutOfDate, make_engine, upgrade
from services.registry import engine as registry_engine
from services.registry.engine import SCHEMA_REVISION, alembic_config, current_revision, normalize_url
from services.registry.schema import Base
from shared.errors import InvalidParameter, Unavailable


def test_schema_revision_is_the_migration_head():
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_REVISION]


def test_migrations_apply_and_match_the_orm(fresh_url):
    assert upgrade(fresh_url) == SCHEMA_REVISION
    engine = make_engine(fresh_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            assert set(inspect(conn).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op_and_downgrade_removes_everything(fresh_url):
    upgrade(fresh_url)
    assert upgrade(fresh_url) == SCHEMA_REVISION
    engine = make_engine(fresh_url)
    try:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_first_use_migrates_an_empty_database(fresh_url):
    with Database(fresh_url) as db:
        assert current_revision(db.engine) == SCHEMA_REVISION
        assert db.models.list_models() == []


def test_an_unmigrated_database_is_refused_without_auto_upgrade(fresh_url):
    with pytest.raises(SchemaOutOfDate, match="run `kiln db upgrade`") as e:
        Database(fresh_url, auto_upgrade=False)
    assert e.value.code == "SCHEMA_OUT_OF_DATE"


def test_a_database_behind_the_code_says_to_run_kiln_db_upgrade(fresh_url):
    upgrade(fresh_url, "0001")
    needs = rf"at schema revision 0001, this kiln needs {SCHEMA_REVISION}: run `kiln db upgrade`"
    with pytest.raises(SchemaOutOfDate, match=needs):
        Database(fresh_url)
    assert upgrade(fresh_url) == SCHEMA_REVISION
    Database(fresh_url).close()


def test_a_database_ahead_of_the_code_says_to_upgrade_kiln(fresh_url):
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(SchemaOutOfDate, match="newer than this kiln"):
            Database(fresh_url)
    finally:
        engine.dispose()


def test_a_foreign_database_is_not_migrated(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    with pytest.raises(SchemaOutOfDate, match="no kiln schema revision"):
        Database(f"sqlite:///{path}")


def test_sqlite_gets_foreign_keys_wal_and_its_directory(tmp_path):
    path = tmp_path / "a" / "b" / "registry.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_plain_postgresql_urls_get_the_psycopg_driver():
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(InvalidParameter, match="not a database URL"):
        normalize_url("nonsense")


def test_an_unreachable_server_is_one_line_unavailable():
    with pytest.raises(Unavailable) as e:
        Database("postgresql+psycopg://kiln:secret@127.0.0.1:1/kiln")
    assert e.value.code == "SERVICE_UNAVAILABLE"
    message = str(e.value)
    assert message.startswith("cannot reach the database at postgresql+psycopg://kiln:***@127.0.0.1:1/kiln: ")
    assert "\n" not in message and "secret" not in message and "Traceback" not in message


def test_first_use_from_several_processes_at_once(fresh_url):
    barrier, errors = threading.Barrier(4), []

    def first_use():
        try:
            barrier.wait()
            Database(fresh_url).close()
        except BaseException as e:  # collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert current_revision(fresh_url) == SCHEMA_REVISION


def test_an_uncreatable_sqlite_folder_is_unavailable(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(Unavailable, match="cannot create the database folder"):
        make_engine(f"sqlite:///{tmp_path / 'file' / 'registry.db'}")


def test_importing_the_registry_pulls_in_neither_alembic_nor_torch_nor_ray():
    code = ("import sys, services.registry; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'torch', 'ray', 'cli', 'workers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
